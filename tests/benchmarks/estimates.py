"""Are the time per epoch and the training memory that Configure (and `microlm train`) show
close to what a run then measures?

    python tests/benchmarks/estimates.py [CORPUS] [--seconds 12]

Each configuration trains in a fresh process, as the app or the CLI would: the machine is
calibrated first (that is where the estimate's speed comes from), then the model trains
for a few seconds with validation on. Measured there:

- time per epoch: the trainer's own clock (steps, evaluation included) per step, times the
  steps in one epoch, leaving out the first steps (one-time kernel set-up);
- training memory: the rise of the process's peak resident memory from just before the
  text is encoded and the model is built to the end of training. The run-time's own
  start-up (torch, its thread pool and kernels, which the calibration has already loaded)
  is not part of the estimate and not counted. Linux only: it reads /proc/self.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from common import (
    add_corpus_argument,
    child_env,
    corpus_arguments,
    corpus_name,
    format_table,
    last_line,
    load_corpus,
)

from microlm import (
    CharacterTokenizer,
    MicroLM,
    ModelConfig,
    ModelTrainer,
    StepCompleted,
    TrainingConfig,
    calibrate,
    estimate,
)
from microlm.hardware import give_back_freed_memory
from microlm.presets import steps_per_epoch
from microlm.recommendation import budget_plan

TARGET = 0.25  # estimates within 25 % of the measurement
TRAIN_SECONDS = 12.0
WARMUP_STEPS = 5  # left out of the step time: the first steps set up kernels and caches


@dataclass(frozen=True)
class Shape:
    label: str
    embedding_dim: int
    hidden_dim: int
    num_layers: int
    batch_size: int
    sequence_length: int
    dropout: float = 0.0
    output_hidden_dim: int = 0


# From the smallest preset to the large one, and the shapes the recommendation picks.
SHAPES = (
    Shape("small preset", 64, 128, 2, 32, 100, 0.2),
    Shape("medium preset", 128, 256, 2, 32, 128, 0.2),
    Shape("h256 b8 t64", 128, 256, 1, 8, 64),
    Shape("h384 b8 t64", 128, 384, 1, 8, 64),
    Shape("h512 b8 t128", 128, 512, 1, 8, 128),
    Shape("h768 b8 t128", 128, 768, 1, 8, 128),
    Shape("large preset", 256, 512, 3, 32, 128, 0.3),
    # not used to fit training_memory_bytes: a check of the fit
    Shape("h1024 b8 t64", 128, 1024, 1, 8, 64),
    Shape("h128 x3 b64 t128", 64, 128, 3, 64, 128),
    # the batches of 32 the recommendation picks on a CPU that streams its weights
    Shape("h256 b32 t64", 128, 256, 1, 32, 64),
    Shape("h384 b32 t64", 128, 384, 1, 32, 64),
    Shape("h768 b32 t64 dropout 0.2", 128, 768, 1, 32, 64, 0.2),
    # with the output layer's 1,024 hidden units the recommendation adds
    Shape("h192 out1024 b32 t64", 96, 192, 1, 32, 64, 0.0, 1024),
    Shape("h256 out1024 b32 t64", 128, 256, 1, 32, 64, 0.0, 1024),
    Shape("h768 out1024 b32 t64 dropout 0.2", 128, 768, 1, 32, 64, 0.2, 1024),
    # what the recommendation picks at 60 s and at 300 s on tinyshakespeare since the
    # output layer's step floor is 875
    Shape("h384 out1024 b32 t64", 128, 384, 1, 32, 64, 0.0, 1024),
    Shape("h768 out1024 b32 t128 dropout 0.2", 128, 768, 1, 32, 128, 0.2, 1024),
)


@dataclass(frozen=True)
class Check:
    label: str
    parameters: int
    estimated_epoch_s: float
    measured_epoch_s: float
    estimated_memory_bytes: int
    measured_memory_bytes: int
    steps: int

    @property
    def epoch_error(self) -> float:
        return self.estimated_epoch_s / self.measured_epoch_s - 1

    @property
    def memory_error(self) -> float:
        return self.estimated_memory_bytes / self.measured_memory_bytes - 1

    def within_target(self) -> bool:
        return abs(self.epoch_error) <= TARGET and abs(self.memory_error) <= TARGET


# ---- the measuring process ----

def peak_rss_bytes() -> int:
    """This process's peak resident memory since the last reset_peak_rss()."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> None:
    """Give freed memory back to the system, then restart the peak count from now (Linux:
    writing 5 to clear_refs resets the high-water mark)."""
    gc.collect()
    give_back_freed_memory()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


