"""Tests for MicroLM: shapes, carried state, forget-gate bias, parameter counts, configs."""

import pytest
import torch

from microlm import MicroLM, ModelConfig
from microlm.model import Dropout, gradient_norms, layer_name


@pytest.fixture
def model() -> MicroLM:
    torch.manual_seed(0)
    return MicroLM(vocab_size=11, embedding_dim=8, hidden_dim=16, num_layers=2, dropout=0.1)


def test_logits_have_shape_batch_time_vocab(model):
    logits = model(torch.randint(0, 11, (3, 7)))
    assert logits.shape == (3, 7, 11)


def test_stateful_call_returns_h_and_c(model):
    logits, (h, c) = model(torch.randint(0, 11, (3, 7)), return_state=True)
    assert logits.shape == (3, 7, 11)
    assert h.shape == c.shape == (2, 3, 16)
    logits, (h2, c2) = model(torch.randint(0, 11, (3, 1)), (h, c))  # passing a state returns one
    assert logits.shape == (3, 1, 11) and h2.shape == (2, 3, 16)
    assert all(s.shape == (2, 5, 16) and not s.any() for s in model.init_state(5))


def test_two_halves_with_carried_state_equal_one_pass(model):
    model.eval()  # no dropout, so both ways compute the same function
    x = torch.randint(0, 11, (2, 12))
    whole, state_whole = model(x, return_state=True)
    first, state = model(x[:, :5], return_state=True)
    second, state_halves = model(x[:, 5:], state)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-6)
    assert torch.allclose(state_halves[0], state_whole[0], atol=1e-6)
    assert torch.allclose(state_halves[1], state_whole[1], atol=1e-6)
    # and a fresh state differs from the carried one (the state matters)
    assert not torch.allclose(model(x[:, 5:]), second, atol=1e-4)


def test_forget_gate_bias_starts_at_one(model):
    hidden = 16
    for layer in range(2):
        ih = getattr(model.lstm, f"bias_ih_l{layer}")
        hh = getattr(model.lstm, f"bias_hh_l{layer}")
        total = ih + hh  # PyTorch adds both biases; gates are (input, forget, cell, output)
        assert torch.allclose(total[hidden:2 * hidden], torch.ones(hidden))
        assert not torch.allclose(total[:hidden], torch.ones(hidden))


@pytest.mark.parametrize("sizes", [(11, 8, 16, 1, 0), (65, 16, 32, 2, 0), (200, 128, 256, 3, 0),
                                   (65, 16, 32, 1, 48), (200, 64, 128, 2, 1024)])
def test_model_info_counts_are_true(sizes):
    vocab, emb, hidden, layers, output_hidden = sizes
    model = MicroLM(vocab, emb, hidden, layers, output_hidden_dim=output_hidden)
    info = model.get_model_info()
    true_count = sum(p.numel() for p in model.parameters())
    assert info["total_parameters"] == true_count
    assert info["trainable_parameters"] == true_count
    config = ModelConfig(vocab, emb, hidden, layers, output_hidden_dim=output_hidden)
    assert config.num_parameters() == true_count
    assert config.lstm_parameters() == info["lstm_parameters"]
    assert info["embedding_parameters"] + info["lstm_parameters"] + info[
        "output_parameters"] == true_count
    assert info["model_size_mb"] == pytest.approx(true_count * 4 / 2**20)


def test_nano_preset_of_the_seed_has_its_true_size():
    # The seed said "~2K parameters" for this; with a 65-character vocabulary it is 8,545.
    model = MicroLM(vocab_size=65, embedding_dim=16, hidden_dim=32, num_layers=1)
    assert model.get_model_info()["total_parameters"] == 65 * 16 + 4 * 32 * (16 + 32 + 2) + 33 * 65


@pytest.mark.parametrize("kwargs, words", [
    ({"vocab_size": 0}, "vocab_size must be a whole number >= 1"),
    ({"vocab_size": 10, "hidden_dim": -4}, "hidden_dim must be a whole number >= 1"),
    ({"vocab_size": 10, "num_layers": 1.5}, "num_layers must be a whole number"),
    ({"vocab_size": 10, "dropout": 1.0}, "dropout must be in [0, 1)"),
    ({"vocab_size": 10, "output_hidden_dim": -1}, "output_hidden_dim must be a whole number >= 0"),
])
def test_invalid_configs_raise_readable_messages(kwargs, words):
    with pytest.raises(ValueError) as info:
        MicroLM(**kwargs)
    assert words in str(info.value)
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)


