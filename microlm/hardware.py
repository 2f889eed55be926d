"""Hardware probe, speed calibration, model presets, estimates and recommendations."""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import torch

from .model import ModelConfig
from .tokenizer import token_dtype

if TYPE_CHECKING:  # trainer imports this module, so TrainingConfig is imported lazily below
    from .trainer import TrainingConfig

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
# zeroed and faulted in again: at hidden 384 on batch 32 x 64, ~10,000 page faults and a
# third of each step's time; at hidden 768 on 32 x 128, ~34,000 (bfloat16, 2-core CPU).
# Keeping up to KEEP_FREED_BYTES of freed memory for reuse removes them. (A thread that
# glibc has moved off the main heap allocates from heaps of 64 MB, which are still handed
# back when wholly free: a block that needs a heap of its own is faulted in each time.)
KEEP_FREED_BYTES = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_freed_memory_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Make this process's memory allocator keep freed memory for reuse instead of handing
    it back to the system after every training step (glibc only; elsewhere nothing
    changes). Allocations under KEEP_FREED_BYTES come from the heap, and the heap keeps up
    to that much free memory. The process's peak memory grows by up to that much (at
    hidden 384 on batch 32 x 64: 545 -> 590 MB); steps at hidden 384 and wider take about
    a third less time. Called by ModelTrainer.fit and calibrate(); True when in effect."""
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
        cpu_model=_cpu_model(),
        physical_cores=psutil.cpu_count(logical=False),
        logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        total_ram_bytes=int(memory.total),
        available_ram_bytes=int(memory.available),
        torch_version=torch.__version__,
        cuda_devices=cuda_devices,
        mps_available=_mps_available(),
        device=select_device().type,
    )


def _cpu_model() -> str:
    # platform.processor() is empty or just "x86_64" on Linux; /proc/cpuinfo has the name.
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


# ---- how fast this machine trains ----

def matmul_parameters(model_config: ModelConfig) -> int:
    """Parameters whose arithmetic the cost model prices at its FLOP rate: the LSTM and a
    linear output layer. The embedding is a table lookup and costs next to nothing; an
    output layer with hidden units is priced per unit instead (output_value_s)."""
    if model_config.output_hidden_dim:
        return model_config.lstm_parameters()
    return model_config.num_parameters() - model_config.vocab_size * model_config.embedding_dim


# The calibration prices an output layer's hidden units on hidden 256 and 96 characters
# (output_value_s); per unit and position, its products grow with the width of the layer
# below and the vocabulary above, the rest (activation, bias, moving values) does not.
# Measured on a 2-core AVX2 EPYC (float32, batch 32, windows of 64, in turns): 11.0, 14.8,
# 16.9, 22.3 and 31.4 ns per unit and position under hidden 128, 192, 256, 384 and 768
# (65 characters): 6.2 ns plus the products at the LSTM's FLOP rate (181 GFLOP/s), i.e.
# 35 % of the cost at the calibration's width is the fixed part. Priced flat, hidden 192
# with the units was estimated 23-28 % too slow and hidden 768 with them 6-12 % too fast.
OUTPUT_REFERENCE_INPUTS = 256 + 96 + 1  # the calibration's hidden size, characters, bias
OUTPUT_FIXED_SHARE = 0.35


def output_unit_scale(model_config: ModelConfig) -> float:
    """What one output unit costs per position in this model, relative to the calibration's
    (see OUTPUT_FIXED_SHARE)."""
    inputs = model_config.hidden_dim + model_config.vocab_size + 1
    return OUTPUT_FIXED_SHARE + (1 - OUTPUT_FIXED_SHARE) * inputs / OUTPUT_REFERENCE_INPUTS


@dataclass(frozen=True)
class MachineSpeed:
    """A fitted cost model of one training step:
    seconds = step_overhead_s + num_layers * sequence_length * timestep_overhead_s
              + lstm_parameters * sequence_length * weight_pass_s
              + 6 * matmul_parameters * batch_size * sequence_length / flops_per_second
              + batch_size * sequence_length * num_layers * hidden_dim * state_value_s
              + batch_size * sequence_length * output_hidden_dim * output_value_s
                * output_unit_scale
              + num_parameters * parameter_step_s
              + streamed_seconds() (weights of layers too large for the cache)
    (6 FLOPs per parameter per character: 2 forward, 4 backward), plus, for a model with
    dropout, a cost per masked value (dropout_value_s, lstm_dropout_value_s).
    Each LSTM layer walks the window one character at a time, so the per-character cost is
    paid per layer, and at each character the LSTM's weights are read again whatever the
    batch size: on a CPU whose caches cannot hold them, that reading (weight_pass_s per
    parameter and time step), not the arithmetic, is most of a small batch's cost, which
    makes larger batches cheap per character. The output layer is not read per character:
    it scores every position of the batch in one product.
    The state-value term is the work per hidden unit and character (the gates' sigmoids and
    tanhs, storing them for the backward pass and reading them back): it grows with the
    width, not its square as the matrix products do, so it is most of the cost of a narrow
    layer on a large batch. An output layer with hidden units costs output_value_s per
    position and unit on the calibration's shape (its two products, run at a large
    matrix's speed, and its GELU), more under a wider LSTM (output_unit_scale)."""

    device: str
    step_overhead_s: float  # fixed cost per training step (Python, optimizer, kernel launches)
    flops_per_second: float  # effective training FLOP/s of the LSTM math
    timestep_overhead_s: float = 0.0  # fixed cost per character position and LSTM layer
    threads: int | None = None  # CPU threads the measurement found fastest (None: not chosen)
    precision: str = "float32"  # the precision the steps were timed in
    weight_pass_s: float = 0.0  # per parameter and time step, whatever the batch size
    # Dropout, forward and backward, per value it masks: the model's own (before the output
    # layer) and torch's inside a stacked LSTM (between layers), which draws one random
    # number per value and can cost a fifth of a step on a CPU.
    dropout_value_s: float = 0.0
    lstm_dropout_value_s: float = 0.0
    state_value_s: float = 0.0  # per character, layer and hidden unit (gate arithmetic)
    output_value_s: float = 0.0  # per character and hidden unit of the output layer
    calibrations: int = 1  # how many recent calibrations this one is the median of
    # What the calibration measured, from which the costs above were fitted: the step time
    # of each calibration shape, then the two dropout costs (empty: not measured here).
    timings: tuple[float, ...] = ()
    # A CPU whose last-level cache (cache_bytes; 0: unknown) cannot hold an LSTM layer's
    # weights streams them from memory at every character (memory_byte_s per byte; 0: not
    # measured): see streamed_seconds().
    cache_bytes: int = 0
    memory_byte_s: float = 0.0
    # per parameter (all of them) and step: AdamW's update, clipping the gradients, and the
    # LSTM kernel rearranging its weights at each step (hidden 1,024: ~25 ms a step here)
    parameter_step_s: float = 0.0
    # False: no calibration ran in this process; recent ones were reused (calibrate's
    # reuse_recent). Not kept in the file of remembered calibrations.
    measured: bool = True

    def step_seconds(self, model_config: ModelConfig, batch_size: int,
                     sequence_length: int) -> float:
        parameters = matmul_parameters(model_config)
        flops = 6.0 * parameters * batch_size * sequence_length
        seconds = (self.step_overhead_s
                   + model_config.num_layers * sequence_length * self.timestep_overhead_s
                   + model_config.lstm_parameters() * sequence_length * self.weight_pass_s
                   + flops / self.flops_per_second)
        values = batch_size * sequence_length * model_config.hidden_dim
        seconds += values * model_config.num_layers * self.state_value_s
        seconds += (batch_size * sequence_length * model_config.output_hidden_dim
                    * self.output_value_s * output_unit_scale(model_config))
        if model_config.dropout > 0:
            seconds += values * (self.dropout_value_s
                                 + (model_config.num_layers - 1) * self.lstm_dropout_value_s)
        seconds += model_config.num_parameters() * self.parameter_step_s
        return seconds + self.streamed_seconds(model_config, sequence_length)

    def streamed_seconds(self, model_config: ModelConfig, sequence_length: int) -> float:
        """Seconds per step spent reading from memory the weights of LSTM layers too large
        for the last-level cache (0 where none is, or the costs are unknown).

        weight_pass_s prices reading weights at each character from the cache, measured on
        a layer (hidden 512) that fits in it. A layer whose recurrent weights outgrow a third
        to a half of the cache reads them from memory at every character instead, in part
        or in full (see SPILL_STARTS)."""
        if self.cache_bytes <= 0 or self.memory_byte_s <= 0:
            return 0.0
        # Only the recurrent weights are read at every character: the input weights act on
        # the whole window in one product.
        recurrent_bytes = (4 * model_config.hidden_dim ** 2
                           * (2 if self.precision == "bfloat16" else 4))
        return (model_config.num_layers * spilled_share(recurrent_bytes, self.cache_bytes)
                * STREAMED_WEIGHT_PASSES * recurrent_bytes * self.memory_byte_s
                * sequence_length)

    def summary(self) -> str:
        """The fitted costs in words, e.g. for a probe's report."""
        text = f"{self.flops_per_second / 1e9:,.1f} GFLOP/s of LSTM math, "
        if self.weight_pass_s > 0:
            text += (f"{self.weight_pass_s * 1e9:.2f} ms per million weights read at each "
                     f"character, ")
        if self.state_value_s > 0:
            text += (f"{self.state_value_s * 1e9:.1f} ns per state value (a character's "
                     f"hidden unit in one layer), ")
        if self.output_value_s > 0:
            text += (f"{self.output_value_s * 1e9:.1f} ns per output-layer unit and "
                     f"character, ")
        text += f"{self.step_overhead_s * 1000:.1f} ms fixed cost per step"
        if self.parameter_step_s > 0:
            text += (f" and {self.parameter_step_s * 1e9:.1f} ms per million parameters "
                     f"(the optimizer's update)")
        if self.cache_bytes > 0 and self.memory_byte_s > 0:
            text += (f", {1e-9 / self.memory_byte_s:.1f} GB/s from memory for the weights "
                     f"of layers too large for the {self.cache_bytes / 2**20:,.0f} MiB cache")
        if self.dropout_value_s > 0:
            text += (f", dropout {self.dropout_value_s * 1e9:.1f} ns per value (torch's, "
                     f"between LSTM layers: {self.lstm_dropout_value_s * 1e9:.1f} ns)")
        if self.calibrations > 1:
            text += (f" (the median of this machine's last {self.calibrations} calibrations, "
                     f"from the last hour")
            text += (")" if self.measured else
                     f"; none taken now, as {REUSE_RECENT} or more were taken in the last "
                     f"{REUSE_MAX_AGE_S / 60:.0f} minutes)")
        return text

    def chars_per_second(self, model_config: ModelConfig, batch_size: int,
                         sequence_length: int) -> float:
        """Training characters per second for this model and batch shape."""
        return (batch_size * sequence_length
                / self.step_seconds(model_config, batch_size, sequence_length))


