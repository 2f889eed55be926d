"""Corpora: reading text files safely, statistics, the train/validation split, batches."""

from __future__ import annotations

import codecs
import errno
import math
import os
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .tokenizer import CharacterTokenizer, token_dtype

LARGE_VOCABULARY = 300  # a vocabulary larger than this: warn, the model grows and slows
SMALL_CORPUS = 10_000  # fewer characters than this: warn, the model will mostly memorise
READ_CHUNK = 1 << 22  # 4 MiB: granularity of progress reports while reading

# Control characters kept as text: tab, line feed, vertical tab, form feed and carriage
# return (which becomes a line feed). Every other C0 control character is not text.
TEXT_CONTROLS = "\t\n\v\f\r"
CONTROL_NAMES = ("NUL SOH STX ETX EOT ENQ ACK BEL BS HT LF VT FF CR SO SI DLE DC1 DC2 DC3 DC4 "
                 "NAK SYN ETB CAN EM SUB ESC FS GS RS US").split()
NOT_TEXT = np.array([chr(code) not in TEXT_CONTROLS for code in range(32)])  # by code point
BINARY_WINDOW = 65536  # bytes judged together when telling binary data from stray controls
BINARY_CONTROLS = 0.1  # more than this share of a window in control bytes: binary data
BINARY_NULS = 0.001  # more than this share of a window in NUL bytes: binary data

SAMPLE_CORPORA = ("Python documentation", "Python source code")
SOURCE_CORPUS_CAP = 1_000_000  # characters of standard-library source in the sample corpus


class CorpusError(ValueError):
    """A text that cannot be used for training; the message says why and what to do."""


@dataclass(frozen=True)
class Corpus:
    text: str
    source: str  # a file path or a sample-corpus name
    encoding: str  # the encoding the bytes were read with
    size_bytes: int
    warnings: tuple[str, ...] = ()
    # which line endings became "\n": "Windows (CRLF)", "old Mac (CR)", "mixed" or None
    line_endings_converted: str | None = None

    @property
    def used_fallback_encoding(self) -> bool:
        return self.encoding not in ("utf-8", "utf-8-sig")


@dataclass(frozen=True)
class CorpusStats:
    characters: int
    lines: int
    unique_characters: int
    frequencies: tuple[tuple[str, int], ...] = field(repr=False)  # most frequent first

    def most_common(self, n: int = 20) -> list[tuple[str, int]]:
        return list(self.frequencies[:n])

    def uniform_loss(self) -> float:
        """The loss, in nats per character, of a model that gives every character of the
        vocabulary the same probability: ln of the vocabulary size."""
        return math.log(self.unique_characters) if self.unique_characters else 0.0

    def unigram_entropy(self) -> float:
        """The loss, in nats per character, of a model that knows only how often each
        character occurs and ignores what came before: -sum p ln p over the frequencies."""
        counts = np.array([count for _char, count in self.frequencies], dtype=np.float64)
        if counts.sum() <= 0:
            return 0.0
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())


def read_corpus(path: str | os.PathLike, progress: Callable[[float], None] | None = None,
                min_chars: int = 2) -> Corpus:
    r"""Read a text file for training.

    UTF-8 (with or without BOM) and UTF-16 with BOM are read as such. Other bytes are
    read as Windows-1252 (or Latin-1) and the Corpus says so in `encoding` and
    `warnings`, so nothing is silently garbled. Windows (CRLF) and old Mac (CR) line
    endings become "\n", as Python's text mode reads them. Control characters: each 64 KiB
    of the file (the whole file when shorter) with more than 10 % control bytes or more
    than 0.1 % NUL bytes is binary data and the file is refused; otherwise the C0 control
    characters other than tab, line feed, vertical tab, form feed and carriage return
    are removed wherever they are (after the line endings are converted), and the
    warnings say which, how many and where. Binary, empty and whitespace-only files raise
    CorpusError with a message a person can act on.
    """
    path = Path(path)
    check_not_symlink_loop(path)
    if not path.exists():
        raise CorpusError(f"{path} does not exist. Pick an existing text file.")
    if path.is_dir():
        raise CorpusError(f"{path} is a folder. Pick a text file inside it.")
    size = path.stat().st_size
    chunks, done = [], 0
    with open(path, "rb") as f:
        for chunk in iter(partial(f.read, READ_CHUNK), b""):
            chunks.append(chunk)
            done += len(chunk)
            if progress is not None and size:
                progress(min(1.0, done / size) * 0.8)
    data = b"".join(chunks)
    del chunks
    controls = ControlCharacters(str(path), len(data))
    text, encoding, notes = decode_bytes(data, str(path), controls)
    del data
    text, pairs, returns = convert_line_endings(text)
    text = _check_not_blank(controls.remove_from(text), str(path))
    line_endings = line_ending_kind(pairs, returns - pairs)
    notes += line_ending_notes(line_endings) + controls.notes()
    if progress is not None:
        progress(1.0)
    return Corpus(text=text, source=str(path), encoding=encoding, size_bytes=size,
                  warnings=tuple(notes) + tuple(text_warnings(text, min_chars)),
                  line_endings_converted=line_endings)


