"""`microlm bench` in its quick mode: every figure is measured and reported (never judged on
speed here: timings on a shared test machine prove nothing)."""

import math

import pytest
import torch

from microlm import bench, cli


@pytest.fixture(scope="module")
def result():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one generation pass instead of two (default and one thread)
    try:
        yield bench.run_bench(quick=True)
    finally:
        torch.set_num_threads(threads)


def positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_training_speed_is_measured_in_interleaved_rounds(result):
    training = result.training
    assert len(training.trainer_chars_per_second) == len(training.plain_chars_per_second) == 2
    assert all(map(positive, training.trainer_chars_per_second + training.plain_chars_per_second))
    assert training.steps_per_round == 3
    assert (training.batch_size, training.sequence_length) == (32, 100)  # the small preset's
    pair_ratios = sorted(t / p for t, p in zip(training.trainer_chars_per_second,
                                               training.plain_chars_per_second, strict=True))
    assert training.ratio == pytest.approx(sum(pair_ratios) / 2)  # the median of two pairs


def test_the_trainers_extra_work_is_timed_part_by_part(result):
    costs = result.step_costs
    for part in (costs.forward_backward, costs.adam_step, costs.adamw_step, costs.clipping,
                 costs.gradient_norms):
        assert positive(part)
    assert costs.gradient_norm_interval == 50  # TrainingConfig's default
    plain = costs.forward_backward + costs.adam_step
    assert costs.expected_ratio == pytest.approx(plain / (plain + costs.trainer_extra))
    assert "where ModelTrainer's extra time goes" in bench.format_report(result)


def test_generation_is_timed_at_each_length(result):
    assert [g.length for g in result.generation] == [20, 50, 100]
    for speed in result.generation:
        assert speed.threads == 1
        assert positive(speed.seconds) and positive(speed.chars_per_second)
        assert speed.microseconds_per_char == pytest.approx(1e6 * speed.seconds / speed.length)


def test_memory_is_measured_in_a_fresh_process(result):
    memory = result.memory
    assert memory.corpus_bytes == bench.QUICK_CORPUS_BYTES
    assert memory.sampled_peak_bytes > 50 * 2**20  # at least the interpreter and torch
    assert memory.peak_bytes >= memory.sampled_peak_bytes
    assert memory.max_rss_bytes >= 0


def test_report_shows_all_three_parts(result):
    report = bench.format_report(result)
    assert "1. Training speed" in report and "ratio ModelTrainer / plain" in report
    assert "2. Generation" in report and "time per character at 100 vs 20" in report
    assert "3. Peak memory" in report and "MiB" in report
    assert isinstance(result.failures(), list)


def test_cli_bench_prints_the_report(result, capsys, monkeypatch):
    asked = []

    def fake_run_bench(quick, log=None):
        asked.append(quick)
        return result

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    status = cli.main(["bench", "--quick"])
    out, _ = capsys.readouterr()
    assert asked == [True]
    assert status == (1 if result.failures() else 0)
    assert out.strip() == bench.format_report(result).strip()
