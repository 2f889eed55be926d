"""What this machine has: devices, the precision it trains fastest in, memory allocation,
and a probe of CPU, cores, memory and GPUs."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil
import torch

GIB = 2**30


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


def uses_bf16(device: str | torch.device, enabled: bool = True) -> bool:
    """bf16 autocast applies: asked for, on a CUDA GPU that computes in bf16 (Ampere or newer).

    Only CUDA: CPUs and MPS keep fp32, where bf16 autocast is slower or unsupported for LSTMs.
    """
    device = torch.device(device)
    return bool(enabled and device.type == "cuda" and torch.cuda.is_available()
                and torch.cuda.is_bf16_supported())


def mixed_precision(device: str | torch.device, enabled: bool = True):
    """A context that runs the forward pass in bf16 where uses_bf16 says so, else nothing.

    The weights (and the optimizer) stay fp32; only the matrix products run in bf16.
    """
    if uses_bf16(device, enabled):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# glibc's malloc returns large freed blocks to the system at once: a block of 32 MB or
# more is its own mapping, and a heap whose free top passes twice the (adaptive) mapping
# threshold is trimmed. A training step frees its activations and the LSTM's workspace
# (tens of MB) and allocates them again in the next step, and every page handed back is
# zeroed and faulted in again. (A thread that glibc has moved off the main heap allocates
# from heaps of 64 MB, which are still handed back when wholly free.)
# Freed memory kept for reuse, at most: step times with and without (RESULTS.md, "Speed").
KEEP_FREED_BYTES = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_freed_memory_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Make this process's memory allocator keep freed memory for reuse instead of handing
    it back to the system after every training step (glibc only; elsewhere nothing
    changes). Allocations under KEEP_FREED_BYTES come from the heap, and the heap keeps up
    to that much free memory. The process's peak memory grows by up to that much; steps at
    hidden 384 and wider take about a third less time. Called by ModelTrainer.fit,
    calibrate() and the app's workers (the one place it is set); True when in effect."""
    global _freed_memory_kept
    if _freed_memory_kept is None:
        _freed_memory_kept = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            with contextlib.suppress(OSError, AttributeError):
                mallopt = ctypes.CDLL(None).mallopt
                mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                # Setting either turns off glibc's adaptive threshold: set both.
                _freed_memory_kept = bool(mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES)
                                          and mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
    return _freed_memory_kept


def give_back_freed_memory() -> None:
    """Hand the memory the allocator keeps free back to the system now (glibc's
    malloc_trim; elsewhere nothing happens)."""
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# ---- what this machine has ----

@dataclass(frozen=True)
class CudaDevice:
    name: str
    total_memory_bytes: int


@dataclass(frozen=True)
class HardwareInfo:
    cpu_model: str
    physical_cores: int | None  # None where the OS does not say
    logical_cores: int
    total_ram_bytes: int
    available_ram_bytes: int  # free for a new program now (RAM not held by others)
    torch_version: str
    cuda_devices: tuple[CudaDevice, ...]
    mps_available: bool
    device: str  # what select_device() picks: "cuda", "mps" or "cpu"

    def summary(self) -> str:
        """A few lines a person reads: CPU, cores, memory, GPU, PyTorch."""
        physical = "?" if self.physical_cores is None else str(self.physical_cores)
        if self.cuda_devices:
            gpus = ", ".join(f"{gpu.name} ({gpu.total_memory_bytes / GIB:.1f} GiB)"
                             for gpu in self.cuda_devices)
        elif self.mps_available:
            gpus = "Apple GPU (MPS, shares the system memory)"
        else:
            gpus = "none"
        return "\n".join([
            f"CPU: {self.cpu_model}",
            f"Cores: {physical} physical, {self.logical_cores} logical",
            f"Memory: {self.total_ram_bytes / GIB:.1f} GiB total, "
            f"{self.available_ram_bytes / GIB:.1f} GiB available",
            f"GPU: {gpus}",
            f"PyTorch: {self.torch_version} (training runs on: {self.device})",
        ])


def probe() -> HardwareInfo:
    """Describe this machine (fast: reads the OS, runs no benchmark)."""
    memory = psutil.virtual_memory()
    cuda_devices: tuple[CudaDevice, ...] = ()
    if torch.cuda.is_available():
        cuda_devices = tuple(
            CudaDevice(props.name, int(props.total_memory))
            for props in (torch.cuda.get_device_properties(i)
                          for i in range(torch.cuda.device_count())))
    return HardwareInfo(
        cpu_model=cpu_model(),
        physical_cores=psutil.cpu_count(logical=False),
        logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        total_ram_bytes=int(memory.total),
        available_ram_bytes=int(memory.available),
        torch_version=torch.__version__,
        cuda_devices=cuda_devices,
        mps_available=_mps_available(),
        device=select_device().type,
    )


def cpu_model() -> str:
    # platform.processor() is empty or just "x86_64" on Linux; /proc/cpuinfo has the name.
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def default_precision(device: torch.device | str) -> str:
    """The precision a device trains fastest in: bfloat16 on a CUDA GPU that computes in it
    (Ampere or newer) and on a CPU with a native bfloat16 unit (AMX or AVX-512 BF16) whose
    LSTM kernel runs in it (cpu_runs_bf16_lstm); float32 elsewhere (MPS, older GPUs and
    CPUs). Measured on such CPUs, mixed precision trains the LSTM faster
    (tests/benchmarks/RESULTS.md)."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bfloat16" if uses_bf16(device) else "float32"
    if device.type != "cpu":
        return "float32"
    return "bfloat16" if _cpu_has_bf16() and cpu_runs_bf16_lstm() else "float32"


@cache
def cpu_runs_bf16_lstm() -> bool:
    """Whether this CPU's LSTM kernel (oneDNN) runs under bfloat16 autocast, forward and
    backward. It needs AVX-512 or AMX: on an AVX2-only CPU it fails with 'could not
    create a primitive descriptor for the LSTM forward propagation primitive'. Tried once
    per process on a tiny LSTM, with gradients on even when the first caller (a
    validation) has them off.

    The try runs in a thread of its own, which ends with it: the first tensor math a thread
    does gives it an OpenMP team, and once the app's GUI thread had one, GNU OpenMP saw more
    threads than cores on a 2-core machine and stopped spinning between parallel regions,
    so every later training run in a worker thread took ~2.5x as long a step (84.5 against
    34.2 ms, 'small' preset)."""
    runs: list[bool] = []

    def attempt() -> None:
        try:
            with torch.inference_mode(False), torch.enable_grad():
                lstm = torch.nn.LSTM(4, 4, batch_first=True)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out, _ = lstm(torch.zeros(2, 3, 4))
                out.float().sum().backward()
        except RuntimeError:
            runs.append(False)
        else:
            runs.append(True)

    trial = threading.Thread(target=attempt, name="bfloat16 LSTM check")
    trial.start()
    trial.join()
    return bool(runs and runs[0])


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def last_level_cache_bytes(folder: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """The size of this CPU's largest data cache (Linux: from sysfs), 0 where it cannot be
    read."""
    largest = 0
    for index in folder.glob("index*"):
        with contextlib.suppress(OSError, ValueError):
            if (index / "type").read_text().strip() == "Instruction":
                continue
            largest = max(largest, _cache_size_bytes((index / "size").read_text()))
    return largest


def _cache_size_bytes(text: str) -> int:
    """sysfs writes a cache size as e.g. '32768K' or '1M'."""
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale
