"""`microlm bench`: each preset's training and generation speed and training memory, on the
built-in sample (never judged on speed here: timings on a shared test machine prove
nothing); and the measurement scripts of tests/benchmarks answer --help."""

import math
import runpy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from microlm import bench, cli, preset_parameters
from microlm.bench import BenchResult, PresetSpeed

BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name != "common.py")
TEXT = "the quick brown fox jumps over the lazy dog. " * 200

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_preset_is_timed_training_then_generating():
    speed = bench.time_preset("nano", "cpu", TEXT, train_seconds=0.5, generate_chars=30,
                              precision="float32")
    assert (speed.preset, speed.device, speed.precision, speed.bf16) == (
        "nano", "cpu", "float32", False)
    assert speed.parameters == preset_parameters("nano", len(set(TEXT)))
    assert speed.steps >= bench.WARMUP_STEPS + bench.MIN_TIMED_STEPS
    assert math.isfinite(speed.train_chars_per_second) and speed.train_chars_per_second > 0
    assert speed.generate_chars_per_second > 0
    assert speed.memory_bytes >= 0
    assert speed.peak_resident_bytes > 50 * 2**20  # at least the interpreter and torch


def test_generation_stops_at_its_time_limit():
    started = time.perf_counter()
    # ten million characters would take hours; the limit ends it after 0.3 s
    bench.time_preset("nano", "cpu", TEXT, train_seconds=0.3, generate_chars=10**7,
                      generate_seconds=0.3)
    assert time.perf_counter() - started < 60


def test_the_memory_watch_sees_what_a_block_allocates():
    with bench._MemoryWatch(torch.device("cpu")) as watch:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del block
    assert 56 * 2**20 < watch.rise_bytes < 200 * 2**20
    assert watch.peak_resident_bytes >= watch.rise_bytes


def test_the_command_prints_a_row_per_preset(capsys):
    status, out, err = run(capsys, "bench", "--quick", "--presets", "nano", "small")
    assert status == 0, err
    rows = [line.split() for line in out.splitlines() if line.lstrip().startswith(("nano",
                                                                                  "small"))]
    assert [row[0] for row in rows] == ["nano", "small"]
    for row in rows:
        assert row[2] in ("float32", "bfloat16")
        assert float(row[4].replace(",", "")) > 0 and float(row[5].replace(",", "")) > 0
    assert "Python documentation" in out and "peaked at" in out
    assert "Training the nano preset on cpu" in err


def test_a_preset_too_slow_to_time_fails_with_a_reason(capsys, monkeypatch):
    monkeypatch.setattr(bench, "MIN_TIMED_STEPS", 10**9)
    status, out, err = run(capsys, "bench", "--quick", "--presets", "nano")
    assert status == 1
    assert "too few steps" in out
    assert "error: the nano preset took only" in err and "--seconds" in err


def test_a_missing_device_or_preset_is_one_error_line(capsys):
    status, _, err = run(capsys, "bench", "--presets", "huge")
    assert status == 2 and err.startswith("error:") and "huge" in err
    if not torch.cuda.is_available():
        status, _, err = run(capsys, "bench", "--device", "cuda")
        assert status == 2 and err.startswith("error:") and "CUDA" in err


def test_the_report_is_a_table_with_the_figures():
    row = PresetSpeed("small", "cpu", "bfloat16", 251_303, 120, 80_123.4, 2_238.0, 133 * 2**20,
                      780 * 2**20)
    slow = PresetSpeed("large", "cpu", "bfloat16", 5_858_663, 2, math.nan, 54.0, 434 * 2**20,
                       900 * 2**20)
    result = BenchResult("cpu", "Some CPU", 2, 465_048, 8.0, (row, slow))
    report = bench.format_report(result)
    assert "on cpu (Some CPU)" in report and "465,048 characters" in report
    small = next(line.split() for line in report.splitlines() if line.strip().startswith("small"))
    assert small == ["small", "251,303", "bfloat16", "120", "80,123", "2,238", "133", "MiB"]
    assert "too few steps" in report and "peaked at 900 MiB" in report
    assert [p.split(",")[0] for p in result.problems()] == [
        "the large preset took only 2 steps in 8 s"]
    assert "Note: other programs" not in report


def test_the_report_warns_when_other_programs_kept_the_cpu_busy():
    row = PresetSpeed("nano", "cpu", "float32", 7_772, 50, 9_000.0, 3_000.0, 2**20, 2**28)
    result = BenchResult("cpu", "Some CPU", 2, 1_000, 1.0, (row,), busy_percent=80.0)
    assert "other programs kept the CPU 80 % busy" in bench.format_report(result)


# ---- the measurement scripts beside the tests ----

def test_there_are_measurement_scripts():
    assert {p.name for p in SCRIPTS} >= {"quality.py", "sweep.py", "estimates.py", "scale.py",
                                         "trainer_speed.py", "app_speed.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_each_script_answers_help(script, monkeypatch, capsys):
    """As `python tests/benchmarks/NAME.py --help` runs it (in this process, for speed)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"python tests/benchmarks/{script.name}" in out and "CORPUS" in out


def test_a_script_runs_from_the_command_line_and_names_an_unreadable_corpus(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "sweep.py"),
                             str(tmp_path / "missing.txt")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert "error:" in result.stderr and "missing.txt" in result.stderr
    assert "Traceback" not in result.stderr