def check_not_symlink_loop(path: Path) -> None:
    """Say so when `path` goes through symbolic links in a loop (not "does not exist")."""
    try:
        path.stat()
    except OSError as err:
        # ELOOP on POSIX; Windows says it cannot resolve the name (error 1921)
        if err.errno == errno.ELOOP or getattr(err, "winerror", None) == 1921:
            raise CorpusError(f"{path} is a symbolic link that points to itself in a loop "
                              f"(directly or through other links), so there is nothing to "
                              f"read. Fix or remove the link, or pick the file or folder it "
                              f"was meant to point to.") from None


def decode_bytes(data: bytes, name: str,
                 controls: ControlCharacters) -> tuple[str, str, list[str]]:
    """Bytes -> (text, encoding used, warnings). `controls` meets the control characters
    and refuses binary data (see read_corpus); the caller removes them."""
    if not data.strip():
        raise CorpusError(f"{name} is empty or holds only whitespace. Pick a file with some text.")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise CorpusError(f"{name} starts like UTF-16 but is damaged at byte "
                              f"{err.start}. Save it again as UTF-8.") from None
        order = "<" if data.startswith(codecs.BOM_UTF16_LE) else ">"
        controls.add(np.frombuffer(data, dtype=f"{order}u2")[1:], offset=2, unit_bytes=2)
        return text, "utf-16", []
    controls.add(np.frombuffer(data, dtype=np.uint8), offset=0)
    return _decode_8bit(data, name)


def _decode_8bit(data: bytes, name: str) -> tuple[str, str, list[str]]:
    """UTF-8 (a BOM is dropped), else Windows-1252, else Latin-1, which decodes any bytes."""
    encoding = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    try:
        return data.decode(encoding), encoding, []
    except UnicodeDecodeError as err:
        bad_offset = err.start
    for fallback in ("cp1252", "latin-1"):
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        note = (f"{name} is not valid UTF-8 (first invalid byte at offset {bad_offset}); it "
                f"was read as {fallback}. If accented letters look wrong in the preview, "
                f"convert the file to UTF-8 and open it again.")
        return text, fallback, [note]
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _check_not_blank(text: str, name: str) -> str:
    if not text.strip():
        raise CorpusError(f"{name} holds only whitespace. Pick a file with some text.")
    return text


