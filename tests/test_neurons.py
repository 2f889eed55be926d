"""Tests for microlm.neurons: each feature on tiny texts worked out by hand, Pearson's r, and
neurons named on a model with planted weights."""

import numpy as np
import pytest
import torch

from microlm import CharacterTokenizer, MicroLM, ModelConfig
from microlm.inspection import activations
from microlm.neurons import (
    FEATURES,
    NeuronName,
    bracket_depth,
    digit,
    feature_values,
    inside_comment,
    inside_double_quotes,
    inside_single_quotes,
    inside_word,
    line_indentation,
    name_neurons,
    pearson_r,
    position_in_line,
    position_in_word,
    sentence_start,
    upper_case,
    vowel,
)


def values(feature, text):
    result = feature(text)
    assert result.dtype == np.float32 and result.shape == (len(text),)
    return result.tolist()


# ---- features, by hand ----

def test_inside_double_quotes_counts_the_opening_quote_not_the_closing_one():
    assert values(inside_double_quotes, 'a "bc" d') == [0, 0, 1, 1, 1, 0, 0, 0]


def test_a_new_line_ends_an_open_double_quote():
    assert values(inside_double_quotes, 'x "a\nb" c') == [0, 0, 1, 1, 0, 0, 1, 1, 1]


def test_an_apostrophe_opens_no_single_quote():
    assert values(inside_single_quotes, "don't 'x' it") == [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]


def test_a_closing_single_quote_after_a_letter_closes():
    assert values(inside_single_quotes, "'ab'c") == [1, 1, 1, 0, 0]


def test_bracket_depth_counts_open_brackets_and_never_goes_below_zero():
    assert values(bracket_depth, "f(a[b]) )x") == [0, 1, 1, 2, 2, 1, 0, 0, 0, 0]
    assert values(bracket_depth, "{\n(") == [1, 1, 2]  # brackets span lines


def test_position_in_line_restarts_after_each_new_line():
    assert values(position_in_line, "ab\ncd") == [1, 2, 0, 1, 2]


def test_indentation_grows_through_leading_blanks_then_holds():
    assert values(line_indentation, "  ab\n\tc d\nx") == [1, 2, 2, 2, 0, 1, 1, 1, 1, 0, 0]


def test_words_are_letters_digits_and_underscores():
    assert values(inside_word, "a_1 b.") == [1, 1, 1, 0, 1, 0]
    assert values(position_in_word, "ab c_d9 ") == [1, 2, 0, 1, 2, 3, 4, 0]


def test_single_character_features():
    assert values(upper_case, "aB1 É") == [0, 1, 0, 0, 1]
    assert values(digit, "a1²9") == [0, 1, 0, 1]  # only 0-9
    assert values(vowel, "HellO y") == [0, 1, 0, 0, 1, 0, 0]


