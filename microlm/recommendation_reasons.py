"""The reasons of a recommendation: for each choice one plain sentence a learner reads, and
the measurements and rules behind it (recommendation.recommend fills them in)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .model import ModelConfig
from .speed import OUTPUT_HIDDEN_DIM, REFERENCE_MODEL, MachineSpeed
from .units import format_bytes, format_count


@dataclass(frozen=True)
class Reason:
    """Why one setting has its value."""

    sentence: str  # one plain sentence a learner understands
    details: str  # the measurements and rules behind it

    @property
    def text(self) -> str:
        """The sentence and its details, as one paragraph."""
        return f"{self.sentence} {self.details}"


def times(passes: float) -> str:
    """How many times a text is read, as a person reads it: 0.6, 12."""
    return f"{passes:.1f}" if passes < 10 else f"{passes:,.0f}"


def layers_reason(num_layers: int, passes: float) -> Reason:
    if num_layers == 1:
        return Reason("One LSTM layer: in a short time one wide layer learns faster than a "
                      "stack of narrower ones.",
                      f"In this budget the model reads the text ~{times(passes)} times; at "
                      f"60 s a second layer lost on both sample texts.")
    return Reason(f"{num_layers} LSTM layers: there is time enough for a deeper model to pay "
                  f"off.", f"The budget lets the model read the text ~{times(passes)} times.")


def output_reason(speed: MachineSpeed, config: ModelConfig, batch_size: int,
                  sequence_length: int, capacity: int) -> Reason:
    if not config.output_hidden_dim:
        return Reason(
            "One linear output layer: hidden units there would make the model too large for "
            "this text, the memory or the time.",
            f"{OUTPUT_HIDDEN_DIM:,} output layer units (which lower the loss where they fit) "
            f"would leave no model within this text's ~{format_count(capacity)} parameters, "
            f"the memory or the budget.")
    linear = replace(config, output_hidden_dim=0)
    share = 1 - (speed.step_seconds(linear, batch_size, sequence_length)
                 / speed.step_seconds(config, batch_size, sequence_length))
    # (a speed measured without an output-layer shape prices the units at nothing)
    cost = "under 1%" if share < 0.005 else f"{'only ' if share < 0.4 else ''}~{share:.0%}"
    cheap = share < 0.4
    return Reason(
        f"Output layer of {config.output_hidden_dim:,} units: extra capacity that "
        + ("costs little time, because it scores every character of a step at once." if cheap
           else "is worth the time it takes: it lowers the loss despite fewer steps."),
        f"A small network (GELU) between the LSTM and the character scores: it reads all "
        f"{batch_size} x {sequence_length} positions of a step at once, so it costs {cost} of "
        f"a step here (the LSTM must walk each window one character at a time). Measured in "
        f"60 s: a lower loss than one linear output layer, despite fewer steps.")


def embedding_reason(embedding_dim: int, vocab_size: int) -> Reason:
    return Reason(
        f"Embedding size {embedding_dim}: each character becomes a list of {embedding_dim} "
        f"numbers, plenty to tell the {vocab_size} characters of the vocabulary apart.",
        "Half the hidden size, at least 16 and at most 128: beyond about 128 it rarely helps "
        "a character model.")


def batch_reason(speed: MachineSpeed, config: ModelConfig, batch_size: int,
                 sequence_length: int, smallest_batch: int, cpu_max_batch: int,
                 gain_needed: float) -> Reason:
    rate = speed.chars_per_second(config, batch_size, sequence_length)
    doubled = speed.chars_per_second(config, 2 * batch_size, sequence_length)
    details = f"~{format_count(rate)} chars/s"
    at_cpu_limit = (speed.device == "cpu" and batch_size == cpu_max_batch
                    and doubled >= gain_needed * rate)
    if at_cpu_limit:
        details += (f", the most windows a CPU step takes here (beyond {cpu_max_batch}, the "
                    f"activations kept for the backward pass outgrow the caches)")
    else:
        details += (f", and twice the batch would read only {doubled / rate - 1:.0%} more "
                    f"characters per second, too little to make up for half as many weight "
                    f"updates")
    if batch_size == smallest_batch:
        return Reason(f"Batch size {batch_size}: on this computer many small, quick updates "
                      f"teach more in the time than fewer large ones.",
                      details + ", so smaller batches and more, quicker weight updates win.")
    smallest = speed.chars_per_second(config, smallest_batch, sequence_length)
    sentence = (f"Batch size {batch_size}: this computer reads {rate / smallest:.1f}x as much "
                f"text per second in batches of {batch_size} as in batches of "
                f"{smallest_batch}, enough to pay for fewer updates.")
    return Reason(sentence, details + f"; batch {smallest_batch} would read {rate / smallest:.1f}x"
                  f" fewer (the fixed costs of a step, not the batch, take most of its time "
                  f"here).")


def sequence_reason(sequence_length: int, longest: int) -> Reason:
    details = ("" if sequence_length == longest else
               f"Windows of {longest} would cost twice as much per step and leave this model "
               f"too few steps. ")
    return Reason(
        f"Sequence length {sequence_length}: the model learns from windows of "
        f"{sequence_length} characters, long enough for patterns that span words and lines.",
        details + "Each pass over the text reads every window of it once, in random order "
                  "(measured: 1.2-1.9 % lower validation loss in 60 s than drawing each window "
                  "at random, which leaves ~5 % of the text unread after three passes).")


def precision_reason(speed: MachineSpeed) -> Reason:
    """What the run computes in on the measured device, and why (precision.run_precision
    keeps this choice when the run starts)."""
    device = speed.device.split(":")[0]
    if device == "cuda" and speed.precision == "bfloat16":
        return Reason("Precision bfloat16: this GPU computes in bfloat16, which trains faster "
                      "than float32 at about the same loss.",
                      "The matrix products run in bfloat16 autocast on the GPU (Ampere or "
                      "newer); the weights and the optimizer stay float32. The speed above was "
                      "measured in bfloat16.")
    if device == "cuda":
        return Reason("Precision float32: this GPU has no fast bfloat16 arithmetic, so the "
                      "run keeps full precision.",
                      "bfloat16 autocast needs a CUDA GPU of the Ampere generation or newer "
                      "(torch.cuda.is_bf16_supported() is false here).")
    if device == "mps":
        return Reason("Precision float32: on an Apple GPU the LSTM trains in full precision.",
                      "bfloat16 autocast is slower or unsupported for LSTMs on MPS.")
    if speed.precision == "bfloat16":
        return Reason("Precision bfloat16: this CPU has a bfloat16 unit, and computing in "
                      "it trains the LSTM faster at about the same loss.",
                      "Mixed precision: the LSTM runs in bfloat16 on the CPU's AMX or "
                      "AVX-512 BF16 unit; the weights stay float32.")
    return Reason("Precision float32: full precision, as this CPU has no bfloat16 unit its "
                  "LSTM can use.",
                  "bfloat16 on a CPU needs AMX or AVX-512 BF16 and an LSTM kernel that runs "
                  "in it; none was found here.")


def learning_rate_reason(learning_rate: float, hidden_dim: int, batch_size: int,
                         smallest_batch: int) -> Reason:
    wide = hidden_dim > 512
    return Reason(
        f"Learning rate {learning_rate:g}: "
        + ("a fast rate suits one layer trained for a fixed time" if not wide else
           "a little slower than for narrower layers, as wider ones are less stable")
        + "; it warms up, peaks, then decays.",
        ("" if batch_size == smallest_batch else
         f"A batch of {batch_size} averages out enough noise for a larger step. ")
        + "Gradient clipping at 1.0 keeps it stable. Chosen from 60 s runs at several "
          "rates (tests/benchmarks/RESULTS.md).")


def weight_decay_reason(weight_decay: float) -> Reason:
    return Reason(
        f"Weight decay {weight_decay:g}: at each step the weight matrices are pulled "
        f"slightly towards zero, which keeps the model from memorising the text.",
        f"AdamW multiplies the LSTM's and the output layer's weight matrices by 1 - learning "
        f"rate x {weight_decay:g} at each step; the biases and the character vectors "
        f"(embedding) are exempt. Measured: ~1 % lower validation loss than 0.01 in 60 s and "
        f"in 300 s.")


def weight_averaging_reason(ema_decay: float) -> Reason:
    steps = 1 / (1 - ema_decay) if ema_decay < 1 else math.inf
    return Reason(
        f"Weight averaging {ema_decay:g}: the model kept is the average of its weights over "
        f"about the last {steps:.0f} steps, which evens out the noise of single batches.",
        "The averaged weights are validated and kept (each step moves them 1 - "
        f"{ema_decay:g} of the way to the new weights). Measured: 0.7-1.1 % lower validation "
        f"loss than the last weights of the same run, in 60 s and in 300 s.")


def dropout_reason(dropout: float, passes: float, parameters: int, train_chars: int,
                   many_passes: float) -> Reason:
    if dropout == 0 and passes < many_passes:
        return Reason(f"No dropout: the model reads the text only about {times(passes)} times, "
                      f"too few to memorise it, so dropout would only slow learning.",
                      f"Dropout is chosen from {many_passes:g} readings of the text.")
    if dropout == 0:
        return Reason("No dropout: the model is too small next to the text to memorise it, "
                      "so dropout would only slow learning.",
                      f"{format_count(parameters)} parameters for {format_count(train_chars)} "
                      f"training characters in ~{times(passes)} readings.")
    return Reason(f"Dropout {dropout:g}: the model reads the text many times and could "
                  f"memorise it; silencing {dropout:.0%} of its outputs at random makes it "
                  f"generalise.",
                  f"It reads the text ~{times(passes)} times with {format_count(parameters)} "
                  f"parameters for {format_count(train_chars)} training characters.")


def validation_reason(eval_interval: int, eval_chars: int, evaluations: int,
                      eval_share: float) -> Reason:
    return Reason(
        f"Validation every {eval_interval:,} steps: about {evaluations} checks of the loss "
        f"on text held out from training, enough to draw its curve.",
        f"Each check reads {format_count(eval_chars)} held-out characters, so measuring "
        f"progress takes under {eval_share:.0%} of the time.")


def budget_reason(time_budget_s: float, memory_bytes: int, available_bytes: int) -> Reason:
    return Reason(
        f"Training stops after {time_budget_s:g} s and needs about "
        f"{format_bytes(memory_bytes)} of memory.",
        f"{format_bytes(available_bytes)} of memory is free now; the model is chosen to use at "
        f"most half of it.")


# ---- the machine's speed in words ----

def about(value: float) -> str:
    """A measured number to two significant figures, in words: 3,300 / 66,000 / 1.2 million."""
    if value >= 999_500:
        return f"{value / 1e6:.1f} million"
    if value < 10:
        return f"{value:.1f}"
    digits = int(math.floor(math.log10(value))) - 1
    return f"{round(value, -digits):,.0f}"


def budget_in_words(seconds: float) -> str:
    """A time budget as a person set it: "3 minutes", "1 minute", "90 seconds"."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute" + ("s" if minutes != 1 else "")
    return f"{seconds:g} seconds"


def speed_in_words(chars_per_second: float, time_budget_s: float, parameters: int,
                   passes: float) -> str:
    """What this computer does in the time budget, e.g. "This computer trains about 70,000
    characters a second: in 3 minutes a model of about 1.0 million parameters reads the text
    about 20 times." (passes: how many times the model reads the training text)."""
    reading = (f"reads the text about {times(passes)} times" if passes >= 1.05 else
               f"reads about {min(passes, 1.0):.0%} of the text once")
    return (f"This computer trains about {about(chars_per_second)} characters a second: in "
            f"{budget_in_words(time_budget_s)} a model of about {about(parameters)} parameters "
            f"{reading}.")


def reference_speed_in_words(speed: MachineSpeed) -> str:
    """This machine's speed on a typical model, before there is a text to plan for."""
    return (f"This computer trains about {about(speed.reference_chars_per_second())} "
            f"characters a second with a typical model (one LSTM layer, hidden size "
            f"{REFERENCE_MODEL.hidden_dim}, {REFERENCE_MODEL.output_hidden_dim:,} output layer "
            f"units).")
