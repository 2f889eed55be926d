"""A surprise map: how surprised the model is by each character of a text (its loss on it,
in bits) and which characters it expected there instead.

Surprise is -log2 p, where p is the probability the model gave the character that came:
0 bits for a certain prediction, 1 bit for a coin flip, log2(vocabulary size) for a
blind guess. Its mean over a text is the model's loss there, in bits per character.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .generator import TextGenerator
from .inspection import stateful_pass
from .model import MicroLM
from .tokenizer import CharacterTokenizer

EXPECTED = 5  # expectations kept per character


@dataclass(frozen=True)
class SurpriseMap:
    text: str  # the text as read (characters the model never saw dropped)
    context: str  # what the model read before the text's first character
    bits: np.ndarray  # (T,) -log2 of the probability the model gave each character
    expected: np.ndarray  # (T, k) ids of the k characters it found most likely there
    expected_probabilities: np.ndarray  # (T, k) their probabilities, largest first
    chars: tuple[str, ...]  # the vocabulary: id -> character

    @property
    def mean_bits(self) -> float:
        """The mean surprise: the model's loss over this text, in bits per character."""
        return float(self.bits.mean()) if len(self.bits) else 0.0

    def probability(self, position: int) -> float:
        """The probability the model gave the character at `position`."""
        return float(2.0 ** -self.bits[position])

    def expectations(self, position: int) -> list[tuple[str, float]]:
        """The characters the model expected at `position`, most likely first."""
        return [(self.chars[int(index)], float(p)) for index, p in
                zip(self.expected[position], self.expected_probabilities[position],
                    strict=True)]


def surprise_map(model: MicroLM, tokenizer: CharacterTokenizer, text: str, context: str = "",
                 top_k: int = EXPECTED, on_unknown: str = "drop") -> SurpriseMap:
    """Read `context` then `text` in one stateful pass of the model, from a zero state, and
    measure its surprise at each character of `text` and its top_k expectations there.
    The first character is predicted after the context, or, with none, after the character
    an empty prompt starts from (TextGenerator.start_char(): a new line if the model knows
    one), as generated text is. Probabilities are softmax(scores) over all of the model's
    outputs, as in its training loss; dropout is off and the model's mode left alone."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    text = tokenizer.clean(text, on_unknown)
    context = tokenizer.clean(context, on_unknown) or TextGenerator(model, tokenizer).start_char()
    ids = tokenizer.encode(context + text)
    targets = torch.tensor(ids[len(context):], dtype=torch.long)
    count, known = len(targets), tokenizer.vocab_size()
    top_k = min(top_k, known)
    bits = np.zeros(count, dtype=np.float32)
    expected = np.zeros((count, top_k), dtype=np.int64)
    expected_probabilities = np.zeros((count, top_k), dtype=np.float32)
    skip = len(context) - 1  # outputs before the context's last character predict no text
    out = (bits, expected, expected_probabilities)
    for start, outputs, _ in stateful_pass(model, ids[:-1]):  # the last predicts nothing
        first = max(skip - start, 0)
        if first < len(outputs[-1]):
            with torch.no_grad():
                _measure(model, outputs[-1][first:], targets, start + first - skip, known, out)
    return SurpriseMap(text, context, bits, expected, expected_probabilities,
                       tuple(tokenizer.chars))


def _measure(model: MicroLM, hidden: torch.Tensor, targets: torch.Tensor, first: int,
             known: int, out: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Surprise and expectations at text positions first, first + 1, ... from the top
    layer's outputs just before them, hidden (n, H); written into out's arrays."""
    bits, expected, expected_probabilities = out
    stop = first + len(hidden)
    scores = model.head(hidden.to(model.dtype)).float()  # (n, V)
    log_p = F.log_softmax(scores, dim=-1)
    came = log_p.gather(1, targets[first:stop, None].to(log_p.device))[:, 0]
    bits[first:stop] = (-came / math.log(2)).cpu().numpy()
    best = torch.topk(log_p[:, :known], expected.shape[1], dim=-1)
    expected[first:stop] = best.indices.cpu().numpy()
    expected_probabilities[first:stop] = best.values.exp().cpu().numpy()
