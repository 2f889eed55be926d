"""The `microlm` command: probe the machine, train, generate, inspect a checkpoint, benchmark.

Each command is one module of this package, with its options and what it runs; this one
builds the parser from them and turns every failure into one 'error:' line and an exit
status.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import torch

from .. import distributed
from ..checkpoint import CheckpointError
from ..data import CorpusError
from ..tokenizer import UnknownCharacterError
from . import bench, generate, inspect, prepare, probe, train
from .arguments import UserError, sample_name
from .progress import ProgressLine
from .table import format_table
from .train_loop import INTERRUPTED

__all__ = ["INTERRUPTED", "ProgressLine", "UserError", "build_parser", "format_table", "main",
           "sample_name"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one 'error:' line instead of usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="microlm", description="Train and explore character-level LSTM "
                     "language models from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (probe, train, prepare, generate, inspect, bench):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 bad input)."""
    # From a real command line, the time budget counts from the moment the process started
    # (interpreter and torch start-up included), not from when this function runs.
    started = time.monotonic() - (_seconds_since_process_start() if argv is None else 0.0)
    parser = build_parser()
    threads = torch.get_num_threads()
    try:
        args = parser.parse_args(argv)
        args.started = started
        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        return args.handler(args)
    except SystemExit as exit_request:  # --help, or a command line argparse rejected
        return exit_request.code if isinstance(exit_request.code, int) else 0
    except (UserError, CorpusError, CheckpointError, UnknownCharacterError, ValueError) as err:
        return _fail(str(err), 2)
    except KeyboardInterrupt:
        return _fail("interrupted.", INTERRUPTED)
    except BrokenPipeError:  # e.g. `microlm generate ... | head`: the reader has gone
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except MemoryError:
        return _fail("out of memory; use a smaller model, batch or text.", 1)
    except (OSError, RuntimeError) as err:
        return _fail(_first_line(err), 1)
    except Exception as err:  # a bug: still one line, with a way to get the traceback
        if os.environ.get("MICROLM_DEBUG"):
            raise
        return _fail(f"internal error ({type(err).__name__}: {_first_line(err)}); run again "
                     f"with MICROLM_DEBUG=1 to see the traceback and please report it.", 1)
    finally:
        torch.set_num_threads(threads)  # called in-process (a notebook, a test): leave it as it was
        distributed.shutdown()  # under torchrun: leave the process group on every path


def _fail(message: str, status: int) -> int:
    message = " ".join(message.split())  # one line, whatever the message was built from
    print(f"error: {message}", file=sys.stderr)
    return status


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _seconds_since_process_start() -> float:
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # no psutil or no permission: count from now
        return 0.0
