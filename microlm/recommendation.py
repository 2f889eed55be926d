"""The recommendation for a time budget: the model and settings expected to reach the
lowest validation loss on this machine, with a reason for each choice."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from . import recommendation_reasons as reasons
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
from .recommendation_reasons import Reason
from .speed import OUTPUT_HIDDEN_DIM, MachineSpeed, evaluation_seconds
from .units import format_count


@dataclass(frozen=True)
class Recommendation:
    model_config: ModelConfig
    training_config: TrainingConfig
    explained: tuple[Reason, ...]  # per choice: a plain sentence and the numbers behind it
    estimate: Estimate
    steps: float = 0.0  # optimizer steps expected in the time budget

    @property
    def reasons(self) -> tuple[str, ...]:
        """Each reason as one paragraph: its plain sentence, then its details."""
        return tuple(reason.text for reason in self.explained)

    def headline(self, time_budget_s: float) -> str:
        """The recommendation in one line, e.g. "Recommended for 60 s: hidden size 320, 1
        layer, output layer 1,024 units, batch 16 x 128 characters, learning rate 0.004,
        about 900 steps"."""
        model, training = self.model_config, self.training_config
        layers = f"{model.num_layers} layer" + ("s" if model.num_layers > 1 else "")
        output = (f"output layer {model.output_hidden_dim:,} units" if model.output_hidden_dim
                  else "linear output layer")
        dropout = f", dropout {model.dropout:g}" if model.dropout else ""
        return (f"Recommended for {time_budget_s:g} s: hidden size {model.hidden_dim}, "
                f"{layers}, {output}{dropout}, batch {training.batch_size} x "
                f"{training.sequence_length} characters, learning rate "
                f"{training.learning_rate:g}, about {_round_steps(self.steps):,} steps")

    def in_words(self, time_budget_s: float, corpus_chars: int) -> str:
        """What this machine does with the recommended model in the budget, one sentence:
        "This computer trains about 70,000 characters a second: in 3 minutes a model of
        about 1.0 million parameters reads the text about 20 times." """
        training = self.training_config
        train_chars = max(1, corpus_chars - int(corpus_chars * training.val_fraction))
        chars_read = self.steps * training.batch_size * training.sequence_length
        return reasons.speed_in_words(self.estimate.chars_per_second, time_budget_s,
                                      self.model_config.num_parameters(),
                                      chars_read / train_chars)


# Tried largest first; 320 sits below the speed cliff where the bf16 recurrent weights of 384
# near a core's cache: `python tests/benchmarks/sweep.py CORPUS --budget 60`.
HIDDEN_SIZES = (1024, 768, 512, 384, 320, 256, 192, 128, 96, 64)
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
# A batch twice as large is taken when it trains enough more characters per second to pay
# for the steps it gives up: in the "noise scale" model (McCandlish et al., 2018, "An
# Empirical Model of Large-Batch Training") a loss takes S_min (1 + NOISE_BATCH / batch)
# steps, so doubling pays at (2 batch + NOISE_BATCH) / (batch + NOISE_BATCH) times the speed
# (batch_gain_needed). In windows: `python tests/benchmarks/sweep.py CORPUS --budget 60`.
NOISE_BATCH = 60


def batch_gain_needed(batch_size: int) -> float:
    """How many times the characters per second a batch twice `batch_size` must train for
    the doubling to pay (see NOISE_BATCH)."""
    return (2 * batch_size + NOISE_BATCH) / (batch_size + NOISE_BATCH)


