"""Model presets (nano .. xlarge), and estimates of a run's speed, time and memory."""

from __future__ import annotations

from dataclasses import dataclass

from . import hardware
from .calibration import calibrate
from .config import TrainingConfig
from .model import ModelConfig
from .speed import MachineSpeed, evaluation_seconds
from .tokenizer import token_dtype


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


# By the precision the LSTM trains in, each fitted to `python tests/benchmarks/estimates.py
# CORPUS` on a CPU that trains in it (RESULTS.md, "Where the constants come from").
MEMORY_COSTS = {
    "bfloat16": MemoryCosts(40 * 2**20, 38, 41, 12),  # AMX, AVX-512 BF16; dropout in the others
    "float32": MemoryCosts(36 * 2**20, 33, 65, 25, 22),  # AVX2 and other CPUs
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
                                 lstm_precision(training_config.precision,
                                                training_config.device))


def lstm_precision(precision: str, device: str | None = None) -> str:
    """The precision the LSTM trains in when a run on `device` (None: the one select_device
    picks) asks for `precision`: "auto" is the device's fastest; bfloat16 only where this
    CPU's LSTM kernel runs it (the trainer falls back to float32 the same way)."""
    if precision == "auto":
        precision = hardware.default_precision(hardware.select_device(device))
    return "bfloat16" if precision == "bfloat16" and hardware.cpu_runs_bf16_lstm() else "float32"


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
