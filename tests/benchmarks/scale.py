"""A text larger than memory: write a large text (copies of CORPUS), `microlm prepare` it and
train the small preset from the memory map, each in a fresh process; report how fast
prepare reads and the peak resident memory of both. The files are deleted afterwards.

    python tests/benchmarks/scale.py [CORPUS] [--size-gb 2] [--train-seconds 30]

Targets: prepare at 50 MB/s or more; each process under 1 GiB of resident memory. The exit
status is 0 when both are met.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import add_corpus_argument, child_env, load_corpus

MIN_PREPARE_MB_PER_S = 50.0
MAX_RESIDENT_BYTES = 2**30
TRAIN_SECONDS = 30.0  # the training run: long enough to reach a steady state

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ChildRun:
    command: list[str]
    seconds: float  # wall time of the whole process, interpreter start-up included
    peak_resident_bytes: int  # the child's own peak RSS (wait4), not this process's
    returncode: int
    output: str


@dataclass(frozen=True)
class LargeCorpusResult:
    text_bytes: int
    prepare: ChildRun
    train: ChildRun

    @property
    def prepare_mb_per_second(self) -> float:
        return self.text_bytes / 1e6 / self.prepare.seconds

    def failures(self) -> list[str]:
        out = []
        for name, run in (("prepare", self.prepare), ("train", self.train)):
            if run.returncode != 0:
                out.append(f"{name} failed (exit {run.returncode}): "
                           f"{run.output.strip().splitlines()[-1:]}")
            if run.peak_resident_bytes >= MAX_RESIDENT_BYTES:
                out.append(f"{name} peaked at {run.peak_resident_bytes / 2**20:,.0f} MiB of "
                           f"resident memory; the target is under 1 GiB")
        if self.prepare_mb_per_second < MIN_PREPARE_MB_PER_S:
            out.append(f"prepare ran at {self.prepare_mb_per_second:.0f} MB/s; the target is "
                       f"at least {MIN_PREPARE_MB_PER_S:.0f} MB/s")
        return out


def write_large_text(path: Path, size_bytes: int, base: str) -> int:
    """A text of about size_bytes: `base` repeated, each copy starting at a different line
    so no two copies are identical."""
    lines = base.splitlines(keepends=True)
    written, copy = 0, 0
    with open(path, "wb") as out:
        while written < size_bytes:
            start = (copy * 7919) % len(lines)
            data = (f"=== copy {copy} ===\n" + "".join(lines[start:] + lines[:start])).encode()
            data = data[:size_bytes - written]
            # a cut may split a multi-byte character: end on a whole one
            data = data.decode("utf-8", "ignore").encode()
            out.write(data)
            written += len(data)
            copy += 1
    return written


# A process's peak resident memory (ru_maxrss) includes its parent's at the moment it was
# started, since fork and exec carry the parent's high-water mark over. So the measured
# command is started by this small launcher (Python without torch, ~10 MiB), not by the
# benchmark process itself, which holds torch and much more.
_LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(process.pid, 0)
print(f"{_PEAK_MARK}{usage.ru_maxrss}", flush=True)  # KiB on Linux
sys.exit(os.waitstatus_to_exitcode(status))
"""
_PEAK_MARK = "microlm-bench-peak-rss-kib="


def run_child(command: Sequence[str]) -> ChildRun:
    """Run a command in a fresh process and measure its own peak resident memory."""
    launcher = [sys.executable, "-c", f"_PEAK_MARK = {_PEAK_MARK!r}\n" + _LAUNCHER]
    started = time.perf_counter()
    result = subprocess.run(launcher + list(command), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=child_env())
    seconds = time.perf_counter() - started
    lines = result.stdout.splitlines()
    peak = [int(line.removeprefix(_PEAK_MARK)) for line in lines if line.startswith(_PEAK_MARK)]
    output = "\n".join(line for line in lines if not line.startswith(_PEAK_MARK))
    return ChildRun(list(command), seconds, peak[-1] * 1024 if peak else 0, result.returncode,
                    output)


def bench_large(base: str, size_gb: float = 2.0, train_seconds: float = TRAIN_SECONDS,
                log: Log = _stderr) -> LargeCorpusResult:
    folder = Path(tempfile.mkdtemp(prefix="microlm-large-"))
    try:
        text_path = folder / "corpus.txt"
        log(f"Writing a {size_gb:g} GB text to {text_path} ...")
        size = write_large_text(text_path, int(size_gb * 1e9), base)
        python = [sys.executable, "-m", "microlm"]
        log("Preparing it (a fresh process) ...")
        prepare = run_child(python + ["prepare", str(text_path), "--output",
                                      str(folder / "prepared")])
        text_path.unlink()  # the text is not needed to train: prove it
        log(f"Training the small preset from the memory map for {train_seconds:g} s "
            f"(a fresh process) ...")
        train = run_child(python + ["train", str(folder / "prepared"), "--preset", "small",
                                    "--time-budget", f"{train_seconds:g}",
                                    "--output", str(folder / "model.pt")])
        return LargeCorpusResult(size, prepare, train)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/scale.py",
                                     description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--size-gb", type=float, default=2.0,
                        help="size of the generated text in GB (default 2)")
    parser.add_argument("--train-seconds", type=float, default=TRAIN_SECONDS,
                        help=f"time budget of the training run (default {TRAIN_SECONDS:g})")
    args = parser.parse_args(argv)
    base = load_corpus(args.corpus).text  # a file that cannot be read stops here
    result = bench_large(base, args.size_gb, args.train_seconds)
    mib = 2**20
    print(f"Large corpus: {result.text_bytes / 1e9:.2f} GB of generated text, each step in a "
          f"fresh process")
    print(f"  prepare: {result.prepare_mb_per_second:,.0f} MB/s over {result.prepare.seconds:.1f}"
          f" s, start-up included (target >= {MIN_PREPARE_MB_PER_S:.0f}); peak resident "
          f"memory {result.prepare.peak_resident_bytes / mib:,.0f} MiB (target < 1024)")
    print(f"  train (small preset, {args.train_seconds:g} s budget, from the memory map): "
          f"peak resident memory {result.train.peak_resident_bytes / mib:,.0f} MiB "
          f"(target < 1024)")
    steps = [line for line in result.train.output.splitlines() if "Step " in line]
    if steps:
        print(f"  train: {steps[-1].strip()}")
    failures = result.failures()
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
