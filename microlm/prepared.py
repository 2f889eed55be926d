"""Corpora larger than memory: `prepare` encodes a text file in one streaming pass to token
files on disk, and training reads them back through a memory map."""

from __future__ import annotations

import codecs
import json
import mmap
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .checkpoint import load_checkpoint
from .data import (
    NOT_TEXT,
    ControlCharacters,
    CorpusError,
    TextDataLoader,
    check_not_symlink_loop,
    convert_line_endings,
    line_ending_kind,
    line_ending_notes,
    train_characters,
)
from .tokenizer import CharacterTokenizer, token_dtype

FORMAT_NAME = "microlm-prepared"
FORMAT_VERSION = 1
META_FILE = "vocab.json"  # written last: a folder without it is not (yet) a prepared corpus
TRAIN_FILE = "train.bin"
VAL_FILE = "val.bin"
CHUNK_BYTES = 16 * 2**20  # bytes read per step: large enough for numpy, small for memory
REMAP_TOKENS = 16 * 2**20  # tokens rewritten per step in the final pass
UNICODE_SIZE = 0x110000
_WHITESPACE = np.array([ord(c) for c in " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"])


@dataclass(frozen=True)
class PrepareResult:
    directory: Path
    characters: int  # characters in the whole text (train + validation)
    train_characters: int
    val_characters: int
    vocab_size: int
    source_bytes: int
    seconds: float
    warnings: tuple[str, ...] = ()  # what was changed in the text: line endings, controls
    # which line endings became "\n": "Windows (CRLF)", "old Mac (CR)", "mixed" or None
    line_endings_converted: str | None = None

    @property
    def megabytes_per_second(self) -> float:
        return self.source_bytes / 1e6 / max(self.seconds, 1e-9)


@dataclass(frozen=True)
class PreparedCorpus:
    """A prepared folder opened for training: token tensors backed by memory maps."""
    directory: Path
    tokenizer: CharacterTokenizer
    train_tokens: torch.Tensor  # 1-D, memory-mapped: pages are read from disk when used
    val_tokens: torch.Tensor | None  # None when the validation part has < 2 characters
    source: str
    train_map: np.memmap | None = None  # the mapping under train_tokens

    def release_pages(self) -> None:
        """Unmap the training pages read so far (they stay in the page cache, nothing is
        lost): the kernel maps file pages in large blocks (up to 2 MiB per window read),
        so without this the resident memory would grow with every random batch."""
        if self.train_map is not None and hasattr(mmap, "MADV_DONTNEED"):
            self.train_map._mmap.madvise(mmap.MADV_DONTNEED)

    @property
    def num_chars(self) -> int:
        return len(self.train_tokens) + (0 if self.val_tokens is None else len(self.val_tokens))


def is_prepared(path: str | os.PathLike) -> bool:
    """A folder written by prepare_corpus (it holds the vocabulary file)."""
    return (Path(path) / META_FILE).is_file()