# Fitted to 55 step times of LSTMs (hidden 256 to 1,280, batches 8 to 32, windows 16 to
# 128, timed in turns) on a 2-core AMD EPYC with a 32 MiB cache, in float32, with the other
# costs calibrated as a run does. A layer's recurrent weights (4 x hidden^2, read at every
# character; the input weights act on a whole window in one product) start to spill once
# they exceed a third of the cache and have spilled completely at half of it (the backward
# pass keeps their gradients beside them, and other programs share the cache): in between,
# the share read from memory grows in step with the size. Each character then reads 1.4x
# the spilled weights from memory, at the speed a matrix-vector product streams a matrix.
# With this term and the cost per parameter and step, all 55 were estimated within 25 %
# (rms 8.4 %, worst 23 %); without this term, 48 (worst 56 %: hidden 1,280 on batch 8);
# with neither (the costs before), hidden 1,024 on batch 8 and windows of 64 ran 1.3-1.6x
# longer than estimated, and hidden 512 on windows of 16 1.6x. (Counting a layer's input
# weights too, a stack of two hidden-768 layers was estimated 24-31 % too slow.)
SPILL_STARTS = 1 / 3
SPILL_COMPLETE = 1 / 2
STREAMED_WEIGHT_PASSES = 1.4


def spilled_share(weight_bytes: int, cache_bytes: int) -> float:
    """The share of an LSTM layer's recurrent weights (of this size) read from memory, not
    the cache, at each character: 0 up to SPILL_STARTS of the cache, 1 from SPILL_COMPLETE
    (0 where the cache size is unknown)."""
    if cache_bytes <= 0:
        return 0.0
    low, high = cache_bytes * SPILL_STARTS, cache_bytes * SPILL_COMPLETE
    return min(1.0, max(0.0, (weight_bytes - low) / (high - low)))


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


def _memory_seconds_per_byte(cache_bytes: int, device: torch.device) -> float:
    """Seconds to stream one byte from memory: a matrix-vector product (which reads each
    element of the matrix once) on a float32 matrix 4x the cache size (at least 64 MiB, at
    most 512 MiB). 0 on a GPU or where the cache size is unknown."""
    if device.type != "cpu" or cache_bytes <= 0:
        return 0.0
    size = min(max(4 * cache_bytes, 64 * 2**20), 512 * 2**20)
    side = int(math.sqrt(size / 4))
    matrix = torch.ones(side, side)
    vector = torch.ones(side)
    torch.mv(matrix, vector)  # the first product touches the pages
    seconds = statistics.median(_timed(partial(torch.mv, matrix, vector)) for _ in range(5))
    del matrix
    # With freed memory kept (keep_freed_memory), the heap would hold on to the matrix's
    # pages: ~66 MB more resident memory for the rest of the process, measured here.
    give_back_freed_memory()
    return seconds / (side * side * 4)


_CALIBRATIONS: dict[str, MachineSpeed] = {}


def calibrate(seconds: float = 1.5, device: str | None = None,
              precision: str | None = None, reuse_recent: bool = False) -> MachineSpeed:
    """Measure this machine's training speed by timing real training steps.

    Eight shapes are timed (forward + backward + clipping + AdamW step, like
    ModelTrainer._train_step): a small model on short and on long windows, which separates
    the per-step from the per-character cost; a wide model on a small and a larger batch,
    and on short windows, which separates reading its weights at each character from the
    arithmetic and from its cost per parameter and step; a narrow model on a large batch,
    which gives the cost per state value; and one model with and without hidden units in
    its output layer (MachineSpeed's terms). Then the speed of reading memory: a
    matrix-vector product on a matrix larger than the cache.
    On a CPU with several threads the large shape is first timed with one thread and with
    all of them, and the faster count is used (and reported in `threads`): on a busy
    machine, threads waiting on each other at every character can make a step many times
    slower. precision None: bfloat16 where the CPU has a bfloat16 unit, else float32.
    The result is cached per device and precision for the life of the process.
    reuse_recent: where REUSE_RECENT calibrations of this machine set-up were taken in the
    last REUSE_MAX_AGE_S, measure nothing and use them (for runs that pay the calibration
    from a time budget: ~2.5 s of a 30 s run on a 2-core CPU).
    """
    target = select_device(device)
    precision = precision or default_precision(target)
    key = f"{target}/{precision}"
    if key not in _CALIBRATIONS:
        allocator = "/freed memory kept" if keep_freed_memory() else ""
        setup = (f"{_cpu_model()}/{torch.get_num_threads()} threads/torch {torch.__version__}"
                 f"/{key}{allocator}/costs {CALIBRATION_FORMAT}")
        reused = _reused(setup) if reuse_recent else None
        _CALIBRATIONS[key] = reused or _steadied(_measure_speed(seconds, target, precision),
                                                 setup)
    return _CALIBRATIONS[key]


# A calibration lasts ~2 s, and on a shared machine one slow second can make it 1.5x too
# slow (hidden 384's predicted steps in 60 s ranged from 605 to 1,093 over eight
# calibrations in a row), which then picks a model one size too narrow (a sweep's
# recommended row 2.2 % above the best). Each process calibrates once, so the last few
# calibrations of the same machine set-up are kept in a small file and the median is used.
REMEMBERED_CALIBRATIONS = 5
CALIBRATION_FORMAT = 2  # which shapes and costs a remembered calibration holds
CALIBRATION_MAX_AGE_S = 3600.0  # older ones may describe another load on the machine
# A run with a time budget pays for its calibration (~2.5 s on a 2-core CPU, of which ~1.7 s
# timing steps and ~0.8 s building the eight models and their optimizers); where this many
# were taken in the last few minutes, their median is what a new one would mostly be
# judged against anyway, so none is taken (twelfth session: a 30 s run then trains ~27 s
# instead of ~24 s).
REUSE_RECENT = 3
REUSE_MAX_AGE_S = 600.0


def calibration_file() -> Path | None:
    """Where recent calibrations are kept: $MICROLM_CACHE_DIR (empty: nowhere), else the
    user's cache folder ($XDG_CACHE_HOME or ~/.cache, then microlm/)."""
    folder = os.environ.get("MICROLM_CACHE_DIR")
    if folder is None:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "microlm"
    return Path(folder) / "calibrations.json" if folder else None


def _steadied(speed: MachineSpeed, setup: str, now: float | None = None) -> MachineSpeed:
    """The median (by the step time of the 60 s recommendation's shape) of `speed` and the
    calibrations of the same set-up from the last hour, at most REMEMBERED_CALIBRATIONS in
    all; of two, the faster (a shared machine slows a calibration, it does not speed it up).
    Where their timings are known, the costs are then refitted to each shape's median time
    (of two, the shorter) over the calibrations with the median's thread count.
    `speed` is added to the file. A file that cannot be read or written is left alone."""
    now = time.time() if now is None else now
    path = calibration_file()
    if path is None:
        return speed
    saved = _saved_calibrations(path)
    recent = [*_recent(saved, setup, now),
              {"time": now, "speed": {name: value for name, value
                                      in asdict(replace(speed, calibrations=1)).items()
                                      if name != "measured"}}]
    saved[setup] = recent[-REMEMBERED_CALIBRATIONS:]
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(saved), encoding="utf-8")
        temporary.replace(path)  # atomic: another process never reads half a file
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    return _pooled(saved[setup]) or speed


def _reused(setup: str, now: float | None = None) -> MachineSpeed | None:
    """The remembered calibrations of this set-up pooled as _steadied pools them, when
    REUSE_RECENT or more of them are under REUSE_MAX_AGE_S old; else None."""
    now = time.time() if now is None else now
    path = calibration_file()
    if path is None:
        return None
    recent = _recent(_saved_calibrations(path), setup, now)
    if sum(now - entry["time"] < REUSE_MAX_AGE_S for entry in recent) < REUSE_RECENT:
        return None
    pooled = _pooled(recent[-REMEMBERED_CALIBRATIONS:])
    return None if pooled is None else replace(pooled, measured=False)


def _saved_calibrations(path: Path) -> dict:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    return saved if isinstance(saved, dict) else {}


def _recent(saved: dict, setup: str, now: float) -> list[dict]:
    """The well-formed calibrations of this set-up from the last hour, oldest first."""
    return [entry for entry in saved.get(setup, ()) if isinstance(entry, dict)
            and isinstance(entry.get("time"), (int, float))
            and 0 <= now - entry["time"] < CALIBRATION_MAX_AGE_S]


