"""Calibration: timing real training steps of this machine, remembered for an hour."""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from functools import partial
from pathlib import Path

import torch

from . import hardware, remembered
from .config import TrainingConfig
from .model import Dropout, MicroLM, ModelConfig
from .speed import (
    OUTPUT_HIDDEN_DIM,
    REUSE_MAX_AGE_S,
    REUSE_RECENT,
    MachineSpeed,
    calibration_shapes,
    speed_from_timings,
)
from .trainer import make_optimizer


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
    # With freed memory kept (keep_freed_memory), the heap would otherwise hold on to the
    # matrix's pages for the rest of the process.
    hardware.give_back_freed_memory()
    return seconds / (side * side * 4)


_CALIBRATIONS: dict[str, MachineSpeed] = {}


def machine_setup(device: str | None = None, precision: str | None = None) -> str:
    """What a calibration is remembered under, the machine's identity: the CPU model, torch's
    thread count and version, the device and precision, the allocator and the costs'
    format (device None: the best available; precision None: the device's fastest)."""
    target = hardware.select_device(device)
    precision = precision or hardware.default_precision(target)
    allocator = "/freed memory kept" if hardware.keep_freed_memory() else ""
    return (f"{hardware.cpu_model()}/{torch.get_num_threads()} threads"
            f"/torch {torch.__version__}"
            f"/{target}/{precision}{allocator}/costs {CALIBRATION_FORMAT}")


def calibrate(seconds: float = 1.5, device: str | None = None,
              precision: str | None = None, reuse_recent: bool = False,
              measure_again: bool = False) -> MachineSpeed:
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
    from a time budget). measure_again: measure now even where this process already did.
    """
    target = hardware.select_device(device)
    precision = precision or hardware.default_precision(target)
    key = f"{target}/{precision}"
    if key not in _CALIBRATIONS or measure_again:
        setup = machine_setup(str(target), precision)
        reused = _reused(setup) if reuse_recent else None
        _CALIBRATIONS[key] = reused or _steadied(_measure_speed(seconds, target, precision),
                                                 setup)
    return _CALIBRATIONS[key]


# Calibrations of one machine set-up whose median is used (kept in a small file), as one slow
# second on a shared machine skews a single one: `microlm probe`, repeated (RESULTS.md).
REMEMBERED_CALIBRATIONS = 5
CALIBRATION_FORMAT = 2  # which shapes and costs a remembered calibration holds
CALIBRATION_MAX_AGE_S = 3600.0  # older ones may describe another load on the machine


def calibration_file() -> Path | None:
    """Where recent calibrations are kept: $MICROLM_CACHE_DIR (empty: nowhere), else the
    user's cache folder ($XDG_CACHE_HOME or ~/.cache, then microlm/)."""
    folder = remembered.cache_folder()
    return folder / "calibrations.json" if folder else None


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
    remembered.write_json(path, saved)
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
    return remembered.read_json(path)


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
            median = speed_from_timings(median.device, median.precision, median.threads,
                                         pooled, median.cache_bytes)
    return replace(median, calibrations=len(speeds))


@contextmanager
def _torch_threads(count: int | None):
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _measure_speed(seconds: float, device: torch.device,
                   precision: str = "float32") -> MachineSpeed:
    shapes = calibration_shapes(device)
    threads = None
    if device.type == "cpu" and torch.get_num_threads() > 1:
        threads = _faster_thread_count(_training_step(shapes[2][0], shapes[2][1], 16, device,
                                                      precision))
    cache_bytes = hardware.last_level_cache_bytes() if device.type == "cpu" else 0
    with _torch_threads(threads):
        times = _interleaved_step_seconds(shapes, device, seconds, precision)
        dropout_costs = _dropout_costs(device, precision)
        memory_byte_s = _memory_seconds_per_byte(cache_bytes, device)
    return speed_from_timings(str(device), precision, threads,
                               (*times, *dropout_costs, memory_byte_s), cache_bytes)


def _interleaved_step_seconds(shapes: list[tuple[ModelConfig, int, int]], device: torch.device,
                              seconds: float, precision: str) -> list[float]:
    """The median time of one training step of each (model, batch, window) shape, timed in
    turns (a few steps of one shape, then of the next, round again) for about `seconds`, at
    least one turn. The fitted costs rest on the ratios between the shapes, and on a shared
    machine the speed can change by half within a second; timed in turns, such a change
    moves every shape alike."""
    steps = [_training_step(config, batch_size, sequence_length, device, precision)
             for config, batch_size, sequence_length in shapes]
    for step in steps:
        step()  # the first step allocates memory and optimizer state: not typical
    durations: list[list[float]] = [[] for _ in steps]
    deadline = time.perf_counter() + seconds
    turn = 0.0  # how long the last turn took: a turn that would end past the deadline is
    # not started (a run's calibration is taken from its training time)
    while len(durations[0]) < 4 or (time.perf_counter() + turn < deadline
                                    and len(durations[0]) < 200):
        turn_start = time.perf_counter()
        for step, measured in zip(steps, durations, strict=True):
            step()  # a turn's first step finds the caches full of another shape: untimed
            measured.extend(_timed(step) for _ in range(TIMED_PER_TURN))
        turn = time.perf_counter() - turn_start
    return [statistics.median(measured) for measured in durations]


# Steps timed per shape and turn, after one that warms the caches; with fewer, the estimates
# of `python tests/benchmarks/estimates.py CORPUS` missed by more.
TIMED_PER_TURN = 4


def _dropout_costs(device: torch.device, precision: str) -> tuple[float, float]:
    """Seconds per value of the model's dropout and of torch's (which a stacked LSTM uses
    between its layers), forward and backward, on activations of a batch-32 step."""
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
    """Torch's thread count, unless one thread runs `step` clearly faster (by more than
    THREADS_MARGIN: on an idle machine the two can be close, and a choice that flipped
    between calibrations changed every cost with it). A few steps each; a thread count
    already 3x slower than one thread after its first step is not timed further (on a
    busy machine one such step can take seconds)."""
    many = torch.get_num_threads()
    with _torch_threads(1):
        step()  # the first step allocates memory and optimizer state: not typical
        one = statistics.median(_timed(step) for _ in range(3))
    with _torch_threads(many):
        first = _timed(step)  # includes starting the thread pool
        if first > 3 * one:
            return 1
        several = statistics.median(_timed(step) for _ in range(3))
    return 1 if one < (1 - THREADS_MARGIN) * several else many


THREADS_MARGIN = 0.1  # one thread must save this share of a step to be chosen


def _timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _training_step(config: ModelConfig, batch_size: int, sequence_length: int,
                   device: torch.device, precision: str = "float32") -> Callable[[], None]:
    """One training step of a fresh model on random data, as ModelTrainer._train_step does it."""
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