def prepare_corpus(path: str | os.PathLike, output: str | os.PathLike,
                   val_fraction: float = 0.1,
                   progress: Callable[[int, int], None] | None = None,
                   chunk_bytes: int = CHUNK_BYTES) -> PrepareResult:
    r"""Encode a UTF-8 text file of any size into `output`: train.bin, val.bin, vocab.json.

    One pass over the file in chunks: each chunk is checked (UTF-8 validity; errors name
    the byte offset), cleaned as read_corpus cleans a text (the same rule for binary data
    and control characters, the same line endings, a "\r\n" split between two chunks
    included), turned into ids in order of first appearance and appended to a temporary
    token file. A last pass over the tokens (not the text) renumbers them into the
    tokenizer's sorted order and splits off the last `val_fraction` of the characters for
    validation, exactly as split_text would. Files are written under temporary names and
    renamed at the end, so a failed run never leaves a folder that looks prepared.
    progress(bytes_done, bytes_total) is called per chunk.
    """
    started = time.perf_counter()
    path, output = Path(path), Path(output)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    check_not_symlink_loop(path)
    check_not_symlink_loop(output)
    if not path.is_file():
        raise CorpusError(f"{path} is not a file. Give the text file to prepare.")
    total_bytes = path.stat().st_size
    if total_bytes == 0:
        raise CorpusError(f"{path} is empty. Pick a file with some text.")
    output.mkdir(parents=True, exist_ok=True)
    provisional = output / ".tokens.tmp"
    encoder = _StreamEncoder(path, provisional, total_bytes)
    try:
        with open(path, "rb") as source:
            for data in iter(partial(source.read, chunk_bytes), b""):
                encoder.add(data)
                if progress is not None:
                    progress(encoder.offset, total_bytes)
        encoder.finish()
        vocabulary = encoder.vocabulary()
        n_train = train_characters(encoder.characters, val_fraction)
        n_val = encoder.characters - n_train
        dtype = token_dtype(len(vocabulary))
        _renumber_and_split(provisional, encoder.renumbering(dtype), encoder.dtype, n_train,
                            output / f".{TRAIN_FILE}.tmp", output / f".{VAL_FILE}.tmp")
        metadata = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "chars": vocabulary, "dtype": dtype.name,
            "train_tokens": n_train, "val_tokens": n_val, "val_fraction": val_fraction,
            "source": str(path), "source_bytes": total_bytes,
        }
        # An old vocabulary goes first, so that no moment pairs it with the new tokens.
        (output / META_FILE).unlink(missing_ok=True)
        os.replace(output / f".{TRAIN_FILE}.tmp", output / TRAIN_FILE)
        os.replace(output / f".{VAL_FILE}.tmp", output / VAL_FILE)
        meta_tmp = output / f".{META_FILE}.tmp"
        meta_tmp.write_text(json.dumps(metadata, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(meta_tmp, output / META_FILE)
    finally:
        encoder.close()
        for name in (".tokens.tmp", f".{TRAIN_FILE}.tmp", f".{VAL_FILE}.tmp",
                     f".{META_FILE}.tmp"):
            (output / name).unlink(missing_ok=True)
    line_endings = encoder.line_endings()
    return PrepareResult(output, encoder.characters, n_train, n_val, len(vocabulary),
                         total_bytes, time.perf_counter() - started,
                         tuple(line_ending_notes(line_endings) + encoder.controls.notes()),
                         line_endings)


class _StreamEncoder:
    """Bytes in, provisional ids out, written to a temporary token file.

    Provisional ids 0-127 are the ASCII characters themselves, so an ASCII chunk (most
    chunks of most corpora) is written as it was read, without a lookup; other characters
    get ids from 128 on, in order of first appearance. renumbering() maps them to the
    tokenizer's ids once the whole vocabulary is known.
    """

    def __init__(self, source: Path, token_path: Path, size: int):
        self.name = str(source)
        self.tokens = open(token_path, "wb")  # noqa: SIM115 - closed by close()
        self.token_path = token_path
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.offset = 0  # bytes of the file consumed so far
        self.characters = 0
        self.controls = ControlCharacters(self.name, size)
        self.after_return = False  # the text so far ends in "\r" (already written as "\n")
        self.pairs = self.returns = 0  # "\r\n" pairs and "\r" characters converted
        self.ids = np.full(UNICODE_SIZE, -1, dtype=np.int32)  # code point -> provisional id
        self.ids[:128] = np.arange(128)
        self.code_points = list(range(128))  # provisional id -> code point
        self.seen = np.zeros(UNICODE_SIZE, dtype=bool)  # code points met so far
        self.dtype = token_dtype(128)
        # The seen ASCII bytes, which an ASCII chunk can skip when looking for what it
        # holds. "\r" and other control characters are never seen (they are converted or
        # removed), so a chunk that holds any is always found out.
        self.skip_ascii = b""

    def add(self, data: bytes) -> None:
        start = self.offset
        self.offset += len(data)
        if start == 0:
            if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise CorpusError(f"{self.name} is UTF-16 text; prepare reads UTF-8. Save it "
                                  f"as UTF-8 and prepare it again.")
            if data.startswith(codecs.BOM_UTF8):
                data, start = data[3:], 3
        raw = np.frombuffer(data, dtype=np.uint8)
        if not len(raw):
            return
        pending = self.decoder.getstate()[0]
        text = None  # an ASCII chunk stays bytes: they are their own code points (and ids)
        if pending or raw.max() >= 128:
            try:
                text = self.decoder.decode(data)
            except UnicodeDecodeError as err:
                self.controls.add(raw, start)  # binary data is said to be binary
                raise self._invalid_utf8(start - len(pending) + err.start) from None
        if self.after_return or b"\r" in data:
            data, text = _edited(data, text, self._convert_line_endings)
        code_points, present = self._characters(data, text)
        if present[:32][NOT_TEXT].any():
            self.controls.add(raw, start)  # refuses binary data, counts the rest
            data, text = _edited(data, text, self.controls.remove_from)
            code_points, present = self._characters(data, text)
        if not len(code_points):
            return  # only the start of a character split across chunks, or nothing left
        seen = np.flatnonzero(present)
        self.seen[seen] = True
        ascii_seen = np.flatnonzero(self.seen[:128])
        if len(ascii_seen) != len(self.skip_ascii):
            self.skip_ascii = ascii_seen.astype(np.uint8).tobytes()
        new = seen[self.ids[seen] < 0]
        if len(new):
            self._add_characters(new)
        self.characters += len(code_points)
        if text is None and self.dtype == np.uint8:
            self.tokens.write(data)
        else:
            table = self.ids[:len(present)].astype(self.dtype)  # up to the highest code point
            table[code_points].tofile(self.tokens)

    def _characters(self, data: bytes, text: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(code points, which code points occur) of an ASCII chunk (text None) or a text."""
        if text is None:
            # What this chunk holds beyond the characters already seen: bytes.translate
            # deletes the seen ones at ~1 GB/s, 3x faster than any numpy pass here.
            rest = np.frombuffer(data.translate(None, self.skip_ascii), dtype=np.uint8)
            present = np.zeros(128, dtype=bool)
            present[rest] = True
            return np.frombuffer(data, dtype=np.uint8), present
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        present = np.zeros(max(128, int(code_points.max(initial=0)) + 1), dtype=bool)
        present[code_points] = True  # which characters it has (cheaper than counting)
        return code_points, present

    def _convert_line_endings(self, text: str) -> str:
        after_return = self.after_return
        if text:  # an empty chunk leaves the "\r" pending
            self.after_return = text.endswith("\r")
        text, pairs, returns = convert_line_endings(text, after_return)
        self.pairs += pairs
        self.returns += returns
        return text

    def line_endings(self) -> str | None:
        return line_ending_kind(self.pairs, self.returns - self.pairs)

    def finish(self) -> None:
        pending = self.decoder.getstate()[0]
        try:
            self.decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise self._invalid_utf8(self.offset - len(pending)) from None
        self.tokens.close()
        if self.characters == 0:
            raise CorpusError(f"{self.name} holds no text. Pick a file with some text.")
        if not np.delete(self.seen, _WHITESPACE).any():
            raise CorpusError(f"{self.name} holds only whitespace. Pick a file with some text.")
        if self.characters < 2:
            raise CorpusError(f"{self.name} has 1 character; training needs at least 2.")

    def vocabulary(self) -> list[str]:
        """The characters in code-point order: what CharacterTokenizer(text) would build."""
        return [chr(c) for c in np.flatnonzero(self.seen)]

    def renumbering(self, dtype: np.dtype) -> np.ndarray:
        """provisional id -> final id (the rank of its code point among those seen)."""
        final = np.cumsum(self.seen) - 1  # code point -> rank, valid where seen
        code_points = np.array(self.code_points, dtype=np.int64)
        return np.where(self.seen[code_points], final[code_points], 0).astype(dtype)

    def close(self) -> None:
        self.tokens.close()

    def _add_characters(self, new: np.ndarray) -> None:
        first = len(self.code_points)
        self.ids[new] = np.arange(first, first + len(new))
        self.code_points.extend(int(c) for c in new)
        wider = token_dtype(len(self.code_points))
        if wider != self.dtype:
            self._widen(wider)

    def _widen(self, dtype: np.dtype) -> None:
        """More characters than the id type holds: rewrite the ids so far in a wider type
        (at most twice per file, and usually early, when little is written)."""
        self.tokens.close()
        old = np.fromfile(self.token_path, dtype=self.dtype)
        old.astype(dtype).tofile(self.token_path)
        del old
        self.tokens = open(self.token_path, "ab")  # noqa: SIM115 - closed by close()
        self.dtype = dtype

    def _invalid_utf8(self, at: int) -> CorpusError:
        return CorpusError(f"{self.name} is not valid UTF-8 at byte offset {at:,}. Convert "
                           f"the file to UTF-8 (e.g. iconv -f cp1252 -t utf-8) or remove the "
                           f"damaged part, then prepare again.")


def _edited(data: bytes, text: str | None, edit: Callable[[str], str],
            ) -> tuple[bytes, str | None]:
    """A text edit applied to a chunk held as ASCII bytes (text None) or as text."""
    if text is None:
        return edit(data.decode("ascii")).encode("ascii"), None
    return data, edit(text)


def _renumber_and_split(provisional: Path, table: np.ndarray, provisional_dtype: np.dtype,
                        n_train: int, train_path: Path, val_path: Path) -> None:
    """Read the provisional ids in blocks, renumber them (table: provisional -> final id, in
    the final type), and write the training part, then the validation part.

    Plain reads and writes, not a memory map: mapped pages would count as this process's
    resident memory, which would grow with the corpus.
    """
    # Bytes to bytes (up to 256 characters, the usual case): bytes.translate renumbers
    # ~3x faster than a numpy lookup.
    byte_table = (table.tobytes().ljust(256, b"\0")
                  if provisional_dtype == np.uint8 and table.dtype == np.uint8 else None)
    written = 0
    with open(provisional, "rb") as source, open(train_path, "wb") as train, \
            open(val_path, "wb") as val:
        while True:
            if byte_table is not None:
                ids = source.read(REMAP_TOKENS).translate(byte_table)
            else:
                ids = table[np.fromfile(source, dtype=provisional_dtype, count=REMAP_TOKENS)]
            if not len(ids):
                break
            cut = max(0, min(len(ids), n_train - written))
            if byte_table is not None:
                train.write(memoryview(ids)[:cut])
                val.write(memoryview(ids)[cut:])
            else:
                ids[:cut].tofile(train)
                ids[cut:].tofile(val)
            written += len(ids)


def load_prepared(directory: str | os.PathLike) -> PreparedCorpus:
    """Open a folder made by prepare_corpus; the tokens stay on disk (memory-mapped)."""
    directory = Path(directory)
    check_not_symlink_loop(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise CorpusError(f"{directory} is not a prepared corpus (no {META_FILE}). Make one "
                          f"with: microlm prepare FILE --output {directory}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CorpusError(f"{meta_path} cannot be read ({err}). Prepare the corpus again.") \
            from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CorpusError(f"{meta_path} is not a MicroLM prepared-corpus file.")
    if not isinstance(meta.get("format_version"), int) or meta["format_version"] > \
            FORMAT_VERSION:
        raise CorpusError(f"{directory} was prepared by a newer microlm (format "
                          f"{meta.get('format_version')!r}); update microlm or prepare again.")
    tokenizer = CharacterTokenizer.from_dict({"chars": meta.get("chars")})
    dtype = np.dtype(meta["dtype"])
    if dtype != token_dtype(tokenizer.vocab_size()):
        raise CorpusError(f"{meta_path} is inconsistent (ids stored as {dtype.name}). "
                          f"Prepare the corpus again.")
    train = _map_tokens(directory / TRAIN_FILE, dtype, int(meta["train_tokens"]))
    val = _map_tokens(directory / VAL_FILE, dtype, int(meta["val_tokens"]))
    if train is None:
        raise CorpusError(f"{directory} has fewer than 2 training characters; prepare a "
                          f"longer text.")
    return PreparedCorpus(directory, tokenizer, torch.from_numpy(train),
                          None if val is None else torch.from_numpy(val),
                          str(meta.get("source", "")), train)


def _map_tokens(path: Path, dtype: np.dtype, count: int) -> np.memmap | None:
    if not path.is_file() or path.stat().st_size != count * dtype.itemsize:
        raise CorpusError(f"{path} is missing or has the wrong size (expected {count:,} "
                          f"tokens): the folder is incomplete. Prepare the corpus again.")
    if count < 2:
        return None
    # mode "c" (copy-on-write): writable for torch, yet nothing is ever written back.
    return np.memmap(path, dtype=dtype, mode="c", shape=(count,))


class MappedTextDataLoader(TextDataLoader):
    """TextDataLoader over a memory-mapped corpus that keeps its resident memory small."""

    def __init__(self, corpus: PreparedCorpus, tokens: torch.Tensor, *args, **kwargs):
        super().__init__(tokens, *args, **kwargs)
        self.corpus = corpus

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = super().next_batch()  # copies: the windows no longer need the mapping
        self.corpus.release_pages()  # ~0.5 ms: a few unmapped ranges of page tables
        return batch


def saved_loader_state(checkpoint: str | os.PathLike) -> dict | None:
    """The batch sampler's position saved in a checkpoint, to resume from a prepared folder.

    Under torchrun it is rank 0's; every rank takes it, which is right: each rank draws the
    same offsets, but within its own shard of the text.
    """
    return (load_checkpoint(checkpoint).get("training_state") or {}).get("loader")


def use_prepared(trainer, corpus: PreparedCorpus, loader_state: dict | None = None):
    """Give `trainer` the prepared corpus as its data, as prepare_data does with a text.

    Under torchrun each rank trains on its own shard of the memory map, with its own
    random windows. Returns the training TextDataLoader.
    """
    if trainer.tokenizer != corpus.tokenizer:
        raise CorpusError(f"{corpus.directory} was prepared from a different text than the "
                          f"model's (another vocabulary); give the corpus it was trained on.")
    cfg = trainer.config
    if cfg.batching == "random" and corpus.train_map is not None and hasattr(mmap,
                                                                             "MADV_RANDOM"):
        # Random windows: read just the pages a window needs, not a readahead around it.
        corpus.train_map._mmap.madvise(mmap.MADV_RANDOM)
    trainer.val_tokens = corpus.val_tokens
    trainer.train_loader = MappedTextDataLoader(corpus, distributed.shard(corpus.train_tokens),
                                                cfg.sequence_length, cfg.batch_size,
                                                cfg.batching,
                                                seed=distributed.rank_seed(cfg.seed))
    if loader_state:
        trainer.train_loader.load_state_dict(loader_state)
    return trainer.train_loader
