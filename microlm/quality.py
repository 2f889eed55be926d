"""Model quality per CPU-minute: score runs the issue's way, the plain-LSTM baseline, sweeps."""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bench import child_env
from .data import CorpusError, encode_tokens, read_corpus, sample_corpus, split_text
from .trainer import evaluate_loss

SCORE_WINDOW = 128  # characters per scored window, each from a fresh state
VAL_FRACTION = 0.1  # the last 10 % of the text is the validation text
DEFAULT_CORPUS = "/work/shared/data/tinyshakespeare.txt"
SAMPLE_NAMES = {"python-docs": "Python documentation",
                "python-documentation": "Python documentation"}


# ---- the corpus and the score ----

def load_text(corpus: str) -> str:
    """The text of a file, or of a built-in sample given as 'python-docs'."""
    if corpus in SAMPLE_NAMES:
        return sample_corpus(SAMPLE_NAMES[corpus]).text
    return read_corpus(corpus).text


def corpus_arguments(corpus: str) -> list[str]:
    """How `microlm train` is told about this corpus."""
    if corpus in SAMPLE_NAMES:
        return ["--sample", "python-documentation"]
    return [str(corpus)]


def score(model: nn.Module, tokenizer, text: str) -> float:
    """Mean cross-entropy, nats/char, over the whole validation text (the last 10 %) in
    non-overlapping 128-character windows, each starting from a fresh state."""
    _, val_text = split_text(text, VAL_FRACTION)
    tokens = encode_tokens(val_text, tokenizer)
    return evaluate_loss(model, tokens, SCORE_WINDOW, None, "cpu", batch_windows=256)


def score_checkpoint(path: str | Path, text: str) -> float:
    from .checkpoint import load_model

    model, tokenizer, _ = load_model(path)
    return score(model, tokenizer, text)


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


def run_train_command(corpus: str, budget: float, setting: Setting, text: str,
                      folder: str | Path, threads: int | None = None) -> RunResult:
    """Run `python -m microlm train CORPUS --time-budget BUDGET [flags]` in a fresh process
    and score the checkpoint it saves."""
    output = Path(folder) / f"{_slug(setting.label)}.pt"
    command = [sys.executable, "-m", "microlm", "train", *corpus_arguments(corpus),
               "--time-budget", f"{budget:g}", "--output", str(output), *setting.flags]
    if threads:
        command += ["--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=child_env())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"'{' '.join(command)}' failed: {last[0]}")
    from .checkpoint import load_model

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
                     setting.recommended, _timeline(done.stdout + done.stderr))


def _timeline(output: str) -> dict:
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
    # The run's steps became several times slower and it went on with one thread
    # (hardware.SlowdownWatch): the step at which it happened tells a slow run apart.
    slowed = re.search(r"several times slower at step ([\d,]+)", output)
    if slowed:
        found["slowed_to_one_thread_at_step"] = float(slowed.group(1).replace(",", ""))
    return found


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "run"


# ---- the plain PyTorch baseline from the issue ----

class PlainLSTM(nn.Module):
    """The issue's plain baseline: embedding -> one LSTM layer -> linear, nothing else."""

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
    from .tokenizer import CharacterTokenizer

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
        loss.item()
        steps += 1
    training = time.perf_counter() - start
    return RunResult("plain PyTorch LSTM (issue baseline)", score(model, tokenizer, text),
                     training, training, steps, sum(p.numel() for p in model.parameters()),
                     "emb 128, hidden 512 x 1, batch 8 x 128, AdamW 3e-3 constant, clip 1.0, "
                     "random windows")


def run_baseline_process(corpus: str, seconds: float, threads: int | None = None) -> RunResult:
    """train_baseline in a fresh process (fresh allocator and thread pool, as a user's)."""
    with tempfile.TemporaryDirectory(prefix="microlm-baseline-") as folder:
        report = Path(folder) / "baseline.json"
        command = [sys.executable, "-m", "microlm.quality", "--baseline-child", corpus,
                   f"{seconds}", str(report)]
        if threads:
            command += ["--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, env=child_env())
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1:] or ["?"]
            raise RuntimeError(f"the baseline run failed: {last[0]}")
        return RunResult(**json.loads(report.read_text()))


# ---- the quality bench and the sweep ----