def test_missing_vocab_size_is_explained():
    with pytest.raises(ValueError, match="vocab_size"):
        MicroLM()


def test_config_round_trip_and_from_config():
    config = ModelConfig(vocab_size=20, embedding_dim=8, hidden_dim=16, num_layers=1, dropout=0.0)
    assert ModelConfig.from_dict({**config.to_dict(), "unrelated": 1}) == config
    assert MicroLM.from_config(config).get_model_info()["hidden_dim"] == 16


def test_gradient_norms_per_layer(model):
    assert gradient_norms(model) == {}
    logits = model(torch.randint(0, 11, (2, 5)))
    logits.sum().backward()
    norms = gradient_norms(model)
    assert set(norms) == {"embedding", "lstm.0", "lstm.1", "head"}
    head = torch.cat([model.head.weight.grad.flatten(), model.head.bias.grad]).norm()
    assert norms["head"] == pytest.approx(float(head), rel=1e-5)
    assert layer_name("lstm.weight_hh_l1") == "lstm.1"


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_dropout_zeroes_its_share_and_keeps_the_expected_value(p):
    torch.manual_seed(0)
    dropout = Dropout(p)
    x = torch.ones(400, 1001)  # an odd count: the mask does not need a multiple of 4
    y = dropout(x)
    assert (y == 0).float().mean().item() == pytest.approx(p, abs=0.003)
    assert y.mean().item() == pytest.approx(1.0, abs=0.005)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 65536 / (65536 - round(p * 65536))))


def test_dropout_masks_are_independent_across_positions():
    torch.manual_seed(0)
    y = Dropout(0.5)(torch.ones(200_000))
    dropped = (y == 0).float()
    # neighbours (which share a 64-bit random draw) are no more alike than chance
    agreement = (dropped[:-1] == dropped[1:]).float().mean().item()
    assert agreement == pytest.approx(0.5, abs=0.01)
    by_lane = dropped.view(-1, 4).mean(dim=0)
    assert torch.allclose(by_lane, torch.full((4,), 0.5), atol=0.01)


def test_dropout_gradient_follows_the_mask_and_evaluation_passes_through():
    dropout = Dropout(0.2)
    x = torch.randn(16, 64, 32, requires_grad=True)
    y = dropout(x)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y.detach() == 0)
    assert 0.1 < (x.grad == 0).float().mean().item() < 0.3
    dropout.eval()
    assert dropout(x) is x
    assert Dropout(0.0).train()(x) is x


def test_dropout_is_reproducible_with_a_seed_and_keeps_bf16():
    x = torch.ones(8, 64, 256, dtype=torch.bfloat16)
    torch.manual_seed(3)
    first = Dropout(0.1)(x)
    torch.manual_seed(3)
    second = Dropout(0.1)(x)
    assert first.dtype == torch.bfloat16
    assert torch.equal(first, second)
    assert not torch.equal(first, Dropout(0.1)(x))


def test_an_output_layer_with_hidden_units_scores_each_position_from_its_own_state():
    torch.manual_seed(0)
    model = MicroLM(vocab_size=11, embedding_dim=8, hidden_dim=16, num_layers=1, dropout=0.0,
                    output_hidden_dim=24).eval()
    assert [type(m).__name__ for m in model.head] == ["Linear", "GELU", "Linear"]
    assert model.head[0].weight.shape == (24, 16) and model.head[2].weight.shape == (11, 24)
    x = torch.randint(0, 11, (2, 9))
    logits, (h, _) = model(x, return_state=True)
    assert logits.shape == (2, 9, 11)
    # the last position's scores are the output layer applied to the final hidden state
    expected = model.head[2](torch.nn.functional.gelu(model.head[0](h[-1])))
    assert torch.allclose(logits[:, -1], expected, atol=1e-6)
    # and that is not an affine function of the state (f(a + b) - f(a) - f(b) + f(0) would
    # be 0): the hidden layer and its GELU are really there
    a, b = h[-1][0], h[-1][1]
    f = model.head
    assert (f(a + b) - f(a) - f(b) + f(torch.zeros_like(a))).abs().max() > 1e-3


def test_a_config_saved_before_the_output_layer_option_loads_as_a_linear_output():
    saved = {"vocab_size": 20, "embedding_dim": 8, "hidden_dim": 16, "num_layers": 1,
             "dropout": 0.0}  # what older checkpoints hold
    model = MicroLM.from_config(ModelConfig.from_dict(saved))
    assert isinstance(model.head, torch.nn.Linear)
    assert set(model.state_dict()) >= {"head.weight", "head.bias"}
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
