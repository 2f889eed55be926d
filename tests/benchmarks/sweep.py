"""A sweep: the recommendation (row 1) and the explicit configurations of sweep_rows.csv,
each a fresh `microlm train CORPUS --time-budget B` process, scored as quality.py scores and
printed as one table, best first.

    python tests/benchmarks/sweep.py [CORPUS] --budget 60 [--only 1 15 20] [--results F]

With --results, each run is added to a JSON-lines file and the runs already in it (same
corpus and budget) are reused, so a long sweep can run a few configurations at a time.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from common import add_corpus_argument, corpus_name, load_corpus
from quality import Log, RunResult, Setting, format_results, log_to_stderr, run_train_command

ROWS = Path(__file__).resolve().parent / "sweep_rows.csv"
LONG_BUDGET_S = 200  # from this budget on, the "long" rows: the text is read many times
FLAGS = {"embedding_dim": "--embedding-dim", "hidden_dim": "--hidden-dim",
         "num_layers": "--num-layers", "batch_size": "--batch-size",
         "sequence_length": "--sequence-length", "learning_rate": "--learning-rate",
         "dropout": "--dropout", "output_hidden_dim": "--output-hidden-dim",
         "weight_decay": "--weight-decay", "ema_decay": "--ema-decay"}


def read_rows(path: Path = ROWS) -> list[dict[str, str]]:
    """The rows of the file, '#' lines left out."""
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.DictReader(line for line in file if not line.startswith("#")))


def sweep_settings(budget: float, path: Path = ROWS) -> list[Setting]:
    """Row 1, the recommendation, then the file's rows for this budget as explicit flags
    (a setting left empty is the recommendation's)."""
    group = "long" if budget >= LONG_BUDGET_S else "short"
    settings = [Setting("recommended")]
    for row in read_rows(path):
        if row["budgets"] not in ("short", "long"):
            raise ValueError(f"{path.name}: budgets must be short or long, not "
                             f"{row['budgets']!r} ({row['label']})")
        if row["budgets"] == group:
            flags = [(flag, row[column]) for column, flag in FLAGS.items() if row[column]]
            settings.append(Setting(row["label"], tuple(item for pair in flags
                                                        for item in pair)))
    return settings


def sweep(corpus: Path | None, budget: float, log: Log, only: Sequence[int] = (),
          results_path: Path | None = None, threads: int | None = None) -> list[RunResult]:
    """Run each setting (or the numbers in `only`) in a fresh `microlm train` process."""
    text = load_corpus(corpus).text
    settings = sweep_settings(budget)
    key = str(corpus) if corpus else "python-docs"
    done = load_results(results_path, key, budget)
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
                    f.write(json.dumps({"corpus": key, "budget": budget,
                                        **asdict(result)}) + "\n")
    return results


def load_results(path: Path | None, corpus: str, budget: float) -> dict[str, RunResult]:
    if path is None or not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.pop("corpus") == corpus and row.pop("budget") == budget:
            out[row["label"]] = RunResult(**row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/sweep.py",
                                     description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                        help="the time budget of every run (default 60)")
    parser.add_argument("--only", type=int, nargs="+", metavar="N",
                        help="run only these rows (row 1: the recommendation)")
    parser.add_argument("--results", type=Path, metavar="FILE",
                        help="add each run to this JSON-lines file and reuse the runs in it")
    parser.add_argument("--list", action="store_true",
                        help="print the numbered rows for this budget and stop")
    parser.add_argument("--threads", type=int, help="CPU threads of every run")
    args = parser.parse_args(argv)
    if args.list:
        for number, setting in enumerate(sweep_settings(args.budget), 1):
            print(f"{number:3}  {setting.label}")
        return 0
    load_corpus(args.corpus)  # a file that cannot be read stops here
    if args.threads:
        torch.set_num_threads(args.threads)
    results = sweep(args.corpus, args.budget, log_to_stderr, args.only or (), args.results,
                    args.threads)
    print(format_results(results, f"Sweep at {args.budget:g} s on {corpus_name(args.corpus)}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
