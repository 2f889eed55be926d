"""The quality and sweep scripts of tests/benchmarks: the scoring, the plain baseline, the
sweep rows, tables and resumable sweeps (the real runs take minutes: by hand, RESULTS.md)."""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from microlm import CharacterTokenizer, MicroLM, cli, split_text

BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import each other, as when run there

import quality  # noqa: E402
import sweep  # noqa: E402

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_score_is_the_mean_over_fresh_128_character_windows_of_the_last_tenth():
    tokenizer = CharacterTokenizer(TEXT)
    torch.manual_seed(0)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=1,
                    dropout=0.0)
    val = TEXT[int(0.9 * len(TEXT)):]  # the last 10 %, never trained on
    ids = torch.tensor(tokenizer.encode(val))
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 128):  # each window from a fresh (zero) state
            inputs = ids[start:min(start + 128, len(ids) - 1)]
            targets = ids[start + 1:start + 1 + len(inputs)]
            logits = model(inputs.unsqueeze(0))[0]
            total += float(F.cross_entropy(logits, targets, reduction="sum"))
            count += len(targets)
    assert count == len(val) - 1
    assert quality.score(model, tokenizer, TEXT) == pytest.approx(total / count, abs=1e-5)


def test_the_split_holds_out_111540_characters_of_tinyshakespeare():
    train, val = split_text("x" * 1_115_394, 0.1)
    assert (len(train), len(val)) == (1_003_854, 111_540)


def test_baseline_trains_the_plain_lstm_and_scores_it():
    result = quality.train_baseline(TEXT * 3, seconds=0.3)
    assert result.steps >= 1
    vocab = len(set(TEXT))  # embedding 128, LSTM 128 -> 512 (4 gates, 2 biases), head
    assert result.parameters == vocab * 128 + 4 * 512 * (128 + 512 + 2) + 512 * vocab + vocab
    assert 0 < result.val_loss < 10


# ---- the sweep rows ----

def flags_of(settings):
    return [dict(zip(s.flags[::2], s.flags[1::2], strict=True)) for s in settings[1:]]


def test_every_sweep_row_parses_into_flags_microlm_train_knows():
    rows = sweep.read_rows()
    assert {row["budgets"] for row in rows} == {"short", "long"}
    parser = cli.build_parser()
    for budget in (60, 300):
        for setting in sweep.sweep_settings(budget)[1:]:
            args = parser.parse_args(["train", "corpus.txt", *setting.flags])
            assert args.hidden_dim > 0 and args.learning_rate > 0, setting.label


def test_sweep_compares_at_least_eight_configurations_with_the_recommendation():
    settings = sweep.sweep_settings(60)
    assert settings[0].recommended and not any(s.recommended for s in settings[1:])
    assert len(settings) >= 9
    assert len({s.label for s in settings}) == len(settings)
    assert len(sweep.sweep_settings(300)) >= 9
    flags = flags_of(settings)
    for varied in ("--hidden-dim", "--num-layers", "--batch-size", "--sequence-length",
                   "--learning-rate", "--output-hidden-dim"):
        assert len({f[varied] for f in flags}) > 1, varied
    assert len({f["--dropout"] for f in flags_of(sweep.sweep_settings(300))}) > 1
    # the long sweep sets both output layers against each other too
    assert {"0", "1024"} <= {f["--output-hidden-dim"] for f in flags_of(
        sweep.sweep_settings(300))}
    for budget in (60, 300):  # and measures the moving average of the weights by a row without
        assert "0" in {f.get("--ema-decay") for f in flags_of(sweep.sweep_settings(budget))}


def test_row_numbers_stay_those_results_md_names():
    """RESULTS.md cites sweep rows by number: rows are only ever added at a group's end."""
    short = [s.label for s in sweep.sweep_settings(60)]
    assert short[0] == "recommended"
    assert short[1] == "h512 b8 t128 lr3e-3 (the plain loop's shape)"
    assert short[31] == "h192 out1024 b16 t64 lr1e-2"  # row 32
    assert short[36] == "h320 out1024 b16 t64 lr1e-2"  # row 37
    assert sweep.sweep_settings(300)[26].label == "h384 out1024 b16 t64 lr8.5e-3"  # row 27