def _pooled(entries: list[dict]) -> MachineSpeed | None:
    """The median of remembered calibrations, refitted to each shape's median time (see
    _steadied); None when none of them can be read."""
    known = {field.name for field in fields(MachineSpeed)}
    speeds = []
    for entry in entries:
        values = entry.get("speed")
        if isinstance(values, dict) and known >= values.keys():
            with contextlib.suppress(TypeError, ValueError):
                timings = tuple(float(t) for t in values.get("timings", ()))
                speeds.append(MachineSpeed(**{**values, "timings": timings}))
    if not speeds:
        return None
    reference = ModelConfig(96, 128, 384, 1, 0.0, OUTPUT_HIDDEN_DIM)
    speeds.sort(key=lambda each: each.step_seconds(reference, 32, 64))
    median = speeds[(len(speeds) - 1) // 2]
    # Each calibration's costs trade off against each other (one with a slow moment in its
    # narrow shape charges more per state value and less per FLOP), so picking one whole
    # calibration still carries its noise into every other shape: refit instead to the
    # median time of each shape over the calibrations that used the same thread count.
    alike = [each for each in speeds if each.threads == median.threads
             and len(each.timings) == len(median.timings) > 0]
    if len(alike) > 1:
        pooled = [sorted(values)[(len(values) - 1) // 2]
                  for values in zip(*(each.timings for each in alike), strict=True)]
        with contextlib.suppress(ArithmeticError, ValueError):
            median = _speed_from_timings(median.device, median.precision, median.threads,
                                         pooled, median.cache_bytes)
    return replace(median, calibrations=len(speeds))


def default_precision(device: torch.device | str) -> str:
    """bfloat16 on a CPU with a native bfloat16 unit (AMX or AVX-512 BF16) whose LSTM kernel
    runs in it (cpu_runs_bf16_lstm), else float32.

    Measured on such a CPU, mixed precision trains the LSTM faster (see the README)."""
    if torch.device(device).type != "cpu":
        return "float32"
    return "bfloat16" if _cpu_has_bf16() and cpu_runs_bf16_lstm() else "float32"


@cache
def cpu_runs_bf16_lstm() -> bool:
    """Whether this CPU's LSTM kernel (oneDNN) runs under bfloat16 autocast, forward and
    backward. It needs AVX-512 or AMX: on an AVX2-only CPU (seen: AMD EPYC, torch 2.13)
    it fails with 'could not create a primitive descriptor for the LSTM forward
    propagation primitive'. Tried once per process on a tiny LSTM, with gradients on even
    when the first caller (a validation) has them off."""
    try:
        with torch.inference_mode(False), torch.enable_grad():
            lstm = torch.nn.LSTM(4, 4, batch_first=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, _ = lstm(torch.zeros(2, 3, 4))
            out.float().sum().backward()
    except RuntimeError:
        return False
    return True


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


class SlowdownWatch:
    """Chooses the CPU thread count while training runs, from the times of StepCompleted
    events. Threads that wait on each other at every character make a step many times
    slower once another program takes a core: when steps become `factor` times slower than
    they were at first, training goes on with one thread. Such a load often passes (a
    build, a short job, the start of another program), and one thread is then ~half the
    speed: after `retry_s` seconds on one thread, `recent` steps are tried with all the
    threads again, and training keeps whichever ran them faster (a lost trial waits twice
    as long before the next one, up to `max_retry_s`)."""

    def __init__(self, threads: int, factor: float = 3.0, settle: int = 3,
                 reference: int = 10, recent: int = 5, retry_s: float = 10.0,
                 max_retry_s: float = 160.0):
        self.many, self.threads = threads, threads
        self.factor, self.settle, self.reference, self.recent = factor, settle, reference, recent
        self.first_retry_s, self.retry_s, self.max_retry_s = retry_s, retry_s, max_retry_s
        self.durations: list[float] = []  # since the last change of thread count
        self.usual: float | None = None  # a step's usual time with all the threads
        self.one_thread: float | None = None  # ... and with one, measured before a trial
        self._last: float | None = None
        self._since = 0.0  # elapsed time of the last change
        self._trial = False
        self.message: str | None = None  # what the last change means to a person (None: a
        #                                  trial, or its loss, which change nothing lasting)

    @classmethod
    def for_run(cls, device: torch.device | str) -> SlowdownWatch | None:
        """A watch for a run on `device` with this thread's torch thread count, or None
        where there is nothing to choose (a GPU run, or one thread already)."""
        threads = torch.get_num_threads()
        return cls(threads) if torch.device(device).type == "cpu" and threads > 1 else None

    def observe(self, elapsed_s: float, step: int = 0) -> int | None:
        """The thread count to switch to after step `step`, which ended at `elapsed_s`
        seconds of training, or None to keep the current one."""
        if self._last is not None:
            self.durations.append(elapsed_s - self._last)
        self._last = elapsed_s
        # medians: a validation between two steps is one long gap, not a slowdown
        if self.threads == self.many and not self._trial:
            if self.usual is None:
                first = self.durations[self.settle:self.settle + self.reference]
                if len(first) < self.reference:
                    return None
                self.usual = statistics.median_high(first)
            if len(self.durations) >= self.recent and statistics.median_high(
                    self.durations[-self.recent:]) > self.factor * self.usual:
                return self._switch(1, elapsed_s, message=(
                    f"Steps became several times slower at step {step:,} (the machine is "
                    f"busy): continuing on 1 CPU thread."))
            return None
        # the first step after a change still pays for it: not counted
        timed = self.durations[1:]
        if self._trial:
            if len(timed) < self.recent:
                return None
            self._trial = False
            if statistics.median_high(timed) < self.one_thread:
                # the new usual: a slowdown is measured from here
                self.usual = statistics.median_high(timed)
                self.retry_s = self.first_retry_s  # a later load is a new one
                return self._switch(self.many, elapsed_s, message=(
                    f"Steps are fast again at step {step:,}: back to {self.many} CPU "
                    f"threads."))
            self.retry_s = min(2 * self.retry_s, self.max_retry_s)
            return self._switch(1, elapsed_s)
        if elapsed_s - self._since >= self.retry_s and len(timed) >= self.recent:
            self.one_thread = statistics.median_high(timed[-self.recent:])
            return self._switch(self.many, elapsed_s, trial=True)
        return None

    def apply(self, elapsed_s: float, step: int = 0) -> str | None:
        """observe(), then set this thread's torch thread count to what it asks for; what
        to tell a person about it (None: nothing)."""
        threads = self.observe(elapsed_s, step)
        if threads is None:
            return None
        torch.set_num_threads(threads)
        return self.message

    def _switch(self, threads: int, elapsed_s: float, trial: bool = False,
                message: str | None = None) -> int:
        self.threads, self._since, self._trial, self.message = threads, elapsed_s, trial, message
        self.durations = []
        return threads


@contextmanager
def _torch_threads(count: int | None):
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _calibration_shapes(device: torch.device) -> list[tuple[ModelConfig, int, int]]:
    """The (model, batch_size, sequence_length) shapes a calibration times.

    The FLOP rate is measured near where the recommendation trains: on a CPU, a wide
    layer (512) with a small batch (8) — small matrices run far below a CPU's peak, so
    a smaller shape would make wide models look cheap. A GPU needs a wide batch before
    the math, not the launches, dominates a step."""
    wide_batch = 8 if device.type == "cpu" else 128
    return [
        (ModelConfig(96, 32, 64, 1, 0.0), 8, 16),
        (ModelConfig(96, 32, 64, 1, 0.0), 8, 64),
        (ModelConfig(96, 128, 512, 1, 0.0), wide_batch, 64),
        # the same model on 4x the batch separates reading the weights from the arithmetic
        (ModelConfig(96, 128, 512, 1, 0.0), 4 * wide_batch, 32),
        # a narrow layer on a large batch: most of its time is the work per state value (the
        # first model again: 6 x its 31,000 weights is little arithmetic next to 64 values)
        (ModelConfig(96, 32, 64, 1, 0.0), 16 * wide_batch, 32),
        # an output layer with hidden units: what it adds to a step of the recommended shape
        (ModelConfig(96, 128, 256, 1, 0.0), 4 * wide_batch, 32),
        (ModelConfig(96, 128, 256, 1, 0.0, OUTPUT_HIDDEN_DIM), 4 * wide_batch, 32),
        # the wide model on short windows: its cost per step and parameter (the optimizer,
        # clipping, and oneDNN rearranging the weights at each step), apart from its cost
        # per weight and character
        (ModelConfig(96, 128, 512, 1, 0.0), wide_batch, 16),
    ]


FITTED_SHAPES = (0, 1, 2, 3, 4, 7)  # the shapes _fit_costs solves for the six costs


def _measure_speed(seconds: float, device: torch.device,
                   precision: str = "float32") -> MachineSpeed:
    shapes = _calibration_shapes(device)
    threads = None
    if device.type == "cpu" and torch.get_num_threads() > 1:
        threads = _faster_thread_count(_training_step(shapes[2][0], shapes[2][1], 16, device,
                                                      precision))
    cache_bytes = last_level_cache_bytes() if device.type == "cpu" else 0
    with _torch_threads(threads):
        times = _interleaved_step_seconds(shapes, device, seconds, precision)
        dropout_costs = _dropout_costs(device, precision)
        memory_byte_s = _memory_seconds_per_byte(cache_bytes, device)
    return _speed_from_timings(str(device), precision, threads,
                               (*times, *dropout_costs, memory_byte_s), cache_bytes)


def _speed_from_timings(device: str, precision: str, threads: int | None,
                        timings: Sequence[float], cache_bytes: int = 0) -> MachineSpeed:
    """The costs fitted to a calibration's timings: the step time of each of
    _calibration_shapes(), then the seconds per value of the two dropouts, then (where
    measured) the seconds per byte read from memory."""
    shapes = _calibration_shapes(torch.device(device))
    times = list(timings[:len(shapes)])
    dropout_value_s, lstm_dropout_value_s, *memory = timings[len(shapes):]
    memory_byte_s = memory[0] if memory else 0.0
    wide = shapes[2][0]
    if spilled_share(4 * wide.hidden_dim ** 2 * (2 if precision == "bfloat16" else 4),
                     cache_bytes) > 0:
        # On a small cache the wide shape already streams its weights, and weight_pass_s
        # (fitted to it) prices that for every wider layer: no second charge.
        memory_byte_s = 0.0
    # What reading spilled weights costs is known before the fit: taken off each time.
    streaming = MachineSpeed(device, 0.0, math.inf, precision=precision,
                             cache_bytes=cache_bytes, memory_byte_s=memory_byte_s)
    times = [each - streaming.streamed_seconds(config, sequence_length)
             for each, (config, _, sequence_length) in zip(times, shapes, strict=True)]
    rows = [[1.0, float(sequence_length), float(config.lstm_parameters() * sequence_length),
             6.0 * matmul_parameters(config) * batch_size * sequence_length,
             float(batch_size * sequence_length * config.hidden_dim),
             float(config.num_parameters())]
            for config, batch_size, sequence_length in shapes]
    (overhead, per_timestep, weight_pass, seconds_per_flop, per_value,
     per_parameter) = _fit_costs([rows[i] for i in FITTED_SHAPES],
                                 [times[i] for i in FITTED_SHAPES])
    # Shapes 5 and 6 differ only in the output layer: its cost per position and unit,
    # apart from the cost per parameter and step of its weights.
    (without, batch_size, sequence_length), with_output = shapes[5], shapes[6][0]
    added_parameters = with_output.num_parameters() - without.num_parameters()
    per_output = max(0.0, (times[6] - times[5] - per_parameter * added_parameters)
                     / (batch_size * sequence_length * with_output.output_hidden_dim
                        * output_unit_scale(with_output)))
    return MachineSpeed(device, overhead, 1.0 / seconds_per_flop, per_timestep, threads,
                        precision, weight_pass, dropout_value_s, lstm_dropout_value_s,
                        per_value, per_output, timings=tuple(float(t) for t in timings),
                        cache_bytes=cache_bytes, memory_byte_s=memory_byte_s,
                        parameter_step_s=per_parameter)


def _interleaved_step_seconds(shapes: list[tuple[ModelConfig, int, int]], device: torch.device,
                              seconds: float, precision: str) -> list[float]:
    """The median time of one training step of each (model, batch, window) shape, timed in
    turns (a few steps of one shape, then of the next, round again) for about `seconds`, at
    least one turn. The fitted costs rest on the ratios between the shapes, and on a shared
    machine the speed can change by half within a second; timed in turns, such a change
    moves every shape alike. (Timed one shape after the other, one slow second once made
    batch 32 look barely faster than 16, and a 300 s run trained on batch 16 to 1.514
    instead of 1.478.)"""
    steps = [_training_step(config, batch_size, sequence_length, device, precision)
             for config, batch_size, sequence_length in shapes]
    for step in steps:
        step()  # the first step allocates memory and optimizer state: not typical
    durations: list[list[float]] = [[] for _ in steps]
    deadline = time.perf_counter() + seconds
    turn = 0.0  # how long the last turn took: a turn that would end past the deadline is
    # not started (a turn of the seven shapes took ~0.7 s here: the calibration of a 60 s
    # run took 3.1 s for its 1.5 s, and that time is taken from training)
    while len(durations[0]) < 4 or (time.perf_counter() + turn < deadline
                                    and len(durations[0]) < 200):
        turn_start = time.perf_counter()
        for step, measured in zip(steps, durations, strict=True):
            step()  # a turn's first step finds the caches full of another shape: untimed
            measured.extend(_timed(step) for _ in range(TIMED_PER_TURN))
        turn = time.perf_counter() - turn_start
    return [statistics.median(measured) for measured in durations]


TIMED_PER_TURN = 4  # steps timed per shape and turn, after one that warms the caches


def _fit_costs(rows: list[list[float]], times: list[float]) -> list[float]:
    """(step overhead, per-character overhead, seconds per weight and time step, seconds
    per FLOP, seconds per state value, seconds per parameter and step) from six timed
    shapes: six equations, six unknowns. Noise can make the exact solution charge a
    negative cost somewhere; then the costs are those of the subset of terms (the FLOP rate
    always among them) whose least-squares fit, every cost zero or more, leaves the
    smallest relative errors (the terms left out cost nothing)."""
    best: tuple[float, list[float]] | None = None
    for size in range(len(rows[0]), 0, -1):
        for terms in itertools.combinations(range(len(rows[0])), size):
            if 3 not in terms:
                continue
            # each shape's equation divided by its time: errors relative to the time
            scaled = [[row[t] / max(each, 1e-9) for t in terms]
                      for row, each in zip(rows, times, strict=True)]
            normal = [[sum(r[i] * r[j] for r in scaled) for j in range(size)]
                      for i in range(size)]
            solution = _solve(normal, [sum(r[i] for r in scaled) for i in range(size)])
            if solution[terms.index(3)] <= 0 or min(solution) < 0:
                continue
            error = sum((sum(a * b for a, b in zip(r, solution, strict=True)) - 1) ** 2
                        for r in scaled)
            if best is None or error < best[0] * (1 - 1e-9):
                costs = [0.0] * len(rows[0])
                for term, cost in zip(terms, solution, strict=True):
                    costs[term] = cost
                best = (error, costs)
        if best is not None and best[0] < 1e-12:
            break  # an exact fit with every term: fewer terms cannot do better
    assert best is not None  # the FLOP term alone always fits: its rows and times are > 0
    return best[1]


def _dropout_costs(device: torch.device, precision: str) -> tuple[float, float]:
    """Seconds per value of the model's dropout and of torch's (which a stacked LSTM uses
    between its layers), forward and backward, on activations of a batch-32 step."""
    from .model import Dropout

    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    rng_state = torch.get_rng_state()  # the masks must not move a seeded run's randomness
    values = torch.ones(32, 64, 256, device=device, dtype=dtype, requires_grad=True)
    gradient = torch.ones_like(values)
    costs = []
    for dropout in (Dropout(0.2), torch.nn.Dropout(0.2)):
        def step(dropout=dropout) -> None:
            dropout(values).backward(gradient)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        step()
        costs.append(statistics.median(_timed(step) for _ in range(3)) / values.numel())
    torch.set_rng_state(rng_state)
    return costs[0], costs[1]


def _faster_thread_count(step: Callable[[], None]) -> int:
    """1 or torch's thread count, whichever runs `step` faster. A few steps each; a thread
    count already 3x slower than one thread after its first step is not timed further
    (on a busy machine one such step can take seconds)."""
    many = torch.get_num_threads()
    with _torch_threads(1):
        step()  # the first step allocates memory and optimizer state: not typical
        one = statistics.median(_timed(step) for _ in range(3))
    with _torch_threads(many):
        first = _timed(step)  # includes starting the thread pool
        if first > 3 * one:
            return 1
        several = statistics.median(_timed(step) for _ in range(3))
    return many if several < one else 1


def _timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _training_step(config: ModelConfig, batch_size: int, sequence_length: int,
                   device: torch.device, precision: str = "float32") -> Callable[[], None]:
    """One training step of a fresh model on random data, as ModelTrainer._train_step does it."""
    from .model import MicroLM
    from .trainer import TrainingConfig, make_optimizer

    generator = torch.Generator().manual_seed(0)
    # Building a model draws from the global RNG; calibrating must not change which
    # weights a seeded model built afterwards gets.
    rng_state = torch.get_rng_state()
    model = MicroLM(config=config).to(device)
    torch.set_rng_state(rng_state)
    model.train()
    optimizer = make_optimizer(model, TrainingConfig())
    inputs = torch.randint(0, config.vocab_size, (batch_size, sequence_length),
                           generator=generator).to(device)
    targets = torch.randint(0, config.vocab_size, (batch_size, sequence_length),
                            generator=generator).to(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=precision == "bfloat16"):
            logits = model(inputs)  # (B, T, vocab_size)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, config.vocab_size),
                                                 targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()  # host sync, as the trainer does every step

    return step


def _solve(rows: list[list[float]], values: list[float]) -> list[float]:
    """Solve a small square linear system by Gaussian elimination with partial pivoting
    (singular: zeros). Each column is scaled to its largest entry first, as the unknowns
    differ by many orders of magnitude."""
    n = len(rows)
    scales = [max(abs(row[c]) for row in rows) or 1.0 for c in range(n)]
    m = [[row[c] / scales[c] for c in range(n)] + [value]
         for row, value in zip(rows, values, strict=True)]
    for column in range(n):
        pivot = max(range(column, n), key=lambda r: abs(m[r][column]))
        if abs(m[pivot][column]) < 1e-12:
            return [0.0] * n
        m[column], m[pivot] = m[pivot], m[column]
        for r in range(column + 1, n):
            factor = m[r][column] / m[column][column]
            m[r] = [a - factor * b for a, b in zip(m[r], m[column], strict=True)]
    solution = [0.0] * n
    for r in range(n - 1, -1, -1):
        known = sum(m[r][c] * solution[c] for c in range(r + 1, n))
        solution[r] = (m[r][n] - known) / m[r][r]
    return [x / scale for x, scale in zip(solution, scales, strict=True)]


# ---- presets ----

@dataclass(frozen=True)
class Preset:
    name: str
    description: str  # one sentence for a learner
    embedding_dim: int
    hidden_dim: int
    num_layers: int
    dropout: float
    sequence_length: int
    batch_size: int
    learning_rate: float
    output_hidden_dim: int = 0

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, self.embedding_dim, self.hidden_dim, self.num_layers,
                           self.dropout, self.output_hidden_dim)

    def training_config(self, **overrides) -> TrainingConfig:
        from .trainer import TrainingConfig

        values = {"sequence_length": self.sequence_length, "batch_size": self.batch_size,
                  "learning_rate": self.learning_rate}
        values.update(overrides)
        return TrainingConfig(**values)


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    Preset("nano", "A toy that trains in seconds: it learns which letters are common and "
           "little more.", 16, 32, 1, 0.1, 64, 32, 3e-3),
    Preset("small", "Learns spelling and short words in a few minutes on any laptop.",
           64, 128, 2, 0.2, 100, 32, 2e-3),
    Preset("medium", "Learns words and some grammar; a good default for a novel-sized text.",
           128, 256, 2, 0.2, 128, 32, 2e-3),
    Preset("large", "Writes convincing sentences, but needs a large text and an hour or more "
           "on a CPU.", 256, 512, 3, 0.3, 128, 32, 1e-3),
    Preset("xlarge", "Research-sized: worth it only on a GPU with many megabytes of text.",
           512, 1024, 3, 0.3, 128, 64, 1e-3),
)}