def quality_bench(corpus: str, budget: float, log: Callable[[str], None],
                  threads: int | None = None) -> list[RunResult]:
    """The recommended configuration through `microlm train CORPUS --time-budget B`, then
    the plain baseline for the same wall time as that whole command took."""
    text = load_text(corpus)
    with tempfile.TemporaryDirectory(prefix="microlm-quality-") as folder:
        log(f"microlm train {corpus} --time-budget {budget:g} ...")
        ours = run_train_command(corpus, budget, Setting("microlm (recommended)"), text,
                                 folder, threads)
    log(f"plain PyTorch LSTM for {ours.wall_s:.1f} s ...")
    baseline = run_baseline_process(corpus, ours.wall_s, threads)
    return [ours, baseline]


def sweep_settings(budget: float) -> list[Setting]:
    """The configurations a sweep compares with the recommendation (explicit flags)."""
    def s(label: str, emb: int, hidden: int, layers: int, batch: int, length: int, lr: float,
          dropout: float = 0.0, output_hidden: int = 0,
          weight_decay: float | None = None, ema_decay: float | None = None) -> Setting:
        """One row; weight_decay None: the recommendation's (hardware.WEIGHT_DECAY);
        ema_decay None: the library's moving average of the weights."""
        extra = () if weight_decay is None else ("--weight-decay", f"{weight_decay:g}")
        if ema_decay is not None:
            extra += ("--ema-decay", f"{ema_decay:g}")
        return Setting(label, ("--embedding-dim", str(emb), "--hidden-dim", str(hidden),
                               "--num-layers", str(layers), "--batch-size", str(batch),
                               "--sequence-length", str(length), "--learning-rate", f"{lr:g}",
                               "--dropout", f"{dropout:g}",
                               "--output-hidden-dim", str(output_hidden), *extra))

    if budget >= 200:
        # Long budgets: wider models, the higher rate, dropout and a second layer become
        # candidates as the text is read many times.
        settings = [
            s("h512 b8 t128 lr3e-3 (issue's best plain)", 128, 512, 1, 8, 128, 3e-3),
            s("h512 b8 t128 lr6e-3", 128, 512, 1, 8, 128, 6e-3),
            s("h512 b8 t128 lr6e-3 dropout 0.2", 128, 512, 1, 8, 128, 6e-3, 0.2),
            s("h512 b8 t64 lr6e-3", 128, 512, 1, 8, 64, 6e-3),
            s("h384 b8 t128 lr6e-3", 128, 384, 1, 8, 128, 6e-3),
            s("h384 b8 t128 lr6e-3 dropout 0.2", 128, 384, 1, 8, 128, 6e-3, 0.2),
            s("h768 b8 t128 lr3e-3", 128, 768, 1, 8, 128, 3e-3),
            s("h768 b8 t64 lr3e-3", 128, 768, 1, 8, 64, 3e-3),
            s("h768 b8 t128 lr3e-3 dropout 0.3", 128, 768, 1, 8, 128, 3e-3, 0.3),
            s("h384 x2 b8 t128 lr3e-3 dropout 0.2", 128, 384, 2, 8, 128, 3e-3, 0.2),
            s("h768 b32 t64 lr5e-3 dropout 0.2", 128, 768, 1, 32, 64, 5e-3, 0.2),
            s("h768 b32 t64 lr3e-3 dropout 0.2", 128, 768, 1, 32, 64, 3e-3, 0.2),
            s("h512 b32 t64 lr6e-3 dropout 0.2", 128, 512, 1, 32, 64, 6e-3, 0.2),
            s("h512 b32 t64 lr1e-2 dropout 0.3", 128, 512, 1, 32, 64, 1e-2, 0.3),
            s("h768 b32 t64 lr6e-3 dropout 0.2 (before output units)", 128, 768, 1, 32, 64,
              6e-3, 0.2),
            s("h512 out1024 b32 t64 lr1e-2 dropout 0.2", 128, 512, 1, 32, 64, 1e-2, 0.2, 1024),
            s("h768 out1024 b32 t64 lr6e-3 dropout 0.3", 128, 768, 1, 32, 64, 6e-3, 0.3, 1024),
            s("h768 out2048 b32 t64 lr6e-3 dropout 0.2", 128, 768, 1, 32, 64, 6e-3, 0.2, 2048),
            s("h768 out1024 b32 t128 lr6e-3 dropout 0.2 weight decay 0.01", 128, 768, 1, 32,
              128, 6e-3, 0.2, 1024, 0.01),
            s("h768 out1024 b32 t128 lr6e-3 dropout 0.2 without weight averaging", 128, 768,
              1, 32, 128, 6e-3, 0.2, 1024, None, 0.0),
            # Output units on batches of 8 and 16: the choices of a CPU ~4x slower (a 2-core
            # AVX2 EPYC, tenth session), where batches of 32 leave too few steps.
            s("h384 out1024 b8 t128 lr6e-3", 128, 384, 1, 8, 128, 6e-3, 0.0, 1024),
            s("h384 out1024 b8 t128 lr6e-3 dropout 0.2", 128, 384, 1, 8, 128, 6e-3, 0.2, 1024),
            s("h384 out1024 b8 t64 lr6e-3", 128, 384, 1, 8, 64, 6e-3, 0.0, 1024),
            s("h512 out1024 b8 t128 lr6e-3", 128, 512, 1, 8, 128, 6e-3, 0.0, 1024),
            s("h256 out1024 b16 t128 lr8.5e-3", 128, 256, 1, 16, 128, 8.5e-3, 0.0, 1024),
            s("h384 out1024 b16 t64 lr8.5e-3", 128, 384, 1, 16, 64, 8.5e-3, 0.0, 1024),
            s("h512 out1024 b16 t128 lr8.5e-3", 128, 512, 1, 16, 128, 8.5e-3, 0.0, 1024),
        ]
        return [Setting("recommended")] + settings
    settings = [
        s("h512 b8 t128 lr3e-3 (issue's best plain)", 128, 512, 1, 8, 128, 3e-3),
        s("h256 b8 t128 lr3e-3", 64, 256, 1, 8, 128, 3e-3),
        s("h768 b8 t128 lr2e-3", 128, 768, 1, 8, 128, 2e-3),
        s("h512 b16 t128 lr3e-3", 128, 512, 1, 16, 128, 3e-3),
        s("h512 b8 t64 lr3e-3", 128, 512, 1, 8, 64, 3e-3),
        s("h512 b8 t128 lr6e-3", 128, 512, 1, 8, 128, 6e-3),
        s("h384 x2 b8 t128 lr3e-3", 128, 384, 2, 8, 128, 3e-3),
        s("h256 x2 b32 t128 lr2e-3 (issue's 3rd)", 128, 256, 2, 32, 128, 2e-3),
        s("h384 b8 t128 lr3e-3", 128, 384, 1, 8, 128, 3e-3),
        s("h128 b8 t128 lr3e-3", 64, 128, 1, 8, 128, 3e-3),
        s("h384 b8 t64 lr3e-3", 128, 384, 1, 8, 64, 3e-3),
        s("h256 b8 t64 lr3e-3", 128, 256, 1, 8, 64, 3e-3),
        s("h256 b8 t64 lr6e-3 (the batch-8 recommendation)", 128, 256, 1, 8, 64, 6e-3),
        s("h256 b16 t64 lr1e-2", 128, 256, 1, 16, 64, 1e-2),
        s("h256 b32 t64 lr1e-2", 128, 256, 1, 32, 64, 1e-2),
        s("h256 b32 t64 lr6e-3", 128, 256, 1, 32, 64, 6e-3),
        s("h384 b32 t64 lr1e-2", 128, 384, 1, 32, 64, 1e-2),
        s("h256 b64 t64 lr1e-2", 128, 256, 1, 64, 64, 1e-2),
        s("h192 b32 t64 lr1e-2", 96, 192, 1, 32, 64, 1e-2),
        s("h128 out1024 b32 t64 lr1e-2", 64, 128, 1, 32, 64, 1e-2, 0.0, 1024),
        s("h192 out512 b32 t64 lr1e-2", 96, 192, 1, 32, 64, 1e-2, 0.0, 512),
        s("h192 out2048 b32 t64 lr1e-2", 96, 192, 1, 32, 64, 1e-2, 0.0, 2048),
        s("h256 out1024 b32 t64 lr1e-2", 128, 256, 1, 32, 64, 1e-2, 0.0, 1024),
        s("h384 out1024 b32 t64 lr1e-2", 128, 384, 1, 32, 64, 1e-2, 0.0, 1024),
        s("h384 out1024 b32 t64 lr1e-2 weight decay 0.01", 128, 384, 1, 32, 64, 1e-2, 0.0,
          1024, 0.01),
        s("h192 out1024 b32 t64 lr1e-2", 96, 192, 1, 32, 64, 1e-2, 0.0, 1024),
        s("h320 out1024 b32 t64 lr1e-2", 128, 320, 1, 32, 64, 1e-2, 0.0, 1024),
        s("h384 out1024 b32 t64 lr1e-2 without weight averaging", 128, 384, 1, 32, 64, 1e-2,
          0.0, 1024, None, 0.0),
        s("h512 out1024 b32 t64 lr1e-2", 128, 512, 1, 32, 64, 1e-2, 0.0, 1024),
        # Batch 16 with the output units: the best on a CPU ~4x slower (eighth session).
        s("h128 out1024 b16 t64 lr1e-2", 64, 128, 1, 16, 64, 1e-2, 0.0, 1024),
        s("h192 out1024 b16 t64 lr1e-2", 96, 192, 1, 16, 64, 1e-2, 0.0, 1024),
        s("h256 out1024 b16 t64 lr1e-2", 128, 256, 1, 16, 64, 1e-2, 0.0, 1024),
        s("h256 out1024 b8 t64 lr6e-3", 128, 256, 1, 8, 64, 6e-3, 0.0, 1024),
        # Windows of 128, and with dropout: the choice on an AVX-512 EPYC before the ninth
        # session's rules (long windows need twice the steps; dropout from 8 passes).
        s("h384 out1024 b32 t128 lr1e-2", 128, 384, 1, 32, 128, 1e-2, 0.0, 1024),
        s("h384 out1024 b32 t128 lr1e-2 dropout 0.2", 128, 384, 1, 32, 128, 1e-2, 0.2, 1024),
        # Wider layers on batch 16: what the AVX2 EPYC's rules pick at 120 s (twelfth
        # session), and the next size up.
        s("h320 out1024 b16 t64 lr1e-2", 128, 320, 1, 16, 64, 1e-2, 0.0, 1024),
        s("h384 out1024 b16 t64 lr1e-2", 128, 384, 1, 16, 64, 1e-2, 0.0, 1024),
    ]
    return [Setting("recommended")] + settings


