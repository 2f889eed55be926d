"""Tests for TextGenerator: greedy and sampled text, streaming, batches, linear cost."""

import pytest
import torch
import torch.nn.functional as F

from microlm import CharacterTokenizer, MicroLM, TextGenerator, UnknownCharacterError
from microlm import generator as generator_module
from microlm.generator import ALTERNATIVES, GREEDY_BELOW

TEXT = "the cat sat on the mat.\nA dog ran far away!"


@pytest.fixture
def tokenizer() -> CharacterTokenizer:
    return CharacterTokenizer(TEXT)


@pytest.fixture
def model(tokenizer) -> MicroLM:
    torch.manual_seed(3)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=2,
                    dropout=0.0)
    with torch.no_grad():  # larger weights: a random model with varied, confident choices
        for param in model.parameters():
            param.mul_(4.0)
    return model.eval()


@pytest.fixture
def generator(model, tokenizer) -> TextGenerator:
    return TextGenerator(model, tokenizer)


def greedy_by_hand(model: MicroLM, tokenizer: CharacterTokenizer, prompt: str,
                   length: int) -> tuple[str, list[float]]:
    """Re-run the whole context each step and take the argmax: slow but obviously right."""
    ids = tokenizer.encode(prompt or "\n")
    new, probabilities = [], []
    with torch.no_grad():
        for _ in range(length):
            logits = model(torch.tensor([ids]))[0, -1]
            probs = F.softmax(logits, dim=-1)
            next_id = int(probs.argmax())
            new.append(next_id)
            probabilities.append(float(probs[next_id]))
            ids.append(next_id)
    return prompt + tokenizer.decode(new), probabilities


def test_greedy_is_the_argmax_chain(generator, model, tokenizer):
    expected, _ = greedy_by_hand(model, tokenizer, "the c", 40)
    assert generator.generate("the c", length=40, temperature=0.0) == expected
    assert generator.generate("the c", length=40, temperature=0.0) == expected
    assert len(set(expected[5:])) >= 2  # the check means something: the text varies


def test_same_seed_same_text(generator):
    first = generator.generate("the", length=60, temperature=1.5, seed=11)
    assert generator.generate("the", length=60, temperature=1.5, seed=11) == first
    assert generator.generate("the", length=60, temperature=1.5, seed=12) != first
    assert first.startswith("the") and len(first) == 63


@pytest.mark.parametrize("temperature", [1e-320, 1e-9, GREEDY_BELOW / 2])
def test_a_temperature_too_small_to_divide_by_is_greedy(generator, temperature):
    """1e-320 once made softmax NaN ("probability tensor contains either inf, nan ...")."""
    greedy = generator.generate("the c", length=40, temperature=0.0)
    assert generator.generate("the c", length=40, temperature=temperature, seed=1) == greedy
    assert generator.generate_batch(["the c"], length=40, temperature=temperature,
                                    seed=1) == [greedy]


def test_top_k_one_and_tiny_top_p_are_greedy(generator):
    greedy = generator.generate("a dog", length=30, temperature=0.0)
    assert generator.generate("a dog", length=30, temperature=1.3, top_k=1, seed=1) == greedy
    assert generator.generate("a dog", length=30, temperature=1.3, top_p=1e-6, seed=2) == greedy


def test_top_k_limits_the_choices(generator, model, tokenizer):
    # With top_k=2 every sampled character is one of the two most likely at its step.
    chars = list(generator.stream("the", length=30, temperature=2.0, top_k=2, seed=5))
    text = "the"
    with torch.no_grad():
        for generated in chars:
            logits = model(torch.tensor([tokenizer.encode(text)]))[0, -1]
            top_two = {tokenizer.chars[i] for i in logits.topk(2).indices.tolist()}
            assert generated.char in top_two
            text += generated.char


def test_top_p_samples_only_from_the_nucleus(generator, model, tokenizer):
    # top_p=0.6 at temperature 1.5: each character is among the most likely ones whose
    # probabilities (at that temperature) first reach 0.6 together.
    chars = list(generator.stream("the", length=40, temperature=1.5, top_p=0.6, seed=9))
    text, nucleus_sizes = "the", []
    with torch.no_grad():
        for generated in chars:
            logits = model(torch.tensor([tokenizer.encode(text)]))[0, -1]
            probs, order = F.softmax(logits / 1.5, dim=-1).sort(descending=True)
            size = int((probs.cumsum(0) - probs < 0.6).sum())
            nucleus = {tokenizer.chars[i] for i in order[:size].tolist()}
            assert generated.char in nucleus
            nucleus_sizes.append(size)
            text += generated.char
    assert max(nucleus_sizes) > 1  # some steps really had a choice


def test_generate_batch_equals_one_by_one(generator):
    prompts = ["the cat", "A", "", "far away!\nthe"]
    batch = generator.generate_batch(prompts, length=25, temperature=0.0)
    singles = [generator.generate(p, length=25, temperature=0.0) for p in prompts]
    assert batch == singles
    assert generator.generate_batch([], length=5) == []


def test_empty_prompt_starts_from_a_newline(generator, model, tokenizer):
    expected, _ = greedy_by_hand(model, tokenizer, "", 20)
    assert generator.generate("", length=20, temperature=0.0) == expected


def test_stream_yields_each_character_with_its_probability(generator, model, tokenizer):
    chars = list(generator.stream("the m", length=15, temperature=0.0))
    expected, probabilities = greedy_by_hand(model, tokenizer, "the m", 15)
    assert len(chars) == 15
    assert [c.index for c in chars] == list(range(15))
    assert "the m" + "".join(c.char for c in chars) == expected
    assert [c.probability for c in chars] == pytest.approx(probabilities, abs=1e-5)
    sampled = list(generator.stream("the", length=50, temperature=1.0, seed=4))
    assert all(0.0 < c.probability <= 1.0 for c in sampled)