def preset_parameters(name: str, vocab_size: int) -> int:
    """True parameter count of a preset for a vocabulary of `vocab_size` characters."""
    if name not in PRESETS:
        raise KeyError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name].model_config(vocab_size).num_parameters()


# ---- estimates ----

@dataclass(frozen=True)
class Estimate:
    parameters: int
    chars_per_second: float  # training characters per second on the measured machine
    seconds_per_epoch: float  # one pass over the training part, with its validations
    memory_bytes: int  # peak training memory, see estimate()


@dataclass(frozen=True)
class MemoryCosts:
    """What training adds to a process's peak resident memory, fitted per precision: the
    LSTM's saved gates and states, the output layer's activations and dropout's masks are
    twice as large in float32 as in bfloat16, and oneDNN keeps other copies of the weights."""

    run_time_bytes: int  # kernels' working space, the data split and loader, the clock
    per_parameter: int  # weights, gradients, 2 AdamW moments, the best weights, their moving
    #                     average, working copies of the weights (bf16, oneDNN's layout)
    per_state_value: int  # per character, layer and hidden unit: gates and states kept for
    #                       backward, and their gradients
    per_output_value: int  # per character and unit of the output layer's hidden layer: its
    #                        input and GELU output kept for backward, their gradients
    per_dropout_value: int = 0  # per character, layer and hidden unit of a model with dropout


