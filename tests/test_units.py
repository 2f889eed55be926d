"""Tests for microlm.units: durations, byte sizes and counts as a person reads them."""

import math

import pytest

from microlm.units import format_bytes, format_count, format_duration


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (12, "12 s"), (12.4, "12 s"), (59.6, "1:00"), (65, "1:05"), (3599.4, "59:59"),
    (3909, "1:05:09"),
])
def test_a_duration_shows_seconds_then_minutes_then_hours(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -1])
def test_an_unknown_duration_is_a_question_mark(seconds):
    assert format_duration(seconds) == "?"


@pytest.mark.parametrize(("num_bytes", "text"), [
    (0, "0 bytes"), (1023, "1,023 bytes"), (1024, "1.0 KiB"), (12.5 * 2**10, "12.5 KiB"),
    (3 * 2**20, "3 MiB"), (340 * 2**20, "340 MiB"), (1.5 * 2**30, "1.5 GiB"),
    (2**40, "1,024.0 GiB"), (2**20 - 1, "1 MiB"), (2**20 - 100, "1,023.9 KiB"),
    (2**30 - 1, "1.0 GiB"), (2**30 - 2**20, "1,023 MiB"),
])
def test_bytes_are_counted_in_binary_units(num_bytes, text):
    assert format_bytes(num_bytes) == text


@pytest.mark.parametrize(("value", "text"), [
    (12.4, "12"), (9_999, "9,999"), (10_000, "10,000"), (34_567, "35,000"),
    (1_000_000, "1.0 M"), (1_234_567, "1.2 M"), (999_999, "1.0 M"), (999_000, "999,000"),
])
def test_counts_are_rounded_to_what_a_person_reads_at_a_glance(value, text):
    assert format_count(value) == text
