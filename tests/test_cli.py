"""The `microlm` command line: train, resume, generate, inspect, probe and its error messages."""

import signal
import subprocess
import sys

import pytest
import torch

from microlm import cli, hardware, load_model

TINY = ["--embedding-dim", "8", "--hidden-dim", "16", "--num-layers", "1", "--dropout", "0",
        "--sequence-length", "16", "--batch-size", "8"]
SENTENCES = ("the quick brown fox jumps over the lazy dog. ", "a stitch in time saves nine. ",
             "all that glitters is not gold. ", "where there is smoke there is fire. ")
TEXT = "".join(SENTENCES[i % 4] for i in range(100))  # 3,525 characters
TRAIN_CHARS = len(TEXT) - int(0.1 * len(TEXT))  # the default 10 % is held out
STEPS_PER_EPOCH = (TRAIN_CHARS - 1) // (8 * 16)  # batches of 8 windows of 16 characters


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "proverbs.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checkpoint(text_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("model") / "proverbs.pt"
    status = cli.main(["train", str(text_file), *TINY, "--epochs", "1", "--seed", "3",
                       "--output", str(output)])
    assert status == 0
    return output


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "microlm", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    for command in ("probe", "train", "generate", "inspect", "bench"):
        assert command in result.stdout


def test_every_train_option_is_explained(capsys):
    status, out, _ = run(capsys, "train", "--help")
    assert status == 0
    for option in ("--preset", "--time-budget", "--resume", "--patience", "--val-fraction"):
        assert option in out
    assert "passes over the training text" in out


def test_train_saves_a_checkpoint_with_one_epoch(checkpoint, text_file, capsys):
    model, tokenizer, metadata = load_model(checkpoint)
    assert metadata["step"] == STEPS_PER_EPOCH == 24
    assert model.config.hidden_dim == 16 and model.config.num_layers == 1
    assert tokenizer.vocab_size() == len(set(text_file.read_text()))
    assert metadata["best_val_loss"] is not None


def test_an_output_layer_with_hidden_units_trains_saves_reloads_and_generates(text_file,
                                                                             tmp_path, capsys):
    output = tmp_path / "deep.pt"
    status, out, err = run(capsys, "train", text_file, *TINY, "--output-hidden-dim", "24",
                           "--epochs", "1", "--output", output)
    assert status == 0, err
    assert "output layer 24 units" in err  # the model line goes to stderr
    model, _, _ = load_model(output)
    assert model.config.output_hidden_dim == 24
    assert model.head[0].weight.shape == (24, 16)
    status, out, err = run(capsys, "generate", output, "--prompt", "the ", "--length", "20",
                           "--seed", "1")
    assert status == 0, err
    assert out.startswith("the ") and len(out.strip()) >= 20
    status, _, err = run(capsys, "train", text_file, "--output-hidden-dim", "-3")
    assert status == 2 and "'-3' is not a whole number >= 0" in err


def test_weight_decay_is_a_training_flag(text_file, tmp_path, capsys):
    output = tmp_path / "decayed.pt"
    status, _, err = run(capsys, "train", text_file, *TINY, "--weight-decay", "0.25",
                         "--epochs", "1", "--output", output)
    assert status == 0, err
    assert load_model(output)[2]["training_config"]["weight_decay"] == 0.25
    status, _, err = run(capsys, "train", text_file, "--weight-decay", "-0.1")
    assert status == 2 and "'-0.1' is not a number in [0, 10]" in err


def test_ema_decay_is_a_training_flag(text_file, tmp_path, capsys):
    output = tmp_path / "averaged.pt"
    status, _, err = run(capsys, "train", text_file, *TINY, "--ema-decay", "0", "--epochs", "1",
                         "--output", output)
    assert status == 0, err
    metadata = load_model(output)[2]
    assert metadata["training_config"]["ema_decay"] == 0.0
    assert metadata["training_state"]["average"] is None  # no average kept or saved
    status, _, err = run(capsys, "train", text_file, "--ema-decay", "1")
    assert status == 2 and "'1' is not a number in [0, 1)" in err


