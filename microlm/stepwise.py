"""One character computed step by step: every number the network computes, from the
character it reads to its prediction of the next one, in the order the arithmetic runs.

For each LSTM layer, with x what the layer reads and h_prev, c_prev its state after the
character before (PyTorch's gate order in weight_ih_l{k}, weight_hh_l{k}, bias_*: i, f, g, o):

    input gate      i = σ(W_i·x + U_i·h_prev + b_i)     how much new content enters the memory
    forget gate     f = σ(W_f·x + U_f·h_prev + b_f)     how much of the memory is kept
    candidate       g = tanh(W_g·x + U_g·h_prev + b_g)  the new content offered
    output gate     o = σ(W_o·x + U_o·h_prev + b_o)     how much of the memory is shown
    cell            c = f·c_prev + i·g
    hidden          h = o·tanh(c)

where σ(z) = 1 / (1 + e^-z) squeezes any number into (0, 1) and b = bias_ih + bias_hh.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .inspection import ActivationTrace, stateful_pass
from .model import MicroLM
from .tokenizer import CharacterTokenizer

GATES = ("input", "forget", "candidate", "output")  # PyTorch's order: i, f, g, o
TOP_NEXT = 10  # next characters listed


@dataclass(frozen=True)
class GateStep:
    """One gate of one layer at one step; each array (hidden_dim,)."""

    name: str  # "input", "forget", "candidate" or "output"
    from_input: np.ndarray  # W·x: what the layer reads, weighed
    from_previous: np.ndarray  # U·h_prev: the layer's previous output, weighed
    bias: np.ndarray  # b = bias_ih + bias_hh
    value: np.ndarray  # σ(sum), or tanh(sum) for the candidate

    @property
    def total(self) -> np.ndarray:
        """W·x + U·h_prev + b, before the squashing function."""
        return self.from_input + self.from_previous + self.bias

    @property
    def squash(self) -> str:
        """The function applied to the total: 'tanh' for the candidate, else 'σ'."""
        return "tanh" if self.name == "candidate" else "σ"


@dataclass(frozen=True)
class LayerStep:
    """One LSTM layer reading one character; each array (hidden_dim,) except `input`."""

    layer: int
    input: np.ndarray  # x: the character's embedding, or the hidden state of the layer below
    previous_hidden: np.ndarray  # h_prev: this layer's output after the character before
    previous_cell: np.ndarray  # c_prev: its memory after the character before
    gates: tuple[GateStep, ...]  # input, forget, candidate, output
    cell: np.ndarray  # c = f·c_prev + i·g
    hidden: np.ndarray  # h = o·tanh(c)

    def gate(self, name: str) -> GateStep:
        return self.gates[GATES.index(name)]


@dataclass(frozen=True)
class OutputStep:
    """The output layer turning the top layer's h into next-character probabilities."""

    hidden: np.ndarray  # h of the top LSTM layer, (hidden_dim,)
    unit_totals: np.ndarray | None  # W1·h + b1 of the hidden output units (None without)
    units: np.ndarray | None  # GELU(unit_totals), (output_hidden_dim,)
    scores: np.ndarray  # W·(units or h) + b, one per character the model predicts (V,)
    probabilities: np.ndarray  # softmax(scores): e^score / sum of e^scores, (V,)
    top: tuple[tuple[str, float], ...]  # the most likely next characters, most likely first


@dataclass(frozen=True)
class CharacterStep:
    position: int  # index of the character in the text
    char: str  # the character read
    embedding: np.ndarray  # its row of the embedding table, (embedding_dim,)
    layers: tuple[LayerStep, ...]  # bottom layer first
    output: OutputStep  # the prediction of the character after it


