"""Tests for corpus reading (encodings, bad files), statistics, the split and batching."""

import math
import random

import pytest
import torch

from microlm import (
    SAMPLE_CORPORA,
    CharacterTokenizer,
    CorpusError,
    TextDataLoader,
    corpus_stats,
    read_corpus,
    sample_corpus,
    split_text,
)
from microlm import data as data_module
from microlm.data import encode_tokens

TEXT = "Grüße, café — naïve 🙂\nsecond line\n"


def random_text(n: int, seed: int = 0) -> str:
    """Letters at random, so that every window of 8+ characters occurs once in the text."""
    rng = random.Random(seed)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(n))


# ---- reading files ----

def test_reads_utf8(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    corpus = read_corpus(path)
    assert corpus.text == TEXT
    assert corpus.encoding == "utf-8"
    assert not corpus.used_fallback_encoding
    assert corpus.size_bytes == len(TEXT.encode("utf-8"))
    assert corpus.source == str(path)


def test_reads_utf8_with_bom_without_keeping_the_bom(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(TEXT.encode("utf-8-sig"))
    corpus = read_corpus(path)
    assert corpus.text == TEXT
    assert "\ufeff" not in corpus.text
    assert corpus.encoding == "utf-8-sig"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_reads_utf16_with_bom(tmp_path, encoding):
    path = tmp_path / "u16.txt"
    data = TEXT.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    corpus = read_corpus(path)
    assert corpus.text == TEXT
    assert corpus.encoding == "utf-16"


def test_cp1252_file_is_read_with_a_stated_fallback(tmp_path):
    text = "caf\u00e9 na\u00efve \u201cquoted\u201d \u20ac5"
    path = tmp_path / "win.txt"
    path.write_bytes(text.encode("cp1252"))
    corpus = read_corpus(path)
    assert corpus.text == text
    assert corpus.encoding == "cp1252"
    assert corpus.used_fallback_encoding
    note = corpus.warnings[0]
    assert "not valid UTF-8" in note and "offset 3" in note and "cp1252" in note


def test_bytes_undefined_in_cp1252_fall_back_to_latin1(tmp_path):
    path = tmp_path / "odd.txt"
    path.write_bytes(b"caf\xe9 \x81 ok")  # 0x81 has no cp1252 character
    corpus = read_corpus(path)
    assert corpus.encoding == "latin-1"
    assert corpus.text == "caf\u00e9 \x81 ok"
    assert "latin-1" in corpus.warnings[0]


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",  # a PNG header
    b"text with a NUL\x00 inside",
    bytes(range(1, 32)) * 20,  # control bytes, no NUL
])
def test_binary_files_are_refused(tmp_path, data):
    path = tmp_path / "image.png"
    path.write_bytes(data)
    with pytest.raises(CorpusError, match="binary"):
        read_corpus(path)


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  ", "\u3000\n".encode()])
def test_empty_and_whitespace_files_are_refused(tmp_path, data):
    path = tmp_path / "blank.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError, match="whitespace"):
        read_corpus(path)


