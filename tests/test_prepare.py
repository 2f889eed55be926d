"""`microlm prepare` and training from a prepared folder: the streaming encoder, its errors
naming byte offsets, the memory-mapped corpus, and the same model as from the text."""

import json

import numpy as np
import pytest
import torch

from microlm import CharacterTokenizer, CorpusError, cli, load_model, read_corpus, split_text
from microlm.prepared import (
    META_FILE,
    TRAIN_FILE,
    VAL_FILE,
    is_prepared,
    load_prepared,
    prepare_corpus,
)

TINY = ["--embedding-dim", "8", "--hidden-dim", "16", "--num-layers", "1", "--dropout", "0",
        "--sequence-length", "16", "--batch-size", "8", "--epochs", "1", "--seed", "5"]
PROSE = "".join(("the quick brown fox jumps over the lazy dog. ", "a stitch in time saves nine.\n",
                 "Ünïcödé: naïve café, Grüße — ✓ 😀 日本語\n")[i % 3] for i in range(120))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def prepared_equals_tokenizer(folder, text, val_fraction=0.1):
    corpus = load_prepared(folder)
    tokenizer = CharacterTokenizer(text)
    train, val = split_text(text, val_fraction)
    assert corpus.tokenizer.chars == tokenizer.chars  # the same ids as training from the text
    assert corpus.train_tokens.tolist() == tokenizer.encode(train)
    assert corpus.val_tokens.tolist() == tokenizer.encode(val)


@pytest.mark.parametrize("chunk_bytes", [5, 64, 1 << 20])
def test_prepared_tokens_are_the_tokenizers_ids_of_the_split_text(tmp_path, chunk_bytes):
    # Chunks of 5 and 64 bytes cut multi-byte characters (é, ✓, 😀) across chunk borders.
    path = tmp_path / "prose.txt"
    path.write_text(PROSE, encoding="utf-8")
    result = prepare_corpus(path, tmp_path / "out", 0.1, chunk_bytes=chunk_bytes)
    assert (result.characters, result.train_characters) == (len(PROSE),
                                                            len(split_text(PROSE, 0.1)[0]))
    assert result.vocab_size == len(set(PROSE))
    prepared_equals_tokenizer(tmp_path / "out", PROSE)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [TRAIN_FILE, VAL_FILE,
                                                                   META_FILE]


def test_a_vocabulary_beyond_256_characters_is_stored_as_int16(tmp_path):
    text = "ascii first " * 50 + "".join(chr(0x4E00 + i) for i in range(300)) + " end" * 20
    path = tmp_path / "cjk.txt"
    path.write_text(text, encoding="utf-8")
    prepare_corpus(path, tmp_path / "out", 0.2, chunk_bytes=100)
    assert json.loads((tmp_path / "out" / META_FILE).read_text())["dtype"] == "int16"
    assert load_prepared(tmp_path / "out").train_tokens.dtype == torch.int16
    prepared_equals_tokenizer(tmp_path / "out", text, 0.2)


def test_a_utf8_bom_is_not_a_character(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"hello there, world" * 10)
    prepare_corpus(path, tmp_path / "out", 0.0)
    corpus = load_prepared(tmp_path / "out")
    assert "\ufeff" not in corpus.tokenizer.chars
    assert corpus.tokenizer.decode(corpus.train_tokens.tolist()[:5]) == "hello"
    assert corpus.val_tokens is None  # val_fraction 0: nothing held out


@pytest.mark.parametrize("data, chunk_bytes, offset", [
    (b"a" * 1000 + b"\xff" + b"b" * 100, 1 << 20, "1,000"),  # a byte no UTF-8 text has
    (b"a" * 100 + b"\xc3" + b"bbb" * 50, 64, "100"),  # a character cut short, mid-file
    (b"a" * 100 + "é".encode() + b"z" * 50 + b"\xe2\x9c", 101, "152"),  # cut at the very end
])
def test_invalid_utf8_names_its_byte_offset(tmp_path, data, chunk_bytes, offset):
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError, match=f"not valid UTF-8 at byte offset {offset}\\b"):
        prepare_corpus(path, tmp_path / "out", chunk_bytes=chunk_bytes)