# The largest batch a step takes, by device kind (others: the largest of BATCH_SIZES). On a
# CPU the activations a step keeps for backward outgrow the caches past 32 windows, and the
# cost model's straight line stops holding: `microlm train CORPUS --batch-size 64`, timed.
MAX_BATCH = {"cpu": 32}
CPU_MAX_BATCH = MAX_BATCH["cpu"]
# Optimizer steps (at batch 8) below which a model is undertrained, where the reference shape
# reads MIN_STEPS_REFERENCE_CHARS: `python tests/benchmarks/sweep.py CORPUS --budget 60`.
MIN_STEPS = 3_500
# Characters the reference shape (hidden 256 with the output units, batch 32 x 64) reads in
# the 60 s runs that set MIN_STEPS. With less compute the best model needs fewer steps (as
# compute-optimal scaling grows steps with the square root of compute): min_steps() scales
# by the root of the shortfall. `python tests/benchmarks/quality.py CORPUS` on a slow CPU.
MIN_STEPS_REFERENCE_CHARS = 3_600_000
# Below this scale (a quarter of the reference characters) the floor falls in proportion to
# the compute instead, which keeps the output units in short runs on slow machines:
# `microlm train CORPUS --time-budget 20` on a slow CPU, scored as quality.py scores.
MIN_STEPS_SCALE = 0.5
# Reading the text this many times or more invites overfitting, which dropout counters;
# below it dropout only slows learning: `python tests/benchmarks/sweep.py CORPUS --budget 120`.
MANY_PASSES = 8.0
# ... and a model may then be this much larger, with dropout: sweep.py --budget 300.
MANY_PASSES_CAPACITY = 2.5
# The share of min_steps() a model with output units needs (it learns more per step):
# `python tests/benchmarks/sweep.py CORPUS --budget 30` (and 60, 300).
OUTPUT_LAYER_STEPS = 0.5
# Parameters a text can support, per training character: `python tests/benchmarks/sweep.py
# --budget 60` (the Python documentation sample).
PARAMETERS_PER_TRAINING_CHAR = 4
# At most this many parameters per square root of the characters read in the time (as
# compute-optimal scaling grows parameters with the square root of compute): once steps are
# cheap, a wide model reads too little for its size. sweep.py --budget 300 (and 60).
PARAMETERS_PER_ROOT_CHAR = 1000
# AdamW's weight decay in a recommended run (TrainingConfig's default: 0.01); it keeps the
# large output layer from memorising: `microlm train CORPUS --time-budget 60 --weight-decay W`.
WEIGHT_DECAY = 0.3
SEQUENCE_LENGTH = 128  # long windows let the model learn from long-range context
MIN_SEQUENCE_LENGTH = 32  # never halve the windows below this
# Windows of SEQUENCE_LENGTH need this many times min_steps() when half-length windows (the
# same model with twice the steps) are the alternative: `microlm train CORPUS --time-budget
# 60 --sequence-length 64` against 128, three seeds each.
LONG_WINDOW_STEPS = 2.0
TRAINING_SHARE = 0.9  # of the budget; the rest goes to evaluation and set-up
EVAL_SHARE = 0.05  # evaluation may use at most this share of the budget
MIN_EVALUATIONS = 10  # enough validation points to draw a curve


def min_steps(batch_size: int, output_hidden_dim: int = 0, compute_scale: float = 1.0) -> float:
    """The fewest optimizer steps that train a model well at this batch size: larger
    batches need fewer, MIN_STEPS * sqrt(8 / batch) (1,750 at batch 32), and a model with
    hidden units in its output layer OUTPUT_LAYER_STEPS as many (875 at batch 32); all
    times compute_scale (steps_scale(): below 1 where there is less compute than where
    these were measured)."""
    steps = MIN_STEPS * math.sqrt(BATCH_SIZES[0] / max(batch_size, 1)) * compute_scale
    return steps * (OUTPUT_LAYER_STEPS if output_hidden_dim else 1.0)


def steps_scale(speed: MachineSpeed, training_seconds: float, vocab_size: int) -> float:
    """How many of min_steps() a run needs with the compute it has: the square root of the
    characters the reference shape reads in `training_seconds` on this machine over
    MIN_STEPS_REFERENCE_CHARS, at most 1 (more compute than that is spent on width, which
    _trainable_parameters() allows, not on more steps); below MIN_STEPS_SCALE (the least
    compute min_steps() was measured with) in proportion to the characters, so that a short
    run on a slow machine still trains a model with the output layer's units, which the
    limit on parameters per character read then sizes."""
    reference = ModelConfig(vocab_size, 128, 256, 1, 0.0, output_hidden_dim=OUTPUT_HIDDEN_DIM)
    share = max(speed.chars_per_second(reference, 32, 64) * training_seconds, 0.0) / (
        MIN_STEPS_REFERENCE_CHARS)
    if share < MIN_STEPS_SCALE ** 2:
        return share / MIN_STEPS_SCALE  # meets the square root at MIN_STEPS_SCALE
    return min(1.0, math.sqrt(share))


