"""Tests for checkpoints: round trip, atomic writes, and refusing damaged or hostile files."""

import errno
import io
import os
import subprocess
import sys
import time
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
from microlm import checkpoint as checkpoint_module
from microlm.checkpoint import (
    STALE_TEMPORARY_S,
    CheckpointSaveError,
    check_output,
    check_room,
    may_replace,
    output_lock,
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


def test_a_symlink_loop_is_named_as_one(tmp_path):
    loop = tmp_path / "loop.pt"
    loop.symlink_to(tmp_path / "other.pt")
    (tmp_path / "other.pt").symlink_to(loop)
    with pytest.raises(CheckpointError, match="symlink loop"):
        load_model(loop)
    with pytest.raises(CheckpointError, match="symlink loop"):
        check_output(loop)


def test_only_a_checkpoint_or_nothing_may_be_replaced(tmp_path, trained):
    model, tokenizer = trained
    saved = save_model(tmp_path / "model.pt", model, tokenizer)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    empty = tmp_path / "empty.pt"
    empty.touch()
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    dangling = tmp_path / "dangling.pt"
    dangling.symlink_to(tmp_path / "not-yet.pt")
    assert may_replace(saved) and may_replace(tmp_path / "new.pt") and may_replace(dangling)
    assert not any(may_replace(p) for p in (notes, empty, foreign, tmp_path))
    with pytest.raises(CheckpointError, match="notes.txt exists and is not a MicroLM checkpoint"):
        check_output(notes)
    assert notes.read_text() == "my notes\n"
    check_output(saved)  # an older checkpoint may be replaced


def test_the_text_trained_on_is_never_an_output(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("some text\n")
    link = tmp_path / "link.txt"
    link.symlink_to(text)
    for output in (text, link, tmp_path / "sub" / ".." / "corpus.txt"):
        with pytest.raises(CheckpointError, match="is the text being trained on"):
            check_output(output, keep=[text])


def test_an_unwritable_folder_is_found_before_a_save(tmp_path, monkeypatch):
    # Simulated: as root, a read-only permission does not stop writing.
    def no_permission(target):
        raise PermissionError(errno.EACCES, "Permission denied",
                              str(target.parent / f".{target.name}.abcd1234.tmp"))

    monkeypatch.setattr(checkpoint_module, "_create_temporary", no_permission)
    with pytest.raises(CheckpointError) as caught:
        check_output(tmp_path / "model.pt")
    assert str(caught.value) == (f"Cannot save the model to {tmp_path / 'model.pt'}: no "
                                 f"permission to write in {tmp_path}. Choose another place.")


def test_a_disk_without_room_for_the_checkpoint_is_found_before_a_save(tmp_path):
    needs = r"iB free and the checkpoint needs about [0-9,.]+ GiB\."
    with pytest.raises(CheckpointError, match=needs):
        check_room(tmp_path / "model.pt", 10**18)
    check_room(tmp_path / "model.pt", 1000)
    check_output(tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []  # the test file is gone


class FullDisk(io.RawIOBase):
    """A file on a disk that fills up after 1,000 bytes."""

    def __init__(self):
        self.written = 0

    def writable(self):
        return True

    def write(self, data):
        self.written += len(data)
        if self.written > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)


def test_a_full_disk_is_said_in_plain_words(tmp_path, trained, monkeypatch):
    model, tokenizer = trained
    real_save = torch.save
    # torch.save reports the failed write as "[enforce fail at inline_container.cc] ...
    # unexpected pos ..."
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, FullDisk()))
    path = tmp_path / "model.pt"
    with pytest.raises(CheckpointSaveError) as caught:
        save_model(path, model, tokenizer)
    assert str(caught.value) == f"Could not save the model to {path}: the disk is full."
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_no_permission_is_said_in_plain_words_without_the_temporary_file(tmp_path, trained,
                                                                        monkeypatch):
    model, tokenizer = trained

    def refuse(obj, f):
        raise PermissionError(errno.EACCES, "Permission denied",
                              str(tmp_path / ".model.pt.abcd1234.tmp"))

    monkeypatch.setattr(torch, "save", refuse)
    with pytest.raises(OSError) as caught:
        save_model(tmp_path / "model.pt", model, tokenizer)
    message = str(caught.value)
    assert message == (f"Could not save the model to {tmp_path / 'model.pt'}: no permission "
                       f"to write in {tmp_path}.")


