"""Numbers as a person reads them: durations, byte sizes, counts and losses, one way
everywhere."""

from __future__ import annotations

import math

KIB, MIB, GIB = 2**10, 2**20, 2**30


def format_duration(seconds: float) -> str:
    """12 s / 4:07 / 1:05:09: short enough for a progress bar; '?' when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_bytes(num_bytes: float) -> str:
    """Binary units, as memory is counted: 900 bytes / 12.5 KiB / 340 MiB / 1.5 GiB."""
    # each unit up to where its rounded figure would reach 1,024 of it
    if num_bytes < KIB:
        return f"{num_bytes:,.0f} bytes"
    if num_bytes < MIB - 0.05 * KIB:
        return f"{num_bytes / KIB:,.1f} KiB"
    if num_bytes < GIB - 0.5 * MIB:
        return f"{num_bytes / MIB:,.0f} MiB"
    return f"{num_bytes / GIB:,.1f} GiB"


def format_count(value: float) -> str:
    """1234567 -> '1.2 M', 34567 -> '35,000': numbers a person reads at a glance."""
    if value >= 999_500:  # what would round to 1,000,000 reads as 1.0 M
        return f"{value / 1e6:.1f} M"
    if value >= 10_000:
        return f"{round(value, -3):,.0f}"
    return f"{value:,.0f}"


# ---- a loss: stored in nats per character; bits = nats / ln 2; perplexity = e^loss ----

LOSS_UNITS = ("nats", "bits")
LN2 = math.log(2)


def check_unit(unit: str) -> str:
    if unit not in LOSS_UNITS:
        raise ValueError(f"Unknown loss unit {unit!r}: use 'nats' or 'bits'.")
    return unit


def in_unit(nats: float, unit: str) -> float:
    """A loss stored in nats per character, in `unit` ("nats" or "bits") per character."""
    return nats / LN2 if check_unit(unit) == "bits" else nats


def unit_name(unit: str) -> str:
    """'nats per character' or 'bits per character'."""
    return f"{check_unit(unit)} per character"


def perplexity(nats: float) -> float:
    """e^loss: the number of characters a uniform guess would have to choose among to be as
    unsure as the model."""
    return math.exp(min(nats, 700.0))  # e^710 overflows a float


def perplexity_words(nats: float) -> str:
    """'as unsure as choosing among 4.6 characters' for a loss of 1.52 nats per character."""
    if not math.isfinite(nats):
        return "the loss is not a number: training diverged"
    among = perplexity(nats)
    count = f"{among:.1f}" if among < 100 else f"{among:,.0f}"
    return f"as unsure as choosing among {count} characters"


def describe_loss(nats: float, unit: str = "nats", digits: int = 2) -> str:
    """'1.52 nats per character (2.19 bits): as unsure as choosing among 4.6 characters';
    in bits, '2.19 bits per character (1.52 nats): …'."""
    if not math.isfinite(nats):
        return perplexity_words(nats)
    other = "nats" if check_unit(unit) == "bits" else "bits"
    return (f"{in_unit(nats, unit):.{digits}f} {unit_name(unit)} "
            f"({in_unit(nats, other):.{digits}f} {other}): {perplexity_words(nats)}")