def step_by_step(model: MicroLM, tokenizer: CharacterTokenizer, text: str, position: int,
                 trace: ActivationTrace | None = None, top_k: int = TOP_NEXT) -> CharacterStep:
    """How the network reads text[position] and predicts the character after it, every
    number computed here from the model's weights (no dropout; the model's mode is left
    alone). The state before the position comes from `trace` (activations() of this text)
    when given, else from running the LSTM over text[:position]."""
    if not 0 <= position < len(text):
        raise IndexError(f"position must be in 0..{len(text) - 1}, got {position}")
    ids = tokenizer.encode(text[:position + 1])
    lstm = model.lstm
    with torch.no_grad():
        embedding = _weights(model.embedding.weight[ids[-1]])  # (E,)
        states = _states_before(model, ids[:-1], trace, position)
        x, layers = embedding, []
        for index, (h_prev, c_prev) in enumerate(states):
            layer = _layer_step(lstm, index, x, h_prev, c_prev)
            layers.append(layer)
            x = torch.from_numpy(layer.hidden)
        output = _output_step(model.head, x, tokenizer, top_k)
    return CharacterStep(position, text[position], embedding.numpy(), tuple(layers), output)


def _states_before(model: MicroLM, ids: list[int], trace: ActivationTrace | None,
                   position: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's (h, c) after the characters before the position (zeros at 0)."""
    hidden_dim, count = model.lstm.hidden_size, model.lstm.num_layers
    zeros = torch.zeros(hidden_dim)
    if not ids:
        return [(zeros, zeros)] * count
    if trace is not None:
        return [(torch.from_numpy(layer.hidden[position - 1]),
                 torch.from_numpy(layer.cell[position - 1])) for layer in trace.layers]
    _, _, states = deque(stateful_pass(model, ids), maxlen=1)[0]  # after the last chunk
    return [(h[0, 0].cpu(), c[0, 0].cpu()) for h, c in states]


def _layer_step(lstm: nn.LSTM, index: int, x: torch.Tensor, h_prev: torch.Tensor,
                c_prev: torch.Tensor) -> LayerStep:
    weight_ih = _weights(getattr(lstm, f"weight_ih_l{index}"))  # (4H, input)
    weight_hh = _weights(getattr(lstm, f"weight_hh_l{index}"))  # (4H, H)
    bias = torch.zeros(weight_ih.shape[0])
    if lstm.bias:
        bias = (_weights(getattr(lstm, f"bias_ih_l{index}"))
                + _weights(getattr(lstm, f"bias_hh_l{index}")))
    parts = [(weight_ih @ x).chunk(4), (weight_hh @ h_prev).chunk(4), bias.chunk(4)]
    gates = []
    for name, from_input, from_previous, gate_bias in zip(GATES, *parts, strict=True):
        total = from_input + from_previous + gate_bias
        value = total.tanh() if name == "candidate" else total.sigmoid()
        gates.append(GateStep(name, from_input.numpy(), from_previous.numpy(),
                              gate_bias.numpy(), value.numpy()))
    i, f, g, o = (torch.from_numpy(gate.value) for gate in gates)
    cell = f * c_prev + i * g
    hidden = o * cell.tanh()
    return LayerStep(index, x.numpy(), h_prev.numpy(), c_prev.numpy(), tuple(gates),
                     cell.numpy(), hidden.numpy())


def _output_step(head: nn.Module, hidden: torch.Tensor, tokenizer: CharacterTokenizer,
                 top_k: int) -> OutputStep:
    unit_totals = units = None
    last = head
    if isinstance(head, nn.Sequential):  # linear -> GELU -> linear
        first, _, last = head
        unit_totals = _weights(first.weight) @ hidden + _weights(first.bias)
        units = F.gelu(unit_totals)
    reads = hidden if units is None else units
    scores = _weights(last.weight) @ reads + _weights(last.bias)
    probabilities = F.softmax(scores, dim=-1)
    known = probabilities[:tokenizer.vocab_size()]  # spare outputs have no character
    order = torch.argsort(known, descending=True, stable=True)[:top_k]
    top = tuple((tokenizer.chars[int(index)], float(known[index])) for index in order)
    return OutputStep(hidden.numpy(), None if unit_totals is None else unit_totals.numpy(),
                      None if units is None else units.numpy(), scores.numpy(),
                      probabilities.numpy(), top)


def _weights(parameter: torch.Tensor) -> torch.Tensor:
    return parameter.detach().float().cpu()
