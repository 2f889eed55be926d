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
    if num_bytes < KIB:
        return f"{num_bytes:,.0f} bytes"
    if num_bytes < MIB:
        return f"{num_bytes / KIB:,.1f} KiB"
    if num_bytes < GIB:
        return f"{num_bytes / MIB:,.0f} MiB"
    return f"{num_bytes / GIB:,.1f} GiB"


def format_count(value: float) -> str:
    """1234567 -> '1.2 M', 34567 -> '35,000': numbers a person reads at a glance."""
    if value >= 1e6:
        return f"{value / 1e6:.1f} M"
    if value >= 10_000:
        return f"{round(value, -3):,.0f}"
    return f"{value:,.0f}"
