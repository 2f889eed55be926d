"""Save and load a trained model with its tokenizer, config and history, in one safe file."""

from __future__ import annotations

import errno
import os
import pickle
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil
import torch

from .model import MicroLM, ModelConfig
from .tokenizer import CharacterTokenizer
from .units import format_bytes

FORMAT_NAME = "microlm-checkpoint"
FORMAT_VERSION = 1


# A temporary file of a save older than this was left by a save that was killed: a save in
# progress writes to its file all along, so its modification time stays recent.
STALE_TEMPORARY_S = 600


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or loaded; the message says why and what to do."""


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed (a full disk, no permission); the message says why in
    plain words and names the destination, never the temporary file."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def save_model(path: str | os.PathLike, model: MicroLM, tokenizer: CharacterTokenizer,
               **metadata: Any) -> Path:
    """Write model weights, config, vocabulary and `metadata` to one file, atomically.

    The file is written next to its destination and renamed over it, so a crash or a
    full disk never leaves half a checkpoint in place of a good one; the temporary files
    of saves killed long ago are removed. A symbolic link is written through (the file
    it points to is replaced), and the new file has the permissions of the one it
    replaces, or those the umask gives. A failed write raises CheckpointSaveError.
    Metadata must be plain values (numbers, strings, lists, dicts, tensors), which is
    what lets load_model use torch.load(weights_only=True).
    """
    path = Path(path)
    if model.vocab_size < tokenizer.vocab_size():
        raise CheckpointError(f"The model has {model.vocab_size} output characters but the "
                              f"tokenizer has {tokenizer.vocab_size()}; they do not belong "
                              f"together.")
    training_state = metadata.pop("training_state", None)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "tokenizer": tokenizer.to_dict(),
        "metadata": metadata,
    }
    if training_state is not None:
        payload["training_state"] = training_state
    _check_plain(payload, "checkpoint")
    target = _real_file(path)  # through a symbolic link: the file it points to is replaced
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(target)
        try:  # a file replaced keeps its permissions; a new one gets the umask's
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = None
        fd, tmp_name = _create_temporary(target)
    except OSError as err:
        raise _save_error(path, target.parent, err) from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException as err:
        with suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(err, (OSError, RuntimeError)):  # torch reports a short write as
            raise _save_error(path, target.parent, err) from None  # a RuntimeError
        raise
    return path


def may_replace(path: str | os.PathLike) -> bool:
    """True when saving a checkpoint to `path` destroys nothing but an older checkpoint:
    nothing is there (or a link to nothing), or a file saved by save_model.

    Cheap for a large checkpoint: its tensors are memory-mapped, not read.
    """
    path = Path(path)
    if _link_problem(path):
        return False
    target = Path(os.path.realpath(path))  # the file a save would replace
    if not target.exists():
        return True
    if not target.is_file():
        return False
    try:
        payload = torch.load(target, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip written by torch.save, or not plain values
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT_NAME


def check_output(path: str | os.PathLike, keep: Iterable[str | os.PathLike] = ()) -> None:
    """Raise CheckpointError unless a checkpoint can be saved to `path`, before a run
    spends its time: it replaces neither a file of `keep` (the text trained on) nor any
    file that is not a MicroLM checkpoint, and its folder takes a new file."""
    path = Path(path)
    target = _real_file(path)
    for kept in keep:
        if target.exists() and Path(kept).exists() and os.path.samefile(target, kept):
            raise CheckpointError(f"{path} is the text being trained on; saving the model "
                                  f"there would replace it. Choose another file to save to.")
    if not may_replace(path):
        raise CheckpointError(f"{path} exists and is not a MicroLM checkpoint, so it was left "
                              f"as it is. Choose another file to save the model to.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = _create_temporary(target)
        os.close(fd)
        os.unlink(tmp_name)
    except OSError as err:
        raise CheckpointError(f"Cannot save the model to {path}: "
                              f"{_reason(err, target.parent)}. Choose another place.") from None


def check_room(path: str | os.PathLike, size_bytes: int) -> None:
    """Raise CheckpointError unless the disk that `path` is saved to has `size_bytes` free."""
    try:
        free = shutil.disk_usage(_real_file(Path(path)).parent).free
    except OSError:  # not known here: the save itself will say
        return
    if free < size_bytes:
        raise CheckpointError(f"Cannot save the model to {path}: the disk has {format_bytes(free)} "
                              f"free and the checkpoint needs about {format_bytes(size_bytes)}. "
                              f"Free some space or choose another place.")


def resumable_size(model: MicroLM) -> int:
    """About how many bytes a checkpoint that resumes training takes: the weights five
    times in float32 (best, latest, AdamW's two moments, their moving average)."""
    return 5 * 4 * sum(p.numel() for p in model.parameters())


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold `.NAME.lock` beside `path`, with this process's id in it, while a run saves
    there, so that a second run saving to the same file is refused instead of one run
    silently replacing the other's. A lock whose process has ended is taken over."""
    target = _real_file(Path(path))
    lock = target.parent / f".{target.name}.lock"
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None and psutil.pid_exists(owner):
                raise CheckpointError(
                    f"Another training run (process {owner}) is saving to {path}. Wait for it "
                    f"to end or save to another file (if no such run is going on, delete "
                    f"{lock}).") from None
            with suppress(FileNotFoundError):  # left by a run that was killed
                os.unlink(lock)
    else:
        raise CheckpointError(f"Another training run has just started saving to {path}; "
                              f"save to another file.")
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield lock
    finally:
        with suppress(OSError):
            os.unlink(lock)


def fallback_path(path: str | os.PathLike) -> Path:
    """A new file in the system's temporary folder, to keep a model that could not be
    saved to `path`."""
    path = Path(path)
    return (Path(tempfile.gettempdir())
            / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}{path.suffix}")


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _real_file(path: Path) -> Path:
    """The file a save writes: `path`, or the file its symbolic links lead to."""
    problem = _link_problem(path)
    if problem:
        raise CheckpointError(f"{problem}; save the model to another file.")
    return Path(os.path.realpath(path))


def _link_problem(path: Path) -> str | None:
    """Why `path` leads nowhere a file can be, in words: a symbolic link loop."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return (f"{path} is a symlink loop: its symbolic links lead back to each other, "
                    f"never to a file")
    return None


def _create_temporary(target: Path) -> tuple[int, str]:
    """Open a new hidden file beside `target` (`.NAME.XXXXXXXX.tmp`), with the mode the
    umask gives a new file (mkstemp would make it 0600)."""
    while True:
        name = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                           | getattr(os, "O_BINARY", 0), 0o666), name
        except FileExistsError:
            continue


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the temporary files that killed saves to `target` left behind: only names
    of our exact form (`.NAME.` + 8 letters or digits + `.tmp`), not written to for
    STALE_TEMPORARY_S, so that a save in progress keeps its file."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.tmp")
    now = time.time()
    with suppress(OSError), os.scandir(target.parent) as entries:
        for entry in entries:
            if not pattern.fullmatch(entry.name):
                continue
            with suppress(OSError):
                if (entry.is_file(follow_symlinks=False) and
                        now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMPORARY_S):
                    os.unlink(entry.path)


def _save_error(path: Path, folder: Path, err: BaseException) -> CheckpointSaveError:
    cause = _os_error_within(err)
    return CheckpointSaveError(getattr(cause, "errno", None),
                               f"Could not save the model to {path}: {_reason(err, folder)}.")


def _reason(err: BaseException, folder: Path) -> str:
    """What went wrong writing in `folder`, in plain words (never the temporary file)."""
    cause = _os_error_within(err)
    code = getattr(cause, "errno", None)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)) or (
            cause is None and "unexpected pos" in str(err)):  # torch's word for a short write
        return "the disk is full"
    if code in (errno.EACCES, errno.EPERM):
        return f"no permission to write in {folder}"
    if code == errno.EROFS:
        return f"{folder} is on a read-only disk"
    if cause is not None and cause.strerror:
        return cause.strerror[0].lower() + cause.strerror[1:]
    return _first_line(err)


def _os_error_within(err: BaseException) -> OSError | None:
    """The OSError behind `err`: itself, or the one torch.save turned into a RuntimeError."""
    while err is not None and not isinstance(err, OSError):
        err = err.__cause__ or err.__context__
    return err


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint file without executing any code from it."""
    path = Path(path)
    problem = _link_problem(path)
    if problem:
        raise CheckpointError(f"{problem}. Point it at a .pt file saved by MicroLM.")
    if not path.exists():
        raise CheckpointError(f"{path} does not exist. Choose a .pt file saved by MicroLM.")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds Python objects that a MicroLM checkpoint never contains, so it was "
            f"not loaded and none of its code ran. Only open checkpoints saved by MicroLM. "
            f"({_first_line(err)})") from None
    except Exception as err:  # the weights-only unpickler raises many kinds
        # (KeyError, EOFError, RuntimeError, ...) for files that are not checkpoints.
        raise CheckpointError(
            f"{path} is damaged or is not a PyTorch file (it may have been cut short while "
            f"copying). Save or copy it again. ({_first_line(err)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is a PyTorch file but not a MicroLM checkpoint (no "
                              f"'{FORMAT_NAME}' marker). Save models with microlm.save_model.")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version!r}; this microlm reads "
                              f"format {FORMAT_VERSION} and older. Update microlm to open it.")
    for key in ("model_config", "state_dict", "tokenizer"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"{path} is missing its '{key}'; the file is incomplete.")
    return payload


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               ) -> tuple[MicroLM, CharacterTokenizer, dict]:
    """Rebuild (model, tokenizer, metadata) from a file written by save_model.

    The model is returned in eval mode on `device`. metadata holds what was saved with
    the model (history, training config, ...) plus 'format_version' and, when present,
    'training_state' for resuming.
    """
    payload = load_checkpoint(path)
    try:
        config = ModelConfig.from_dict(payload["model_config"])
        tokenizer = CharacterTokenizer.from_dict(payload["tokenizer"])
        model = MicroLM(config=config)
        model.load_state_dict(payload["state_dict"])
    except (ValueError, TypeError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"{path} does not describe a consistent model: "
                              f"{_first_line(err)}") from None
    if tokenizer.vocab_size() > config.vocab_size:
        raise CheckpointError(f"{path}: the vocabulary has more characters than the model.")
    metadata = dict(payload.get("metadata") or {})
    metadata["format_version"] = payload["format_version"]
    if "training_state" in payload:
        metadata["training_state"] = payload["training_state"]
    model.to(device).eval()
    return model, tokenizer, metadata


def _first_line(err: BaseException) -> str:
    """The start of an error's message (some, like EOFError(), have none)."""
    return ((str(err) or type(err).__name__).splitlines() or [""])[0][:120]


_PLAIN = (type(None), bool, int, float, str, bytes, torch.Tensor, torch.Size)


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"{where} has a key of type {type(key).__name__}; use str.")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise CheckpointError(f"{where} is a {type(value).__name__}; checkpoints hold only numbers, "
                          f"strings, lists, dicts and tensors so they load without running code.")
