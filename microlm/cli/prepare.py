"""`microlm prepare`: encode a large text file once, to train on it through a memory map."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import prepared
from ..units import MIB
from .arguments import UserError, number


def add_parser(commands: argparse._SubParsersAction) -> None:
    prepare = commands.add_parser(
        "prepare", help="encode a large text file once, to train on it through a memory map",
        description="Read a UTF-8 text file of any size in one streaming pass and write its "
                    "characters as token ids (train.bin, val.bin) and its vocabulary "
                    "(vocab.json) into a folder; 'microlm train FOLDER' then trains from it "
                    "without holding the text in memory. The validation part is the last "
                    "--val-fraction of the text, as 'microlm train FILE' would hold out.")
    prepare.add_argument("file", type=Path, help="the UTF-8 text file to encode")
    prepare.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                         help="the folder to write (created if needed)")
    prepare.add_argument("--val-fraction", type=number(float, lambda v: 0 <= v < 1,
                                                       "a number in [0, 1)"), default=0.1,
                         help="share of the text held out for validation (default 0.1)")
    prepare.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    if args.file.is_dir():
        raise UserError(f"{args.file} is a folder; give the text file to prepare.")
    started = time.perf_counter()

    def show(done: int, total: int) -> None:
        rate = done / MIB / max(time.perf_counter() - started, 1e-9)
        print(f"\rPreparing {args.file.name}: {done / total:4.0%} ({done / MIB:,.0f} of "
              f"{total / MIB:,.0f} MiB, {rate:,.0f} MiB/s)", end="", file=sys.stderr, flush=True)

    try:
        result = prepared.prepare_corpus(args.file, args.output, args.val_fraction,
                                         progress=show)
    finally:
        print(file=sys.stderr)
    rate = result.megabytes_per_second * 1e6 / MIB
    print(f"Prepared {result.characters:,} characters ({result.train_characters:,} for "
          f"training, {result.val_characters:,} for validation), vocabulary "
          f"{result.vocab_size}, in {result.seconds:.1f} s ({rate:,.0f} "
          f"MiB/s) into {result.directory}. Train with: microlm train {result.directory}")
    return 0
