"""The recommendation for a time budget: the model and settings expected to reach the
lowest validation loss on this machine, with a reason for each choice."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from .calibration import calibrate
from .config import TrainingConfig
from .hardware import probe
from .model import ModelConfig
from .presets import (
    Estimate,
    estimate,
    lstm_precision,
    steps_per_epoch,
    training_memory_bytes,
)
from .speed import OUTPUT_HIDDEN_DIM, MachineSpeed, evaluation_seconds
from .units import format_bytes, format_count


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
        f"Hidden size {config.hidden_dim}: at ~{format_count(chars_per_second)} chars/s "
        f"this machine processes ~{format_count(chars_seen)} characters in {time_budget_s:g} s "
        f"(~{steps:,.0f} steps), enough to train ~{format_count(parameters)} parameters; "
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
        f"Validation every {eval_interval:,} steps on {format_count(eval_chars)} held-out "
        f"characters (~{evaluations} checks), so measuring progress takes under "
        f"{EVAL_SHARE:.0%} of the time.",
        f"Training stops after {time_budget_s:g} s; it needs about "
        f"{format_bytes(result.memory_bytes)} of memory ({format_bytes(memory_bytes)} available).",
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
    text = f"Batch size {batch_size}: ~{format_count(rate)} chars/s"
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
                f"~{format_count(bigger['config'].num_parameters())} parameters, more than the "
                f"~{format_count(bigger['chars_seen'])} characters it reads in the time can train "
                f"well (~{format_count(_trainable_parameters(bigger['chars_seen']))}: "
                f"{PARAMETERS_PER_ROOT_CHAR:,} x their square root).")
    return (f"hidden size {bigger['config'].hidden_dim} would have more parameters than "
            f"the text can teach (~{format_count(capacity_of(bigger))}).")


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
                f"they fit) would leave no model within this text's ~{format_count(capacity)} "
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
        return (f"No dropout: with {format_count(parameters)} parameters for "
                f"{format_count(train_chars)} training characters the model is too small to "
                f"memorise the text in ~{_times(passes)} readings, so dropout would only slow "
                f"learning.")
    return (f"Dropout {dropout:g}: the model reads the text ~{_times(passes)} times with "
            f"{format_count(parameters)} parameters for {format_count(train_chars)} training "
            f"characters, so it could memorise the text; dropout makes it generalise.")


def _times(passes: float) -> str:
    return f"{passes:.1f}" if passes < 10 else f"{passes:,.0f}"
