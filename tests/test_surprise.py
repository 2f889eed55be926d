"""Tests for microlm.surprise: surprise in bits worked out by hand on a planted model, and
equal to the model's own loss and the generator's probabilities on a seeded one."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from microlm import CharacterTokenizer, MicroLM, ModelConfig, TextGenerator
from microlm.surprise import surprise_map

TEXT = "the cat sat on the mat.\n"


def planted_model(tokenizer, probabilities):
    """All weights 0: whatever it read, the model predicts `probabilities` (output biases)."""
    model = MicroLM(config=ModelConfig(tokenizer.vocab_size(), 2, 3, 1, 0.0))
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.head.bias.copy_(torch.log(torch.tensor(probabilities)))
    return model


def test_surprise_is_minus_log2_of_the_probability():
    tokenizer = CharacterTokenizer("\nab")  # ids: '\n' 0, 'a' 1, 'b' 2
    model = planted_model(tokenizer, [0.125, 0.5, 0.375])
    mapped = surprise_map(model, tokenizer, "aab\n", top_k=2)
    assert mapped.bits.tolist() == pytest.approx([1.0, 1.0, math.log2(1 / 0.375), 3.0])
    assert mapped.mean_bits == pytest.approx((2 + math.log2(1 / 0.375) + 3) / 4)
    assert mapped.probability(2) == pytest.approx(0.375)
    assert mapped.expectations(0) == [("a", pytest.approx(0.5)), ("b", pytest.approx(0.375))]
    assert mapped.context == "\n"  # no context: read after a new line, as generation starts


def test_surprise_equals_the_models_loss_in_one_stateful_pass():
    torch.manual_seed(0)
    tokenizer = CharacterTokenizer(TEXT)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=5, hidden_dim=8, num_layers=2,
                    dropout=0.4, output_hidden_dim=6)
    model.train()
    mapped = surprise_map(model, tokenizer, TEXT, context="on the ")
    assert model.training  # left in its mode; no dropout applied
    model.eval()
    ids = torch.tensor([tokenizer.encode("on the " + TEXT)])
    with torch.no_grad():
        logits = model(ids)[0, len("on the ") - 1:-1]  # the prediction of each text character
    targets = ids[0, len("on the "):]
    loss = F.cross_entropy(logits, targets, reduction="none") / math.log(2)
    np.testing.assert_allclose(mapped.bits, loss.numpy(), atol=1e-5)
    assert mapped.mean_bits == pytest.approx(float(loss.mean()), abs=1e-5)
    probabilities = F.softmax(logits, dim=-1)
    top = torch.topk(probabilities, 5, dim=-1)
    assert mapped.expected.tolist() == top.indices.tolist()
    np.testing.assert_allclose(mapped.expected_probabilities, top.values.numpy(), atol=1e-6)


def test_generated_characters_get_the_probability_the_generator_gave_them():
    torch.manual_seed(1)
    tokenizer = CharacterTokenizer(TEXT)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=5, hidden_dim=8, num_layers=1)
    for prompt in ("the ", ""):
        generated = list(TextGenerator(model, tokenizer).stream(prompt, 30, seed=3))
        mapped = surprise_map(model, tokenizer, "".join(g.char for g in generated),
                              context=prompt)
        for index, char in enumerate(generated):
            assert mapped.probability(index) == pytest.approx(char.probability, abs=1e-5)


def test_unknown_characters_are_dropped_and_an_empty_text_is_empty():
    tokenizer = CharacterTokenizer(TEXT)
    model = planted_model(tokenizer, [1 / tokenizer.vocab_size()] * tokenizer.vocab_size())
    mapped = surprise_map(model, tokenizer, "the ZOO cat")
    assert mapped.text == "the  cat"
    assert mapped.bits.tolist() == pytest.approx([math.log2(tokenizer.vocab_size())] * 8)
    empty = surprise_map(model, tokenizer, "")
    assert empty.bits.shape == (0,) and empty.mean_bits == 0.0
    with pytest.raises(ValueError):
        surprise_map(model, tokenizer, "the", top_k=0)
