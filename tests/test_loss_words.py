"""Tests for a loss in words: units, perplexity as 'choosing among N characters'."""

import math

import pytest

from microlm_app.loss_words import (
    axis_label,
    best_label,
    describe_loss,
    in_unit,
    perplexity,
    perplexity_words,
    uniform_label,
    unigram_label,
)


def test_a_loss_of_ln_4_is_as_unsure_as_choosing_among_4_characters():
    assert perplexity(math.log(4)) == pytest.approx(4.0)
    assert perplexity_words(math.log(4)) == "as unsure as choosing among 4.0 characters"
    assert perplexity_words(1.52) == "as unsure as choosing among 4.6 characters"
    assert perplexity_words(math.log(250)) == "as unsure as choosing among 250 characters"


def test_bits_are_nats_divided_by_ln_2():
    assert in_unit(math.log(2), "bits") == pytest.approx(1.0)
    assert in_unit(1.52, "nats") == 1.52
    assert in_unit(1.52, "bits") == pytest.approx(2.1929, abs=1e-4)
    with pytest.raises(ValueError, match="Unknown loss unit 'nat'"):
        in_unit(1.0, "nat")


def test_describe_loss_gives_both_units_and_the_perplexity():
    assert describe_loss(1.52) == (
        "1.52 nats per character (2.19 bits): as unsure as choosing among 4.6 characters")
    assert describe_loss(1.52, "bits") == (
        "2.19 bits per character (1.52 nats): as unsure as choosing among 4.6 characters")
    assert describe_loss(math.log(4), "nats", 3).startswith("1.386 nats per character (2.000")


def test_a_loss_that_is_not_a_number_says_training_diverged():
    assert describe_loss(math.nan) == "the loss is not a number: training diverged"
    assert perplexity(1e6) == math.exp(700)  # no overflow for a huge loss


def test_labels_of_the_plot():
    assert axis_label("nats") == "loss (nats per character)"
    assert axis_label("bits") == "loss (bits per character)"
    assert uniform_label(math.log(65), "nats") == "guessing among all 65 characters: 4.17"
    assert uniform_label(math.log(65), "bits") == "guessing among all 65 characters: 6.02"
    assert unigram_label(3.3, "nats") == "knowing only how often each character occurs: 3.30"
    assert best_label(1.52, "bits") == "best model kept: 2.19"
