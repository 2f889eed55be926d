"""`microlm bench --large` (a 2 GB corpus: prepare speed, peak memory) and `--presets`
(training and generation speed of the small and large presets on this machine's device)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .bench import child_env
from .data import sample_corpus
from .generator import TextGenerator
from .hardware import select_device, uses_bf16
from .model import MicroLM
from .presets import PRESETS
from .tokenizer import CharacterTokenizer
from .trainer import ModelTrainer, StepCompleted, set_seed

TINY_SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")  # used when present
MIN_PREPARE_MB_PER_S = 50.0
MAX_RESIDENT_BYTES = 2**30
LARGE_TRAIN_SECONDS = 30.0  # the training run of --large: long enough to reach a steady state

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- --large ----

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


def write_large_text(path: Path, size_bytes: int) -> int:
    """A text of about size_bytes: Tiny Shakespeare (or the built-in Python documentation)
    repeated, each copy starting at a different line so no two copies are identical."""
    base = (TINY_SHAKESPEARE.read_text(encoding="utf-8") if TINY_SHAKESPEARE.is_file()
            else sample_corpus("Python documentation").text)
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
    env = child_env()
    launcher = [sys.executable, "-c", f"_PEAK_MARK = {_PEAK_MARK!r}\n" + _LAUNCHER]
    started = time.perf_counter()
    result = subprocess.run(launcher + list(command), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    seconds = time.perf_counter() - started
    lines = result.stdout.splitlines()
    peak = [int(line.removeprefix(_PEAK_MARK)) for line in lines if line.startswith(_PEAK_MARK)]
    output = "\n".join(line for line in lines if not line.startswith(_PEAK_MARK))
    return ChildRun(list(command), seconds, peak[-1] * 1024 if peak else 0, result.returncode,
                    output)


def bench_large(size_gb: float = 2.0, train_seconds: float = LARGE_TRAIN_SECONDS,
                log: Log = _stderr) -> LargeCorpusResult:
    folder = Path(tempfile.mkdtemp(prefix="microlm-large-"))
    try:
        text_path = folder / "corpus.txt"
        log(f"Writing a {size_gb:g} GB text to {text_path} ...")
        size = write_large_text(text_path, int(size_gb * 1e9))
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


def run_large(size_gb: float) -> int:
    result = bench_large(size_gb)
    mib = 2**20
    print(f"Large corpus: {result.text_bytes / 1e9:.2f} GB of generated text, each step in a "
          f"fresh process")
    print(f"  prepare: {result.prepare_mb_per_second:,.0f} MB/s over {result.prepare.seconds:.1f}"
          f" s, start-up included (target >= {MIN_PREPARE_MB_PER_S:.0f}); peak resident "
          f"memory {result.prepare.peak_resident_bytes / mib:,.0f} MiB (target < 1024)")
    print(f"  train (small preset, {LARGE_TRAIN_SECONDS:g} s budget, from the memory map): "
          f"peak resident memory {result.train.peak_resident_bytes / mib:,.0f} MiB "
          f"(target < 1024)")
    steps = [line for line in result.train.output.splitlines() if "Step " in line]
    if steps:
        print(f"  train: {steps[-1].strip()}")
    failures = result.failures()
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


# ---- --presets ----

@dataclass(frozen=True)
class PresetSpeed:
    preset: str
    device: str
    bf16: bool
    parameters: int
    train_chars_per_second: float  # median of the trainer's own per-step figures
    generate_chars_per_second: float


def time_preset(name: str, device: str, text: str, bf16: bool, train_seconds: float,
                generate_chars: int) -> PresetSpeed:
    preset = PRESETS[name]
    tokenizer = CharacterTokenizer(text)
    set_seed(0)
    model = MicroLM(config=preset.model_config(tokenizer.vocab_size()))
    config = preset.training_config(epochs=1_000_000, time_budget_s=train_seconds,
                                    val_fraction=0.0, bf16=bf16, device=device,
                                    grad_norm_interval=0)
    trainer = ModelTrainer(model, tokenizer, config=config)
    trainer.prepare_data(text)
    speeds = [e.chars_per_second for e in trainer.fit() if isinstance(e, StepCompleted)]
    # The trainer's figure averages the last 20 steps: skip the first (warm-up) ones.
    steady = speeds[len(speeds) // 2:] or speeds
    generator = TextGenerator(trainer.model, tokenizer, device, bf16=bf16)
    generator.generate("", 20, seed=0)  # warm-up (kernel selection, caches)
    _synchronize(device)
    started = time.perf_counter()
    generator.generate("", generate_chars, seed=0)
    _synchronize(device)
    rate = generate_chars / (time.perf_counter() - started)
    return PresetSpeed(name, str(device), uses_bf16(device, bf16),
                       sum(p.numel() for p in model.parameters()),
                       statistics.median(steady) if steady else float("nan"), rate)


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def run_presets(device: str | None = None, quick: bool = False,
                presets: Sequence[str] = ("small", "large"), log: Log = _stderr) -> int:
    device = str(select_device(device))
    text = (TINY_SHAKESPEARE.read_text(encoding="utf-8") if TINY_SHAKESPEARE.is_file()
            else sample_corpus("Python documentation").text)
    seconds, length = (2.0, 100) if quick else (20.0, 1000)
    precisions = [True, False] if uses_bf16(device) else [True]
    rows = []
    for name in presets:
        for bf16 in precisions:
            log(f"Timing the {name} preset on {device} (bf16 {'on' if bf16 else 'off'}) ...")
            rows.append(time_preset(name, device, text, bf16, seconds, length))
    print(f"Preset speeds on {device} ({torch.cuda.get_device_name(device)})"
          if torch.device(device).type == "cuda" else f"Preset speeds on {device}")
    print(f"  {'preset':<8}{'precision':<11}{'parameters':>12}{'train chars/s':>16}"
          f"{'generate chars/s':>19}")
    for row in rows:
        print(f"  {row.preset:<8}{'bf16' if row.bf16 else 'fp32':<11}{row.parameters:>12,}"
              f"{row.train_chars_per_second:>16,.0f}{row.generate_chars_per_second:>19,.0f}")
    return 0
