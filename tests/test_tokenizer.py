"""Tests for CharacterTokenizer: vocabulary, round trips, unknown characters, compact arrays."""

import numpy as np
import pytest

from microlm import CharacterTokenizer, UnknownCharacterError


def test_vocabulary_is_sorted_and_independent_of_character_order():
    first = CharacterTokenizer("banana split")
    second = CharacterTokenizer("split banana")
    assert first.chars == sorted(set("banana split"))
    assert first.get_vocab() == second.get_vocab()
    assert first.get_vocab() == {" ": 0, "a": 1, "b": 2, "i": 3, "l": 4, "n": 5, "p": 6,
                                 "s": 7, "t": 8}


def test_seed_readme_example_has_these_true_ids():
    # The seed README printed [7, 4, 11, 11, 14]; the sorted vocabulary of
    # "Hello world!" is " !Hdelorw", so the true ids are these.
    tokenizer = CharacterTokenizer("Hello world!")
    assert tokenizer.encode("Hello") == [2, 4, 5, 5, 6]
    assert tokenizer.decode([2, 4, 5, 5, 6]) == "Hello"
    assert tokenizer.vocab_size() == 9


@pytest.mark.parametrize("text", [
    "plain ascii text.",
    "Grüße aus Köln — naïve café",
    "two\nlines\r\nand\ttabs",
    "emoji 🙂🚀 and CJK 漢字",
])
def test_encode_decode_round_trip(text):
    tokenizer = CharacterTokenizer(text)
    ids = tokenizer.encode(text)
    assert len(ids) == len(text)
    assert all(0 <= i < tokenizer.vocab_size() for i in ids)
    assert tokenizer.decode(ids) == text


def test_vocab_size_and_get_vocab_agree():
    tokenizer = CharacterTokenizer("hello 🙂")
    vocab = tokenizer.get_vocab()
    assert tokenizer.vocab_size() == len(vocab) == len(tokenizer) == 6
    assert sorted(vocab.values()) == list(range(6))
    vocab["x"] = 99  # a copy: changing it must not change the tokenizer
    assert "x" not in tokenizer.get_vocab()


def test_to_dict_from_dict_keeps_the_stored_order():
    # A stored vocabulary in a non-sorted order must keep its ids (they index embedding rows).
    restored = CharacterTokenizer.from_dict({"chars": ["z", "a", "m"]})
    assert restored.encode("azm") == [1, 0, 2]
    tokenizer = CharacterTokenizer("the quick brown fox")
    again = CharacterTokenizer.from_dict(tokenizer.to_dict())
    assert again == tokenizer
    assert again.encode("quick fox") == tokenizer.encode("quick fox")


@pytest.mark.parametrize("bad", [{}, {"chars": []}, {"chars": ["ab"]}, {"chars": ["a", "a"]},
                                 {"chars": "abc"}])
def test_from_dict_rejects_broken_vocabularies(bad):
    with pytest.raises(ValueError):
        CharacterTokenizer.from_dict(bad)


def test_unknown_characters_error_names_them():
    tokenizer = CharacterTokenizer("abc ")
    with pytest.raises(UnknownCharacterError) as info:
        tokenizer.encode("a zebra!")
    assert info.value.characters == ["z", "e", "r", "!"]
    assert "'z'" in str(info.value) and "'!'" in str(info.value)
    assert "on_unknown" in str(info.value)  # says how to get past it


def test_unknown_characters_drop_and_replace():
    tokenizer = CharacterTokenizer("abc ")
    assert tokenizer.decode(tokenizer.encode("a zebra", on_unknown="drop")) == "a ba"
    assert tokenizer.decode(tokenizer.encode("a zebra", on_unknown="replace")) == "a   b a"
    assert tokenizer.decode(tokenizer.encode("axb", on_unknown="replace",
                                             replacement="c")) == "acb"
    with pytest.raises(ValueError):
        tokenizer.encode("axb", on_unknown="replace", replacement="q")
    with pytest.raises(ValueError):
        tokenizer.encode("axb", on_unknown="ignore")


def test_empty_text_cannot_build_a_vocabulary():
    with pytest.raises(ValueError):
        CharacterTokenizer("")


def test_encode_array_equals_encode_and_uses_a_compact_type():
    text = "Hello, world!\nGrüße 🙂" * 50
    tokenizer = CharacterTokenizer(text)
    array = tokenizer.encode_array(text, chunk_chars=37)  # chunk edges fall mid-text
    assert array.dtype == np.uint8
    assert array.tolist() == tokenizer.encode(text)

    wide_text = "".join(chr(0x4E00 + i) for i in range(300))  # 300 distinct characters
    wide = CharacterTokenizer(wide_text)
    wide_array = wide.encode_array(wide_text[::-1])
    assert wide_array.dtype == np.int16
    assert wide_array.tolist() == wide.encode(wide_text[::-1])


def test_encode_array_takes_a_lone_surrogate_like_encode():
    text = "a\ud800b"  # not valid Unicode text, but a Python string a user can paste
    tokenizer = CharacterTokenizer(text)
    assert tokenizer.encode_array(text).tolist() == tokenizer.encode(text) == [0, 2, 1]


def test_encode_array_names_unknown_characters():
    tokenizer = CharacterTokenizer("abc")
    with pytest.raises(UnknownCharacterError) as info:
        tokenizer.encode_array("abz" + chr(0x10FFFF))
    assert info.value.characters == ["z", chr(0x10FFFF)]
