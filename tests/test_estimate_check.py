"""`microlm bench --estimates`: the peak-memory measurement and the fresh-process plumbing.
Whether the estimates hold is a benchmark run by hand (the README's table), not a test."""

import sys

import pytest
import torch

from microlm import cli, estimate_check
from microlm.estimate_check import Check, Shape

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the memory measurement reads /proc/self")

MIB = 2**20
TINY = Shape("tiny", 16, 32, 1, 4, 16)


def test_peak_memory_counts_what_is_allocated_after_the_reset_and_not_before():
    held = torch.ones(48 * MIB // 4)  # 48 MiB, touched, allocated before the reset
    estimate_check._reset_peak_rss()
    before = estimate_check._peak_rss_bytes()
    assert estimate_check._peak_rss_bytes() - before < 8 * MIB
    fresh = torch.ones(64 * MIB // 4)
    rise = estimate_check._peak_rss_bytes() - before
    assert 60 * MIB < rise < 100 * MIB
    del fresh
    estimate_check._reset_peak_rss()  # freed memory goes back; the peak restarts from now
    assert estimate_check._peak_rss_bytes() < before + rise - 48 * MIB
    assert held.sum().item() == held.numel()


def test_a_check_compares_the_estimate_with_a_short_run(one_torch_thread):
    text = "the quick brown fox jumps over the lazy dog. " * 400
    check = estimate_check.measure(TINY, text, seconds=1.0)
    assert check.steps > estimate_check.WARMUP_STEPS
    assert check.parameters > 0
    assert check.estimated_epoch_s > 0 and check.measured_epoch_s > 0
    assert check.estimated_memory_bytes > 0 and check.measured_memory_bytes > 0


def test_errors_and_the_target_read_as_estimate_over_measurement():
    close = Check("a", 10, 1.1, 1.0, 80, 100, 50)
    assert close.epoch_error == pytest.approx(0.1)
    assert close.memory_error == pytest.approx(-0.2)
    assert close.within_target()
    assert not Check("b", 10, 1.3, 1.0, 100, 100, 50).within_target()
    assert not Check("c", 10, 1.0, 1.0, 70, 100, 50).within_target()
    table = estimate_check.format_checks([close])
    assert "+10 %" in table and "-20 %" in table


def test_the_command_runs_each_shape_in_a_fresh_process_and_prints_the_table(
        tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 300, encoding="utf-8")
    monkeypatch.setattr(estimate_check, "SHAPES", (TINY,))
    monkeypatch.setattr(estimate_check, "TRAIN_SECONDS", 1.0)
    status = cli.main(["bench", "--estimates", "--corpus", str(corpus)])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.lstrip().startswith("tiny")]
    assert len(rows) == 1 and "epoch s (est.)" in out
    # the exit status says whether the estimates held (a 1 s run may well miss)
    within = all(abs(float(e)) <= 25 for e in (rows[0][4], rows[0][8]))
    assert status == (0 if within else 1)
