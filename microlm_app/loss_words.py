"""A loss in words: nats or bits per character, perplexity as "choosing among N characters",
and the explanations the Train tab's plot gives a learner."""

from __future__ import annotations

import math

UNITS = ("nats", "bits")  # the loss is stored in nats; bits = nats / ln 2
LN2 = math.log(2)

LOSS_MEANING = (
    "The loss is the mean, over the characters, of −ln p, where p is the probability the "
    "model gave the character that really came next: 0 would be always sure and right; "
    "guessing blindly among V characters gives ln V.")
VALIDATION_BELOW = (
    "The validation dots can sit below the training line: dropout is on while training "
    "and off when validating; with weight averaging on, validation uses the averaged "
    "weights; and it is measured on a different part of the text.")
SMOOTHED_MEANING = (
    "The smoothed loss (the dark line) blends each step's loss with the ones before it, "
    "about the last 10 steps, so the trend shows through the noise of single batches.")
BEST_MEANING = (
    "The star marks the best model kept: the lowest validation loss so far. The trainer "
    "keeps the weights of that moment, not the last ones; that model is the one the "
    "Generate and Inspect tabs use and File > Save Model writes.")
REFERENCE_MEANING = (
    "The dashed lines are what the simplest guessers score on this text: one that picks "
    "every character of the vocabulary alike, and one that knows only how often each "
    "character occurs. A model that has learnt spelling and words goes well below both.")
UNITS_MEANING = (
    "Nats per character use the natural logarithm (ln). Bits per character use log base 2: "
    "bits = nats / ln 2 (1 nat = 1.44 bits), the number of yes-or-no questions the model "
    "would need, on average, to pin down each character. The data is the same; only the "
    "scale changes.")
PLOT_HINT = (
    "Lower is better: the loss measures how surprised the model is by the right next "
    "character. Hover over the plot for what each line means.")


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ValueError(f"Unknown loss unit {unit!r}: use 'nats' or 'bits'.")
    return unit


def in_unit(nats: float, unit: str) -> float:
    """A loss stored in nats per character, in `unit` ("nats" or "bits") per character."""
    return nats / LN2 if check_unit(unit) == "bits" else nats


def unit_name(unit: str) -> str:
    """'nats per character' or 'bits per character'."""
    return f"{check_unit(unit)} per character"


def axis_label(unit: str) -> str:
    return f"loss ({unit_name(unit)})"


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


def uniform_label(nats: float, unit: str) -> str:
    """The label of the uniform guesser's line; its loss is ln V, so V = e^loss."""
    return f"guessing among all {round(perplexity(nats)):,} characters: {in_unit(nats, unit):.2f}"


def unigram_label(nats: float, unit: str) -> str:
    return f"knowing only how often each character occurs: {in_unit(nats, unit):.2f}"


def best_label(nats: float, unit: str) -> str:
    return f"best model kept: {in_unit(nats, unit):.2f}"
