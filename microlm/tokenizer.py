"""Character-level tokenizer: every distinct character of the training text is one token."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

UNKNOWN_POLICIES = ("error", "drop", "replace")


class UnknownCharacterError(ValueError):
    """Raised when text holds characters that are not in the vocabulary."""

    def __init__(self, characters: Sequence[str]):
        self.characters = list(characters)
        shown = ", ".join(repr(c) for c in self.characters[:10])
        more = f" and {len(self.characters) - 10} more" if len(self.characters) > 10 else ""
        super().__init__(
            f"The text contains {len(self.characters)} character(s) the model never saw in "
            f"training: {shown}{more}. Remove them, or encode with on_unknown='drop' or "
            f"on_unknown='replace'."
        )


class CharacterTokenizer:
    """Maps characters to integer ids and back.

    The vocabulary is the sorted set of characters in the text, so the same text
    always gives the same ids (deterministic across runs and machines).
    """

    def __init__(self, text: str | None = None, *, chars: Iterable[str] | None = None):
        if text is None and chars is None:
            raise ValueError("CharacterTokenizer needs a text (or chars=) to build its vocabulary.")
        vocab = set(text) if text is not None else set()
        if chars is not None:
            vocab.update(chars)
        if not vocab:
            raise ValueError("Cannot build a vocabulary from empty text.")
        self.chars: list[str] = sorted(vocab)
        self.char_to_id: dict[str, int] = {ch: i for i, ch in enumerate(self.chars)}
        self._lookup: np.ndarray | None = None  # code point -> id, built on first bulk encode

    def vocab_size(self) -> int:
        return len(self.chars)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.char_to_id)

    def unknown_characters(self, text: str) -> list[str]:
        """The distinct characters of `text` outside the vocabulary, in order of appearance."""
        return [ch for ch in dict.fromkeys(text) if ch not in self.char_to_id]

    def replacement_char(self) -> str:
        """The character used for on_unknown='replace': a space if known, else the first."""
        return " " if " " in self.char_to_id else self.chars[0]

    def clean(self, text: str, on_unknown: str = "drop", replacement: str | None = None) -> str:
        """Return `text` with unknown characters dropped or replaced."""
        if on_unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"on_unknown must be one of {UNKNOWN_POLICIES}, not {on_unknown!r}")
        unknown = set(self.unknown_characters(text))
        if not unknown:
            return text
        if on_unknown == "error":
            raise UnknownCharacterError([ch for ch in dict.fromkeys(text) if ch in unknown])
        if on_unknown == "drop":
            return "".join(ch for ch in text if ch not in unknown)
        replacement = self.replacement_char() if replacement is None else replacement
        if replacement not in self.char_to_id:
            raise ValueError(f"The replacement {replacement!r} is not in the vocabulary.")
        return "".join(replacement if ch in unknown else ch for ch in text)

    def encode(self, text: str, on_unknown: str = "error",
               replacement: str | None = None) -> list[int]:
        """Text -> list of ids. Unknown characters raise (default), are dropped or replaced."""
        text = self.clean(text, on_unknown, replacement)
        return [self.char_to_id[ch] for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)

    def encode_array(self, text: str, dtype: np.dtype | None = None,
                     chunk_chars: int = 1 << 22) -> np.ndarray:
        """Encode a long text into a compact numpy array, in chunks to bound memory.

        A code-point lookup table makes this ~50x faster than a Python loop; chunking keeps
        the temporary UTF-32 copy to 4 bytes x chunk_chars instead of 4 bytes x len(text).
        """
        dtype = np.dtype(dtype or token_dtype(self.vocab_size()))
        lookup = self._code_point_lookup()
        out = np.empty(len(text), dtype=dtype)
        for start in range(0, len(text), chunk_chars):
            piece = text[start:start + chunk_chars]
            # surrogatepass: a lone surrogate (e.g. from pasted text) is a character too
            code_points = np.frombuffer(piece.encode("utf-32-le", "surrogatepass"),
                                        dtype=np.uint32)
            ids = lookup[np.minimum(code_points, len(lookup) - 1)]
            if (ids < 0).any():
                raise UnknownCharacterError(self.unknown_characters(piece))
            out[start:start + len(piece)] = ids
        return out

    def _code_point_lookup(self) -> np.ndarray:
        if self._lookup is None:
            top = max(ord(ch) for ch in self.chars)
            lookup = np.full(top + 2, -1, dtype=np.int32)  # last slot: "beyond the vocabulary"
            for ch, i in self.char_to_id.items():
                lookup[ord(ch)] = i
            self._lookup = lookup
        return self._lookup

    def to_dict(self) -> dict:
        return {"chars": list(self.chars)}

    @classmethod
    def from_dict(cls, data: dict) -> CharacterTokenizer:
        chars = data.get("chars") if isinstance(data, dict) else None
        if not isinstance(chars, list) or not chars or not all(
                isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("A tokenizer dict needs 'chars': a non-empty list of single "
                             "characters.")
        if len(set(chars)) != len(chars):
            raise ValueError("A tokenizer vocabulary must not repeat characters.")
        tokenizer = cls(chars=chars)
        # Keep the stored order: ids must match the embedding rows they were trained with.
        tokenizer.chars = list(chars)
        tokenizer.char_to_id = {ch: i for i, ch in enumerate(chars)}
        return tokenizer

    def __len__(self) -> int:
        return self.vocab_size()

    def __repr__(self) -> str:
        return f"CharacterTokenizer(vocab_size={self.vocab_size()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharacterTokenizer) and self.chars == other.chars


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type that holds every id: uint8 for <= 256 symbols, then int16."""
    if vocab_size <= 256:
        return np.dtype(np.uint8)
    if vocab_size <= 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)
