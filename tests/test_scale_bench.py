"""tests/benchmarks/scale.py: the generated large text, the child processes' own peak memory
and the verdict against the targets (the 2 GB run itself is too slow for a test)."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import each other, as when run there

import scale  # noqa: E402
from scale import ChildRun, LargeCorpusResult  # noqa: E402

BASE = "".join(f"line {i}: to be or not to be, that is the question.\n" for i in range(500))


def test_the_generated_text_has_the_asked_size_and_varied_copies(tmp_path):
    path = tmp_path / "big.txt"
    size = scale.write_large_text(path, 100_000, BASE + "naïve café\n")
    assert size == path.stat().st_size
    assert 100_000 - 4 <= size <= 100_000
    text = path.read_text(encoding="utf-8")  # a cut never splits a character
    copies = text.split("=== copy ")[1:]
    assert len(copies) >= 2
    assert copies[0].split("\n", 1)[1][:200] != copies[1].split("\n", 1)[1][:200]


def test_a_child_process_reports_its_own_peak_memory():
    small = scale.run_child([sys.executable, "-c", "print('hi')"])
    big = scale.run_child([sys.executable, "-c",
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