def measure(shape: Shape, text: str, seconds: float = TRAIN_SECONDS) -> Check:
    """Estimate, then train `shape` on `text` for `seconds` in this process and compare."""
    speed = calibrate()
    if speed.threads:
        torch.set_num_threads(speed.threads)
    tokenizer = CharacterTokenizer(text)
    model_config = ModelConfig(tokenizer.vocab_size(), shape.embedding_dim, shape.hidden_dim,
                               shape.num_layers, shape.dropout, shape.output_hidden_dim)
    training = TrainingConfig(batch_size=shape.batch_size,
                              sequence_length=shape.sequence_length, learning_rate=3e-3,
                              precision=speed.precision, grad_norm_interval=0)
    # As a real run: the budget decides the epochs and a few validations along the way.
    training = budget_plan(model_config, training, len(text), seconds, speed)
    expected = estimate(model_config, training, len(text), speed)

    reset_peak_rss()
    before = peak_rss_bytes()
    trainer = ModelTrainer(MicroLM(config=model_config), tokenizer, config=training)
    trainer.prepare_data(text)
    times = [event.elapsed_s for event in trainer.fit() if isinstance(event, StepCompleted)]
    peak = peak_rss_bytes() - before
    steps = len(times)
    if steps <= WARMUP_STEPS + 1:
        raise RuntimeError(f"{shape.label}: only {steps} steps in {seconds:g} s; too few to "
                           f"time. Give it more seconds.")
    step_seconds = (times[-1] - times[WARMUP_STEPS - 1]) / (steps - WARMUP_STEPS)
    return Check(shape.label, model_config.num_parameters(), expected.seconds_per_epoch,
                 step_seconds * steps_per_epoch(len(text), training),
                 expected.memory_bytes, peak, steps)


def run_checks(corpus: Path | None, shapes: Sequence[Shape] = SHAPES,
               seconds: float = TRAIN_SECONDS,
               log: Callable[[str], None] = lambda message: None) -> list[Check]:
    """Each shape in a fresh process (this script with --child)."""
    checks = []
    for shape in shapes:
        log(f"{shape.label}: calibrating, then training for {seconds:g} s (a fresh process) ...")
        done = subprocess.run(
            [sys.executable, __file__, *corpus_arguments(corpus), "--child",
             json.dumps(asdict(shape)), "--seconds", f"{seconds:g}"],
            capture_output=True, text=True, env=child_env())
        if done.returncode != 0:
            raise RuntimeError(f"The check of {shape.label} failed: {last_line(done.stderr)}")
        checks.append(Check(**json.loads(last_line(done.stdout))))
    return checks


def format_checks(checks: Sequence[Check]) -> str:
    rows = [(c.label, f"{c.parameters:,}", f"{c.estimated_epoch_s:,.1f}",
             f"{c.measured_epoch_s:,.1f}", f"{100 * c.epoch_error:+.0f} %",
             f"{c.estimated_memory_bytes / 2**20:,.1f}", f"{c.measured_memory_bytes / 2**20:,.1f}",
             f"{100 * c.memory_error:+.0f} %", f"{c.steps:,}")
            for c in checks]
    header = ("configuration", "parameters", "epoch s (est.)", "epoch s (run)", "error",
              "MiB (est.)", "MiB (run)", "error", "steps")
    return format_table([header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/estimates.py",
                                     description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--seconds", type=float, default=TRAIN_SECONDS,
                        help=f"training time of each configuration (default {TRAIN_SECONDS:g})")
    parser.add_argument("--child", metavar="SHAPE_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        sys.exit("error: the memory measurement reads /proc/self: Linux only.")
    text = load_corpus(args.corpus).text  # a file that cannot be read stops here
    if args.child:
        check = measure(Shape(**json.loads(args.child)), text, args.seconds)
        print(json.dumps(asdict(check)))
        return 0
    checks = run_checks(args.corpus, seconds=args.seconds,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"Estimates against runs on {corpus_name(args.corpus)} (target: within "
          f"{TARGET:.0%})")
    print(format_checks(checks))
    return 0 if all(c.within_target() for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