def test_train_reports_best_loss_and_checkpoint(text_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "1")
    assert status == 0
    assert "Best validation loss:" in out
    assert f"Checkpoint saved to {tmp_path / 'proverbs.pt'}" in out  # default: <stem>.pt here
    assert (tmp_path / "proverbs.pt").exists()
    assert "warning: Only 3,525 characters" in err  # the corpus's own warning is shown
    assert "val loss" in err  # the periodic validation line


def test_same_seed_trains_the_same_model(text_file, checkpoint, tmp_path, capsys):
    again = tmp_path / "again.pt"
    assert run(capsys, "train", text_file, *TINY, "--epochs", "1", "--seed", "3", "-o",
               again)[0] == 0
    first, _, _ = load_model(checkpoint)
    second, _, _ = load_model(again)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name


def test_ctrl_c_saves_and_resume_finishes_the_same_run(text_file, tmp_path, capsys, monkeypatch):
    straight = tmp_path / "straight.pt"
    assert run(capsys, "train", text_file, *TINY, "--epochs", "2", "-o", straight)[0] == 0

    interrupted = tmp_path / "interrupted.pt"
    original_step = cli.ProgressLine.step

    def press_ctrl_c_at_step_10(self, event):
        original_step(self, event)
        if event.step == 10:
            signal.raise_signal(signal.SIGINT)  # handled by the CLI as a clean stop

    monkeypatch.setattr(cli.ProgressLine, "step", press_ctrl_c_at_step_10)
    status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "2", "-o",
                           interrupted)
    monkeypatch.undo()
    assert status == cli.INTERRUPTED
    assert "Stopping after this step" in err
    assert f"Checkpoint saved to {interrupted}" in out
    assert load_model(interrupted)[2]["step"] == 10

    status, out, err = run(capsys, "train", text_file, "--resume", interrupted)
    assert status == 0, err
    assert "Resuming" in err
    _, _, resumed = load_model(interrupted)  # default output: the resumed file
    _, _, reference = load_model(straight)
    assert resumed["step"] == reference["step"] == 2 * STEPS_PER_EPOCH
    assert resumed["history"]["step_losses"] == reference["history"]["step_losses"]


def test_generate_with_a_seed_repeats_exactly(checkpoint, capsys):
    args = ("generate", checkpoint, "--prompt", "the ", "--length", "40", "--seed", "7",
            "--temperature", "1.0", "--top-k", "5")
    status, first, err = run(capsys, *args)
    assert status == 0, err
    status, second, _ = run(capsys, *args)
    assert first == second
    assert first.startswith("the ")
    assert len(first.rstrip("\n")) >= 44 - first.count("\n")  # prompt + 40 new characters


def test_inspect_shows_layers_health_and_history(checkpoint, capsys):
    pytest.importorskip("microlm.inspection")
    status, out, err = run(capsys, "inspect", checkpoint)
    assert status == 0, err
    model, _, _ = load_model(checkpoint)
    total = sum(p.numel() for p in model.parameters())
    assert f"Parameters: {total:,}" in out
    assert "embedding.weight" in out
    assert "Health score:" in out
    assert f"steps: {STEPS_PER_EPOCH}" in out
    assert "best validation loss:" in out


def test_probe_lists_every_preset(capsys):
    status, out, _ = run(capsys, "probe", "--seconds", "0.2")
    assert status == 0
    for name in ("nano", "small", "medium", "large", "xlarge"):
        assert f"\n  {name} " in out
    assert "chars/s" in out


