"""Tests for checkpoints: round trip, atomic writes, and refusing damaged or hostile files."""

import os
from pathlib import Path

import pytest
import torch

import microlm
from microlm import (
    CharacterTokenizer,
    CheckpointError,
    MicroLM,
    TextGenerator,
    load_model,
    save_model,
)

TEXT = "one file holds weights, vocabulary and history.\n"


@pytest.fixture
def trained(tmp_path):
    tokenizer = CharacterTokenizer(TEXT)
    torch.manual_seed(1)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=2,
                    dropout=0.1)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
    return model, tokenizer


def test_round_trip_keeps_weights_tokenizer_config_and_metadata(tmp_path, trained):
    model, tokenizer = trained
    path = tmp_path / "sub" / "model.pt"
    history = {"step_losses": [3.2, 2.9], "val_losses": [[2, 3.0]]}
    returned = save_model(path, model, tokenizer, history=history, step=2, note="é🙂",
                          best_val_loss=None)
    assert returned == path and path.is_file()

    loaded, loaded_tokenizer, metadata = load_model(path)
    assert loaded.config == model.config
    assert loaded_tokenizer == tokenizer
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    assert metadata["history"] == history
    assert metadata["step"] == 2 and metadata["note"] == "é🙂" and metadata["best_val_loss"] is None
    assert metadata["format_version"] == 1
    assert not loaded.training  # ready to generate

    model.eval()
    prompt = "one "
    before = TextGenerator(model, tokenizer).generate(prompt, 60, temperature=0.9, seed=4)
    after = TextGenerator(loaded, loaded_tokenizer).generate(prompt, 60, temperature=0.9, seed=4)
    assert after == before


def test_exported_at_the_top_level():
    assert microlm.save_model is save_model and microlm.load_model is load_model


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, trained, monkeypatch):
    model, tokenizer = trained
    path = tmp_path / "model.pt"
    save_model(path, model, tokenizer, step=1)
    good_bytes = path.read_bytes()

    def save_half_then_fail(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space"):
        save_model(path, model, tokenizer, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == good_bytes
    assert load_model(path)[2]["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temp file left


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="folder"):
        load_model(tmp_path)


def test_truncated_file(tmp_path, trained):
    model, tokenizer = trained
    path = tmp_path / "model.pt"
    save_model(path, model, tokenizer)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_model(path)


def test_a_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("just some notes\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="damaged or is not a PyTorch file"):
        load_model(path)


@pytest.mark.parametrize("foreign", ["plain dict", "bare state_dict", "list"])
def test_foreign_pytorch_files(tmp_path, trained, foreign):
    model, _ = trained
    content = {"plain dict": {"weights": torch.zeros(3), "epoch": 4},
               "bare state_dict": model.state_dict(),
               "list": [1, 2, 3]}[foreign]
    path = tmp_path / "foreign.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="not a MicroLM checkpoint"):
        load_model(path)


def test_newer_format_and_inconsistent_content(tmp_path, trained):
    model, tokenizer = trained
    path = tmp_path / "model.pt"
    save_model(path, model, tokenizer)
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "format_version": 99}, path)
    with pytest.raises(CheckpointError, match="format 99"):
        load_model(path)
    broken = {**payload, "model_config": {**payload["model_config"], "hidden_dim": 32}}
    torch.save(broken, path)
    with pytest.raises(CheckpointError, match="consistent"):
        load_model(path)
    torch.save({k: v for k, v in payload.items() if k != "tokenizer"}, path)
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_model(path)


class Payload:
    """Unpickling this would run a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("wrap", ["bare", "inside a checkpoint"])
def test_malicious_pickle_never_runs(tmp_path, trained, monkeypatch, wrap):
    model, tokenizer = trained
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    evil = Payload(f"touch {marker}")
    path = tmp_path / "evil.pt"
    if wrap == "bare":
        torch.save(evil, path)
    else:
        save_model(path, model, tokenizer)
        payload = torch.load(path, weights_only=True)
        payload["metadata"]["history"] = evil
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match="none of its code ran"):
        load_model(path)
    assert not marker.exists()
    assert not Path("MARKER").exists()


@pytest.mark.parametrize("bad", [object(), {"when": Path("x")}, {1.5: "float key"},
                                 [lambda: None]])
def test_non_plain_metadata_is_refused_at_save(tmp_path, trained, bad):
    model, tokenizer = trained
    path = tmp_path / "model.pt"
    with pytest.raises(CheckpointError):
        save_model(path, model, tokenizer, history=bad)
    assert list(tmp_path.iterdir()) == []


def test_model_and_tokenizer_that_do_not_belong_together(tmp_path):
    model = MicroLM(vocab_size=3, embedding_dim=4, hidden_dim=4, num_layers=1)
    with pytest.raises(CheckpointError, match="belong"):
        save_model(tmp_path / "m.pt", model, CharacterTokenizer("abcdef"))