def test_missing_path_and_folder_are_refused(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        read_corpus(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="folder"):
        read_corpus(tmp_path)


def test_too_short_for_the_minimum_is_refused(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match="at least 2"):
        read_corpus(path)


def test_warnings_for_tiny_text_and_huge_vocabulary(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("hello world", encoding="utf-8")
    warnings = read_corpus(path).warnings
    assert len(warnings) == 1 and "memorise" in warnings[0]

    huge = "".join(chr(0x4E00 + i) for i in range(400)) * 30  # 400 distinct, 12,000 chars
    path.write_text(huge, encoding="utf-8")
    warnings = read_corpus(path).warnings
    assert len(warnings) == 1 and "400 characters in the vocabulary" in warnings[0]


def test_progress_is_reported_up_to_one(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(TEXT, encoding="utf-8")
    seen = []
    read_corpus(path, progress=seen.append)
    assert seen[-1] == 1.0
    assert seen == sorted(seen)


# ---- line endings ----

LINES = ["first line", "zweite Zeile: Grüße", "third"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
@pytest.mark.parametrize("ending, kind", [("\r\n", "Windows (CRLF)"), ("\r", "old Mac (CR)")])
def test_line_endings_become_plain_line_breaks_in_every_encoding(tmp_path, encoding, ending,
                                                                 kind):
    text = ending.join(LINES) + ending
    if encoding == "cp1252":
        text += "\u201cquoted\u201d"  # not valid UTF-8: the fallback encoding is used
    path = tmp_path / "lines.txt"
    path.write_bytes(text.encode(encoding))
    corpus = read_corpus(path)
    assert corpus.encoding == encoding
    assert corpus.text == text.replace(ending, "\n")
    assert "\r" not in CharacterTokenizer(corpus.text).chars
    assert corpus.line_endings_converted == kind
    assert any(kind.split()[0].capitalize() in note and "converted to plain line breaks" in note
               for note in corpus.warnings)


def test_mixed_line_endings_make_exactly_one_line_break_each(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"dos\r\nmac\runix\n\r\r\nend")  # \n\r\r\n: LF, CR, CRLF = 3 breaks
    corpus = read_corpus(path)
    assert corpus.text == "dos\nmac\nunix\n\n\nend"
    assert corpus.line_endings_converted == "mixed"
    assert "Mixed Windows (CRLF) and old Mac (CR) line endings" in corpus.warnings[0]


def test_plain_line_breaks_are_not_reported(tmp_path):
    path = tmp_path / "unix.txt"
    path.write_bytes(b"one\ntwo\n" * 2000)
    corpus = read_corpus(path)
    assert corpus.line_endings_converted is None
    assert corpus.warnings == ()


def test_sample_corpora_come_out_without_carriage_returns(monkeypatch):
    monkeypatch.setattr(data_module, "_python_documentation", lambda: "Title\r\nBody\rEnd\r\n")
    corpus = sample_corpus("Python documentation")
    assert corpus.text == "Title\nBody\nEnd\n"
    assert corpus.line_endings_converted == "mixed"


# ---- control characters ----

def text_of(n: int) -> bytes:
    return random_text(n).encode("ascii")


def test_a_nul_after_the_first_64_kib_is_removed_and_reported(tmp_path):
    data = text_of(100_000)
    path = tmp_path / "nul.txt"
    path.write_bytes(data[:70_000] + b"\x00" + data[70_000:])
    corpus = read_corpus(path)
    assert corpus.text == data.decode()
    assert "\x00" not in CharacterTokenizer(corpus.text).chars
    assert corpus.warnings == ("Removed control characters that are not text (the model would "
                               "learn to write them): 1 NUL (U+0000) at byte offset 70,000.",)


def test_a_single_nul_at_the_start_of_a_long_text_does_not_reject_it(tmp_path):
    data = text_of(50_000)
    path = tmp_path / "nul.txt"
    path.write_bytes(b"abc\x00" + data)
    assert read_corpus(path).text == "abc" + data.decode()


def test_control_characters_are_counted_by_kind_and_whitespace_controls_kept(tmp_path):
    data = text_of(30_000)
    path = tmp_path / "controls.txt"
    path.write_bytes(b"\x1b[1mbold\x1b[0m\t\x0b\x0c" + data + b"\x07\x1a")
    corpus = read_corpus(path)
    assert corpus.text == "[1mbold[0m\t\x0b\x0c" + data.decode()
    note = corpus.warnings[0]
    assert "1 BEL (U+0007) at byte offset 30,015" in note
    assert "1 SUB (U+001A) at byte offset 30,016" in note
    assert "2 ESC (U+001B) the first at byte offset 0" in note


def test_a_control_character_in_utf16_is_removed_with_its_byte_offset(tmp_path):
    text = random_text(40_000) + "\x00" + random_text(40_000, seed=1)
    path = tmp_path / "u16.txt"
    path.write_bytes(text.encode("utf-16"))  # a 2-byte BOM, then 2 bytes per character
    corpus = read_corpus(path)
    assert corpus.text == text.replace("\x00", "")
    assert "1 NUL (U+0000) at byte offset 80,002" in corpus.warnings[0]


def test_a_binary_file_is_refused_wherever_its_binary_part_starts(tmp_path):
    noise = random.Random(0).randbytes(200_000)
    path = tmp_path / "noise.bin"
    path.write_bytes(noise)
    with pytest.raises(CorpusError, match="looks binary from about byte offset .*Pick a "
                                          "plain-text file"):
        read_corpus(path)
    path.write_bytes(text_of(150_000) + b"\x00\x01\x02" * 100 + text_of(1000))
    with pytest.raises(CorpusError, match="binary from about byte offset 150,000 "):
        read_corpus(path)


def test_a_symlink_loop_is_named_as_such(tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.symlink_to(second)
    second.symlink_to(first)
    with pytest.raises(CorpusError, match="first.txt is a symbolic link that points to itself "
                                          "in a loop"):
        read_corpus(first)
    with pytest.raises(CorpusError, match="in a loop"):
        read_corpus(first / "inside.txt")  # a loop on the way to the file


# ---- statistics and the split ----

def test_corpus_stats_on_a_known_text():
    stats = corpus_stats("abracadabra\nab\n")
    assert stats.characters == 15
    assert stats.lines == 2
    assert stats.unique_characters == 6  # a b r c d \n
    # Ties keep vocabulary order: "\n" sorts before "r".
    assert stats.most_common(4) == [("a", 6), ("b", 3), ("\n", 2), ("r", 2)]
    assert sum(count for _, count in stats.frequencies) == 15
    assert corpus_stats("one\ntwo").lines == 2  # a last line without a newline counts


def test_split_text_holds_out_the_end():
    text = "x" * 90 + "y" * 10
    train, val = split_text(text)
    assert (len(train), len(val)) == (90, 10)
    assert set(val) == {"y"}
    assert split_text(text, 0.0) == (text, "")
    with pytest.raises(ValueError):
        split_text(text, 1.0)


# ---- batching ----

def make_loader(text: str, mode: str = "random", seed: int = 0, sequence_length: int = 16,
                batch_size: int = 4) -> tuple[TextDataLoader, CharacterTokenizer, torch.Tensor]:
    tokenizer = CharacterTokenizer(text)
    tokens = encode_tokens(text, tokenizer)
    return TextDataLoader(tokens, sequence_length, batch_size, mode, seed), tokenizer, tokens


def test_tokens_are_one_compact_tensor():
    tokens = encode_tokens("hello world", CharacterTokenizer("hello world"))
    assert tokens.dtype == torch.uint8 and tokens.dim() == 1 and len(tokens) == 11


@pytest.mark.parametrize("mode", ["random", "sequential"])
def test_an_epoch_is_about_one_pass(mode):
    text = random_text(5000)
    loader, _, _ = make_loader(text, mode)
    chars_per_epoch = len(loader) * loader.batch_size * loader.sequence_length
    assert len(text) - 2 * loader.batch_size * loader.sequence_length <= chars_per_epoch
    assert chars_per_epoch <= len(text)
    assert sum(1 for _ in loader) == len(loader)


def assert_windows_of(text, tokenizer, inputs, targets):
    """Each row is a window of the text, and its targets the same window one later."""
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    for row_in, row_target in zip(inputs, targets, strict=True):
        window = tokenizer.decode(row_in.tolist()) + tokenizer.decode(row_target[-1:].tolist())
        assert window in text


@pytest.mark.parametrize("mode", ["random", "sequential"])
def test_batches_are_windows_of_the_text_with_shifted_targets(mode):
    text = random_text(3000)
    loader, tokenizer, _ = make_loader(text, mode)
    for inputs, targets in loader:
        assert inputs.shape == targets.shape == (4, 16)
        assert inputs.dtype == targets.dtype == torch.int64
        assert inputs.is_contiguous() and targets.is_contiguous()
        assert_windows_of(text, tokenizer, inputs, targets)


def test_random_batches_reproduce_with_a_seed():
    text = random_text(3000)
    first = [b[0] for b in make_loader(text, seed=7)[0]]
    second = [b[0] for b in make_loader(text, seed=7)[0]]
    other = [b[0] for b in make_loader(text, seed=8)[0]]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def window_starts(loader, batches: int) -> list[int]:
    """The offsets in the text of the windows of the next `batches` batches (the text's
    every 8+ character window occurs once, so a window's first 8 ids place it)."""
    tokens = loader.tokens.tolist()
    where = {tuple(tokens[i:i + 8]): i for i in range(len(tokens) - 8)}
    return [where[tuple(row[:8].tolist())] for _ in range(batches)
            for row in loader.next_batch()[0]]


def test_a_random_pass_reads_every_window_once_in_random_order():
    text = random_text(5003)
    loader, _, _ = make_loader(text, "random", seed=1, sequence_length=16, batch_size=4)
    starts = window_starts(loader, len(loader))
    offset = starts[0] % 16
    assert {start % 16 for start in starts} == {offset}  # one cut of the text...
    assert len(set(starts)) == len(starts)  # ...each window at most once...
    every_window = set(range(offset, len(text) - 16, 16))
    assert len(every_window - set(starts)) < loader.batch_size  # ...all but a last few
    assert starts != sorted(starts)  # in random order
    # The next pass cuts the text again, most likely from another offset, in another order.
    following = window_starts(loader, len(loader))
    assert following != starts and len(set(following)) == len(following)


def test_random_passes_spread_reading_evenly_where_independent_draws_do_not():
    text = random_text(4099)
    loader, _, _ = make_loader(text, "random", seed=2, sequence_length=16, batch_size=4)
    batches = 3 * (len(loader) - 1)  # within three passes (a pass drops < a batch's windows)
    reads = torch.zeros(len(text))
    for start in window_starts(loader, batches):
        reads[start:start + 16] += 1
    inner = reads[16:-16]  # the ends are covered by fewer of the passes' cuts
    assert int(inner.min()) >= 2 and int(inner.max()) <= 3
    # Independent offsets, as before: after as many windows, some characters are unread.
    generator = torch.Generator().manual_seed(2)
    independent = torch.zeros(len(text))
    for start in torch.randint(0, len(text) - 16, (batches * 4,), generator=generator):
        independent[start:start + 16] += 1
    assert int(independent[16:-16].min()) == 0 and int(independent.max()) >= 7


@pytest.mark.parametrize("length", [17, 20, 50])
def test_a_text_with_fewer_windows_than_a_batch_still_fills_the_batch(length):
    text = random_text(length)
    loader, tokenizer, _ = make_loader(text, "random", sequence_length=16, batch_size=8)
    for _ in range(5):
        inputs, targets = loader.next_batch()
        assert inputs.shape == targets.shape == (8, 16)
        assert_windows_of(text, tokenizer, inputs, targets)


def test_a_new_window_length_cuts_a_new_pass():
    text = random_text(3000)
    loader, tokenizer, _ = make_loader(text, "random", sequence_length=16, batch_size=4)
    loader.next_batch()
    loader.sequence_length, loader._offsets = 32, torch.arange(32)
    inputs, targets = loader.next_batch()
    assert inputs.shape == (4, 32) and torch.equal(inputs[:, 1:], targets[:, :-1])
    assert all(tokenizer.decode(row.tolist()) in text for row in inputs)


def test_a_very_long_text_draws_windows_independently(monkeypatch):
    monkeypatch.setattr(data_module, "MAX_ORDERED_WINDOWS", 10)
    text = random_text(3000)
    loader, tokenizer, _ = make_loader(text, "random", sequence_length=16, batch_size=4)
    starts = window_starts(loader, 20)
    assert loader._order is None  # no order of the text's windows is kept
    assert len({start % 16 for start in starts}) > 1  # offsets are not on one cut


def test_a_loader_state_without_a_pass_order_still_loads():
    text = random_text(3000)
    loader, _, _ = make_loader(text, "random", seed=3)
    state = {"generator": torch.Generator().manual_seed(5).get_state(), "position": 0}
    loader.load_state_dict(state)  # as saved before passes were ordered
    other, _, _ = make_loader(text, "random", seed=5)
    assert torch.equal(loader.next_batch()[0], other.next_batch()[0])


def test_sequential_rows_continue_from_batch_to_batch():
    text = random_text(3000)
    loader, tokenizer, _ = make_loader(text, "sequential")
    batches = list(loader)
    assert len(batches) >= 3
    for row in range(loader.batch_size):
        stream = "".join(tokenizer.decode(inputs[row].tolist()) for inputs, _ in batches)
        assert stream in text  # row r of batch k+1 starts where row r of batch k ended
    # The next epoch starts the streams again from the beginning.
    assert torch.equal(next(iter(loader))[0], batches[0][0])


def test_loader_state_restores_the_batch_order():
    text = random_text(3000)
    loader, _, _ = make_loader(text, "random", seed=3)
    loader.next_batch()
    state = loader.state_dict()
    expected = [loader.next_batch()[0] for _ in range(3)]
    loader.load_state_dict(state)
    assert all(torch.equal(loader.next_batch()[0], e) for e in expected)


def test_loader_never_copies_the_token_tensor():
    text = random_text(20_000)
    loader, _, tokens = make_loader(text, sequence_length=50, batch_size=8)
    # The loader holds the very same storage, not a list of windows.
    assert loader.tokens.untyped_storage().data_ptr() == tokens.untyped_storage().data_ptr()
    assert loader.tokens.dtype == torch.uint8
    big_attributes = [name for name, value in vars(loader).items()
                      if isinstance(value, torch.Tensor) and value is not tokens
                      and value.numel() > 1000]
    assert big_attributes == []
    assert not any(isinstance(value, list) for value in vars(loader).values())


def test_sequential_loader_refuses_streams_shorter_than_one_window():
    text = random_text(900)
    tokens = encode_tokens(text, CharacterTokenizer(text))
    with pytest.raises(CorpusError, match="batch size of at most 8"):
        TextDataLoader(tokens, 100, 32, "sequential")
    loader = TextDataLoader(tokens, 100, 8, "sequential")  # 8 streams of 112: fits
    assert next(iter(loader))[0].shape == (8, 100)
    loader.batch_size = 32  # as train(batch_size=32) does
    with pytest.raises(CorpusError, match="batch size of at most 8"):
        loader.next_batch()


def test_loader_refuses_text_shorter_than_one_window():
    tokenizer = CharacterTokenizer("abcdef")
    with pytest.raises(CorpusError, match="sequence_length=10"):
        TextDataLoader(encode_tokens("abcdef", tokenizer), 10, 2)
    with pytest.raises(ValueError):
        TextDataLoader(encode_tokens("abcdef", tokenizer), 2, 2, mode="shuffled")


# ---- built-in sample corpora ----

@pytest.mark.parametrize("name", SAMPLE_CORPORA)
def test_sample_corpora_are_plausible(name):
    corpus = sample_corpus(name)
    assert corpus.source == name
    assert 100_000 < len(corpus.text) <= 2_000_000
    assert 30 < len(set(corpus.text)) < 200
    assert corpus.size_bytes >= len(corpus.text)


def test_unknown_sample_corpus_name():
    with pytest.raises(CorpusError, match="Python documentation"):
        sample_corpus("Shakespeare")


def test_reference_losses_of_a_known_text():
    # "aab": p(a) = 2/3, p(b) = 1/3; a uniform guess over two characters scores ln 2
    stats = corpus_stats("aab" * 10)
    assert stats.uniform_loss() == pytest.approx(math.log(2))
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert stats.unigram_entropy() == pytest.approx(expected)
    assert stats.unigram_entropy() < stats.uniform_loss()
    # one character repeated: nothing to guess
    assert corpus_stats("zzzz").unigram_entropy() == pytest.approx(0.0)