def test_time_budget_alone_picks_a_model_and_stops_on_time(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    budget = 4.0
    status, out, err = run(capsys, "train", "--sample", "python-documentation",
                           "--time-budget", budget)
    assert status == 0, err
    assert "Recommended for 4 s" in err and "Hidden size" in err  # the reasons are printed
    assert "Time budget of 4 s reached" in out  # the run was ended by the clock
    _, _, metadata = load_model(tmp_path / "python-documentation.pt")
    assert 0 < metadata["history"]["training_time"] <= budget


def test_the_whole_command_ends_within_its_budget(text_file, tmp_path, capsys):
    """The one timing check the issue asks for: a 3 s budget, everything included (set-up,
    calibration, training, the last validation, the checkpoint). The tolerance (20 %) is
    wide for a loaded machine, yet a run that ignored the set-up or the final validation
    and checkpoint would miss it."""
    import time

    budget = 3.0
    start = time.monotonic()
    status, out, err = run(capsys, "train", text_file, *TINY, "--time-budget", budget,
                           "--output", tmp_path / "budget.pt")
    took = time.monotonic() - start
    assert status == 0, err
    assert "Time budget of 3 s reached" in out  # ended by the clock, not by the epochs
    _, _, metadata = load_model(tmp_path / "budget.pt")
    assert 0 < metadata["history"]["training_time"] <= budget
    assert took <= 1.2 * budget


def test_sample_names_are_forgiving():
    assert cli.sample_name("documentation") == cli.sample_name("Python documentation")
    assert cli.sample_name("python-source-code") == "Python source code"


def _bad_inputs(text_file, checkpoint, tmp_path):
    binary = tmp_path / "image.bin"
    binary.write_bytes(bytes(range(256)) * 20)
    other_text = tmp_path / "other.txt"
    other_text.write_text("Zebras! Quartz? " * 300)
    short = tmp_path / "short.txt"
    short.write_text("a")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    cases = {
        "missing file": ["train", tmp_path / "missing.txt"],
        "binary file": ["train", binary],
        "bad checkpoint (generate)": ["generate", garbage],
        "bad checkpoint (inspect)": ["inspect", text_file],
        "missing checkpoint": ["generate", tmp_path / "missing.pt"],
        "unknown preset": ["train", text_file, "--preset", "huge"],
        "bad number": ["train", text_file, "--epochs", "ten"],
        "negative number": ["train", text_file, "--learning-rate", "-1"],
        "bad temperature": ["generate", checkpoint, "--temperature", "hot"],
        "unknown sample": ["train", "--sample", "poetry"],
        "no corpus": ["train"],
        "unknown prompt characters": ["generate", checkpoint, "--prompt", "Zürich €"],
        "resume with a new shape": ["train", text_file, "--resume", checkpoint,
                                    "--hidden-dim", "64"],
        "unknown option": ["train", text_file, "--batching-typo"],
        "resume with another text": ["train", other_text, "--resume", checkpoint],
        "threads of zero": ["generate", checkpoint, "--threads", "0"],
        "text too short": ["train", short],
    }
    if not torch.cuda.is_available():
        cases["CUDA absent"] = ["train", text_file, "--device", "cuda"]
    return cases


@pytest.mark.parametrize("case", [
    "missing file", "binary file", "bad checkpoint (generate)", "bad checkpoint (inspect)",
    "missing checkpoint", "unknown preset", "bad number", "negative number", "bad temperature",
    "unknown sample", "no corpus", "unknown prompt characters", "resume with a new shape",
    "unknown option", "text too short", "resume with another text", "threads of zero",
    "CUDA absent"])
def test_user_errors_are_one_clear_line(case, text_file, checkpoint, tmp_path, capsys):
    cases = _bad_inputs(text_file, checkpoint, tmp_path)
    if case not in cases:
        pytest.skip("CUDA is available here")
    status, out, err = run(capsys, *cases[case])
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    assert out == ""


def test_unknown_prompt_characters_are_named(checkpoint, capsys):
    status, _, err = run(capsys, "generate", checkpoint, "--prompt", "the €")
    assert status == 2
    assert "'€'" in err


def _run_watch(watch, durations, start=0.0):
    """Feed step durations to the watch; the thread count it asks for after each step."""
    elapsed, asked = start, []
    for step, duration in enumerate(durations, 1):
        elapsed += duration
        asked.append(watch.observe(elapsed, step))
    return asked, elapsed


def test_slowdown_watch_ignores_one_long_gap_but_not_a_lasting_slowdown():
    watch = hardware.SlowdownWatch(2, factor=3, settle=2, reference=4, recent=3)
    # two settling steps, four usual ones, one validation gap, then steps 5x slower
    asked, _ = _run_watch(watch, [1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 2.0, 0.1, 0.1, 0.5, 0.5, 0.5])
    assert asked == [None] * 10 + [1, None]
    assert "slower at step 11" in watch.message and "1 CPU thread" in watch.message


def test_slowdown_watch_goes_back_to_all_threads_once_the_load_has_passed():
    """A few seconds of another program's work must not halve the rest of a run's speed."""
    watch = hardware.SlowdownWatch(2, factor=3, settle=2, reference=4, recent=3, retry_s=10)
    asked, elapsed = _run_watch(watch, [1.0, 1.0] + [0.125] * 4 + [0.5] * 2)
    assert asked[-1] == 1 and watch.threads == 1  # busy: one thread
    # 10 s on one thread at 0.25 s a step, then a trial of all the threads
    asked, elapsed = _run_watch(watch, [0.25] * 40, elapsed)
    assert asked == [None] * 39 + [2]
    assert watch.message is None  # a trial is not news
    # a changeover step, then 3 timed ones, faster than one thread now the machine is free
    asked, _ = _run_watch(watch, [0.125] * 4, elapsed)
    assert asked == [None, None, None, 2]
    assert watch.threads == 2 and "fast again at step 4" in watch.message


def test_slowdown_watch_stays_on_one_thread_while_the_machine_stays_busy():
    watch = hardware.SlowdownWatch(2, factor=3, settle=2, reference=4, recent=3, retry_s=10)
    asked, elapsed = _run_watch(watch, [1.0, 1.0] + [0.125] * 4 + [0.5] * 2 + [0.25] * 40)
    assert asked[-1] == 2  # the trial starts
    # all threads still 4x slower than one: the trial is lost, the next waits twice as long
    asked, elapsed = _run_watch(watch, [1.0] * 4, elapsed)
    assert asked == [None, None, None, 1]
    assert watch.message is None  # nothing to tell: still one thread
    asked, elapsed = _run_watch(watch, [0.25] * 80, elapsed)
    assert asked == [None] * 79 + [2]  # 20 s later, not 10
    # this trial wins; a later load is a new one: its first trial comes 10 s after it again
    asked, elapsed = _run_watch(watch, [0.125] * 4 + [0.5] * 3 + [0.25] * 40, elapsed)
    assert asked[3] == 2 and asked[6] == 1 and asked[-1] == 2
    assert asked.count(None) == len(asked) - 3


def test_a_preset_trains_in_the_precision_this_cpu_trains_fastest_in(monkeypatch):
    """bfloat16 where the CPU's LSTM kernel runs it (as a recommendation does), unless
    --precision says otherwise; the default preset too."""
    import argparse
    import time

    monkeypatch.setattr(hardware, "default_precision",
                        lambda device: "bfloat16" if str(device) == "cpu" else "float32")
    for preset in ("small", None):
        args = argparse.Namespace(preset=preset, time_budget=None, seed=None,
                                  started=time.monotonic())
        _, training = cli._choose_config(args, 10_000, 40, "cpu", {})
        assert training.precision == "bfloat16"
        _, training = cli._choose_config(args, 10_000, 40, "cpu", {"precision": "float32"})
        assert training.precision == "float32"
    _, training = cli._choose_config(args, 10_000, 40, "cuda", {})
    assert training.precision == "float32"
