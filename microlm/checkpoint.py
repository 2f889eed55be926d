"""Save and load a trained model with its tokenizer, config and history, in one safe file."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from .model import MicroLM, ModelConfig
from .tokenizer import CharacterTokenizer

FORMAT_NAME = "microlm-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or loaded; the message says why and what to do."""


def save_model(path: str | os.PathLike, model: MicroLM, tokenizer: CharacterTokenizer,
               **metadata: Any) -> Path:
    """Write model weights, config, vocabulary and `metadata` to one file, atomically.

    The file is written next to its destination and renamed over it, so a crash or a
    full disk never leaves half a checkpoint in place of a good one. Metadata must be
    plain values (numbers, strings, lists, dicts, tensors), which is what lets
    load_model use torch.load(weights_only=True).
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint file without executing any code from it."""
    path = Path(path)
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