class ControlCharacters:
    """The control characters of a file, met piece by piece in file order: refuses binary
    data (the rule in read_corpus's docstring), counts the rest by kind and removes them.

    Works on code units (bytes, or the 16-bit units of UTF-16): C0 control characters are
    single code units in UTF-8, Windows-1252, Latin-1 and UTF-16 alike.
    """

    def __init__(self, name: str, size: int):
        self.name = name
        self.window_bytes = max(1, min(BINARY_WINDOW, size))  # a file shorter than a window
        self.counts = np.zeros(32, dtype=np.int64)  # by code point
        self.first: dict[int, int] = {}  # code point -> byte offset of its first occurrence
        self.window = -1  # the last window that had control bytes: index, counts, first one
        self.window_counts = (0, 0)  # (control bytes, NUL bytes)
        self.window_first = 0

    def add(self, units: np.ndarray, offset: int, unit_bytes: int = 1) -> None:
        """Scan `units`, the first at byte `offset` of the file. Raises CorpusError when
        a window is binary."""
        candidates = np.flatnonzero(units < 32)
        codes = units[candidates].astype(np.intp)
        not_text = NOT_TEXT[codes]
        if not not_text.any():
            return
        codes = codes[not_text]
        offsets = offset + unit_bytes * candidates[not_text]  # byte offsets in the file
        self._check_windows(offsets, codes == 0)
        self.counts += np.bincount(codes, minlength=32)
        kinds, firsts = np.unique(codes, return_index=True)
        for code, at in zip(kinds.tolist(), offsets[firsts].tolist(), strict=True):
            self.first.setdefault(code, at)

    def _check_windows(self, offsets: np.ndarray, nul: np.ndarray) -> None:
        windows = offsets // BINARY_WINDOW
        indices, starts = np.unique(windows, return_index=True)
        controls = np.diff(np.append(starts, len(windows)))
        nuls = np.add.reduceat(nul.astype(np.int64), starts)
        firsts = offsets[starts]
        if indices[0] == self.window:  # the window continues from the previous piece
            controls[0] += self.window_counts[0]
            nuls[0] += self.window_counts[1]
            firsts[0] = self.window_first
        binary = np.flatnonzero((controls > BINARY_CONTROLS * self.window_bytes)
                                | (nuls > BINARY_NULS * self.window_bytes))
        if len(binary):
            raise CorpusError(f"{self.name} looks binary from about byte offset "
                              f"{int(firsts[binary[0]]):,} (many NUL or control bytes there), "
                              f"not text. Pick a plain-text file (.txt, .md, .py, ...), or "
                              f"remove that part and try again.")
        self.window = int(indices[-1])
        self.window_counts = (int(controls[-1]), int(nuls[-1]))
        self.window_first = int(firsts[-1])

    def remove_from(self, text: str) -> str:
        for code in self.first:
            text = text.replace(chr(code), "")
        return text

    def notes(self) -> list[str]:
        if not self.first:
            return []
        kinds = "; ".join(
            f"{count:,} {CONTROL_NAMES[code]} (U+{code:04X}) "
            f"{'at' if count == 1 else 'the first at'} byte offset {self.first[code]:,}"
            for code, count in enumerate(self.counts.tolist()) if count)
        return [f"Removed control characters that are not text (the model would learn to "
                f"write them): {kinds}."]


def convert_line_endings(text: str, after_return: bool = False) -> tuple[str, int, int]:
    r"""Windows ("\r\n") and old Mac ("\r") line endings -> "\n", as Python's text mode.

    after_return: `text` continues a text that ended in "\r", so a "\n" at its start is
    the second half of that "\r\n" and is dropped. Returns (text, "\r\n" pairs, "\r"
    characters), the pairs counting that split one.
    """
    pairs = int(after_return and text.startswith("\n"))
    if pairs:
        text = text[1:]
    if "\r" not in text:
        return text, pairs, 0
    converted = text.replace("\r\n", "\n")
    pairs_here = len(text) - len(converted)
    lone = converted.count("\r")
    if lone:
        converted = converted.replace("\r", "\n")
    return converted, pairs + pairs_here, pairs_here + lone


def line_ending_kind(pairs: int, lone_returns: int) -> str | None:
    """What convert_line_endings converted, in a person's words."""
    if pairs and lone_returns:
        return "mixed"
    if pairs:
        return "Windows (CRLF)"
    return "old Mac (CR)" if lone_returns else None


def line_ending_notes(kind: str | None) -> list[str]:
    if kind is None:
        return []
    described = {"Windows (CRLF)": "Windows line endings (CRLF) were",
                 "old Mac (CR)": "Old Mac line endings (CR) were",
                 "mixed": "Mixed Windows (CRLF) and old Mac (CR) line endings were"}[kind]
    return [f"{described} converted to plain line breaks."]


def text_warnings(text: str, min_chars: int = 2) -> list[str]:
    if len(text) < min_chars:
        raise CorpusError(f"The text has {len(text)} character(s); training needs at least "
                          f"{min_chars}. Use a longer text.")
    notes = []
    if len(text) < SMALL_CORPUS:
        notes.append(f"Only {len(text):,} characters: the model will mostly memorise this text. "
                     f"Aim for 100,000 or more for it to learn general patterns.")
    vocab = len(set(text)) if len(text) < 10_000_000 else len(set(text[:10_000_000]))
    if vocab > LARGE_VOCABULARY:
        notes.append(f"{vocab} characters in the vocabulary: every extra character makes "
                     f"the model larger and slower to train. Consider removing rare symbols.")
    return notes


