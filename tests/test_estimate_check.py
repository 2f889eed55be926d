"""tests/benchmarks/estimates.py: the peak-memory measurement and the fresh process each
configuration trains in. Whether the estimates hold is a measurement run by hand
(RESULTS.md), not a test."""

import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import each other, as when run there

import estimates  # noqa: E402
from estimates import Check, Shape  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the memory measurement reads /proc/self")

MIB = 2**20
TINY = Shape("tiny", 16, 32, 1, 4, 16)


def test_peak_memory_counts_what_is_allocated_after_the_reset_and_not_before():
    held = torch.ones(48 * MIB // 4)  # 48 MiB, touched, allocated before the reset
    estimates.reset_peak_rss()
    before = estimates.peak_rss_bytes()
    assert estimates.peak_rss_bytes() - before < 8 * MIB
    fresh = torch.ones(64 * MIB // 4)
    rise = estimates.peak_rss_bytes() - before
    assert 60 * MIB < rise < 100 * MIB
    del fresh
    estimates.reset_peak_rss()  # freed memory goes back; the peak restarts from now
    assert estimates.peak_rss_bytes() < before + rise - 48 * MIB
    assert held.sum().item() == held.numel()


def test_errors_and_the_target_read_as_estimate_over_measurement():
    close = Check("a", 10, 1.1, 1.0, 80, 100, 50)
    assert close.epoch_error == pytest.approx(0.1)
    assert close.memory_error == pytest.approx(-0.2)
    assert close.within_target()
    assert not Check("b", 10, 1.3, 1.0, 100, 100, 50).within_target()
    assert not Check("c", 10, 1.0, 1.0, 70, 100, 50).within_target()
    table = estimates.format_checks([close])
    assert "+10 %" in table and "-20 %" in table


@pytest.mark.slow
def test_each_shape_is_estimated_then_trained_in_a_fresh_process(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 300, encoding="utf-8")
    [check] = estimates.run_checks(corpus, shapes=(TINY,), seconds=1.0)
    assert check.label == "tiny" and check.parameters > 0
    assert check.steps > estimates.WARMUP_STEPS
    assert check.estimated_epoch_s > 0 and check.measured_epoch_s > 0
    assert check.estimated_memory_bytes > 0 and check.measured_memory_bytes > 0