def test_each_new_character_costs_one_lstm_step(generator, model):
    calls = []
    original = model.lstm.forward

    def counting_forward(inputs, *args, **kwargs):
        calls.append(inputs.shape[1])  # time steps in this call (batch_first)
        return original(inputs, *args, **kwargs)

    model.lstm.forward = counting_forward
    try:
        for length in (1, 10, 50):
            calls.clear()
            generator.generate("the cat", length=length, temperature=0.7, seed=0)
            # the prompt once, then one single-step call per further character
            assert calls == [len("the cat")] + [1] * (length - 1)
    finally:
        del model.lstm.forward


def test_zero_length_returns_the_prompt(generator):
    assert generator.generate("the cat", length=0) == "the cat"
    assert list(generator.stream("the", length=0)) == []
    assert generator.generate_batch(["a", ""], length=0) == ["a", ""]


def test_unknown_prompt_characters(generator):
    with pytest.raises(UnknownCharacterError) as info:
        generator.generate("the zebra", length=5)
    assert info.value.characters == ["z", "b"]
    dropped = generator.generate("the zebra", length=5, temperature=0.0, on_unknown="drop")
    assert dropped.startswith("the era") and len(dropped) == 12
    replaced = generator.generate("the zebra", length=5, temperature=0.0, on_unknown="replace")
    assert replaced.startswith("the  e ra")
    with pytest.raises(UnknownCharacterError):
        generator.generate_batch(["ok", "zz"], length=3)


@pytest.mark.parametrize("kwargs", [{"length": -1}, {"temperature": -0.1}, {"top_k": 0},
                                    {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_sampling_settings_are_refused(generator, kwargs):
    with pytest.raises(ValueError):
        generator.generate("the", **{"length": 5, **kwargs})


def test_a_model_with_spare_outputs_only_produces_known_characters():
    # The seed builds MicroLM(vocab_size=50) and a tokenizer from a shorter text.
    tokenizer = CharacterTokenizer("abc")
    torch.manual_seed(0)
    model = MicroLM(vocab_size=50, embedding_dim=8, hidden_dim=16, num_layers=1)
    generator = TextGenerator(model, tokenizer)
    text = generator.generate("a", length=200, temperature=3.0, seed=0)
    assert set(text) <= {"a", "b", "c"}
    assert len(generator.generate_batch(["a", "bc"], length=50, temperature=3.0, seed=0)[1]) == 52


def test_alternatives_are_the_models_top_five_at_temperature_one(generator, model, tokenizer):
    # Sampled at temperature 1.5 with top-k 3, yet the alternatives are the model's own
    # probabilities (temperature 1, nothing removed), as GeneratedChar's docstring says.
    chars = list(generator.stream("the", length=30, temperature=1.5, top_k=3, seed=2))
    text = "the"
    with torch.no_grad():
        for generated in chars:
            probs = F.softmax(model(torch.tensor([tokenizer.encode(text)]))[0, -1], dim=-1)
            best = probs.topk(ALTERNATIVES)
            assert [char for char, _ in generated.alternatives] == [
                tokenizer.chars[i] for i in best.indices.tolist()]
            assert [p for _, p in generated.alternatives] == pytest.approx(
                best.values.tolist(), abs=1e-5)
            offered = dict(generated.alternatives)
            if generated.char in offered:
                assert offered[generated.char] == pytest.approx(generated.probability)
            text += generated.char
    assert any(c.alternatives[0][0] != c.char for c in chars)  # high temperature: surprises


def test_alternatives_never_exceed_the_vocabulary():
    tokenizer = CharacterTokenizer("abc")
    torch.manual_seed(0)
    generator = TextGenerator(MicroLM(vocab_size=50, embedding_dim=8, hidden_dim=16,
                                      num_layers=1), tokenizer)
    first = next(iter(generator.stream("a", length=3, seed=0)))
    assert sorted(char for char, _ in first.alternatives) == ["a", "b", "c"]
    assert sum(p for _, p in first.alternatives) == pytest.approx(1.0, abs=1e-5)


def test_steps_run_on_the_thread_count_chosen_and_the_callers_count_comes_back(
        generator, monkeypatch):
    """The characters are generated on the thread count ThreadChoice picks (here one,
    in runs of 5), each run is timed, the caller's count holds between characters and
    after, and the text is the same as on the caller's count."""
    expected = generator.generate("th", 23, temperature=0.8, seed=4)
    timed, counts = [], []

    class OneThread(generator_module.ThreadChoice):
        def next(self):
            return 1, 5

        def timed(self, threads, steps, seconds):
            timed.append((threads, steps))

    real_set = torch.set_num_threads
    monkeypatch.setattr(generator_module, "ThreadChoice", OneThread)
    monkeypatch.setattr(torch, "set_num_threads",
                        lambda n: counts.append(n) or real_set(n))
    caller = torch.get_num_threads()
    stream = generator.stream("th", 23, temperature=0.8, seed=4)
    first = next(stream)
    assert torch.get_num_threads() == caller  # the caller's while it holds a character
    text = first.char + "".join(g.char for g in stream)
    assert "th" + text == expected
    assert timed == [(1, 5)] * 4  # 23 characters: four full runs timed, the fifth cut short
    assert 1 in counts and torch.get_num_threads() == caller
