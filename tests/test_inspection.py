"""Tests for microlm.inspection, on tiny seeded models with values known by hand."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from microlm import CharacterTokenizer, MicroLM, ModelConfig, UnknownCharacterError, inspection
from microlm.inspection import (
    ActivationTrace,
    LayerActivations,
    activations,
    analyze_parameters,
    embedding_projection,
    gate_extremes,
    gate_saturation,
    inspect_model,
    next_char_distribution,
    parameter_values,
    top_neurons,
)

TEXT = "hello world, the cat sat on the mat.\n"


@pytest.fixture
def tokenizer():
    return CharacterTokenizer(TEXT)


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    return MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=12, num_layers=2,
                   dropout=0.1)


# ---- inspect_model ----

def test_inspect_model_counts_match_the_config(model):
    info = inspect_model(model)
    assert info["parameter_count"] == model.config.num_parameters()
    assert info["trainable_parameters"] == info["parameter_count"]
    assert info["memory_mb"] == pytest.approx(info["parameter_count"] * 4 / 2**20)
    assert info["config"] == model.config.to_dict()
    assert sum(row["parameters"] for row in info["layers"]) == info["parameter_count"]


def test_inspect_model_has_one_row_per_parameter_tensor(model, tokenizer):
    rows = {row["name"]: row for row in inspect_model(model)["layers"]}
    assert list(rows) == [name for name, _ in model.named_parameters()]
    vocab = tokenizer.vocab_size()
    assert rows["embedding.weight"] == {"name": "embedding.weight", "layer": "embedding",
                                        "type": "Embedding", "shape": f"({vocab}, 8)",
                                        "parameters": vocab * 8}
    assert rows["lstm.weight_hh_l1"]["shape"] == "(48, 12)"
    assert rows["lstm.weight_hh_l1"]["layer"] == "lstm.1"
    assert rows["head.bias"]["type"] == "Linear"


def test_inspect_model_architecture_describes_each_layer(model):
    text = inspect_model(model)["architecture"]
    assert str(model) in text
    assert "lstm.0: LSTM layer 1, 8 inputs -> 12 hidden" in text
    assert "lstm.1: LSTM layer 2, 12 inputs -> 12 hidden" in text
    # the LSTM layer 1 count: 4 * 12 * (8 + 12 + 2) = 1056
    assert "(1,056 parameters)" in text


def test_frozen_parameters_are_not_trainable(model):
    model.embedding.weight.requires_grad_(False)
    info = inspect_model(model)
    assert info["trainable_parameters"] == (info["parameter_count"]
                                            - model.embedding.weight.numel())


# ---- analyze_parameters ----

def test_tensor_statistics_are_correct_for_a_known_tensor(model):
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0.0, 0.0, 1.0, -3.0] + [0.0] * (
            model.head.bias.numel() - 4)))
    stats = analyze_parameters(model)["tensors"]["head.bias"]
    n = model.head.bias.numel()
    assert stats["shape"] == (n,)
    assert stats["mean"] == pytest.approx(-2.0 / n)
    assert stats["min"] == -3.0 and stats["max"] == 1.0
    assert stats["abs_mean"] == pytest.approx(4.0 / n)
    assert stats["zero_fraction"] == pytest.approx((n - 2) / n)
    assert stats["std"] == pytest.approx(float(model.head.bias.detach().std(unbiased=False)))
    assert stats["finite"] is True


def test_fresh_model_is_healthy(model):
    analysis = analyze_parameters(model)
    assert analysis["health_score"] == 1.0
    assert analysis["health_notes"] == []
    assert analysis["gradient_flow"] == {}


def test_nan_weight_makes_that_tensor_score_zero(model):
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    analysis = analyze_parameters(model)
    tensors = len(analysis["tensors"])
    assert analysis["tensors"]["head.weight"]["finite"] is False
    assert analysis["health_score"] == pytest.approx((tensors - 1) / tensors)
    assert any("head.weight" in note and "NaN" in note for note in analysis["health_notes"])


def test_all_weights_nan_scores_zero(model):
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(float("nan"))
    assert analyze_parameters(model)["health_score"] == 0.0


def test_dead_and_exploding_tensors_lose_points(model):
    with torch.no_grad():
        model.head.weight.fill_(0.5)  # dead: every value equal
        model.embedding.weight[0, 0] = 500.0  # exploding
    analysis = analyze_parameters(model)
    tensors = len(analysis["tensors"])
    assert analysis["health_score"] == pytest.approx((tensors - 2 + 0.5 + 0.25) / tensors)
    notes = " ".join(analysis["health_notes"])
    assert "head.weight: all its values equal 0.5" in notes
    assert "embedding.weight: a value of size 500 is exploding" in notes


def test_saturated_gate_biases_lose_points(model):
    with torch.no_grad():
        model.lstm.bias_ih_l0.fill_(0.0)
        model.lstm.bias_hh_l0.fill_(0.0)
        model.lstm.bias_ih_l0[:24] = 4.0  # half the units: total bias 4 + 2 = 6 > 5
        model.lstm.bias_hh_l0[:24] = 2.0
    analysis = analyze_parameters(model)
    tensors = len(analysis["tensors"])
    assert analysis["health_score"] == pytest.approx((tensors - 1 + 0.75) / tensors)
    assert any("50% of its gate biases" in note for note in analysis["health_notes"])


def test_gradient_flow_reports_each_layer_after_backward(model, tokenizer):
    inputs = torch.tensor([tokenizer.encode("hello wor")])
    targets = torch.tensor([tokenizer.encode("ello worl")])
    logits = model(inputs)
    F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1)).backward()
    flow = analyze_parameters(model)["gradient_flow"]
    assert set(flow) == {"embedding", "lstm.0", "lstm.1", "head"}
    expected_head = math.sqrt(float(model.head.weight.grad.pow(2).sum()
                                    + model.head.bias.grad.pow(2).sum()))
    assert flow["head"] == pytest.approx(expected_head, rel=1e-5)


# ---- parameter_values ----

def test_parameter_values_is_a_flat_float32_copy(model):
    values = parameter_values(model, "lstm.weight_ih_l0")
    assert values.dtype == np.float32
    assert values.shape == (48 * 8,)
    np.testing.assert_array_equal(values, model.lstm.weight_ih_l0.detach().numpy().ravel())
    values[:] = 0  # a copy: the model keeps its weights
    assert float(model.lstm.weight_ih_l0.detach().abs().sum()) > 0


def test_parameter_values_unknown_name_lists_valid_ones(model):
    with pytest.raises(KeyError, match="head.weight"):
        parameter_values(model, "lstm.weight")


# ---- activations ----

def test_activations_equal_pytorch_lstm(model, tokenizer):
    text = "the cat sat"
    trace = activations(model, tokenizer, text)
    assert trace.text == text and trace.chars == tuple(text)
    assert len(trace.layers) == 2
    model.eval()
    ids = torch.tensor([tokenizer.encode(text)])
    with torch.no_grad():
        emb = model.embedding(ids)
        h0 = torch.zeros(1, 1, 12)
        layer_input = emb
        for index, layer in enumerate(trace.layers):
            # Run PyTorch's own LSTM for this one layer, on the same input.
            single = torch.nn.LSTM(layer_input.size(-1), 12, batch_first=True)
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(single, f"{kind}_l0").copy_(getattr(model.lstm, f"{kind}_l{index}"))
            outputs, _ = single(layer_input, (h0, h0))
            np.testing.assert_allclose(layer.hidden, outputs[0].numpy(), atol=1e-5)
            layer_input = outputs
        full, (h_n, c_n) = model.lstm(emb)
    np.testing.assert_allclose(trace.layers[-1].hidden, full[0].numpy(), atol=1e-5)
    for index in range(2):
        np.testing.assert_allclose(trace.layers[index].hidden[-1], h_n[index, 0].numpy(),
                                   atol=1e-5)
        np.testing.assert_allclose(trace.layers[index].cell[-1], c_n[index, 0].numpy(),
                                   atol=1e-5)


def test_gates_are_in_range_and_rebuild_the_cell(model, tokenizer):
    layer = activations(model, tokenizer, "hello world").layers[0]
    for gate in (layer.input_gate, layer.forget_gate, layer.output_gate):
        assert gate.shape == (11, 12)
        assert ((gate > 0) & (gate < 1)).all()
    assert (np.abs(layer.cell_candidate) < 1).all()
    # c_t = f_t * c_{t-1} + i_t * g_t and h_t = o_t * tanh(c_t)
    previous = np.vstack([np.zeros((1, 12)), layer.cell[:-1]])
    np.testing.assert_allclose(layer.cell, layer.forget_gate * previous
                               + layer.input_gate * layer.cell_candidate, atol=1e-6)
    np.testing.assert_allclose(layer.hidden, layer.output_gate * np.tanh(layer.cell),
                               atol=1e-6)


def test_inspection_never_switches_the_mode(model, tokenizer, monkeypatch):
    # A model may be training in another thread: flipping it to eval mode, even briefly,
    # would turn its dropout off mid-step. eval() calls train(False), so this sees both.
    switches = []
    monkeypatch.setattr(model, "train", lambda mode=True: switches.append(mode))
    activations(model, tokenizer, "hello")
    next_char_distribution(model, tokenizer, "hello")
    next_char_distribution(model, tokenizer, "")
    embedding_projection(model, tokenizer)
    analyze_parameters(model)
    inspect_model(model)
    assert switches == []


def test_activations_leave_the_mode_alone(model, tokenizer):
    model.train()
    activations(model, tokenizer, "hello")
    assert model.training
    model.eval()
    activations(model, tokenizer, "hello")
    assert not model.training


def test_activations_unknown_characters(model, tokenizer):
    with pytest.raises(UnknownCharacterError):
        activations(model, tokenizer, "hello Zoe")
    trace = activations(model, tokenizer, "hello Zoe", on_unknown="drop")
    assert trace.text == "hello oe"
    assert trace.layers[0].hidden.shape == (8, 12)


def test_activations_of_empty_text_are_empty(model, tokenizer):
    trace = activations(model, tokenizer, "")
    assert trace.chars == ()
    assert trace.layers[0].cell.shape == (0, 12)
    assert top_neurons(trace, k=3) == [(0, 0.0), (1, 0.0), (2, 0.0)]
    assert gate_saturation(trace) == [{"input": 0.0, "forget": 0.0, "output": 0.0}] * 2


def planted_model(tokenizer: CharacterTokenizer, neuron: int) -> MicroLM:
    """A model whose cell unit `neuron` is ~1 right after an 'a' and ~0 otherwise."""
    model = MicroLM(config=ModelConfig(tokenizer.vocab_size(), 4, 8, 1, 0.0))
    hidden = 8
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.embedding.weight[tokenizer.char_to_id["a"], 0] = 1.0  # only 'a' has a signal
        bias = model.lstm.bias_ih_l0
        bias[:hidden] = 10.0  # input gate open
        bias[hidden:2 * hidden] = -10.0  # forget gate shut: the cell holds only this step
        bias[3 * hidden:] = 10.0  # output gate open
        model.lstm.weight_ih_l0[2 * hidden + neuron, 0] = 5.0  # candidate: tanh(5) on 'a'
    return model


def test_top_neuron_finds_a_planted_neuron(tokenizer):
    model = planted_model(tokenizer, neuron=5)
    trace = activations(model, tokenizer, "a cat sat on a mat")
    top = top_neurons(trace, kind="cell", k=3)
    assert top[0][0] == 5
    cell = trace.layers[0].cell[:, 5]
    assert cell[0] == pytest.approx(math.tanh(5.0) / (1 + math.exp(-10)), abs=1e-4)
    assert cell[1] == pytest.approx(0.0, abs=1e-4)
    # 5 'a's out of 18 characters: mean absolute deviation of a 0/1-like signal
    p = 5 / 18
    assert top[0][1] == pytest.approx(2 * p * (1 - p) * cell[0], rel=1e-3)
    assert top[1][1] == pytest.approx(0.0, abs=1e-6)


def test_top_neurons_checks_its_arguments(model, tokenizer):
    trace = activations(model, tokenizer, "hello")
    assert len(top_neurons(trace, layer=1, kind="forget", k=4)) == 4
    assert len(top_neurons(trace, k=100)) == 12
    with pytest.raises(ValueError, match="kind"):
        top_neurons(trace, kind="gate")
    with pytest.raises(IndexError):
        top_neurons(trace, layer=2)


def test_gate_saturation_counts_values_outside_the_band():
    gates = np.array([[0.05, 0.5], [0.95, 0.2]], dtype=np.float32)  # 2 of 4 saturated
    half = np.full((2, 2), 0.5, dtype=np.float32)
    layer = LayerActivations(half, half, gates, half, half, np.ones((2, 2), np.float32))
    trace = ActivationTrace("ab", ("a", "b"), (layer,))
    assert gate_saturation(trace) == [{"input": 0.5, "forget": 0.0, "output": 1.0}]
    assert gate_saturation(trace, low=0.3, high=0.94) == [
        {"input": 0.75, "forget": 0.0, "output": 1.0}]


def test_planted_model_gates_are_saturated(tokenizer):
    trace = activations(planted_model(tokenizer, 0), tokenizer, "a cat")
    assert gate_saturation(trace) == [{"input": 1.0, "forget": 1.0, "output": 1.0}]


# ---- next_char_distribution ----

def test_next_char_distribution_matches_the_model(model, tokenizer):
    model.train()
    distribution = next_char_distribution(model, tokenizer, "the c")
    assert model.training  # never switched, so training in another thread is unaffected
    assert len(distribution) == tokenizer.vocab_size()
    assert sum(p for _, p in distribution) == pytest.approx(1.0, abs=1e-5)
    probabilities = [p for _, p in distribution]
    assert probabilities == sorted(probabilities, reverse=True)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([tokenizer.encode("the c")]))[0, -1]
    expected = F.softmax(logits, dim=-1)
    for char, probability in distribution:
        assert probability == pytest.approx(float(expected[tokenizer.char_to_id[char]]),
                                            abs=1e-6)


def test_an_output_layer_with_hidden_units_is_described_and_used_for_the_next_char(tokenizer):
    torch.manual_seed(1)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=12, num_layers=1,
                    dropout=0.0, output_hidden_dim=20).eval()
    info = inspect_model(model)
    vocab = tokenizer.vocab_size()
    head = 13 * 20 + 21 * vocab  # (12 + 1) x 20, then (20 + 1) x vocab
    assert (f"head: output layer, 12 hidden units -> 20 units (GELU) -> {vocab} "
            f"next-character scores ({head:,} parameters)") in info["architecture"]
    assert {row["name"] for row in info["layers"] if row["layer"] == "head"} == {
        "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias"}
    distribution = dict(next_char_distribution(model, tokenizer, "the c"))
    with torch.no_grad():
        expected = F.softmax(model(torch.tensor([tokenizer.encode("the c")]))[0, -1], dim=-1)
    assert all(distribution[c] == pytest.approx(float(expected[tokenizer.char_to_id[c]]),
                                                abs=1e-6) for c in distribution)
    assert analyze_parameters(model)["health_score"] == 1.0  # fresh: every tensor healthy


def test_next_char_distribution_with_a_planted_favourite(tokenizer):
    model = MicroLM(config=ModelConfig(tokenizer.vocab_size(), 4, 8, 1, 0.0))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[tokenizer.char_to_id["t"]] = math.log(4.0)
    top = next_char_distribution(model, tokenizer, "", top_k=2)
    vocab = tokenizer.vocab_size()
    assert top[0] == ("t", pytest.approx(4 / (vocab + 3)))
    assert top[1][1] == pytest.approx(1 / (vocab + 3))
    assert len(top) == 2


def test_next_char_distribution_unknown_prompt(model, tokenizer):
    with pytest.raises(UnknownCharacterError):
        next_char_distribution(model, tokenizer, "Zebra")


# ---- embedding_projection ----

def test_embedding_projection_of_a_known_matrix(tokenizer):
    vocab = tokenizer.vocab_size()
    model = MicroLM(config=ModelConfig(vocab, 3, 4, 1, 0.0))
    points = np.zeros((vocab, 3))
    points[:, 0] = np.linspace(-5, 5, vocab)  # the main spread: along the first axis
    points[0, 1] = points[-1, 1] = 1.0  # a little spread along the second, uncorrelated
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(points))
    projection = embedding_projection(model, tokenizer)
    assert projection.chars == tuple(tokenizer.chars)
    assert projection.coords.shape == (vocab, 2)
    centred = points - points.mean(axis=0)
    np.testing.assert_allclose(np.abs(projection.coords[:, 0]), np.abs(centred[:, 0]),
                               atol=1e-4)
    variance_x, variance_y = (centred[:, 0] ** 2).sum(), (centred[:, 1] ** 2).sum()
    assert projection.explained_variance[0] == pytest.approx(
        variance_x / (variance_x + variance_y), rel=1e-4)
    assert sum(projection.explained_variance) == pytest.approx(1.0)
    # the largest loading is made positive: the last char (x = +5) lands on the right
    assert projection.coords[-1, 0] > 0


def test_embedding_projection_is_deterministic(model, tokenizer):
    first = embedding_projection(model, tokenizer)
    second = embedding_projection(model, tokenizer)
    np.testing.assert_array_equal(first.coords, second.coords)
    assert 0 < first.explained_variance[1] <= first.explained_variance[0] < 1


def test_gate_extremes_split_the_saturation_into_near_zero_and_near_one():
    gates = np.array([[0.05, 0.5], [0.95, 0.2]], dtype=np.float32)  # one low, one high
    half = np.full((2, 2), 0.5, dtype=np.float32)
    layer = LayerActivations(half, half, gates, half, half, np.ones((2, 2), np.float32))
    trace = ActivationTrace("ab", ("a", "b"), (layer,))
    assert gate_extremes(trace) == [{"input": (0.25, 0.25), "forget": (0.0, 0.0),
                                     "output": (0.0, 1.0)}]
    shares = gate_extremes(trace, low=0.3, high=0.94)[0]
    assert shares["input"] == (0.5, 0.25)
    saturation = gate_saturation(trace, low=0.3, high=0.94)[0]
    assert {gate: sum(pair) for gate, pair in shares.items()} == saturation


# ---- the stateful pass over long texts ----

def test_a_pass_in_chunks_equals_one_pytorch_pass(model, tokenizer, monkeypatch):
    monkeypatch.setattr(inspection, "CHUNK_STEPS", 50)
    monkeypatch.setattr(inspection, "TRIAL_STEPS", 7)
    text = TEXT * 12  # 444 characters: trials of 7, then chunks of 50, state carried
    ids = tokenizer.encode(text)
    threads = torch.get_num_threads()
    chunks = list(inspection.stateful_pass(model, ids))
    assert torch.get_num_threads() == threads  # restored
    assert [start for start, _, _ in chunks][:3] == ([0, 7, 14] if threads > 1 else [0, 50, 100])
    top = torch.cat([outputs[-1] for _, outputs, _ in chunks])
    model.eval()
    with torch.no_grad():
        full, (h_n, c_n) = model.lstm(model.embedding(torch.tensor([ids])))
    np.testing.assert_allclose(top.numpy(), full[0].numpy(), atol=1e-5)
    _, _, states = chunks[-1]
    for index, (h, c) in enumerate(states):
        np.testing.assert_allclose(h[0, 0].numpy(), h_n[index, 0].numpy(), atol=1e-5)
        np.testing.assert_allclose(c[0, 0].numpy(), c_n[index, 0].numpy(), atol=1e-5)
    trace = activations(model, tokenizer, text)
    np.testing.assert_allclose(trace.layers[-1].hidden, full[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(trace.layers[1].cell[-1], c_n[1, 0].numpy(), atol=1e-5)


def test_a_pass_left_early_restores_the_thread_count(model, tokenizer, monkeypatch):
    monkeypatch.setattr(inspection, "TRIAL_STEPS", 3)
    threads = torch.get_num_threads()
    passing = inspection.stateful_pass(model, tokenizer.encode(TEXT))
    next(passing)
    passing.close()
    assert torch.get_num_threads() == threads