MEMORY_COSTS = {
    # Fitted on the AMX Xeon (fourth to sixth sessions of 2026-11-30): 24 runs of 17 shapes
    # within 20 %, then a fresh run of the 17 within -16 to +19 %. Its state-value term was
    # 26 bytes before freed memory was kept for reuse (keep_freed_memory), the per-parameter
    # term 34 before the moving average of the weights was kept; dropout is inside the other
    # terms. On an AVX-512 BF16 EPYC (ninth session) 3 of 17 shapes measured 26-33 % less.
    "bfloat16": MemoryCosts(40 * 2**20, 38, 41, 12),
    # Fitted on a 2-core AVX2 EPYC (tenth session, 2026-12-01): two runs of the 17 shapes of
    # `microlm bench --estimates`, all 34 within 24 % (-19 to +17 %; 1 % low on average),
    # where the bfloat16 costs put 13 of the 34 more than 25 % low (up to -39 %); then a
    # fresh run, not fitted: 17/17 within -17 to +17 %.
    "float32": MemoryCosts(36 * 2**20, 33, 65, 25, 22),
}


def training_memory_bytes(model_config: ModelConfig, batch_size: int, sequence_length: int,
                          corpus_chars: int, precision: str = "float32") -> int:
    """Peak memory that training adds to a process: every parameter's copies (weights,
    gradients, AdamW's two moments, the best weights so far, working copies), the
    activations kept for backward, the encoded corpus and a fixed working space, at the
    costs (MEMORY_COSTS) of the precision the LSTM trains in (see lstm_precision)."""
    costs = MEMORY_COSTS[precision]
    parameters = model_config.num_parameters()
    state_values = model_config.num_layers * model_config.hidden_dim
    per_char = (4 * (model_config.embedding_dim + 3 * model_config.vocab_size)  # embedding,
                # logits, softmax and their gradients
                + costs.per_state_value * state_values
                + costs.per_output_value * model_config.output_hidden_dim)
    if model_config.dropout > 0:
        per_char += costs.per_dropout_value * state_values
    activations = batch_size * sequence_length * per_char
    corpus = corpus_chars * token_dtype(model_config.vocab_size).itemsize
    return costs.run_time_bytes + costs.per_parameter * parameters + activations + corpus


def run_memory_bytes(model_config: ModelConfig, training_config: TrainingConfig,
                     corpus_chars: int) -> int:
    """training_memory_bytes() of a run with these configs, in the precision it will train
    in (what Configure shows and estimate() reports)."""
    return training_memory_bytes(model_config, training_config.batch_size,
                                 training_config.sequence_length, corpus_chars,
                                 lstm_precision(training_config.precision))


def lstm_precision(precision: str) -> str:
    """The precision the LSTM trains in when a run asks for `precision`: bfloat16 only where
    this CPU's LSTM kernel runs it (the trainer falls back to float32 the same way)."""
    return "bfloat16" if precision == "bfloat16" and cpu_runs_bf16_lstm() else "float32"


def steps_per_epoch(corpus_chars: int, training_config: TrainingConfig) -> int:
    """Optimizer steps in one epoch: the same split as split_text, and an epoch is
    len(TextDataLoader) steps (at least one)."""
    train_chars = corpus_chars - int(corpus_chars * training_config.val_fraction)
    return max(1, (train_chars - 1) // (training_config.batch_size
                                        * training_config.sequence_length))


def estimate(model_config: ModelConfig, training_config: TrainingConfig, corpus_chars: int,
             speed: MachineSpeed | None = None) -> Estimate:
    """Parameters, speed, time per epoch and peak memory of training this model on a corpus
    of `corpus_chars` characters (speed None: calibrate this machine first)."""
    speed = speed or calibrate()
    batch_size, sequence_length = training_config.batch_size, training_config.sequence_length
    chars_per_second = speed.chars_per_second(model_config, batch_size, sequence_length)
    steps = steps_per_epoch(corpus_chars, training_config)
    # An epoch's validations (one per epoch when eval_interval is 0), as the trainer runs them.
    evaluations = steps / training_config.eval_interval if training_config.eval_interval else 1
    val_chars = min(training_config.eval_chars,
                    int(corpus_chars * training_config.val_fraction))
    seconds_per_epoch = (steps * speed.step_seconds(model_config, batch_size, sequence_length)
                         + evaluations * evaluation_seconds(speed, model_config,
                                                           sequence_length, val_chars))
    return Estimate(model_config.num_parameters(), chars_per_second, seconds_per_epoch,
                    run_memory_bytes(model_config, training_config, corpus_chars))


# ---- recommendation ----

@dataclass(frozen=True)
class Recommendation:
    model_config: ModelConfig
    training_config: TrainingConfig
    reasons: tuple[str, ...]  # one sentence per choice, with the numbers behind it
    estimate: Estimate


# Tried largest first. 320 sits below a speed cliff of this 2-core CPU: in the trainer a
# step of hidden 384 with 1,024 output units on batch 32 x 64 took 32.6-50.8 ms from one
# model to the next (the bf16 recurrent weights, 1.2 MB, near the 2 MiB cache of a core),
# hidden 320 27.3-27.8 ms; in 60 s runs hidden 320 got 1,608-1,643 steps (1.4702 / 1.4942)
# where hidden 384 got 1,056-1,139 (1.4915-1.5009).
HIDDEN_SIZES = (1024, 768, 512, 384, 320, 256, 192, 128, 96, 64)
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
# A batch twice as large is taken when it trains enough faster (characters per second) to
# pay for the steps it gives up. Far below the batch where more windows per step stop
# helping, what a run learns follows the characters it reads; near it, each window adds
# less. With the "noise scale" model of McCandlish et al. (2018, "An Empirical Model of
# Large-Batch Training"), reaching a loss takes S_min (1 + NOISE_BATCH / batch) steps, so
# doubling the batch pays when it trains (2 batch + NOISE_BATCH) / (batch + NOISE_BATCH)
# times as many characters per second (batch_gain_needed): 1.12x from 8 to 16, 1.21x from
# 16 to 32 with NOISE_BATCH 60.
# Measured on tinyshakespeare at 60 s, hidden 256, on the AMX Xeon (estimated gains ~1.7
# and ~1.56): batch 32 (3,104 steps) 1.538, batch 16 1.551, batch 8 (4,632 steps) 1.587.
# On a 2-core AVX2 EPYC (windows of 64; gains of the LSTM alone from the current cost
# model, five calibrations: 1.17-1.31 from 8 to 16, 1.09-1.19 from 16 to 32), batch 16 beat
# both (tenth session's sweeps): hidden 192 with the output units 1.5517 / 1.1517 against
# batch 32's 1.5924 / 1.1725 (tinyshakespeare / Python documentation); hidden 256 with them
# 1.5760 / 1.1618 against 1.5796 / 1.1770 (8) and 1.5787 / 1.2002 (32).
# A single threshold of 1.15, as before, fell inside the second range: two recommended runs
# in a row took batch 32 (1.1900 and 1.6319, 2.7 % and 2.2 % above batch 16's best row).
# NOISE_BATCH between 54 and 68 gives the AVX2 EPYC batch 16 and the AVX-512 EPYC (gain to
# 32 ~1.23) still batch 32. Counted in windows, whatever their length (measured on 64).
NOISE_BATCH = 60


def batch_gain_needed(batch_size: int) -> float:
    """How many times the characters per second a batch twice `batch_size` must train for
    the doubling to pay (see NOISE_BATCH)."""
    return (2 * batch_size + NOISE_BATCH) / (batch_size + NOISE_BATCH)
