"""Tests for microlm.stepwise: one character computed from the weights equals PyTorch's own
LSTM and output layer, for 1, 2 and 3 layers, with and without output hidden units."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from microlm import CharacterTokenizer, MicroLM, ModelConfig
from microlm.inspection import activations
from microlm.stepwise import GATES, step_by_step

TEXT = 'the "cat" sat (on) the mat.\n'


@pytest.fixture
def tokenizer():
    return CharacterTokenizer(TEXT)


def seeded_model(tokenizer, layers, output_hidden_dim):
    torch.manual_seed(layers * 10 + output_hidden_dim)
    return MicroLM(tokenizer.vocab_size(), embedding_dim=6, hidden_dim=10, num_layers=layers,
                   dropout=0.3, output_hidden_dim=output_hidden_dim)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("output_hidden_dim", [0, 7])
@pytest.mark.parametrize("position", [0, 9, len(TEXT) - 1])
def test_each_layer_and_the_prediction_equal_pytorch(tokenizer, layers, output_hidden_dim,
                                                    position):
    model = seeded_model(tokenizer, layers, output_hidden_dim)
    model.train()  # the step never applies dropout, whatever the mode
    step = step_by_step(model, tokenizer, TEXT, position)
    assert model.training
    model.eval()
    ids = torch.tensor([tokenizer.encode(TEXT[:position + 1])])
    with torch.no_grad():
        logits, (h_n, c_n) = model(ids, return_state=True)
    assert step.char == TEXT[position] and step.position == position
    assert len(step.layers) == layers
    for index, layer in enumerate(step.layers):
        np.testing.assert_allclose(layer.hidden, h_n[index, 0].numpy(), atol=1e-5)
        np.testing.assert_allclose(layer.cell, c_n[index, 0].numpy(), atol=1e-5)
    probabilities = F.softmax(logits[0, -1], dim=-1).numpy()
    np.testing.assert_allclose(step.output.probabilities, probabilities, atol=1e-5)
    assert (step.output.units is None) == (output_hidden_dim == 0)
    expected_top = np.argsort(-probabilities, kind="stable")[:10]
    assert [char for char, _ in step.output.top] == [tokenizer.chars[i] for i in expected_top]
    # a trace of the text gives the state before the position: the same numbers
    traced = step_by_step(model, tokenizer, TEXT, position, trace=activations(model, tokenizer,
                                                                            TEXT))
    for mine, theirs in zip(step.layers, traced.layers, strict=True):
        np.testing.assert_allclose(mine.cell, theirs.cell, atol=1e-6)


def test_gates_are_the_weights_applied_by_hand(tokenizer):
    model = seeded_model(tokenizer, 2, 0)
    position, neuron, hidden = 5, 3, 10
    step = step_by_step(model, tokenizer, TEXT, position)
    before = activations(model, tokenizer, TEXT[:position])
    layer = step.layers[1]
    x = step.layers[0].hidden  # layer 1 reads layer 0's new output
    h_prev = before.layers[1].hidden[-1]
    c_prev = before.layers[1].cell[-1]
    np.testing.assert_allclose(layer.input, x)
    np.testing.assert_allclose(layer.previous_hidden, h_prev, atol=1e-6)
    lstm = model.lstm
    values = {}
    for k, name in enumerate(GATES):
        row = k * hidden + neuron
        w_x = float(lstm.weight_ih_l1[row].detach().numpy() @ x)
        u_h = float(lstm.weight_hh_l1[row].detach().numpy() @ h_prev)
        b = float((lstm.bias_ih_l1[row] + lstm.bias_hh_l1[row]).detach())
        total = w_x + u_h + b
        value = math.tanh(total) if name == "candidate" else 1 / (1 + math.exp(-total))
        gate = layer.gate(name)
        assert gate.from_input[neuron] == pytest.approx(w_x, abs=1e-5)
        assert gate.from_previous[neuron] == pytest.approx(u_h, abs=1e-5)
        assert gate.bias[neuron] == pytest.approx(b, abs=1e-6)
        assert gate.total[neuron] == pytest.approx(total, abs=1e-5)
        assert gate.value[neuron] == pytest.approx(value, abs=1e-6)
        values[name] = value
    c = values["forget"] * c_prev[neuron] + values["input"] * values["candidate"]
    assert layer.cell[neuron] == pytest.approx(c, abs=1e-5)
    assert layer.hidden[neuron] == pytest.approx(values["output"] * math.tanh(c), abs=1e-5)
    assert step.embedding.tolist() == pytest.approx(
        model.embedding.weight[tokenizer.char_to_id[TEXT[position]]].tolist())


def test_the_output_units_are_gelu_of_the_first_linear_map(tokenizer):
    model = seeded_model(tokenizer, 1, 7)
    step = step_by_step(model, tokenizer, TEXT, 3)
    first, _, last = model.head
    h = torch.from_numpy(step.layers[-1].hidden)
    with torch.no_grad():
        totals = first(h)
        units = F.gelu(totals)
        scores = last(units)
    np.testing.assert_allclose(step.output.unit_totals, totals.numpy(), atol=1e-6)
    np.testing.assert_allclose(step.output.units, units.numpy(), atol=1e-6)
    np.testing.assert_allclose(step.output.scores, scores.numpy(), atol=1e-5)
    assert step.output.probabilities.sum() == pytest.approx(1.0, abs=1e-6)


def test_a_planted_model_gives_the_numbers_worked_out_by_hand(tokenizer):
    """All weights 0 except biases: every gate is its bias squashed, the same at each step."""
    model = MicroLM(config=ModelConfig(tokenizer.vocab_size(), 2, 1, 1, 0.0))
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.lstm.bias_ih_l0.copy_(torch.tensor([0.0, math.log(3.0), 1.0, 2.0]))  # i f g o
    first = step_by_step(model, tokenizer, TEXT, 0).layers[0]
    second = step_by_step(model, tokenizer, TEXT, 1).layers[0]
    assert first.gate("input").value[0] == pytest.approx(0.5)
    assert first.gate("forget").value[0] == pytest.approx(0.75)  # σ(ln 3) = 3/4
    g = math.tanh(1.0)
    assert first.cell[0] == pytest.approx(0.5 * g)  # c = f·0 + i·g
    assert second.previous_cell[0] == pytest.approx(0.5 * g)
    assert second.cell[0] == pytest.approx(0.75 * 0.5 * g + 0.5 * g)
    o = 1 / (1 + math.exp(-2.0))
    assert second.hidden[0] == pytest.approx(o * math.tanh(0.875 * g))


def test_a_position_outside_the_text_is_refused(tokenizer):
    model = seeded_model(tokenizer, 1, 0)
    with pytest.raises(IndexError):
        step_by_step(model, tokenizer, "the", 3)
    with pytest.raises(IndexError):
        step_by_step(model, tokenizer, "", 0)
