"""Model quality per CPU-minute: `microlm train CORPUS --time-budget B` (the recommended
configuration) against a plain PyTorch LSTM trained for as long as that whole command took,
both scored the same way.

    python tests/benchmarks/quality.py [CORPUS] --budget 60
    python tests/benchmarks/quality.py [CORPUS] --baseline SECONDS    (the plain LSTM alone)

Each run is a fresh process. The score: mean cross-entropy, nats per character, over the
last 10 % of the text (never trained on) in non-overlapping 128-character windows, each
from a fresh state. sweep.py runs many configurations the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from common import (
    add_corpus_argument,
    child_env,
    corpus_arguments,
    corpus_name,
    format_table,
    last_line,
    load_corpus,
    train_arguments,
)

from microlm import CharacterTokenizer, load_model, split_text
from microlm.data import encode_tokens
from microlm.trainer import evaluate_loss

SCORE_WINDOW = 128  # characters per scored window, each from a fresh state
VAL_FRACTION = 0.1  # the last 10 % of the text is the validation text

Log = Callable[[str], None]


def score(model: nn.Module, tokenizer: CharacterTokenizer, text: str) -> float:
    """Mean cross-entropy, nats/char, over the whole validation text (the last 10 %) in
    non-overlapping 128-character windows, each starting from a fresh state."""
    _, val_text = split_text(text, VAL_FRACTION)
    tokens = encode_tokens(val_text, tokenizer)
    return evaluate_loss(model, tokens, SCORE_WINDOW, None, "cpu", batch_windows=256)


# ---- one run of the real command ----

@dataclass(frozen=True)
class Setting:
    """A configuration given to `microlm train` as flags (empty: the recommendation)."""
    label: str
    flags: tuple[str, ...] = ()

    @property
    def recommended(self) -> bool:
        return not self.flags


@dataclass
class RunResult:
    label: str
    val_loss: float  # scored as score() does, on the full validation text
    wall_s: float  # the whole command, from start to exit
    training_s: float  # the trainer's own clock
    steps: int
    parameters: int
    description: str  # the model and settings the run used
    recommended: bool = False
    extra: dict = field(default_factory=dict)


def run_train_command(corpus: Path | None, budget: float, setting: Setting, text: str,
                      folder: str | Path, threads: int | None = None) -> RunResult:
    """Run `python -m microlm train CORPUS --time-budget BUDGET [flags]` in a fresh process
    and score the checkpoint it saves."""
    output = Path(folder) / f"{_slug(setting.label)}.pt"
    command = [sys.executable, "-m", "microlm", "train", *train_arguments(corpus),
               "--time-budget", f"{budget:g}", "--output", str(output), *setting.flags]
    if threads:
        command += ["--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=child_env())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"'{' '.join(command)}' failed: {last_line(done.stderr)}")
    model, tokenizer, metadata = load_model(output)
    config = metadata.get("training_config") or {}
    history = metadata.get("history") or {}
    m = model.config
    head = f", output layer {m.output_hidden_dim}" if m.output_hidden_dim else ""
    description = (f"emb {m.embedding_dim}, hidden {m.hidden_dim} x {m.num_layers}{head}, "
                   f"dropout {m.dropout:g}, batch {config.get('batch_size')} x "
                   f"{config.get('sequence_length')}, lr {config.get('learning_rate'):g}, "
                   f"{config.get('batching')}, {config.get('precision', 'float32')}")
    return RunResult(setting.label, score(model, tokenizer, text), wall,
                     float(history.get("training_time", 0.0)), int(metadata.get("step") or 0),
                     sum(p.numel() for p in model.parameters()), description,
                     setting.recommended, timeline(done.stdout + done.stderr))


def timeline(output: str) -> dict:
    """Where the command's time went, from what it printed (for the report)."""
    found = {}
    for key, pattern in (("training_budget_s", r"Training for ([\d.]+) s of the"),
                         ("reserve_s", r"\(([\d.]+) s kept for the last"),
                         ("command_reported_s", r"this command took ([\d.]+) s"),
                         ("threads", r"Using (\d+) CPU thread"),
                         ("estimated_chars_per_s", r"Hidden size \d+: at ~([\d,]+) chars/s")):
        match = re.search(pattern, output)
        if match:
            found[key] = float(match.group(1).replace(",", ""))
    # The run's steps became several times slower and it went on with one thread (the
    # library's SlowdownWatch): the step at which it happened tells a slow run apart.
    slowed = re.search(r"several times slower at step ([\d,]+)", output)
    if slowed:
        found["slowed_to_one_thread_at_step"] = float(slowed.group(1).replace(",", ""))
    return found


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "run"


# ---- the plain PyTorch baseline ----

class PlainLSTM(nn.Module):
    """The plain baseline: embedding -> one LSTM layer -> linear, nothing else."""

    def __init__(self, vocab_size: int, embedding_dim: int = 128, hidden_dim: int = 512):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, 1, batch_first=True)
        self.head = nn.Linear(hidden_dim, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(x))  # (B, T, hidden)
        return self.head(out)  # (B, T, vocab)