def test_a_row_with_an_unknown_budget_group_is_refused(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("# a comment\nbudgets,label," + ",".join(sweep.FLAGS)
                    + "\nmedium,x,128,256,1,8,64,1e-2,0,0,,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="short or long"):
        sweep.sweep_settings(60, rows)


def fake_run(corpus, budget, setting, text, folder, threads=None):
    loss = 1.5 if setting.recommended else 1.4 + 0.001 * len(setting.label)
    return quality.RunResult(setting.label, loss, budget, budget - 1, 100, 1000, "fake",
                             setting.recommended)


def test_sweep_runs_in_parts_and_reuses_what_a_results_file_holds(tmp_path, monkeypatch):
    calls = []

    def recording_run(*args, **kwargs):
        calls.append(args[2].label)
        return fake_run(*args, **kwargs)

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    monkeypatch.setattr(sweep, "run_train_command", recording_run)
    results = tmp_path / "sweep.jsonl"
    first = sweep.sweep(corpus, 60, print, only=[1, 2], results_path=results)
    assert len(first) == 2 and len(calls) == 2
    everything = sweep.sweep(corpus, 60, print, results_path=results)
    assert len(everything) == len(sweep.sweep_settings(60))
    assert len(calls) == len(sweep.sweep_settings(60))  # the first two were not run again
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert {r["label"] for r in rows} == {s.label for s in sweep.sweep_settings(60)}
    # another budget is another sweep
    sweep.sweep(corpus, 300, print, only=[1], results_path=results)
    assert len(calls) == len(sweep.sweep_settings(60)) + 1


# ---- tables ----

def test_table_ranks_runs_and_marks_the_recommended_one_with_its_gap():
    runs = [quality.RunResult("a", 1.40, 60, 55, 10, 100, "x"),
            quality.RunResult("recommended", 1.47, 60, 55, 10, 100, "y", recommended=True),
            quality.RunResult("b", 1.50, 60, 55, 10, 100, "z")]
    table = quality.format_results(runs, "title")
    lines = table.splitlines()
    assert lines[0] == "title"
    assert lines[3].lstrip().startswith("a ") and "recommended *" in lines[4]
    assert "5.0 %" in lines[4]
    assert "5.0 % above the best" in table
    assert "†" not in table


def test_a_run_that_went_on_with_one_thread_is_marked_in_the_table():
    """What `microlm train` prints when its steps slow down several times reaches the
    sweep's table: such a run is not a fair comparison."""
    printed = ("Training for 54.1 s of the 60 s budget (4.9 s kept for the last validation)\n"
               "Steps became several times slower at step 1,204 (the machine is busy): "
               "continuing on 1 CPU thread.\n")
    extra = quality.timeline(printed)
    assert extra == {"training_budget_s": 54.1, "reserve_s": 4.9,
                     "slowed_to_one_thread_at_step": 1204.0}
    runs = [quality.RunResult("a", 1.40, 60, 55, 10, 100, "x"),
            quality.RunResult("b", 1.45, 60, 55, 10, 100, "y", extra=extra)]
    table = quality.format_results(runs, "title")
    assert "b †" in table.splitlines()[4]
    assert "one thread from step 1,204 (b)" in table
    assert "†" not in table.splitlines()[3]
    assert quality.timeline(printed.replace("became several times slower", "x")) == {
        "training_budget_s": 54.1, "reserve_s": 4.9}


def test_a_missing_corpus_stops_the_script_with_its_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        quality.main([str(tmp_path / "missing.txt"), "--budget", "5"])
    assert stopped.value.code != 0 and "missing.txt" in str(stopped.value.code)



@pytest.mark.slow
def test_both_runs_happen_in_fresh_processes_and_are_scored(tmp_path):
    """`microlm train` (given one epoch, so it ends long before its budget) and the plain
    baseline, each in a process of its own, as a quality run starts them."""
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TEXT * 8, encoding="utf-8")
    tiny = quality.Setting("tiny", ("--embedding-dim", "8", "--hidden-dim", "16",
                                    "--num-layers", "1", "--output-hidden-dim", "0",
                                    "--batch-size", "4", "--sequence-length", "16",
                                    "--epochs", "1"))
    ours = quality.run_train_command(corpus, 60, tiny, TEXT * 8, tmp_path, threads=1)
    assert ours.label == "tiny" and not ours.recommended
    assert ours.steps > 0 and 0 < ours.val_loss < 10 and ours.wall_s < 60
    assert "hidden 16 x 1" in ours.description and "batch 4 x 16" in ours.description
    baseline = quality.run_baseline_process(corpus, 0.3, threads=1)
    assert baseline.label == "plain PyTorch LSTM" and baseline.steps >= 1
    assert 0 < baseline.val_loss < 10