def corpus_stats(text: str, tokenizer: CharacterTokenizer | None = None) -> CorpusStats:
    """Characters, lines, vocabulary and character frequencies (vectorised, fine for 100 MB)."""
    tokenizer = tokenizer or CharacterTokenizer(text)
    ids = tokenizer.encode_array(text)
    counts = np.bincount(ids, minlength=tokenizer.vocab_size())
    order = np.argsort(-counts, kind="stable")
    frequencies = tuple((tokenizer.chars[i], int(counts[i])) for i in order if counts[i])
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    return CorpusStats(len(text), lines, int((counts > 0).sum()), frequencies)


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Hold out the last `val_fraction` of the text for validation (no shuffling: the
    validation text is unseen continuous prose, as the model will meet it)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_train = train_characters(len(text), val_fraction)
    return text[:n_train], text[n_train:]


def train_characters(characters: int, val_fraction: float) -> int:
    """The training part of a split: the first int((1 - val_fraction) * n) characters
    (rounded down, so no character of "the last 10 %" is ever trained on)."""
    return int(characters * (1.0 - val_fraction) + 1e-9)


def encode_tokens(text: str, tokenizer: CharacterTokenizer) -> torch.Tensor:
    """The whole text as one compact 1-D tensor (uint8 for <= 256 characters)."""
    return torch.from_numpy(tokenizer.encode_array(text, token_dtype(tokenizer.vocab_size())))


# Above this many windows (1 GB of text in windows of 64), random batching draws each
# window's offset independently instead of keeping a pass's order (4 bytes a window).
MAX_ORDERED_WINDOWS = 1 << 24