def train_baseline(text: str, seconds: float, seed: int = 1337) -> RunResult:
    """Embedding 128, hidden 512 x 1, batch 8, sequence 128, AdamW 3e-3, clip 1.0, random
    windows, no dropout, constant learning rate: trained for `seconds` of loop time."""
    torch.manual_seed(seed)
    tokenizer = CharacterTokenizer(text)
    train_text, _ = split_text(text, VAL_FRACTION)
    data = encode_tokens(train_text, tokenizer).long()
    vocab = tokenizer.vocab_size()
    model = PlainLSTM(vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch, length = 8, 128
    offsets = torch.arange(length)
    start = time.perf_counter()
    steps = 0
    model.train()
    while time.perf_counter() - start < seconds:
        starts = torch.randint(0, len(data) - length - 1, (batch,))
        index = starts[:, None] + offsets  # (B, T)
        logits = model(data[index])
        loss = F.cross_entropy(logits.reshape(-1, vocab), data[index + 1].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()  # a sync point per step, as a plain loop that logs its loss has
        steps += 1
    training = time.perf_counter() - start
    return RunResult("plain PyTorch LSTM", score(model, tokenizer, text), training, training,
                     steps, sum(p.numel() for p in model.parameters()),
                     "emb 128, hidden 512 x 1, batch 8 x 128, AdamW 3e-3 constant, clip 1.0, "
                     "random windows")


def run_baseline_process(corpus: Path | None, seconds: float,
                         threads: int | None = None) -> RunResult:
    """train_baseline in a fresh process (fresh allocator and thread pool, as a user's)."""
    with tempfile.TemporaryDirectory(prefix="microlm-baseline-") as folder:
        report = Path(folder) / "baseline.json"
        command = [sys.executable, __file__, *corpus_arguments(corpus),
                   "--baseline-child", f"{seconds}", str(report)]
        if threads:
            command += ["--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, env=child_env())
        if done.returncode != 0:
            raise RuntimeError(f"the baseline run failed: {last_line(done.stderr)}")
        return RunResult(**json.loads(report.read_text()))


def quality_bench(corpus: Path | None, budget: float, log: Log,
                  threads: int | None = None) -> list[RunResult]:
    """The recommended configuration through `microlm train CORPUS --time-budget B`, then
    the plain baseline for the same wall time as that whole command took."""
    text = load_corpus(corpus).text
    with tempfile.TemporaryDirectory(prefix="microlm-quality-") as folder:
        log(f"microlm train {corpus_name(corpus)} --time-budget {budget:g} ...")
        ours = run_train_command(corpus, budget, Setting("microlm (recommended)"), text,
                                 folder, threads)
    log(f"plain PyTorch LSTM for {ours.wall_s:.1f} s ...")
    baseline = run_baseline_process(corpus, ours.wall_s, threads)
    return [ours, baseline]


def format_results(results: list[RunResult], title: str) -> str:
    """A table, best first, with each run's gap to the best in %."""
    ranked = sorted(results, key=lambda r: r.val_loss)
    best = ranked[0].val_loss if ranked else math.nan
    rows = [("configuration", "val loss", "gap", "wall s", "train s", "steps", "params",
             "settings")]
    for r in ranked:
        mark = " *" if r.recommended else ""
        if "slowed_to_one_thread_at_step" in r.extra:
            mark += " †"
        rows.append((r.label + mark, f"{r.val_loss:.4f}", f"{100 * (r.val_loss / best - 1):.1f} %",
                     f"{r.wall_s:.1f}", f"{r.training_s:.1f}", f"{r.steps:,}",
                     f"{r.parameters:,}", r.description))
    lines = [title, format_table(rows)]
    slowed = [r for r in ranked if "slowed_to_one_thread_at_step" in r.extra]
    if slowed:
        lines.append("  † the machine got busy: the run went on with one thread from step "
                     + ", ".join(f"{r.extra['slowed_to_one_thread_at_step']:,.0f} ({r.label})"
                                 for r in slowed))
    recommended = [r for r in ranked if r.recommended]
    if recommended and len(ranked) > 2:  # a sweep, not ours against the baseline
        gap = 100 * (recommended[0].val_loss / best - 1)
        lines.append(f"  * the recommended configuration: {gap:.1f} % above the best "
                     f"(target <= 2 %)")
    return "\n".join(lines)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/quality.py",
                                     description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                        help="the time budget given to 'microlm train' (default 60)")
    parser.add_argument("--baseline", type=float, metavar="SECONDS",
                        help="instead: train only the plain LSTM for SECONDS and print its "
                             "score (the second half of a long run, on its own)")
    parser.add_argument("--baseline-child", nargs=2, metavar=("SECONDS", "REPORT"),
                        help=argparse.SUPPRESS)  # the fresh process of run_baseline_process
    parser.add_argument("--threads", type=int, help="CPU threads of every run")
    args = parser.parse_args(argv)
    text = load_corpus(args.corpus).text  # a file that cannot be read stops here
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.baseline_child:
        seconds, report = args.baseline_child
        Path(report).write_text(json.dumps(asdict(train_baseline(text, float(seconds)))))
        return 0
    name = corpus_name(args.corpus)
    if args.baseline:
        result = run_baseline_process(args.corpus, args.baseline, args.threads)
        print(format_results([result], f"Plain LSTM for {args.baseline:g} s on {name}"))
        return 0
    results = quality_bench(args.corpus, args.budget, log_to_stderr, args.threads)
    print(format_results(results, f"Quality at {args.budget:g} s on {name} (validation = "
                                  f"last 10 %, 128-char windows, fresh state)"))
    ours = results[0]
    print(f"  'microlm train {name} --time-budget {args.budget:g}' took {ours.wall_s:.1f} s "
          f"in all ({100 * (ours.wall_s / args.budget - 1):+.1f} % of the budget); the "
          f"baseline trained for that long.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