# On a CPU the cost model's straight line stops holding above 32 windows: the activations a
# step keeps for its backward pass outgrow the caches (measured, hidden 256, windows of 64,
# one thread: batch 64 took 61 ms a step against 27 ms for 32, fewer characters per second;
# at 60 s it reached 1.547 against 1.538).
CPU_MAX_BATCH = 32
# Fewer optimizer steps than this (at batch 8) and a model is undertrained. Measured on
# tinyshakespeare at 60 s (the README's sweeps): hidden 384 with 2,550-2,870 steps ended
# 0.5-2.6 % above hidden 256 with 4,700-5,100, and runs with 1,300-2,050 steps 2-5 % above
# the best; the calibration's estimate of a model's steps varies by ~10 % between runs.
MIN_STEPS = 3_500
# ... on a machine that, in the time, gets through about this many characters with the
# reference shape below (hidden 256 with 1,024 output units, batch 32 x 64): 1,745-1,888
# steps in the ~54 s a 60 s run trains, where MIN_STEPS and OUTPUT_LAYER_STEPS were
# measured. With less compute (a slower machine or a shorter budget) the best model needs
# fewer steps, as in compute-optimal scaling, where steps and model size both grow with
# the square root of compute: min_steps() scales by the square root of the shortfall.
# Measured on a 2-core AVX2 CPU about 4x slower (~0.9 M reference characters in a 60 s
# run): hidden 192 / 256 / 128 with the output units on batch 16 reached 1.6010-1.6278 /
# 1.6300 / 1.6305 in 1,011-855 / 672 / 1,168 steps, where the unscaled rule, which wants
# 1,237 steps there, picked hidden 128 with a linear output layer (1.7357, 2,633 steps) or
# hidden 96 with the units (1.6465, 1,770 steps).
MIN_STEPS_REFERENCE_CHARS = 3_600_000
# Below a scale of 0.5 (a quarter of the reference characters: the least compute those
# measurements had) the floor falls in proportion to the compute instead, which keeps the
# output layer's units in short runs on slow machines. Measured on that AVX2 CPU (twelfth
# session), 20 s budgets (~17 s of training): hidden 192 / 128 with the units on batch 16
# reached 1.7765 / 1.7850 in 380 / 452 steps, where the floor held at 0.5 (619 steps) left
# only hidden 64 with a linear output layer: 1.9492 in 1,013 steps.
MIN_STEPS_SCALE = 0.5
# Seeing the text this many times or more invites overfitting, which dropout counters. Below
# it dropout only slowed learning (and costs ~15 % of a step): measured on tinyshakespeare
# (AVX-512 EPYC, 1,024 output units, batch 32), at 60 s hidden 384 reading it ~4.4 times
# reached 1.4491 without dropout, 1.4629 with 0.1 and 1.4634 with 0.2 (windows of 128, one
# seed); at 120 s hidden 512 reading it ~5-6 times 1.4178 without, 1.4293 with 0.2, and
# hidden 384 without it, reading it ~8 times, 1.4110. At 300 s (~12 passes) hidden 512 with
# dropout 0.2 reached the best figure measured (1.3892); on the Python documentation at
# 300 s (12 passes) dropout 0.3 beat 0.2 on hidden 768.
MANY_PASSES = 8.0
MANY_PASSES_CAPACITY = 2.5  # then a model may be this much larger, with dropout
# The recommendation's output layer: this many GELU units between the LSTM and the scores
# (model.output_layer). Measured at 60 s on tinyshakespeare, hidden 256, batch 32: 1.526 and
# 1.529 with it (1,635-1,856 steps) against 1.548-1.553 without (2,410-2,679 steps).
OUTPUT_HIDDEN_DIM = 1024
# A model with that output layer learns more per step and needs fewer of them: at 60 s on
# tinyshakespeare (batch 32), hidden 128 / 192 / 256 / 384 with it reached 1.538-1.548 /
# 1.520-1.530 / 1.520-1.529 / 1.528 with ~2,600 / ~2,000 / ~1,600 / 935 steps: flat from
# 935 to 2,000 steps, while the rule without this factor (1,750) picked hidden 128 whenever
# the machine was slow. At 30 s, 0.7 (1,225 steps) picked hidden 128 with the linear layer
# (1.664) or hidden 64 with the units (1.651), where hidden 192 with them reached 1.574 in
# ~950 steps; with 0.5 (875 steps) the recommendation reached 1.574 at 30 s (hidden 192),
# 1.520 at 60 s (hidden 384) and 1.470 at 300 s (hidden 768 on windows of 128, 1,182 steps;
# 1.478-1.487 with 0.7's windows of 64).
OUTPUT_LAYER_STEPS = 0.5
# The steps alone do not bound a wide model once steps are cheap: after freed memory was
# kept for reuse (keep_freed_memory) wide layers ran ~30 % faster, got past 875 steps and
# lost to a narrower layer that reads more characters for each of its parameters. The
# best share grows with the text read (measured, tinyshakespeare, with 1,024 output
# units): at 60 s hidden 384 (~2.9 M characters read, ~2.4 per parameter) 1.4736 / 1.4740
# beat hidden 512 (~2.2 M, ~1.15) 1.4799-1.4880 and hidden 320 (~3.3) 1.4823; at 300 s
# hidden 512 (~10.9 M characters, ~5.7 per parameter) 1.4088 beat hidden 768 (~6.5-7.4 M,
# ~1.8-2.0) 1.4236-1.4313 and hidden 1,024 (~0.84) 1.4691; on the Python documentation at
# 300 s hidden 512 1.0598 beat hidden 768 1.0785. So a model may have at most
# PARAMETERS_PER_ROOT_CHAR x the square root of the characters it reads in the time
# (as compute-optimal scaling has parameters grow with the square root of compute): 1.7 M
# for 2.9 M characters, 3.3 M for 10.9 M.
PARAMETERS_PER_ROOT_CHAR = 1000
# AdamW's weight decay in a recommended run (TrainingConfig's default is 0.01). Measured on
# tinyshakespeare: at 60 s (hidden 384 with 1,024 output units, batch 32 x 64, lr 1e-2, on
# three seeds) 0.01 reached 1.519-1.537, 0.1 1.502-1.511, 0.3 1.504-1.520, 1.0 1.543; at
# 300 s (hidden 768 with them, windows of 128, dropout 0.2) 0.01 1.459-1.470 and 1.477 on a
# second seed, 0.1 1.463, 0.3 1.449 and 1.467 on the second seed, 0.6 1.456. Even after
# 2-3 passes over the text the training loss (~1.30) runs far below the validation loss
# (~1.47): the decay keeps the large output layer from memorising.
WEIGHT_DECAY = 0.3
SEQUENCE_LENGTH = 128  # long windows let the model learn from long-range context
MIN_SEQUENCE_LENGTH = 32  # never halve the windows below this
# Windows of SEQUENCE_LENGTH need this many times min_steps() when half-length windows are
# the alternative: the same model then takes twice the steps, and at 60 s on tinyshakespeare
# (a 2-core AVX-512 EPYC, hidden 384 with 1,024 output units, batch 32, three seeds) windows
# of 64 in 1,690-1,980 steps reached 1.4416 / 1.4476 / 1.4463 against 1.4491 / 1.4599 /
# 1.4734 for windows of 128 in 950-1,090 steps (1.1-1.25 x min_steps). The best 300 s run
# measured took windows of 128 in 3,345 steps (hidden 512, 1.3892 on an AMX Xeon).
LONG_WINDOW_STEPS = 2.0
TRAINING_SHARE = 0.9  # of the budget; the rest goes to evaluation and set-up
EVAL_SHARE = 0.05  # evaluation may use at most this share of the budget
MIN_EVALUATIONS = 10  # enough validation points to draw a curve


def min_steps(batch_size: int, output_hidden_dim: int = 0, compute_scale: float = 1.0) -> float:
    """The fewest optimizer steps that train a model well at this batch size: larger
    batches need fewer, MIN_STEPS * sqrt(8 / batch) (1,750 at batch 32), and a model with
    hidden units in its output layer OUTPUT_LAYER_STEPS as many (875 at batch 32); all
    times compute_scale (steps_scale(): below 1 where there is less compute than where
    these were measured). Measured at 60 s: hidden 384 on batch 32, 1,860 steps, 1.537, as
    good as hidden 256 with 3,104 (1.538)."""
    steps = MIN_STEPS * math.sqrt(BATCH_SIZES[0] / max(batch_size, 1)) * compute_scale
    return steps * (OUTPUT_LAYER_STEPS if output_hidden_dim else 1.0)


def steps_scale(speed: MachineSpeed, training_seconds: float, vocab_size: int) -> float:
    """How many of min_steps() a run needs with the compute it has: the square root of the
    characters the reference shape reads in `training_seconds` on this machine over
    MIN_STEPS_REFERENCE_CHARS, at most 1 (more compute than that is spent on width, which
    _trainable_parameters() allows, not on more steps); below MIN_STEPS_SCALE (the least
    compute measured at first) in proportion to the characters, so that a short run on a
    slow machine still trains a model with the output layer's units, which the limit on
    parameters per character read then sizes."""
    reference = ModelConfig(vocab_size, 128, 256, 1, 0.0, output_hidden_dim=OUTPUT_HIDDEN_DIM)
    share = max(speed.chars_per_second(reference, 32, 64) * training_seconds, 0.0) / (
        MIN_STEPS_REFERENCE_CHARS)
    if share < MIN_STEPS_SCALE ** 2:
        return share / MIN_STEPS_SCALE  # meets the square root at MIN_STEPS_SCALE
    return min(1.0, math.sqrt(share))


def learning_rate_for(hidden_dim: int, batch_size: int) -> float:
    """Peak AdamW rate: for one layer up to hidden 512, 6e-3 on batch 8 and 1e-2 on larger
    batches; wider, 3e-3 on batch 8 times sqrt(batch / 8), at most 1e-2. Measured at 60 s
    on tinyshakespeare: on batch 8, 6e-3 beat 3e-3 and 1e-2 (1.567 / 1.590 / 1.603); on
    batch 32, 1e-2 beat 6e-3 and 1.5e-2 (hidden 256: 1.538 / 1.545 / 1.571; hidden 384:
    1.537 / 1.548); on batch 16 (hidden 256 with the output units, on a 2-core AVX2 EPYC),
    1e-2 beat the 8.5e-3 that sqrt(batch / 8) gave, in each of four pairs of runs:
    tinyshakespeare 1.5717 / 1.5883 against 1.6021 / 1.5927 (runs in turns), 1.5760 against
    1.5837; the Python documentation 1.1662 against 1.1745 / 1.1902."""
    if hidden_dim <= 512:
        return 6e-3 if batch_size <= BATCH_SIZES[0] else 1e-2
    return min(1e-2, 3e-3 * math.sqrt(max(batch_size, 1) / BATCH_SIZES[0]))