def sweep(corpus: str, budget: float, log: Callable[[str], None], only: Sequence[int] = (),
          results_path: str | Path | None = None,
          threads: int | None = None) -> list[RunResult]:
    """Run each sweep setting in a fresh `microlm train` process; results already in
    `results_path` (one JSON line per run, same corpus and budget) are reused, so a long
    sweep can be run a few configurations at a time."""
    text = load_text(corpus)
    settings = sweep_settings(budget)
    done = _load_results(results_path, corpus, budget)
    results = []
    with tempfile.TemporaryDirectory(prefix="microlm-sweep-") as folder:
        for number, setting in enumerate(settings, 1):
            if setting.label in done:
                results.append(done[setting.label])
                continue
            if only and number not in only:
                continue
            log(f"[{number}/{len(settings)}] {setting.label} ...")
            result = run_train_command(corpus, budget, setting, text, folder, threads)
            log(f"    val loss {result.val_loss:.4f}, {result.wall_s:.1f} s")
            results.append(result)
            if results_path is not None:
                with open(results_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"corpus": corpus, "budget": budget,
                                        **asdict(result)}) + "\n")
    return results


def _load_results(path: str | Path | None, corpus: str, budget: float) -> dict[str, RunResult]:
    if path is None or not Path(path).exists():
        return {}
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.pop("corpus") == corpus and row.pop("budget") == budget:
            out[row["label"]] = RunResult(**row)
    return out


