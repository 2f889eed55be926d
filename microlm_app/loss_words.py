"""The Train tab's loss in words: the plot's labels and the explanations it gives a learner
(the numbers themselves, nats or bits and perplexity, come from microlm.units)."""

from __future__ import annotations

from microlm.units import (  # noqa: F401 - the loss in numbers, for the app's tabs
    LOSS_UNITS,
    describe_loss,
    in_unit,
    perplexity,
    perplexity_words,
    unit_name,
)

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


def axis_label(unit: str) -> str:
    return f"loss ({unit_name(unit)})"


def uniform_label(nats: float, unit: str) -> str:
    """The label of the uniform guesser's line; its loss is ln V, so V = e^loss."""
    return f"guessing among all {round(perplexity(nats)):,} characters: {in_unit(nats, unit):.2f}"


def unigram_label(nats: float, unit: str) -> str:
    return f"knowing only how often each character occurs: {in_unit(nats, unit):.2f}"


def best_label(nats: float, unit: str) -> str:
    return f"best model kept: {in_unit(nats, unit):.2f}"
