"""The cost model of a training step on this machine (MachineSpeed), fitted to the step
times of a calibration (see calibration.py)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .model import ModelConfig

# GELU units between the LSTM and the scores of a recommended model (model.output_layer):
# `python tests/benchmarks/sweep.py CORPUS --budget 60`.
OUTPUT_HIDDEN_DIM = 1024
# Where this many calibrations were taken in the last REUSE_MAX_AGE_S seconds, a run with a
# time budget takes none and uses them (calibration.calibrate's reuse_recent).
REUSE_RECENT = 3
REUSE_MAX_AGE_S = 600.0
# The model a speed is quoted for (MachineSpeed.reference_chars_per_second): a typical
# recommended run, one LSTM layer of 256 with the output units, batches of 16 x 128.
REFERENCE_MODEL = ModelConfig(96, 128, 256, 1, 0.0, OUTPUT_HIDDEN_DIM)
REFERENCE_BATCH = (16, 128)


def matmul_parameters(model_config: ModelConfig) -> int:
    """Parameters whose arithmetic the cost model prices at its FLOP rate: the LSTM and a
    linear output layer. The embedding is a table lookup and costs next to nothing; an
    output layer with hidden units is priced per unit instead (output_value_s)."""
    if model_config.output_hidden_dim:
        return model_config.lstm_parameters()
    return model_config.num_parameters() - model_config.vocab_size * model_config.embedding_dim


# An output unit's products grow with its inputs (the width below, the vocabulary); its
# activation, bias and moving values do not. The calibration prices it on this many inputs:
OUTPUT_REFERENCE_INPUTS = 256 + 96 + 1  # the calibration's hidden size, characters, bias
# The part of an output unit's cost there that does not grow with its inputs: step times with
# and without output units under hidden 128-768 (RESULTS.md, "Where the constants come from").
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
    # LSTM kernel rearranging its weights at each step
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
        recurrent_bytes = 4 * model_config.hidden_dim ** 2 * WEIGHT_BYTES.get(self.precision, 4)
        return (model_config.num_layers * spilled_share(recurrent_bytes, self.cache_bytes)
                * STREAMED_WEIGHT_PASSES * recurrent_bytes * self.memory_byte_s
                * sequence_length)

    def reference_chars_per_second(self) -> float:
        """Training characters per second of REFERENCE_MODEL: the speed quoted to a person.
        A prediction near the shapes the calibration times, it repeats from one calibration
        to the next where single fitted costs need not (on a CPU whose matrix units make the
        arithmetic a small part of each step, the FLOP rate is poorly determined)."""
        return self.chars_per_second(REFERENCE_MODEL, *REFERENCE_BATCH)

    def summary(self) -> str:
        """The speed and the fitted costs in words, e.g. for a probe's report."""
        batch_size, sequence_length = REFERENCE_BATCH
        text = (f"{self.reference_chars_per_second():,.0f} training characters/s for a "
                f"one-layer LSTM of {REFERENCE_MODEL.hidden_dim} with "
                f"{REFERENCE_MODEL.output_hidden_dim:,} output units on batches of "
                f"{batch_size} x {sequence_length}. Fitted costs: ")
        text += f"{self.flops_per_second / 1e9:,.1f} GFLOP/s of LSTM math, "
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
            text += (f", {1 / self.memory_byte_s / 2**30:.1f} GiB/s from memory for the weights "
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


# Fitted to the step times of 55 LSTM shapes (RESULTS.md, "Where the constants come from");
# `python tests/benchmarks/estimates.py CORPUS` checks the estimates they give.
SPILL_STARTS = 1 / 3  # share of the last-level cache where recurrent weights start to spill
SPILL_COMPLETE = 1 / 2  # ... and from which they are read from memory in full
STREAMED_WEIGHT_PASSES = 1.4  # bytes read from memory per spilled byte and character
WEIGHT_BYTES = {"float32": 4, "bfloat16": 2}  # bytes per LSTM weight, by precision


def spilled_share(weight_bytes: int, cache_bytes: int) -> float:
    """The share of an LSTM layer's recurrent weights (of this size) read from memory, not
    the cache, at each character: 0 up to SPILL_STARTS of the cache, 1 from SPILL_COMPLETE,
    in proportion to the size in between (0 where the cache size is unknown). They spill
    before they fill the cache: the backward pass keeps their gradients beside them, and
    other programs share it."""
    if cache_bytes <= 0:
        return 0.0
    low, high = cache_bytes * SPILL_STARTS, cache_bytes * SPILL_COMPLETE
    return min(1.0, max(0.0, (weight_bytes - low) / (high - low)))


# The batch of the calibration's wide shape, by device kind (others: as CUDA). A CPU's is
# where the recommendation trains: small matrices run far below a CPU's peak, so a smaller
# shape would make wide models look cheap. A GPU needs a wide batch before the math, not the
# launches, dominates a step.
CALIBRATION_BATCH = {
    "cpu": 8,
    "cuda": 128,
    "mps": 128,
}


def calibration_shapes(device: torch.device) -> list[tuple[ModelConfig, int, int]]:
    """The (model, batch_size, sequence_length) shapes a calibration times.

    The FLOP rate is measured near where the recommendation trains: a wide layer (512) on
    the device's CALIBRATION_BATCH."""
    wide_batch = CALIBRATION_BATCH.get(device.type, CALIBRATION_BATCH["cuda"])
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


def speed_from_timings(device: str, precision: str, threads: int | None,
                        timings: Sequence[float], cache_bytes: int = 0) -> MachineSpeed:
    """The costs fitted to a calibration's timings: the step time of each of
    calibration_shapes(), then the seconds per value of the two dropouts, then (where
    measured) the seconds per byte read from memory."""
    shapes = calibration_shapes(torch.device(device))
    times = list(timings[:len(shapes)])
    dropout_value_s, lstm_dropout_value_s, *memory = timings[len(shapes):]
    memory_byte_s = memory[0] if memory else 0.0
    wide = shapes[2][0]
    if spilled_share(4 * wide.hidden_dim ** 2 * WEIGHT_BYTES.get(precision, 4), cache_bytes) > 0:
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


def evaluation_seconds(speed: MachineSpeed, config: ModelConfig, sequence_length: int,
                       chars: int) -> float:
    """One validation of `chars` characters: scoring a character costs about a third of
    training on it (forward only), in batches of 64 windows."""
    if chars <= 0:
        return 0.0
    batches = max(1, math.ceil(chars / (64 * sequence_length)))
    return batches * speed.step_seconds(config, 64, sequence_length) / 3
