"""Numbers as a person reads them: durations, byte sizes and counts, one way everywhere."""

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
