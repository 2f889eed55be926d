"""`microlm probe`: this machine's CPU, memory and GPUs, its measured training speed, and
the presets with their size and estimated speed here."""

from __future__ import annotations

import argparse
import sys

from .. import hardware, machine_profile, presets
from ..recommendation_reasons import about, reference_speed_in_words, times
from .arguments import add_threads_option, positive_float
from .table import format_table

TYPICAL_VOCAB = 96  # characters in the vocabulary of a typical English text: sizes the table


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
    """The plain summary first (how fast this computer trains, what a minute of it reads),
    then the details: the hardware, the fitted costs and the presets."""
    device = str(hardware.select_device(args.device))
    print(f"Measuring training speed on {device} for about {args.seconds:g} s ...",
          file=sys.stderr, flush=True)
    # Remembered, so that the app starts with this machine's speed without measuring again.
    profile = machine_profile.measure(device, args.seconds)
    machine_profile.remember(profile, device)
    speed = profile.speed
    rate = speed.reference_chars_per_second()
    print(reference_speed_in_words(speed))
    print(f"A minute of training reads about {about(60 * rate)} characters: a text of 1 MiB "
          f"about {times(60 * rate / 2**20)} times.")
    print("\nDetails:")
    print(profile.hardware.summary())
    print(f"Precision: {speed.precision}"
          + (f"; CPU threads: {speed.threads}" if speed.threads else ""))
    print(f"\nMeasured training speed on {speed.device}: {speed.summary()}.")
    print(f"\nPresets (parameters for a text of {TYPICAL_VOCAB} characters in the "
          f"vocabulary):")
    rows = [("preset", "embedding", "hidden", "layers", "parameters", "est. chars/s")]
    for name, preset in presets.PRESETS.items():
        config = preset.model_config(TYPICAL_VOCAB)
        rate = speed.chars_per_second(config, preset.batch_size, preset.sequence_length)
        rows.append((name, str(preset.embedding_dim), str(preset.hidden_dim),
                     str(preset.num_layers),
                     f"{presets.preset_parameters(name, TYPICAL_VOCAB):,}", f"{rate:,.0f}"))
    print(format_table(rows))
    return 0