def recommend(corpus_chars: int, time_budget_s: float, vocab_size: int = 96,
              speed: MachineSpeed | None = None,
              memory_bytes: int | None = None) -> Recommendation:
    """The model and training settings that should reach the lowest validation loss on a
    corpus of `corpus_chars` characters in `time_budget_s` seconds on this machine.

    Measured on a 2-core CPU with a 60-70 s budget, one wide LSTM layer, a high learning
    rate and no dropout beat deeper models, so that is the starting point. Each hidden size
    gets the batch that reads the most text per second (_batch_for); the hidden size is the
    largest that still gets min_steps(batch) optimizer steps in the budget (fewer where
    the machine and budget give less compute: steps_scale), has no more
    parameters than the characters it reads can train (_trainable_parameters), fits in
    memory and is not far larger than the text. The output layer gets OUTPUT_HIDDEN_DIM hidden
    units unless no model fits with them. Dropout is chosen only when the budget lets the
    model read the text many times.
    speed None: calibrate this machine; memory_bytes None: the RAM available now.
    """
    from .trainer import TrainingConfig

    if corpus_chars < 3:
        raise ValueError("The corpus needs at least a few characters to train on.")
    if time_budget_s <= 0:
        raise ValueError("time_budget_s must be > 0")
    speed = speed or calibrate()
    if memory_bytes is None:
        memory_bytes = probe().available_ram_bytes
    val_fraction = 0.1
    val_chars = int(corpus_chars * val_fraction)  # as split_text holds it out
    train_chars = corpus_chars - val_chars
    longest = max(1, min(SEQUENCE_LENGTH, (train_chars - 1) // 4))
    # Half-length windows halve the cost of a step: when the long ones leave a model too few
    # steps, the same model with more, shorter steps learns more in the time (measured: see
    # the README's sweep).
    lengths = (longest,) if longest < 2 * MIN_SEQUENCE_LENGTH else (longest, longest // 2)
    training_seconds = TRAINING_SHARE * time_budget_s
    memory_limit = memory_bytes // 2  # leave room for the OS, the app and the corpus text
    precision = lstm_precision(speed.precision)  # what the memory estimate is priced in
    # Parameters the text can support: measured in 60 s on the 465,000-character Python
    # documentation, a 1.4 M-parameter model (3x the text) beat a 0.36 M one. A model that
    # reads the text many times gets dropout (0.3 above 4x the text) and may be 2.5x as
    # large: at 300 s on that text (12 passes), hidden 768 with dropout 0.3 (6.7x the text)
    # beat hidden 512 with dropout 0.2 by 1.5-2.7 %; with 1,024 output units (8.8x the
    # text) it reached 1.1172, against 1.1353 for hidden 512 with them (4.7x).
    capacity = max(50_000, 4 * train_chars)
    compute_scale = steps_scale(speed, training_seconds, vocab_size)

    def capacity_of(candidate: dict) -> int:
        return int(capacity * (MANY_PASSES_CAPACITY if candidate["passes"] >= MANY_PASSES
                               else 1))

    def plan(hidden_dim: int, num_layers: int, sequence_length: int,
             output_hidden_dim: int) -> dict:
        """One candidate as it would train: its batch, then its dropout (which depends on
        how often it reads the text), then its speed, steps and memory with that dropout."""
        embedding_dim = min(128, max(16, hidden_dim // 2))
        # The batch rule was measured on the LSTM's own costs (NOISE_BATCH): an output layer
        # priced per position would make every doubling look dearer and pick batch 16,
        # which lost to 32 in 60 s with that layer too.
        linear = ModelConfig(vocab_size, embedding_dim, hidden_dim, num_layers, 0.0)
        batch_size = _batch_for(speed, linear, sequence_length)
        plain = replace(linear, output_hidden_dim=output_hidden_dim)
        passes = (speed.chars_per_second(plain, batch_size, sequence_length)
                  * training_seconds / train_chars)
        dropout = _dropout_for(passes, plain.num_parameters(), train_chars)
        config = replace(plain, dropout=dropout)
        chars_per_second = speed.chars_per_second(config, batch_size, sequence_length)
        chars_seen = chars_per_second * training_seconds
        return {"config": config, "batch_size": batch_size, "chars_per_second": chars_per_second,
                "min_steps": min_steps(batch_size, output_hidden_dim, compute_scale)
                * (LONG_WINDOW_STEPS if sequence_length == lengths[0] and len(lengths) > 1
                   else 1.0),
                "sequence_length": sequence_length,
                "steps": chars_seen / (batch_size * sequence_length),
                "chars_seen": chars_seen, "passes": chars_seen / train_chars,
                "memory": training_memory_bytes(config, batch_size, sequence_length,
                                                corpus_chars, precision)}

    def acceptable(candidate: dict) -> bool:
        return (candidate["steps"] >= candidate["min_steps"]
                and _reads_enough(candidate)
                and candidate["memory"] <= memory_limit
                and candidate["config"].num_parameters() <= capacity_of(candidate))

    # With the output layer's hidden units first: a narrower LSTM with them beat a wider one
    # without at equal time. Without them only where none fits the text, memory or budget.
    candidates = [plan(h, 1, t, units) for units in (OUTPUT_HIDDEN_DIM, 0)
                  for h in HIDDEN_SIZES for t in lengths]
    chosen = next((c for c in candidates if acceptable(c)), candidates[-1])
    # One layer only: at 60 s a second layer lost on both sample texts (see the README's
    # sweep); reading the text many times is met with dropout instead.
    config, batch_size = chosen["config"], chosen["batch_size"]
    sequence_length = chosen["sequence_length"]
    parameters, dropout = config.num_parameters(), config.dropout
    learning_rate = learning_rate_for(config.hidden_dim, batch_size)
    chars_per_second, steps = chosen["chars_per_second"], chosen["steps"]
    training = budget_plan(config, TrainingConfig(
        learning_rate=learning_rate, batch_size=batch_size, sequence_length=sequence_length,
        weight_decay=WEIGHT_DECAY, grad_clip=1.0, val_fraction=val_fraction,
        precision=speed.precision),
        corpus_chars, time_budget_s, speed)
    eval_chars, eval_interval = training.eval_chars, training.eval_interval
    evaluations = max(1, round(steps / eval_interval))
    result = estimate(config, training, corpus_chars, speed)

    chars_seen = chosen["chars_seen"]
    reasons = [
        f"Hidden size {config.hidden_dim}: at ~{_count(chars_per_second)} chars/s "
        f"this machine processes ~{_count(chars_seen)} characters in {time_budget_s:g} s "
        f"(~{steps:,.0f} steps), enough to train ~{_count(parameters)} parameters; "
        + _size_limit(chosen, candidates, memory_limit, capacity_of),
        _layers_reason(config.num_layers, chosen["passes"]),
        _output_reason(speed, config, batch_size, sequence_length, capacity_of(chosen)),
        f"Embedding size {config.embedding_dim}: each character becomes a vector of "
        f"{config.embedding_dim} numbers, plenty for a vocabulary of {vocab_size} characters.",
        _batch_reason(speed, config, batch_size, sequence_length),
        f"Sequence length {sequence_length}: the model learns from windows of "
        f"{sequence_length} characters, so it can pick up patterns that span words and lines"
        + ("" if sequence_length == lengths[0] else
           f"; windows of {lengths[0]} would cost twice as much per step and leave this model "
           f"too few steps")
        + ". Each pass over the text reads every window of it once, in random order "
          "(measured: 1.2-1.9 % lower validation loss in 60 s than drawing each window at "
          "random, which leaves ~5 % of the text unread after three passes).",
        f"Precision {speed.precision}: " + (
            "this CPU has a bfloat16 unit, and mixed precision trains the LSTM faster (the "
            "weights stay float32)." if speed.precision == "bfloat16" else
            "full precision (no bfloat16 unit measured here)."),
        f"Learning rate {learning_rate:g}: " + (
            "a fast rate suits a single layer in a fixed time" if config.hidden_dim <= 512
            else "a little slower than for narrower layers, as wider ones are less stable")
        + ("" if batch_size == BATCH_SIZES[0] else
           f", and a batch of {batch_size} averages out enough noise for a larger step")
        + "; it warms up, then decays, and gradient clipping at 1.0 keeps it stable.",
        f"Weight decay {WEIGHT_DECAY:g}: each step pulls the weight matrices slightly towards "
        f"zero, which keeps the model from memorising the training text (measured: ~1 % "
        f"lower validation loss than 0.01 in 60 s and in 300 s).",
        f"Weight averaging {training.ema_decay:g}: the model validated and kept is a moving "
        f"average of the weights over about the last {1 / (1 - training.ema_decay):.0f} "
        f"steps, which evens out the noise of single batches (measured: 0.7-1.1 % lower "
        f"validation loss than the last weights of the same run, in 60 s and in 300 s).",
        _dropout_reason(dropout, chosen["passes"], parameters, train_chars),
        f"Validation every {eval_interval:,} steps on {_count(eval_chars)} held-out "
        f"characters (~{evaluations} checks), so measuring progress takes under "
        f"{EVAL_SHARE:.0%} of the time.",
        f"Training stops after {time_budget_s:g} s; it needs about "
        f"{_memory(result.memory_bytes)} of memory ({_memory(memory_bytes)} available).",
    ]
    return Recommendation(config, training, tuple(reasons), result)


def budget_plan(model_config: ModelConfig, training_config: TrainingConfig, corpus_chars: int,
                time_budget_s: float, speed: MachineSpeed) -> TrainingConfig:
    """training_config with the epochs, evaluation interval and evaluation size that suit
    this model in `time_budget_s` on a machine of this speed (the clock ends the run)."""
    cfg = training_config
    val_chars = int(corpus_chars * cfg.val_fraction)
    chars_per_second = speed.chars_per_second(model_config, cfg.batch_size, cfg.sequence_length)
    steps = TRAINING_SHARE * time_budget_s * chars_per_second / (cfg.batch_size
                                                                 * cfg.sequence_length)
    # Enough epochs that the clock, not the epoch count, ends the run even if this
    # machine turns out three times faster than measured (an epoch is at least one step).
    epochs = math.ceil(3 * steps / steps_per_epoch(corpus_chars, cfg)) + 1
    eval_chars, eval_interval, _ = _evaluation_plan(
        speed, model_config, cfg.sequence_length, val_chars, time_budget_s, steps)
    return replace(cfg, epochs=epochs, eval_interval=eval_interval, eval_chars=eval_chars,
                   time_budget_s=time_budget_s)


def _batch_for(speed: MachineSpeed, config: ModelConfig, sequence_length: int) -> int:
    """The batch after which doubling no longer trains enough more characters per second to
    pay for the steps it gives up (batch_gain_needed). The fixed costs of a step (launching
    it, walking the window one character at a time, reading the weights at each character)
    do not grow with the batch, so while they dominate, a larger batch reads more text in
    nearly the same time."""
    batch_size = BATCH_SIZES[0]
    largest = CPU_MAX_BATCH if speed.device == "cpu" else BATCH_SIZES[-1]
    for larger in BATCH_SIZES[1:]:
        if larger > largest or (speed.chars_per_second(config, larger, sequence_length)
                < batch_gain_needed(batch_size)
                * speed.chars_per_second(config, batch_size, sequence_length)):
            break
        batch_size = larger
    return batch_size


def _batch_reason(speed: MachineSpeed, config: ModelConfig, batch_size: int,
                  sequence_length: int) -> str:
    rate = speed.chars_per_second(config, batch_size, sequence_length)
    doubled = speed.chars_per_second(config, 2 * batch_size, sequence_length)
    text = f"Batch size {batch_size}: ~{_count(rate)} chars/s"
    if (speed.device == "cpu" and batch_size == CPU_MAX_BATCH
            and doubled >= batch_gain_needed(batch_size) * rate):
        text += (f", the most windows a CPU step takes here (beyond {CPU_MAX_BATCH}, the "
                 f"activations kept for the backward pass outgrow the caches)")
    else:
        text += (f", and twice the batch would read only {doubled / rate - 1:.0%} more "
                 f"characters per second, too little to make up for half as many weight "
                 f"updates")
    if batch_size == BATCH_SIZES[0]:
        return text + ", so smaller batches and more, quicker weight updates win."
    smallest = speed.chars_per_second(config, BATCH_SIZES[0], sequence_length)
    return (text + f"; batch {BATCH_SIZES[0]} would read {rate / smallest:.1f}x fewer "
            f"(the fixed costs of a step, not the batch, take most of its time here).")


def _dropout_for(passes: float, parameters: int, train_chars: int) -> float:
    """No dropout unless the model reads the text many times and is not small next to it;
    then more for models that are large next to the text (they can memorise it). Measured
    at 60 s on tinyshakespeare, hidden 256 (0.4 parameters per training character) on
    batch 32 reading the text ~6 times: dropout 0.1 ended 1.2 % worse (two pairs of runs)."""
    if passes < MANY_PASSES or parameters < train_chars / 2:
        return 0.0
    if parameters < train_chars:
        return 0.1
    if parameters < 4 * train_chars:
        return 0.2
    return 0.3


def evaluation_seconds(speed: MachineSpeed, config: ModelConfig, sequence_length: int,
                       chars: int) -> float:
    """One validation of `chars` characters: scoring a character costs about a third of
    training on it (forward only), in batches of 64 windows."""
    if chars <= 0:
        return 0.0
    batches = max(1, math.ceil(chars / (64 * sequence_length)))
    return batches * speed.step_seconds(config, 64, sequence_length) / 3


def _evaluation_plan(speed: MachineSpeed, config: ModelConfig, sequence_length: int,
                     val_chars: int, time_budget_s: float, steps: float) -> tuple[int, int, int]:
    """(eval_chars, eval_interval, number of evaluations) keeping evaluation under
    EVAL_SHARE of the budget."""
    seconds_for = partial(evaluation_seconds, speed, config, sequence_length)
    eval_seconds_allowed = EVAL_SHARE * time_budget_s
    eval_chars = max(1, min(100_000, val_chars))
    while eval_chars > 2_000 and MIN_EVALUATIONS * seconds_for(eval_chars) > eval_seconds_allowed:
        eval_chars //= 2
    evaluations = max(1, int(eval_seconds_allowed / seconds_for(eval_chars)))
    evaluations = min(evaluations, 50)  # a curve needs no more points than this
    eval_interval = max(1, math.ceil(steps / evaluations))
    return eval_chars, eval_interval, max(1, round(steps / eval_interval))


def _size_limit(chosen: dict, candidates: list[dict], memory_limit: int,
                capacity_of: Callable[[dict], int]) -> str:
    """Why the next hidden size up was not chosen."""
    chosen_config = chosen["config"]
    larger = [c for c in candidates if c["config"].hidden_dim > chosen_config.hidden_dim
              and c["config"].output_hidden_dim == chosen_config.output_hidden_dim]
    if not larger:
        return "it is the largest size considered."
    bigger = larger[-1]  # the next size up
    if bigger["memory"] > memory_limit:
        return f"hidden size {bigger['config'].hidden_dim} would need more memory than is free."
    if chosen["steps"] < chosen["min_steps"]:
        return (f"even this smallest size gets only ~{chosen['steps']:,.0f} steps; a longer "
                f"budget would help.")
    if bigger["steps"] < bigger["min_steps"]:
        return (f"hidden size {bigger['config'].hidden_dim} would get only "
                f"~{bigger['steps']:,.0f} steps of {bigger['batch_size']} windows, too few to "
                f"learn well (want {bigger['min_steps']:,.0f}+).")
    if not _reads_enough(bigger):
        return (f"hidden size {bigger['config'].hidden_dim} would have "
                f"~{_count(bigger['config'].num_parameters())} parameters, more than the "
                f"~{_count(bigger['chars_seen'])} characters it reads in the time can train "
                f"well (~{_count(_trainable_parameters(bigger['chars_seen']))}: "
                f"{PARAMETERS_PER_ROOT_CHAR:,} x their square root).")
    return (f"hidden size {bigger['config'].hidden_dim} would have more parameters than "
            f"the text can teach (~{_count(capacity_of(bigger))}).")


def _trainable_parameters(chars_seen: float) -> float:
    """The most parameters that reading `chars_seen` characters trains well."""
    return PARAMETERS_PER_ROOT_CHAR * math.sqrt(chars_seen)


def _reads_enough(candidate: dict) -> bool:
    """The candidate has at most _trainable_parameters() of the characters it reads."""
    return candidate["config"].num_parameters() <= _trainable_parameters(candidate["chars_seen"])


def _output_reason(speed: MachineSpeed, config: ModelConfig, batch_size: int,
                   sequence_length: int, capacity: int) -> str:
    if not config.output_hidden_dim:
        return (f"Output layer: one linear map from the LSTM to the character scores. "
                f"{OUTPUT_HIDDEN_DIM} hidden units between them (which lower the loss where "
                f"they fit) would leave no model within this text's ~{_count(capacity)} "
                f"parameters, the memory or the budget.")
    linear = replace(config, output_hidden_dim=0)
    share = 1 - (speed.step_seconds(linear, batch_size, sequence_length)
                 / speed.step_seconds(config, batch_size, sequence_length))
    # (a speed measured without an output-layer shape prices the units at nothing)
    cost = "under 1%" if share < 0.005 else f"{'only ' if share < 0.4 else ''}~{share:.0%}"
    return (f"Output layer of {config.output_hidden_dim} units (GELU) between the LSTM and "
            f"the character scores: it reads all {batch_size} x {sequence_length} positions "
            f"of a step at once, so its extra capacity costs {cost} of a step here (the LSTM "
            f"must walk each window one character at a time). Measured in 60 s: a lower loss "
            f"than one linear output layer, despite fewer steps.")


def _layers_reason(num_layers: int, passes: float) -> str:
    if num_layers == 1:
        return (f"One LSTM layer: in this budget the model reads the text ~{_times(passes)} "
                f"times, and one wide layer learns faster than a deeper, narrower stack.")
    return (f"{num_layers} LSTM layers: the budget lets the model read the text "
            f"~{_times(passes)} times, enough time for a deeper model to pay off.")


def _dropout_reason(dropout: float, passes: float, parameters: int, train_chars: int) -> str:
    if dropout == 0 and passes < MANY_PASSES:
        return (f"No dropout: the model reads the text only ~{_times(passes)} times, too few "
                f"to memorise it, so dropout would only slow learning.")
    if dropout == 0:
        return (f"No dropout: with {_count(parameters)} parameters for {_count(train_chars)} "
                f"training characters the model is too small to memorise the text in "
                f"~{_times(passes)} readings, so dropout would only slow learning.")
    return (f"Dropout {dropout:g}: the model reads the text ~{_times(passes)} times with "
            f"{_count(parameters)} parameters for {_count(train_chars)} training characters, "
            f"so it could memorise the text; dropout makes it generalise.")


def _count(value: float) -> str:
    """1234567 -> '1.2 M', 34567 -> '35,000' style: numbers a person reads at a glance."""
    if value >= 1e6:
        return f"{value / 1e6:.1f} M"
    if value >= 10_000:
        return f"{round(value, -3):,.0f}"
    return f"{value:,.0f}"


def _times(passes: float) -> str:
    return f"{passes:.1f}" if passes < 10 else f"{passes:,.0f}"


def _memory(num_bytes: float) -> str:
    if num_bytes >= GIB:
        return f"{num_bytes / GIB:.1f} GiB"
    return f"{num_bytes / 2**20:.0f} MiB"