def test_temporary_files_of_killed_saves_are_removed_on_the_next_save(tmp_path, trained):
    model, tokenizer = trained
    long_ago = time.time() - STALE_TEMPORARY_S - 60
    stale = tmp_path / ".model.pt.k3x9_a0q.tmp"  # a save killed long ago
    recent = tmp_path / ".model.pt.abcdef12.tmp"  # a save that may still be writing
    other = tmp_path / ".other.pt.abcdef12.tmp"  # another file's
    not_ours = tmp_path / ".model.pt.backup.tmp"  # not our naming
    for path in (stale, recent, other, not_ours):
        path.write_bytes(b"partial")
    for path in (stale, other, not_ours):
        os.utime(path, (long_ago, long_ago))
    save_model(tmp_path / "model.pt", model, tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.pt", recent.name, other.name, not_ours.name])


def test_a_saved_file_has_the_umask_permissions_or_those_it_replaces(tmp_path, trained):
    model, tokenizer = trained
    path = tmp_path / "model.pt"
    previous = os.umask(0o027)
    try:
        save_model(path, model, tokenizer)
        assert path.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, not 0o600
        path.chmod(0o604)
        save_model(path, model, tokenizer, step=2)
        assert path.stat().st_mode & 0o777 == 0o604
    finally:
        os.umask(previous)


def test_saving_through_a_symlink_replaces_the_file_it_points_to(tmp_path, trained):
    model, tokenizer = trained
    real = tmp_path / "runs" / "model.pt"
    real.parent.mkdir()
    save_model(real, model, tokenizer, step=1)
    link = tmp_path / "latest.pt"
    link.symlink_to(real)
    save_model(link, model, tokenizer, step=2)
    assert link.is_symlink() and link.resolve() == real
    assert load_model(real)[2]["step"] == 2
    assert sorted(p.name for p in real.parent.iterdir()) == ["model.pt"]


def test_a_second_run_saving_to_the_same_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    lock = tmp_path / ".model.pt.lock"
    with output_lock(path):
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(CheckpointError, match=f"Another training run \\(process "
                                                  f"{os.getpid()}\\) is saving to"):
            with output_lock(path):
                pass
    assert not lock.exists()


def test_the_lock_of_a_run_that_was_killed_is_taken_over(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    lock = tmp_path / ".model.pt.lock"
    lock.write_text(f"{ended.pid}\n")
    with output_lock(tmp_path / "model.pt"):
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock.exists()


def test_samples_and_runs_of_the_history_survive_a_checkpoint(tmp_path):
    from microlm import ModelTrainer, TrainingConfig

    text = TEXT * 20
    tokenizer = CharacterTokenizer(text)
    torch.manual_seed(0)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=1)
    trainer = ModelTrainer(model, tokenizer, device="cpu", config=TrainingConfig(
        epochs=1, batch_size=4, sequence_length=16, sample_interval=4, sample_length=10,
        eval_interval=4, eval_chars=200))
    trainer.prepare_data(text)
    trainer.train()
    trainer.save_checkpoint(tmp_path / "with_history.pt")
    # weights_only loading: samples and runs are plain lists, dicts, numbers and strings
    _, _, metadata = load_model(tmp_path / "with_history.pt")
    history = metadata["history"]
    assert history["samples"] == trainer.history["samples"] and len(history["samples"]) >= 2
    assert history["runs"] == trainer.history["runs"]
    assert history["runs"][0]["end_step"] == trainer.step
    assert history["runs"][0]["model_config"] == model.config.to_dict()


def test_an_older_checkpoint_without_samples_or_runs_continues_with_them_empty(tmp_path):
    from microlm import ModelTrainer

    golden = Path(__file__).parent / "data" / "golden_model.pt"
    assert "samples" not in load_model(golden)[2]["history"]
    trainer = ModelTrainer.from_checkpoint(golden)
    assert trainer.history["samples"] == [] and trainer.history["runs"] == []
