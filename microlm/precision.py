"""What a training run computes in: float32, or bfloat16 autocast where the device runs the
LSTM in it (a CUDA GPU that computes in bfloat16; a CPU whose LSTM kernel runs it, which
needs AMX or AVX-512). The weights and the optimizer stay float32 either way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .hardware import cpu_runs_bf16_lstm, default_precision, mixed_precision, uses_bf16


def run_precision(precision: str, device: torch.device) -> tuple[str, tuple[str, ...]]:
    """The precision a run computes in, decided once when it starts, and the changes made to
    the one asked for, in words (for a warning): "auto" is the device's fastest; bfloat16 on
    a CPU whose LSTM kernel cannot run it trains in float32 instead."""
    if precision == "auto":
        precision = default_precision(device)
    if asks_cpu_bf16(precision, device) and not cpu_runs_bf16_lstm():
        return "float32", ("This CPU cannot run the LSTM in bfloat16 (that needs AVX-512 or "
                           "AMX); training in float32 instead.",)
    return precision, ()


@contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast for training and validation alike when the precision is bfloat16: on
    CUDA where the GPU supports it, on the CPU where its LSTM kernel runs it (fast on AMX /
    AVX-512 bf16 units). Weights stay float32. Validation in float32 on such a CPU runs
    oneDNN's reference LSTM, several times slower than in bf16."""
    with mixed_precision(device, precision == "bfloat16"), torch.autocast(
            "cpu", dtype=torch.bfloat16, enabled=cpu_bf16(precision, device)):
        yield


def runs_in_bf16(precision: str, device: torch.device) -> bool:
    """The LSTM runs under bfloat16 autocast (on the CPU or a CUDA GPU)."""
    return uses_bf16(device, precision == "bfloat16") or cpu_bf16(precision, device)


def cpu_bf16(precision: str, device: torch.device) -> bool:
    """bfloat16 autocast on the CPU: asked for, and this CPU's LSTM kernel runs it."""
    return asks_cpu_bf16(precision, device) and cpu_runs_bf16_lstm()


def asks_cpu_bf16(precision: str, device: torch.device) -> bool:
    """bfloat16 asked for on a CPU (where the LSTM kernel may not run it)."""
    return precision == "bfloat16" and device.type == "cpu"
