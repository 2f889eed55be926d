"""Hardware probe, model presets and recommendations (probe/presets/recommend: see below)."""

from __future__ import annotations

import torch


def select_device(preference: str | torch.device | None = None) -> torch.device:
    """The device to train on: `preference` if given (e.g. "cpu", "cuda:1"), else CUDA,
    then Apple MPS, then CPU."""
    if preference not in (None, "", "auto"):
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"Device {preference!r} was asked for, but CUDA is not available "
                             f"here. Use --device cpu (or leave it out to choose automatically).")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"Device {preference!r} was asked for, but MPS is not available.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
