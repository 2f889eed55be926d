"""Tests for microlm.presets: the presets, and estimates of a run's time and memory."""

from dataclasses import replace

import pytest

from microlm import MicroLM, ModelConfig, TrainingConfig, hardware, presets
from microlm.presets import PRESETS, Estimate, estimate, preset_parameters, training_memory_bytes
from microlm.speed import MachineSpeed

# A made-up 2-core CPU (no timing): 2 ms per step, 10 us per character position, 150 GFLOP/s.
CPU_LIKE = MachineSpeed("cpu", step_overhead_s=0.002, flops_per_second=150e9,
                        timestep_overhead_s=1e-5)


def test_presets_are_ordered_and_match_the_seed_sizes():
    assert list(PRESETS) == ["nano", "small", "medium", "large", "xlarge"]
    shapes = {name: (p.embedding_dim, p.hidden_dim, p.num_layers) for name, p in PRESETS.items()}
    assert shapes == {"nano": (16, 32, 1), "small": (64, 128, 2), "medium": (128, 256, 2),
                      "large": (256, 512, 3), "xlarge": (512, 1024, 3)}
    assert all(p.description.endswith(".") for p in PRESETS.values())


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_parameter_counts_are_true_counts(name):
    config = PRESETS[name].model_config(65)
    model = MicroLM(config=config)
    assert preset_parameters(name, 65) == sum(p.numel() for p in model.parameters())


def test_nano_parameter_count_by_hand():
    # embedding 65*16 + LSTM 4*32*(16+32+2) + head 32*65+65
    assert preset_parameters("nano", 65) == 1040 + 6400 + 2145


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(KeyError, match="nano, small, medium, large, xlarge"):
        preset_parameters("huge", 65)


def test_preset_training_config_takes_overrides():
    config = PRESETS["small"].training_config(epochs=3, batch_size=4)
    assert isinstance(config, TrainingConfig)
    assert (config.epochs, config.batch_size) == (3, 4)
    assert config.sequence_length == PRESETS["small"].sequence_length
    assert config.learning_rate == PRESETS["small"].learning_rate


def test_estimate_memory_grows_with_batch_and_matches_formula():
    config = ModelConfig(65, 16, 32, 1, 0.0)
    small = estimate(config, TrainingConfig(batch_size=8, sequence_length=50,
                                            precision="float32"), 10_000, CPU_LIKE)
    large = estimate(config, TrainingConfig(batch_size=64, sequence_length=50,
                                            precision="float32"), 10_000, CPU_LIKE)
    assert isinstance(small, Estimate)
    assert large.memory_bytes > small.memory_bytes
    params = config.num_parameters()
    # float32 (the config's precision): 65 bytes per state value
    activations = 8 * 50 * (4 * (16 + 3 * 65) + 65 * 1 * 32)
    # a fixed working space + 33 bytes per parameter + activations + uint8 tokens
    assert small.memory_bytes == 36 * 2**20 + 33 * params + activations + 10_000
    assert small.parameters == params
    # an output layer with hidden units keeps 25 bytes per unit and character besides
    deep = ModelConfig(65, 16, 32, 1, 0.0, 100)
    extra = training_memory_bytes(deep, 8, 50, 10_000) - training_memory_bytes(
        config, 8, 50, 10_000)
    assert extra == 33 * (deep.num_parameters() - params) + 8 * 50 * 25 * 100
    # dropout's masks: 22 bytes per state value (both layers of a stacked LSTM)
    stacked = ModelConfig(65, 16, 32, 2, 0.0)
    dropped = training_memory_bytes(replace(stacked, dropout=0.2), 8, 50, 0)
    assert dropped - training_memory_bytes(stacked, 8, 50, 0) == 8 * 50 * 22 * 2 * 32


def test_memory_in_bfloat16_prices_activations_at_half_width():
    config = ModelConfig(65, 16, 32, 1, 0.2, 100)
    params = config.num_parameters()
    # the bf16 fit: 40 MiB, 38 bytes per parameter, 41 per state value, 12 per output unit,
    # dropout inside those terms
    assert training_memory_bytes(config, 8, 50, 0, "bfloat16") == (
        40 * 2**20 + 38 * params + 8 * 50 * (4 * (16 + 3 * 65) + 41 * 32 + 12 * 100))
    assert training_memory_bytes(config, 32, 64, 0, "bfloat16") < training_memory_bytes(
        config, 32, 64, 0, "float32")


def test_memory_estimate_is_priced_in_the_precision_the_lstm_will_run_in(monkeypatch):
    config = ModelConfig(65, 64, 256, 1, 0.0, 1024)
    bf16 = TrainingConfig(batch_size=32, sequence_length=64, precision="bfloat16")
    monkeypatch.setattr(hardware, "cpu_runs_bf16_lstm", lambda: True)
    assert presets.lstm_precision("bfloat16") == "bfloat16"
    assert estimate(config, bf16, 10_000, CPU_LIKE).memory_bytes == training_memory_bytes(
        config, 32, 64, 10_000, "bfloat16")
    # a CPU whose LSTM kernel cannot run bfloat16 trains in float32 (the trainer's fallback)
    monkeypatch.setattr(hardware, "cpu_runs_bf16_lstm", lambda: False)
    assert presets.lstm_precision("bfloat16") == "float32"
    assert estimate(config, bf16, 10_000, CPU_LIKE).memory_bytes == training_memory_bytes(
        config, 32, 64, 10_000, "float32")
    assert presets.lstm_precision("float32") == "float32"


def test_estimate_time_per_epoch():
    config = ModelConfig(65, 16, 32, 1, 0.0)
    training = TrainingConfig(batch_size=10, sequence_length=100, val_fraction=0.1)
    result = estimate(config, training, 100_001, CPU_LIKE)
    steps_per_epoch = 90_000 // 1000  # (90,001 train chars - 1) // 1000 chars per step
    # one validation per epoch (eval_interval 0) of the 10,000 held-out characters: two
    # batches of 64 windows of 100, each a third of a training step of that shape
    validation = 2 * CPU_LIKE.step_seconds(config, 64, 100) / 3
    assert result.seconds_per_epoch == pytest.approx(
        steps_per_epoch * CPU_LIKE.step_seconds(config, 10, 100) + validation)
    assert result.chars_per_second == pytest.approx(1000 / CPU_LIKE.step_seconds(config, 10, 100))


def test_estimate_time_per_epoch_counts_every_validation_the_epoch_runs():
    config = ModelConfig(65, 16, 32, 1, 0.0)
    training = TrainingConfig(batch_size=10, sequence_length=100, val_fraction=0.1,
                              eval_interval=30, eval_chars=3_000)
    result = estimate(config, training, 100_001, CPU_LIKE)
    # 90 steps, a validation every 30: three, each one batch of 30 windows of 100
    assert result.seconds_per_epoch == pytest.approx(
        90 * CPU_LIKE.step_seconds(config, 10, 100)
        + 3 * CPU_LIKE.step_seconds(config, 64, 100) / 3)


def test_training_memory_uses_int16_tokens_for_large_vocabularies():
    config = ModelConfig(300, 8, 8, 1, 0.0)
    with_tokens = training_memory_bytes(config, 1, 1, 1000)
    without = training_memory_bytes(config, 1, 1, 0)
    assert with_tokens - without == 2000
