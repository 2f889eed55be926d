"""Text generation: stateful sampling one character per LSTM step."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from .hardware import mixed_precision
from .model import LSTMState, MicroLM
from .thread_choice import ThreadChoice
from .tokenizer import CharacterTokenizer

# Temperatures below this sample greedily (the most likely character). Logits divided by a
# tinier one overflow float32 to inf (1e-320 made softmax NaN), and already at this one a
# gap of 0.01 between two logits is a factor e^100 between their probabilities.
GREEDY_BELOW = 1e-4
ALTERNATIVES = 5  # the likeliest characters kept with each generated character
# Characters generated to time a thread count, and then with the faster one before the
# other is timed again now and then (microlm.thread_choice.ThreadChoice).
TRIAL_CHARS, CHUNK_CHARS = 16, 256


@dataclass(frozen=True)
class GeneratedChar:
    """One sampled character and what the model thought of it.

    Both `probability` and `alternatives` are the model's own probabilities, at temperature 1:
    softmax of its scores before temperature, top-k or top-p reshaped them for sampling.
    They show what the model believed; the sampling settings only change which of those
    characters gets picked.
    """

    char: str
    index: int  # position in the generated text, 0 = first new character
    probability: float  # what the model (at temperature 1) gave this character, in [0, 1]
    # The characters the model found most likely here, with their probabilities (at
    # temperature 1), most likely first; the sampled character is among them only if it
    # was one of the likeliest.
    alternatives: tuple[tuple[str, float], ...] = ()


class TextGenerator:
    """Samples text from a trained MicroLM.

    The prompt is fed through the LSTM once; after that each new character costs one
    LSTM step because (h, c) is carried forward, so time grows linearly with length.
    """

    def __init__(self, model: MicroLM, tokenizer: CharacterTokenizer,
                 device: str | torch.device | None = None, bf16: bool = True):
        if model.vocab_size < tokenizer.vocab_size():
            raise ValueError(f"The model predicts {model.vocab_size} characters but the "
                             f"tokenizer has {tokenizer.vocab_size()}: they do not belong "
                             f"together.")
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device else model.device
        if self.device != model.device:
            model.to(self.device)
        self.bf16 = bf16  # bf16 autocast on CUDA GPUs that support it; no effect elsewhere

    def start_char(self) -> str:
        """What an empty prompt starts from: a newline, else a space, else the first char."""
        for ch in ("\n", " "):
            if ch in self.tokenizer.char_to_id:
                return ch
        return self.tokenizer.chars[0]

    def generate(self, prompt: str = "", length: int = 100, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 on_unknown: str = "error") -> str:
        """Return the prompt followed by `length` new characters.

        temperature 0 (or below GREEDY_BELOW) is greedy: always the most likely character;
        top_k keeps the k most likely characters; top_p keeps the smallest set whose
        probability reaches p.
        Characters of the prompt the model never saw raise UnknownCharacterError, or are
        dropped/replaced with on_unknown="drop"/"replace".
        """
        prompt = self.tokenizer.clean(prompt, on_unknown)
        new = "".join(g.char for g in self.stream(prompt, length, temperature, top_k, top_p,
                                                  seed))
        return prompt + new

    def stream(self, prompt: str = "", length: int = 100, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
               on_unknown: str = "error") -> Iterator[GeneratedChar]:
        """Yield the new characters one by one, each with the probability the model gave it
        and the ALTERNATIVES characters it found likeliest there.

        Finding those costs ~5 µs a character (torch.topk of one row): 1-3 % of a
        character's time for a 'nano' or 'small' model on a CPU, measured by
        python tests/benchmarks/generation_alternatives.py."""
        _check_sampling(length, temperature, top_k, top_p)
        prompt = self.tokenizer.clean(prompt, on_unknown)
        generator = _make_generator(seed)
        chars = self.tokenizer.chars
        # On a CPU the steps choose their thread count as they go (microlm.thread_choice);
        # the count is the caller's again at the end, and between characters handed out.
        many = torch.get_num_threads()
        choice = ThreadChoice(many, TRIAL_CHARS, CHUNK_CHARS) if self.device.type == "cpu" \
            else None
        threads, run_left, run_steps, run_seconds = many, 0, 0, 0.0
        with torch.inference_mode(), mixed_precision(self.device, self.bf16):
            logits, state = self._prime([prompt])
            offered_count = min(ALTERNATIVES, logits.size(-1))
            for index in range(length):
                if choice is not None and run_left == 0:
                    if run_steps:
                        choice.timed(threads, run_steps, run_seconds)
                    (threads, run_left), run_steps, run_seconds = choice.next(), 0, 0.0
                began = time.perf_counter()
                torch.set_num_threads(threads)
                try:
                    next_ids, probs = sample_next(logits, temperature, top_k, top_p,
                                                  generator)
                    next_id = int(next_ids[0])
                    best = torch.topk(probs[0], offered_count)
                    offered = tuple(zip([chars[i] for i in best.indices.tolist()],
                                        best.values.tolist(), strict=True))
                    if index + 1 < length:  # the last character needs no step after it
                        logits, state = self._step(next_ids, state)
                finally:
                    torch.set_num_threads(many)
                run_seconds += time.perf_counter() - began
                run_steps, run_left = run_steps + 1, run_left - 1
                yield GeneratedChar(chars[next_id], index, float(probs[0, next_id]), offered)

    def generate_batch(self, prompts: Sequence[str], length: int = 100,
                       temperature: float = 1.0, top_k: int | None = None,
                       top_p: float | None = None, seed: int | None = None,
                       on_unknown: str = "error") -> list[str]:
        """Generate for all prompts together in one batch (one LSTM step per character for
        the whole batch). Returns each prompt followed by its `length` new characters."""
        _check_sampling(length, temperature, top_k, top_p)
        if not prompts:
            return []
        prompts = [self.tokenizer.clean(p, on_unknown) for p in prompts]
        generator = _make_generator(seed)
        new_ids = []
        with torch.inference_mode(), mixed_precision(self.device, self.bf16):
            logits, state = self._prime(prompts)
            for index in range(length):
                next_ids, _ = sample_next(logits, temperature, top_k, top_p, generator)
                new_ids.append(next_ids)
                if index + 1 < length:
                    logits, state = self._step(next_ids, state)
        if not new_ids:
            return list(prompts)
        columns = torch.stack(new_ids, dim=1).tolist()  # (B, length)
        return [p + self.tokenizer.decode(row) for p, row in zip(prompts, columns, strict=True)]

    def _prime(self, prompts: Sequence[str]) -> tuple[torch.Tensor, LSTMState]:
        """Feed each prompt once; return the next-character logits (B, vocab) and (h, c)."""
        start = self.start_char()
        encoded = [self.tokenizer.encode(p or start) for p in prompts]
        lengths = torch.tensor([len(ids) for ids in encoded])
        padded = torch.zeros(len(encoded), int(lengths.max()), dtype=torch.long)
        for row, ids in enumerate(encoded):
            padded[row, :len(ids)] = torch.tensor(ids)
        self.model.eval()
        emb = self.model.embedding(padded.to(self.device))  # (B, T, embedding_dim)
        if len(encoded) == 1:
            _, state = self.model.lstm(emb)
        else:
            # Packing lets prompts of different lengths end in their own final state.
            packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
            _, state = self.model.lstm(packed)
        # The top layer's final hidden state is the LSTM output at each prompt's last char.
        return self._known(self.model.head(state[0][-1])), state  # (B, vocab_size)

    def _step(self, ids: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        logits, state = self.model(ids.view(-1, 1).to(self.device), state)
        return self._known(logits[:, -1]), state  # (B, vocab_size)

    def _known(self, logits: torch.Tensor) -> torch.Tensor:
        """Only the tokenizer's characters: a model may have spare outputs (the seed builds
        MicroLM(vocab_size=50) for a shorter vocabulary), which have no character to print."""
        return logits[..., :self.tokenizer.vocab_size()]


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None,
                top_p: float | None, generator: torch.Generator | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the next id per row from logits (B, vocab). Returns (ids (B,), model probs (B, V)).

    Sampling runs on the CPU with a CPU generator so a seed gives the same text on any
    device; the .cpu() copy is a host sync, once per character, which generation needs anyway.
    """
    logits = logits.float().cpu()
    probs = F.softmax(logits, dim=-1)
    if temperature < GREEDY_BELOW:
        return probs.argmax(dim=-1), probs
    scaled = logits / temperature
    if top_k is not None and top_k < scaled.size(-1):
        kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, descending=True, dim=-1)
        cumulative = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a character when the ones before it already reach top_p (keeps at least one).
        drop_sorted = (cumulative - F.softmax(sorted_logits, dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    choice = torch.multinomial(F.softmax(scaled, dim=-1), 1, generator=generator)
    return choice.squeeze(-1), probs


def _check_sampling(length: int, temperature: float, top_k: int | None,
                    top_p: float | None) -> None:
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")


def _make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