def test_a_sentence_starts_after_a_full_stop_and_a_blank():
    text = "It is. So 3.5 x! A"
    expected = [1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    assert values(sentence_start, text) == expected


def test_a_comment_runs_from_hash_to_the_end_of_the_line_outside_quotes():
    text = 'x = "#" # hi\ny'
    assert values(inside_comment, text) == [0] * 8 + [1, 1, 1, 1, 0, 0]


def test_every_feature_has_a_unique_name_and_a_phrase():
    names = [feature.name for feature in FEATURES]
    assert len(names) == len(set(names)) >= 12
    assert all(feature.phrase and feature.values.__doc__ for feature in FEATURES)


def test_feature_values_has_one_column_per_feature():
    table = feature_values('say "hi" (now)')
    assert table.shape == (14, len(FEATURES))
    quotes = [feature.name for feature in FEATURES].index("double_quotes")
    assert table[:, quotes].tolist() == inside_double_quotes('say "hi" (now)').tolist()
    assert feature_values("").shape == (0, len(FEATURES))


# ---- Pearson's r ----

def test_pearson_r_equals_numpy_corrcoef():
    rng = np.random.default_rng(0)
    neurons = rng.normal(size=(200, 5)).astype(np.float32) * [1, 10, 0.1, 3, 100] + 40
    features = rng.normal(size=(200, 3)).astype(np.float32)
    features[:, 1] = neurons[:, 2] * -2 + 1  # exactly against neuron 2
    r = pearson_r(neurons, features)
    expected = np.corrcoef(neurons.T, features.T)[:5, 5:]
    assert r.shape == (5, 3)
    np.testing.assert_allclose(r, expected, atol=1e-5)
    assert r[2, 1] == pytest.approx(-1.0, abs=1e-5)


def test_a_constant_column_gets_r_zero_not_nan():
    neurons = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    features = np.array([[0.0, 7.0], [1.0, 7.0], [1.0, 7.0]], dtype=np.float32)
    r = pearson_r(neurons, features)
    assert not np.isnan(r).any()
    assert r[1].tolist() == [0.0, 0.0] and r[:, 1].tolist() == [0.0, 0.0]
    assert r[0, 0] == pytest.approx(np.corrcoef([1, 2, 3], [0, 1, 1])[0, 1], abs=1e-6)
    assert pearson_r(neurons[:1], features[:1]).tolist() == [[0.0, 0.0], [0.0, 0.0]]


# ---- naming neurons ----

QUOTED = 'he said "yes" and "no" to "it"; then "go" now\n' * 6


def quote_model(tokenizer: CharacterTokenizer, neuron: int) -> MicroLM:
    """A 1-layer model whose cell unit `neuron` flips between 0 and 1 at each ": on a quote
    its forget gate shuts and its input gate opens, and the candidate is 1 if the unit was
    0 (outside quotes) or 0 if it was 1 (h_prev = tanh(1) = 0.76 cancels the input)."""
    hidden = 4
    model = MicroLM(config=ModelConfig(tokenizer.vocab_size(), 2, hidden, 1, 0.0))
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.embedding.weight[tokenizer.char_to_id['"'], 0] = 1.0  # only " has a signal
        w_ih, w_hh, bias = model.lstm.weight_ih_l0, model.lstm.weight_hh_l0, model.lstm.bias_ih_l0
        i, f, g, o = (k * hidden + neuron for k in range(4))
        bias[i], w_ih[i, 0] = -10.0, 20.0  # input gate: open on a quote only
        bias[f], w_ih[f, 0] = 10.0, -20.0  # forget gate: shut on a quote only
        w_ih[g, 0] = 10.0
        w_hh[g, neuron] = -10.0 / float(np.tanh(1.0))  # inside (h = tanh 1): candidate 0
        bias[o] = 20.0  # output gate open
    return model


def test_a_neuron_wired_to_count_quotes_is_named_inside_double_quotes():
    tokenizer = CharacterTokenizer(QUOTED)
    names = name_neurons(quote_model(tokenizer, neuron=2), tokenizer, QUOTED)
    best = names.names[0]
    assert (best.layer, best.state, best.neuron) == (0, "cell", 2)
    assert best.feature.name == "double_quotes"
    assert best.r >= 0.9
    assert best.phrase == f"inside double quotes (r = {best.r:.2f})"
    assert names.best("double_quotes") == best
    # neurons wired to nothing stay constant: r = 0, never NaN
    assert not np.isnan(names.correlations).any()
    assert names.correlations[0, 0, 0].tolist() == [0.0] * len(FEATURES)


def test_names_are_sorted_by_the_size_of_r_and_cover_every_neuron():
    torch.manual_seed(0)
    text = "def f(x):\n    return x  # one\n" * 20
    tokenizer = CharacterTokenizer(text)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=4, hidden_dim=6, num_layers=2)
    names = name_neurons(model, tokenizer, text)
    assert len(names.names) == 2 * 2 * 6
    sizes = [abs(name.r) for name in names.names]
    assert sizes == sorted(sizes, reverse=True)
    assert {(n.layer, n.state, n.neuron) for n in names.names} == {
        (layer, state, neuron) for layer in (0, 1) for state in ("cell", "hidden")
        for neuron in range(6)}
    assert names.correlations.shape == (2, 2, 6, len(FEATURES))
    # each name is the row's largest |r|
    name = names.name_of(1, "hidden", 3)
    row = names.correlations[1, 1, 3]
    assert abs(name.r) == pytest.approx(np.abs(row).max())
    trace = activations(model, tokenizer, text)
    r = pearson_r(trace.layers[1].hidden[:, 3:4], feature_values(text))[0]
    np.testing.assert_allclose(row, r, atol=1e-6)


def test_a_negative_r_is_written_with_a_true_minus_sign():
    features = {feature.name: feature for feature in FEATURES}
    assert NeuronName(0, "cell", 3, features["double_quotes"], -0.5).phrase == (
        "inside double quotes (r = −0.50)")
    assert NeuronName(1, "hidden", 0, features["upper_case"], 0.254).phrase == (
        "upper-case letter (r = 0.25)")