def learning_rate_for(hidden_dim: int, batch_size: int) -> float:
    """Peak AdamW rate: for one layer up to hidden 512, 6e-3 on batch 8 and 1e-2 on larger
    batches; wider, 3e-3 on batch 8 times sqrt(batch / 8), at most 1e-2. Measured by
    `microlm train CORPUS --time-budget 60 --learning-rate LR` (RESULTS.md)."""
    if hidden_dim <= 512:
        return 6e-3 if batch_size <= BATCH_SIZES[0] else 1e-2
    return min(1e-2, 3e-3 * math.sqrt(max(batch_size, 1) / BATCH_SIZES[0]))


def recommend(corpus_chars: int, time_budget_s: float, vocab_size: int = 96,
              speed: MachineSpeed | None = None,
              memory_bytes: int | None = None) -> Recommendation:
    """The model and training settings that should reach the lowest validation loss on a
    corpus of `corpus_chars` characters in `time_budget_s` seconds on this machine.

    In a budget of a minute, one wide LSTM layer, a high learning rate and no dropout beat
    deeper models, so that is the starting point. Each hidden size
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
    # steps, the same model with more, shorter steps learns more in the time (LONG_WINDOW_STEPS).
    lengths = (longest,) if longest < 2 * MIN_SEQUENCE_LENGTH else (longest, longest // 2)
    training_seconds = TRAINING_SHARE * time_budget_s
    memory_limit = memory_bytes // 2  # leave room for the OS, the app and the corpus text
    precision = lstm_precision(speed.precision)  # what the memory estimate is priced in
    # Parameters the text can support; MANY_PASSES_CAPACITY times that with dropout.
    capacity = max(50_000, PARAMETERS_PER_TRAINING_CHAR * train_chars)
    compute_scale = steps_scale(speed, training_seconds, vocab_size)

    def capacity_of(candidate: dict) -> int:
        return int(capacity * (MANY_PASSES_CAPACITY if candidate["passes"] >= MANY_PASSES
                               else 1))

    def plan(hidden_dim: int, num_layers: int, sequence_length: int,
             output_hidden_dim: int) -> dict:
        """One candidate as it would train: its batch, then its dropout (which depends on
        how often it reads the text), then its speed, steps and memory with that dropout."""
        embedding_dim = min(128, max(16, hidden_dim // 2))
        # The batch rule is fitted to the LSTM's own costs (NOISE_BATCH): an output layer
        # priced per position would make every doubling look dearer and pick smaller batches.
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
    # One layer only: at 60 s a second layer loses on both sample texts (RESULTS.md, "Tried
    # and dropped"); reading the text many times is met with dropout instead.
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
    limit, limit_details = _size_limit(chosen, candidates, memory_limit, capacity_of)
    explained = (
        Reason(f"Hidden size {config.hidden_dim}: {limit}",
               f"At ~{format_count(chars_per_second)} chars/s this machine processes "
               f"~{format_count(chars_seen)} characters in {time_budget_s:g} s "
               f"(~{steps:,.0f} steps), enough to train ~{format_count(parameters)} "
               f"parameters; {limit_details}"),
        reasons.layers_reason(config.num_layers, chosen["passes"]),
        reasons.output_reason(speed, config, batch_size, sequence_length,
                              capacity_of(chosen)),
        reasons.embedding_reason(config.embedding_dim, vocab_size),
        reasons.batch_reason(speed, config, batch_size, sequence_length, BATCH_SIZES[0],
                             CPU_MAX_BATCH, batch_gain_needed(batch_size)),
        reasons.sequence_reason(sequence_length, lengths[0]),
        reasons.precision_reason(speed),
        reasons.learning_rate_reason(learning_rate, config.hidden_dim, batch_size,
                                     BATCH_SIZES[0]),
        reasons.weight_decay_reason(WEIGHT_DECAY),
        reasons.weight_averaging_reason(training.ema_decay),
        reasons.dropout_reason(dropout, chosen["passes"], parameters, train_chars,
                               MANY_PASSES),
        reasons.validation_reason(eval_interval, eval_chars, evaluations, EVAL_SHARE),
        reasons.budget_reason(time_budget_s, result.memory_bytes, memory_bytes),
    )
    return Recommendation(config, training, explained, result, steps)


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
    largest = MAX_BATCH.get(speed.device, BATCH_SIZES[-1])
    for larger in BATCH_SIZES[1:]:
        if larger > largest or (speed.chars_per_second(config, larger, sequence_length)
                < batch_gain_needed(batch_size)
                * speed.chars_per_second(config, batch_size, sequence_length)):
            break
        batch_size = larger
    return batch_size


def _dropout_for(passes: float, parameters: int, train_chars: int) -> float:
    """No dropout unless the model reads the text many times and is not small next to it;
    then more for models that are large next to the text (they can memorise it): `microlm
    train CORPUS --time-budget 60 --dropout D` (RESULTS.md)."""
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
                capacity_of: Callable[[dict], int]) -> tuple[str, str]:
    """Why the next hidden size up was not chosen: a plain sentence, and its numbers."""
    chosen_config = chosen["config"]
    larger = [c for c in candidates if c["config"].hidden_dim > chosen_config.hidden_dim
              and c["config"].output_hidden_dim == chosen_config.output_hidden_dim]
    if not larger:
        return ("the largest LSTM memory considered, and this computer trains it well in the "
                "time.", "it is the largest size considered.")
    bigger = larger[-1]  # the next size up
    hidden = bigger["config"].hidden_dim
    if bigger["memory"] > memory_limit:
        return ("the largest LSTM memory that fits in the free memory.",
                f"hidden size {hidden} would need more memory than is free.")
    if chosen["steps"] < chosen["min_steps"]:
        return ("the smallest size considered, and even it gets few training steps in this "
                "time; a longer time budget would help.",
                f"even this smallest size gets only ~{chosen['steps']:,.0f} steps; a longer "
                f"budget would help.")
    if bigger["steps"] < bigger["min_steps"]:
        return ("the largest LSTM memory that still gets enough training steps in the time; "
                "a larger one would be updated too few times to learn well.",
                f"hidden size {hidden} would get only ~{bigger['steps']:,.0f} steps of "
                f"{bigger['batch_size']} windows, too few to learn well (want "
                f"{bigger['min_steps']:,.0f}+).")
    if not _reads_enough(bigger):
        return ("the largest LSTM memory that the text it reads in the time can train; a "
                "larger one would read too little for its size.",
                f"hidden size {hidden} would have "
                f"~{format_count(bigger['config'].num_parameters())} parameters, more than the "
                f"~{format_count(bigger['chars_seen'])} characters it reads in the time can "
                f"train well (~{format_count(_trainable_parameters(bigger['chars_seen']))}: "
                f"{PARAMETERS_PER_ROOT_CHAR:,} x their square root).")
    return ("the largest LSTM memory this text can teach; a larger one would learn the text "
            "by heart instead of its patterns.",
            f"hidden size {hidden} would have more parameters than the text can teach "
            f"(~{format_count(capacity_of(bigger))}).")


def _trainable_parameters(chars_seen: float) -> float:
    """The most parameters that reading `chars_seen` characters trains well."""
    return PARAMETERS_PER_ROOT_CHAR * math.sqrt(chars_seen)


def _reads_enough(candidate: dict) -> bool:
    """The candidate has at most _trainable_parameters() of the characters it reads."""
    return candidate["config"].num_parameters() <= _trainable_parameters(candidate["chars_seen"])


def _round_steps(steps: float) -> int:
    """Steps to two significant figures (900, 1,200, 15,000): an estimate, said as one."""
    if steps < 10:
        return max(0, round(steps))
    digits = int(math.floor(math.log10(steps))) - 1
    return int(round(steps, -digits))