def format_results(results: list[RunResult], title: str) -> str:
    """A table, best first, with each run's gap to the best in %."""
    from .cli import format_table

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
    lines = [title, format_table(rows, left_columns=1)]
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


def check_corpus(corpus: str) -> str | None:
    """None if the corpus can be used, else why not, in words."""
    if corpus in SAMPLE_NAMES:
        return None
    if not Path(corpus).is_file():
        return (f"the corpus {corpus} is not there; give one with --corpus PATH (the issue's "
                f"figures use tinyshakespeare.txt) or --corpus python-docs.")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m microlm.quality", description=__doc__)
    parser.add_argument("--baseline-child", nargs=3, metavar=("CORPUS", "SECONDS", "REPORT"),
                        help="internal: train the plain baseline and write its result")
    parser.add_argument("--baseline", nargs=2, metavar=("CORPUS", "SECONDS"),
                        help="train only the plain baseline for SECONDS and print its score "
                             "(the second half of a long quality bench, run on its own)")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.baseline:
        result = run_baseline_process(args.baseline[0], float(args.baseline[1]), args.threads)
        print(format_results([result], f"Baseline for {float(args.baseline[1]):g} s on "
                                       f"{args.baseline[0]}"))
        return 0
    if args.baseline_child:
        corpus, seconds, report = args.baseline_child
        try:
            result = train_baseline(load_text(corpus), float(seconds))
        except CorpusError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        Path(report).write_text(json.dumps(asdict(result)))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
