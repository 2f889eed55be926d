"""The names a person reads for the model's parts: layers numbered from 1 ("LSTM layer 1" is
the one that reads the characters) and parameter tensors in words. The code keeps PyTorch's
names (lstm.weight_ih_l0, head.weight); only what is shown goes through these functions."""

from __future__ import annotations

import re

_LSTM_TENSOR = re.compile(r"^lstm\.(weight|bias)_(ih|hh)_l(\d+)$")
_LSTM_WORDS = {
    ("weight", "ih"): "weights on its input",
    ("weight", "hh"): "weights on its previous hidden state",
    ("bias", "ih"): "bias (input side)",
    ("bias", "hh"): "bias (recurrent side)",
}


def lstm_layer_label(index: int) -> str:
    """'LSTM layer 1' for index 0: people count from 1."""
    return f"LSTM layer {index + 1}"


def layer_label(layer: str) -> str:
    """A layer as model.layer_name groups parameters ('embedding', 'lstm.0', 'head'), in
    words: 'embedding', 'LSTM layer 1', 'output layer'."""
    if layer.startswith("lstm."):
        return lstm_layer_label(int(layer.split(".", 1)[1]))
    return {"head": "output layer"}.get(layer, layer)


def parameter_label(name: str) -> str:
    """A parameter tensor's name in words: 'lstm.weight_ih_l0' is 'LSTM layer 1, weights on
    its input', 'head.0.weight' 'output layer, weights to its units'. Unknown names are
    returned as they are."""
    match = _LSTM_TENSOR.match(name)
    if match:
        kind, side, index = match.groups()
        return f"{lstm_layer_label(int(index))}, {_LSTM_WORDS[kind, side]}"
    if name == "embedding.weight":
        return "embedding, one vector per character"
    return _HEAD_WORDS.get(name, name)


def in_words(text: str) -> str:
    """`text` with every parameter name in it (as in 'lstm.bias_ih_l0: ...') in words."""
    return _ANY_NAME.sub(lambda match: parameter_label(match.group(0)), text)


_HEAD_WORDS = {
    "head.weight": "output layer, weights",
    "head.bias": "output layer, bias",
    "head.0.weight": "output layer, weights to its units",
    "head.0.bias": "output layer, bias of its units",
    "head.2.weight": "output layer, weights from its units to the scores",
    "head.2.bias": "output layer, bias of the scores",
}
_ANY_NAME = re.compile(r"\b(?:lstm\.(?:weight|bias)_(?:ih|hh)_l\d+|embedding\.weight|"
                       r"head(?:\.[02])?\.(?:weight|bias))\b")
