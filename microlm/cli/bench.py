"""`microlm bench`: how fast this machine trains and generates each preset, and the memory
training takes."""

from __future__ import annotations

import argparse
import sys

from .. import bench as benchmark
from .. import presets
from .arguments import add_threads_option, positive_float


def add_parser(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench", help="measure how fast this machine trains and generates, and the memory "
                      "training takes",
        description="Train each preset for a few seconds on the built-in Python documentation "
                    "sample, then generate text with it, and print the characters per second "
                    "of both and the memory training added. Needs no file; takes under a "
                    "minute on a 2-core CPU.")
    bench.add_argument("--presets", nargs="+", choices=list(presets.PRESETS), metavar="NAME",
                       default=list(benchmark.PRESET_NAMES),
                       help=f"the presets to time (default: "
                            f"{' '.join(benchmark.PRESET_NAMES)}; choose from "
                            f"{', '.join(presets.PRESETS)})")
    bench.add_argument("--seconds", type=positive_float, metavar="SECONDS",
                       help=f"training time of each preset (default "
                            f"{benchmark.TRAIN_SECONDS:g}); longer runs give steadier "
                            f"figures")
    bench.add_argument("--quick", action="store_true",
                       help=f"{benchmark.QUICK_SECONDS:g} s per preset: checks that training "
                            f"and generation run here (the figures are rough)")
    bench.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")
    add_threads_option(bench)
    bench.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    result = benchmark.run_bench(
        args.presets, args.device, quick=args.quick, train_seconds=args.seconds,
        log=lambda message: print(message, file=sys.stderr, flush=True))
    print(benchmark.format_report(result))
    for problem in result.problems():
        print(f"error: {problem}", file=sys.stderr)
    return 1 if result.problems() else 0
