"""What the commands share on their command lines: the error a person can fix, argument
types that reject a bad value with a sentence, the sample corpora's names, --threads."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from ..data import SAMPLE_CORPORA


class UserError(Exception):
    """A mistake the person running the command can fix; shown as one 'error:' line."""


# ---- argument types: each rejects a bad value with a sentence, not a traceback ----

def number(kind: type, check: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value
    parse.__name__ = wanted  # argparse names the type in some messages
    return parse


positive_int = number(int, lambda v: v >= 1, "a whole number >= 1")
count_int = number(int, lambda v: v >= 0, "a whole number >= 0")
positive_float = number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
non_negative_float = number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
dropout_float = number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
top_p_float = number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def sample_name(text: str) -> str:
    """Accept a sample corpus by its name in any case, or as a slug like python-documentation."""
    for name in SAMPLE_CORPORA:
        if slug(text) in (slug(name), slug(name).removeprefix("python-")):
            return name
    choices = ", ".join(f"'{slug(n)}'" for n in SAMPLE_CORPORA)
    raise argparse.ArgumentTypeError(f"no sample corpus named {text!r}; choose {choices}")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads torch may use (default: torch's choice, usually one "
                             "per core); small models on a busy machine often run much faster "
                             "with 1")