def test_a_binary_region_names_its_byte_offset(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"text " * 30000 + b"\x00\x01\x02" * 100)
    with pytest.raises(CorpusError, match="binary from about byte offset 150,000 "):
        prepare_corpus(path, tmp_path / "out", chunk_bytes=65536)
    dense = tmp_path / "dense.txt"
    dense.write_bytes(b"a" * 65536 * 2 + bytes(range(1, 9)) * 10000 + b"a" * 1000)
    with pytest.raises(CorpusError, match="binary from about byte offset 131,072 "):
        prepare_corpus(dense, tmp_path / "out", chunk_bytes=1000)  # a window over 80 chunks


@pytest.mark.parametrize("chunk_bytes", [7, 1 << 20])
def test_stray_control_characters_are_removed_and_reported(tmp_path, chunk_bytes):
    text = PROSE * 40  # more than 64 KiB
    data = text.encode()
    path = tmp_path / "escapes.txt"
    path.write_bytes(b"\x1b[1m" + data[:70_000] + b"\x00" + data[70_000:] + b"\x1b")
    result = prepare_corpus(path, tmp_path / "out", chunk_bytes=chunk_bytes)
    clean = "[1m" + text
    prepared_equals_tokenizer(tmp_path / "out", clean)
    assert "\x00" not in load_prepared(tmp_path / "out").tokenizer.chars
    assert result.warnings == ("Removed control characters that are not text (the model would "
                               "learn to write them): 1 NUL (U+0000) at byte offset 70,004; "
                               "2 ESC (U+001B) the first at byte offset 0.",)


@pytest.mark.parametrize("ending, kind", [("\r\n", "Windows (CRLF)"), ("\r", "old Mac (CR)")])
@pytest.mark.parametrize("chunk_bytes", [2, 3, 64, 1 << 20])
def test_line_endings_become_plain_line_breaks(tmp_path, ending, kind, chunk_bytes):
    # Chunks of 2 and 3 bytes split "\r\n" pairs and multi-byte characters between chunks.
    path = tmp_path / "lines.txt"
    path.write_bytes(PROSE.replace("\n", ending).encode())
    result = prepare_corpus(path, tmp_path / "out", 0.1, chunk_bytes=chunk_bytes)
    prepared_equals_tokenizer(tmp_path / "out", PROSE)
    assert result.line_endings_converted == kind
    assert "converted to plain line breaks" in result.warnings[0]


def test_a_pair_split_between_chunks_gives_one_line_break(tmp_path):
    path = tmp_path / "split.txt"
    path.write_bytes(b"abcd\r\nefgh\r\r\nij\n\rk")  # the first chunk of 5 ends in "\r"
    result = prepare_corpus(path, tmp_path / "out", 0.0, chunk_bytes=5)
    corpus = load_prepared(tmp_path / "out")
    assert corpus.tokenizer.decode(corpus.train_tokens.tolist()) == "abcd\nefgh\n\nij\n\nk"
    assert result.line_endings_converted == "mixed"


@pytest.mark.parametrize("tricky", [b"abcd\r\x00\nefgh", b"abcd\x00\r\nefgh", b"\r\n\r\r\x1b\n",
                                    b"caf\xc3\xa9\r\r\n\x07\r"])
def test_a_prepared_text_is_the_text_read_corpus_reads(tmp_path, tricky):
    path = tmp_path / "tricky.txt"
    path.write_bytes(tricky + b" more text" * 100)
    prepare_corpus(path, tmp_path / "out", 0.0, chunk_bytes=5)  # chunks split the pairs
    corpus = load_prepared(tmp_path / "out")
    assert corpus.tokenizer.decode(corpus.train_tokens.tolist()) == read_corpus(path).text