class TextDataLoader:
    """Batches of (inputs, targets), each (batch_size, sequence_length) int64.

    Windows are views into one token tensor; nothing is materialised up front.
    mode="random": the windows of one pass, in random order. Each pass cuts the text into
    windows from a random offset and reads every one of them once (an epoch = len(self)
    batches); the loader keeps only that order, one int32 start per window. Drawing each
    window's offset independently instead leaves ~5 % of a text unread after three passes
    (e^-3) and reads others six times or more, and trains to a higher validation loss in
    the same time (RESULTS.md). A text of more than MAX_ORDERED_WINDOWS windows (a
    prepared corpus larger than memory) draws each offset independently: a run then reads a
    small part of it, so repeats are rare, and the order would cost much memory.
    mode="sequential": the text is cut into batch_size streams and
    each batch row continues where the previous batch stopped, so the trainer can carry
    the LSTM state across batches (truncated back-propagation through time).
    """

    def __init__(self, tokens: torch.Tensor, sequence_length: int, batch_size: int,
                 mode: str = "random", seed: int = 0):
        if tokens.dim() != 1:
            raise ValueError("tokens must be a 1-D tensor of ids")
        if mode not in ("random", "sequential"):
            raise ValueError(f"mode must be 'random' or 'sequential', not {mode!r}")
        if sequence_length < 1 or batch_size < 1:
            raise ValueError("sequence_length and batch_size must be >= 1")
        if len(tokens) < sequence_length + 1:
            raise CorpusError(f"The training text has {len(tokens)} characters; one window of "
                              f"sequence_length={sequence_length} needs {sequence_length + 1}. "
                              f"Use a longer text or a shorter sequence length.")
        self.tokens = tokens
        self.sequence_length = sequence_length
        self.batch_size = batch_size
        self.mode = mode
        self.generator = torch.Generator().manual_seed(seed)
        self.position = 0  # sequential mode: next batch index within the epoch
        self._offsets = torch.arange(sequence_length)
        # random mode: this pass's window starts in order, how many are read, and the
        # generator state the order was drawn from (all a checkpoint needs to resume it)
        self._order: torch.Tensor | None = None
        self._order_read = 0
        self._order_window = sequence_length
        self._order_drawn_from: torch.Tensor | None = None
        if mode == "sequential":
            self._check_streams()  # here, not at the first batch in the middle of training

    @property
    def num_chars(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        if self.mode == "sequential":
            return max(1, (self.stream_length() - 1) // self.sequence_length)
        return max(1, (len(self.tokens) - 1) // (self.batch_size * self.sequence_length))

    def stream_length(self) -> int:
        return len(self.tokens) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(len(self) - (self.position if self.mode == "sequential" else 0)):
            yield self.next_batch()
        self.position = 0

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "sequential":
            starts = self._sequential_starts()
        elif self._window_count(0) > MAX_ORDERED_WINDOWS:
            high = len(self.tokens) - self.sequence_length  # last valid start + 1
            starts = torch.randint(0, high, (self.batch_size,), generator=self.generator)
        else:
            starts = self._shuffled_starts()
        index = starts[:, None] + self._offsets  # (B, T)
        return self.tokens[index].long(), self.tokens[index + 1].long()

    def _window_count(self, offset: int) -> int:
        """Windows (with their one-character-later targets) that fit from `offset` on."""
        return (len(self.tokens) - 1 - offset) // self.sequence_length

    def _shuffled_starts(self) -> torch.Tensor:
        if (self._order is None or self._order_read + self.batch_size > len(self._order)
                or self._order_window != self.sequence_length):
            self._order_drawn_from = self.generator.get_state()
            self._order, self._order_read = self._draw_order(), 0
        starts = self._order[self._order_read:self._order_read + self.batch_size]
        self._order_read += self.batch_size
        return starts.long()

    def _draw_order(self) -> torch.Tensor:
        """The next pass: window starts offset + k x sequence_length, k in random order. A
        text with fewer windows than a batch gets several passes in one order."""
        parts, total = [], 0
        while total < self.batch_size:
            # from an offset that leaves room for one window at least
            high = min(self.sequence_length, len(self.tokens) - self.sequence_length)
            offset = int(torch.randint(0, high, (1,), generator=self.generator))
            count = self._window_count(offset)
            order = torch.randperm(count, generator=self.generator, dtype=torch.int32)
            parts.append(offset + self.sequence_length * order)
            total += count
        self._order_window = self.sequence_length
        return torch.cat(parts)

    def _check_streams(self) -> None:
        if self.stream_length() < self.sequence_length + 1:
            largest = max(1, len(self.tokens) // (self.sequence_length + 1))
            raise CorpusError(f"The training text has {len(self.tokens)} characters: cut into "
                              f"{self.batch_size} streams (one per batch row), each is shorter "
                              f"than one window of {self.sequence_length + 1}. Use a batch "
                              f"size of at most {largest}, or a shorter sequence length.")

    def _sequential_starts(self) -> torch.Tensor:
        self._check_streams()  # the batch size may have changed since construction
        if self.position >= len(self):
            self.position = 0
        starts = (torch.arange(self.batch_size) * self.stream_length()
                  + self.position * self.sequence_length)
        self.position += 1
        return starts

    def state_dict(self) -> dict:
        state = {"generator": self.generator.get_state(), "position": self.position}
        if self._order is not None:  # the pass in progress: drawn again from this state
            state["order"] = {"drawn_from": self._order_drawn_from, "read": self._order_read,
                              "sequence_length": self._order_window}
        return state

    def load_state_dict(self, state: dict) -> None:
        order = state.get("order")  # absent in checkpoints saved before the ordered passes
        self._order = None
        if order is not None and order["sequence_length"] == self.sequence_length:
            self._order_drawn_from = order["drawn_from"]
            self.generator.set_state(self._order_drawn_from)
            self._order, self._order_read = self._draw_order(), int(order["read"])
        self.generator.set_state(state["generator"])
        self.position = int(state["position"])


def sample_corpus(name: str) -> Corpus:
    """A built-in corpus made from this Python installation (nothing third-party is shipped)."""
    if name == "Python documentation":
        text = _python_documentation()
    elif name == "Python source code":
        text = _python_source()
    else:
        raise CorpusError(f"No sample corpus named {name!r}; choose one of {SAMPLE_CORPORA}.")
    text, pairs, returns = convert_line_endings(text)
    line_endings = line_ending_kind(pairs, returns - pairs)
    return Corpus(text=text, source=name, encoding="utf-8", size_bytes=len(text.encode()),
                  warnings=tuple(line_ending_notes(line_endings) + text_warnings(text)),
                  line_endings_converted=line_endings)


def _python_documentation() -> str:
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some distributions strip pydoc_data
        raise CorpusError("This Python installation has no pydoc_data; open a text file "
                          "instead.") from err
    return "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"


def _python_source(cap: int = SOURCE_CORPUS_CAP) -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not source.isascii():  # keep the vocabulary small and printable
            continue
        parts.append(f"# ---- {path.name} ----\n{source}\n")
        total += len(parts[-1])
        if total >= cap:
            break
    if not parts:
        raise CorpusError("Could not find the Python standard library source; open a text "
                          "file instead.")
    return "".join(parts)[:cap]
