"""Tests of the names a person reads for the model's parts: layers counted from 1."""

from __future__ import annotations

from microlm import MicroLM
from microlm.model import layer_name
from microlm.naming import in_words, layer_label, lstm_layer_label, parameter_label


def test_lstm_layers_are_counted_from_one():
    assert lstm_layer_label(0) == "LSTM layer 1"
    assert layer_label("lstm.0") == "LSTM layer 1" and layer_label("lstm.2") == "LSTM layer 3"
    assert layer_label("head") == "output layer" and layer_label("embedding") == "embedding"


def test_every_parameter_of_a_model_has_a_name_in_words():
    model = MicroLM(10, embedding_dim=4, hidden_dim=6, num_layers=2, dropout=0.0,
                    output_hidden_dim=5)
    labels = {name: parameter_label(name) for name, _ in model.named_parameters()}
    assert labels["lstm.weight_ih_l0"] == "LSTM layer 1, weights on its input"
    assert labels["lstm.weight_hh_l1"] == "LSTM layer 2, weights on its previous hidden state"
    assert labels["lstm.bias_ih_l1"] == "LSTM layer 2, bias (input side)"
    assert labels["head.0.weight"] == "output layer, weights to its units"
    assert labels["head.2.bias"] == "output layer, bias of the scores"
    assert len(set(labels.values())) == len(labels)  # no two tensors read alike
    for name, label in labels.items():
        assert name not in label and "head" not in label and "_l0" not in label
        assert label.startswith(layer_label(layer_name(name)))  # grouped as the layers are
    assert parameter_label("something.else") == "something.else"


def test_names_inside_a_sentence_are_put_in_words():
    assert in_words("lstm.bias_ih_l0: 40% of its gate biases are large.") == (
        "LSTM layer 1, bias (input side): 40% of its gate biases are large.")
    assert in_words("head.weight and embedding.weight") == (
        "output layer, weights and embedding, one vector per character")
