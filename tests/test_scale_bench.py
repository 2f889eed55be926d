"""`microlm bench --large`: the generated corpus, the child processes' own peak memory and
the verdict against the targets (the 2 GB run itself is too slow for a test)."""

import sys

import torch

from microlm import scale_bench
from microlm.scale_bench import ChildRun, LargeCorpusResult


def test_the_generated_text_has_the_asked_size_and_varied_copies(tmp_path):
    path = tmp_path / "big.txt"
    size = scale_bench.write_large_text(path, 3_000_000)
    assert size == path.stat().st_size
    assert 3_000_000 - 4 <= size <= 3_000_000
    text = path.read_text(encoding="utf-8")
    copies = text.split("=== copy ")[1:]
    assert len(copies) >= 2
    assert copies[0].split("\n", 1)[1][:200] != copies[1].split("\n", 1)[1][:200]


def test_a_child_process_reports_its_own_peak_memory():
    small = scale_bench.run_child([sys.executable, "-c", "print('hi')"])
    big = scale_bench.run_child([sys.executable, "-c",
                                 "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"
                                 "; print('done')"])
    assert small.returncode == 0 and small.output.strip() == "hi"
    assert big.peak_resident_bytes - small.peak_resident_bytes > 250 * 2**20


def test_the_targets_are_judged():
    def run(rss, code=0):
        return ChildRun(["x"], 10.0, rss, code, "last line\n")

    good = LargeCorpusResult(2 * 10**9, run(300 * 2**20), run(500 * 2**20))
    assert good.prepare_mb_per_second == 200
    assert good.failures() == []
    slow_and_big = LargeCorpusResult(10**8, run(300 * 2**20), run(2**30 + 1, code=1))
    failures = " ".join(slow_and_big.failures())
    assert "train failed" in failures and "1,024 MiB" in failures and "10 MB/s" in failures


def test_preset_speeds_are_printed_as_a_table(capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert scale_bench.run_presets("cpu", quick=True, presets=("nano",),
                                       log=lambda message: None) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "Preset speeds on cpu" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("nano"))
    assert row[1] == "fp32" and row[2].replace(",", "").isdigit()
    assert float(row[3].replace(",", "")) > 0 and float(row[4].replace(",", "")) > 0
