"""`microlm probe`: this machine's CPU, memory and GPUs, its measured training speed, and
the presets with their size and estimated speed here."""

from __future__ import annotations

import argparse
import sys

from .. import calibration, hardware, presets
from .arguments import add_threads_option, positive_float
from .table import format_table

TYPICAL_VOCAB = 96  # distinct characters of a typical English text: sizes the preset table


def add_parser(commands: argparse._SubParsersAction) -> None:
    probe = commands.add_parser(
        "probe", help="describe this machine and how fast it trains each preset",
        description="Print this machine's CPU, memory and GPUs, measure its training speed "
                    "in a short calibration, and list the presets with their true size and "
                    "estimated speed here.")
    probe.add_argument("--device", help="measure on this device (cpu, cuda, cuda:1, mps); "
                       "default: the best available")
    probe.add_argument("--seconds", type=positive_float, default=1.5,
                       help="how long the speed calibration runs (default 1.5)")
    add_threads_option(probe)
    probe.set_defaults(handler=run_probe)


def run_probe(args: argparse.Namespace) -> int:
    device = str(hardware.select_device(args.device))
    print(hardware.probe().summary())
    print(f"\nMeasuring training speed on {device} for about {args.seconds:g} s ...",
          file=sys.stderr, flush=True)
    speed = calibration.calibrate(seconds=args.seconds, device=device)
    print(f"\nMeasured training speed on {speed.device}: {speed.summary()}.")
    print(f"\nPresets (parameters for a text of {TYPICAL_VOCAB} distinct characters):")
    rows = [("preset", "embedding", "hidden", "layers", "parameters", "est. chars/s")]
    for name, preset in presets.PRESETS.items():
        config = preset.model_config(TYPICAL_VOCAB)
        rate = speed.chars_per_second(config, preset.batch_size, preset.sequence_length)
        rows.append((name, str(preset.embedding_dim), str(preset.hidden_dim),
                     str(preset.num_layers),
                     f"{presets.preset_parameters(name, TYPICAL_VOCAB):,}", f"{rate:,.0f}"))
    print(format_table(rows))
    return 0