def test_symlink_loops_are_named_as_such(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("some text to prepare " * 50, encoding="utf-8")
    loop, back = tmp_path / "loop", tmp_path / "back"
    loop.symlink_to(back)
    back.symlink_to(loop)
    for call in (lambda: prepare_corpus(loop, tmp_path / "out"),
                 lambda: prepare_corpus(text, loop),
                 lambda: load_prepared(loop)):
        with pytest.raises(CorpusError, match="loop is a symbolic link that points to itself "
                                              "in a loop"):
            call()


@pytest.mark.parametrize("data, message", [(b"", "is empty"), (b" \n\t \n", "only whitespace"),
                                           (b"\xff\xfeh\x00i\x00", "UTF-16")])
def test_empty_blank_and_utf16_files_are_refused(tmp_path, data, message):
    path = tmp_path / "odd.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError, match=message):
        prepare_corpus(path, tmp_path / "out")


def test_a_failed_prepare_leaves_the_previous_result_untouched_and_no_temporary_files(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("good text " * 100, encoding="utf-8")
    bad.write_bytes(b"other text " * 100 + b"\xff")
    prepare_corpus(good, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(CorpusError):
        prepare_corpus(bad, tmp_path / "out")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    with pytest.raises(CorpusError):
        prepare_corpus(bad, tmp_path / "fresh")
    assert not is_prepared(tmp_path / "fresh")
    assert list((tmp_path / "fresh").iterdir()) == []


def test_an_incomplete_folder_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("some text to prepare " * 50, encoding="utf-8")
    prepare_corpus(path, tmp_path / "out")
    train = tmp_path / "out" / TRAIN_FILE
    train.write_bytes(train.read_bytes()[:-3])
    with pytest.raises(CorpusError, match="wrong size.*Prepare the corpus again"):
        load_prepared(tmp_path / "out")
    with pytest.raises(CorpusError, match="not a prepared corpus"):
        load_prepared(tmp_path)


def test_training_tokens_are_memory_mapped_not_loaded(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(PROSE, encoding="utf-8")
    prepare_corpus(path, tmp_path / "out")
    tokens = load_prepared(tmp_path / "out").train_tokens
    mapped = np.memmap(tmp_path / "out" / TRAIN_FILE, dtype=np.uint8, mode="r")
    assert tokens.tolist() == mapped.tolist()
    # The tensor's memory is the file's mapping: a change to the file shows through.
    with open(tmp_path / "out" / TRAIN_FILE, "r+b") as f:
        f.write(bytes([tokens[1].item()]))
    assert tokens[0].item() == tokens[1].item()


def test_cli_prepare_then_train_gives_the_same_model_as_training_from_the_text(tmp_path,
                                                                               capsys):
    path = tmp_path / "prose.txt"
    path.write_text(PROSE * 3, encoding="utf-8")
    assert cli.main(["prepare", str(path), "--output", str(tmp_path / "prepared")]) == 0
    out, err = capsys.readouterr()
    assert "Prepared" in out and "100%" in err and "MiB/s" in err
    assert cli.main(["train", str(tmp_path / "prepared"), *TINY, "-o",
                     str(tmp_path / "from_folder.pt")]) == 0
    assert cli.main(["train", str(path), *TINY, "-o", str(tmp_path / "from_text.pt")]) == 0
    folder_model, folder_tokenizer, folder_meta = load_model(tmp_path / "from_folder.pt")
    text_model, text_tokenizer, text_meta = load_model(tmp_path / "from_text.pt")
    assert folder_tokenizer == text_tokenizer
    assert folder_meta["history"]["step_losses"] == text_meta["history"]["step_losses"]
    for name, weight in text_model.state_dict().items():
        assert torch.equal(folder_model.state_dict()[name], weight), name
    # and it generates like any other checkpoint
    assert cli.main(["generate", str(tmp_path / "from_folder.pt"), "--length", "20",
                     "--seed", "1"]) == 0


def test_cli_resume_from_a_prepared_folder_continues_the_run(tmp_path):
    path = tmp_path / "prose.txt"
    path.write_text(PROSE * 3, encoding="utf-8")
    assert cli.main(["prepare", str(path), "--output", str(tmp_path / "prepared")]) == 0
    model = tmp_path / "m.pt"
    assert cli.main(["train", str(tmp_path / "prepared"), *TINY, "-o", str(model)]) == 0
    steps = load_model(model)[2]["step"]
    assert cli.main(["train", str(tmp_path / "prepared"), "--resume", str(model),
                     "--epochs", "2"]) == 0
    assert load_model(model)[2]["step"] == 3 * steps  # a finished run: 2 more epochs


def test_cli_prepare_reports_a_bad_file_as_one_error_line(tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine text\n" * 10 + b"\x00\x00")
    assert cli.main(["prepare", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "byte offset 100" in err


def test_cli_train_on_a_folder_that_is_not_prepared_says_how_to_prepare(tmp_path, capsys):
    assert cli.main(["train", str(tmp_path), *TINY]) == 2
    assert "microlm prepare FILE --output" in capsys.readouterr().err
