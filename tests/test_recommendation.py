"""Tests for microlm.recommendation: the model and settings recommended for a time budget."""

import math
import re
from dataclasses import replace

import pytest
import torch

from microlm import MicroLM, ModelConfig
from microlm.recommendation import (
    BATCH_SIZES,
    CPU_MAX_BATCH,
    HIDDEN_SIZES,
    LONG_WINDOW_STEPS,
    MANY_PASSES,
    MIN_STEPS,
    MIN_STEPS_REFERENCE_CHARS,
    MIN_STEPS_SCALE,
    NOISE_BATCH,
    PARAMETERS_PER_ROOT_CHAR,
    Recommendation,
    _batch_for,
    _dropout_for,
    batch_gain_needed,
    learning_rate_for,
    min_steps,
    recommend,
    steps_scale,
)
from microlm.speed import OUTPUT_HIDDEN_DIM, MachineSpeed, speed_from_timings
from microlm.units import format_count

# A made-up 2-core CPU (no timing): 2 ms per step, 10 us per character position, 150 GFLOP/s.
CPU_LIKE = MachineSpeed("cpu", step_overhead_s=0.002, flops_per_second=150e9,
                        timestep_overhead_s=1e-5)
# A GPU-like machine: launching a step is slow, the math is nearly free.
GPU_LIKE = MachineSpeed("cuda", step_overhead_s=0.004, flops_per_second=20e12,
                        timestep_overhead_s=5e-5)
# Calibrated on a 2-core CPU (bf16, one thread): reading the weights at each character
# (0.5 ns per weight) dominates small batches, so larger batches are cheap.
MEMORY_BOUND_CPU = MachineSpeed("cpu", step_overhead_s=0.002, flops_per_second=446e9,
                                timestep_overhead_s=0.0, threads=1, precision="bfloat16",
                                weight_pass_s=5e-10)
# A 2-core AVX2 CPU about 4x slower than the one the step rules were measured on (float32,
# two threads), as calibrated: a 60 s run there gives steps_scale ~0.5.
SLOW_AVX2_CPU = MachineSpeed("cpu", step_overhead_s=0.00175, flops_per_second=82e9,
                             timestep_overhead_s=4e-5, threads=2, weight_pass_s=1.37e-10,
                             dropout_value_s=4.9e-9, lstm_dropout_value_s=1.3e-8,
                             state_value_s=4.4e-8, output_value_s=1.3e-8)
# A 2-core AMD EPYC with AVX-512 BF16, as calibrated: its predicted steps for hidden 384 on
# windows of 128 and of 64 match the steps runs there took.
AVX512_EPYC = MachineSpeed("cpu", step_overhead_s=0.000992, flops_per_second=873e9,
                           timestep_overhead_s=1.84e-6, threads=2, precision="bfloat16",
                           weight_pass_s=5.67e-11, dropout_value_s=1.71e-9,
                           lstm_dropout_value_s=6.02e-9, state_value_s=5.04e-9,
                           output_value_s=3.33e-9)
# Two calibrations of a 2-core AVX2 EPYC (float32), as measured: the step time of each
# calibration shape, the two dropout costs, the memory's seconds per byte. They put the
# LSTM's gain from batch 16 to 32 at the two ends of the range its calibrations gave (1.09
# and 1.19 for hidden 256).
AVX2_EPYC_TIMINGS = (
    (0.002283, 0.007312, 0.04823, 0.0764, 0.02036, 0.03564, 0.0563, 0.02649, 6.282e-09,
     1.553e-08, 9.01e-11),
    (0.003318, 0.006394, 0.05426, 0.09582, 0.01996, 0.03567, 0.05184, 0.01877, 5.179e-09,
     1.196e-08, 6.086e-11),
)
PLENTY_OF_MEMORY = 16 * 2**30
SHAKESPEARE_CHARS = 1_115_394


# ---- the model's size ----

def test_short_budget_on_a_cpu_prefers_one_wide_layer_without_dropout():
    result = recommend(SHAKESPEARE_CHARS, 60, 65, CPU_LIKE, PLENTY_OF_MEMORY)
    assert isinstance(result, Recommendation)
    model, training = result.model_config, result.training_config
    assert model.num_layers == 1
    assert model.dropout == 0.0
    assert model.hidden_dim >= 256
    assert training.batch_size == 8
    assert training.sequence_length in (64, 128)  # 64 only when 128 leaves too few steps
    assert training.learning_rate == pytest.approx(6e-3)
    assert training.grad_clip == 1.0
    assert training.val_fraction == 0.1
    assert training.time_budget_s == 60
    assert result.estimate.parameters == model.num_parameters()


@pytest.mark.parametrize("speed", [CPU_LIKE, MEMORY_BOUND_CPU], ids=["math-bound", "memory-bound"])
def test_recommended_hidden_size_trains_well_in_the_time_and_the_next_size_does_not(speed):
    """Enough steps, and no more parameters than the characters it reads can train."""
    result = recommend(SHAKESPEARE_CHARS, 60, 65, speed, PLENTY_OF_MEMORY)
    training = result.training_config

    def enough_steps(hidden_dim: int, length: int) -> bool:
        linear = ModelConfig(65, min(128, hidden_dim // 2), hidden_dim, 1, 0.0)
        batch = _batch_for(speed, linear, length)  # the batch rule prices the LSTM alone
        config = ModelConfig(65, linear.embedding_dim, hidden_dim, 1, 0.0, OUTPUT_HIDDEN_DIM)
        chars = 0.9 * 60 * speed.chars_per_second(config, batch, length)
        wanted = min_steps(batch, OUTPUT_HIDDEN_DIM) * (LONG_WINDOW_STEPS if length == 128
                                                         else 1.0)
        return (chars / (batch * length) >= wanted
                and config.num_parameters() <= PARAMETERS_PER_ROOT_CHAR * math.sqrt(chars))

    hidden = result.model_config.hidden_dim
    assert enough_steps(hidden, training.sequence_length)
    if training.sequence_length == 64:  # the long windows were tried first
        assert not enough_steps(hidden, 128)
    next_up = HIDDEN_SIZES[HIDDEN_SIZES.index(hidden) - 1]
    assert not enough_steps(next_up, 128) and not enough_steps(next_up, 64)


def test_hidden_320_is_chosen_where_384_gets_too_few_steps_and_320_enough():
    """320 sits between 256 and 384 in the sizes tried (below this CPU's speed cliff)."""
    chosen = {b: recommend(SHAKESPEARE_CHARS, b, 65, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
              for b in range(20, 400, 4)}
    budgets = [b for b, result in chosen.items() if result.model_config.hidden_dim == 320]
    assert budgets  # some budget lands on 320 ...
    reason = chosen[budgets[0]].reasons[0]
    assert reason.startswith("Hidden size 320") and "hidden size 384 would get only" in reason
    sizes = [chosen[b].model_config.hidden_dim for b in sorted(chosen)]
    assert sizes == sorted(sizes)  # ... and more time never picks a narrower model


def test_a_fast_machine_stops_at_the_width_the_characters_it_reads_can_train():
    """On a fast machine the steps alone would let a wide model through; the limit on
    parameters for the characters read stops it, and the reason says so."""
    fast = replace(MEMORY_BOUND_CPU, flops_per_second=MEMORY_BOUND_CPU.flops_per_second * 4,
                   weight_pass_s=MEMORY_BOUND_CPU.weight_pass_s / 4,
                   state_value_s=MEMORY_BOUND_CPU.state_value_s / 4,
                   output_value_s=MEMORY_BOUND_CPU.output_value_s / 4)
    result = recommend(SHAKESPEARE_CHARS, 60, 65, fast, PLENTY_OF_MEMORY)
    model, training = result.model_config, result.training_config
    chars = 0.9 * 60 * fast.chars_per_second(model, training.batch_size,
                                             training.sequence_length)
    assert model.num_parameters() <= PARAMETERS_PER_ROOT_CHAR * math.sqrt(chars)
    reason = result.reasons[0]
    next_up = HIDDEN_SIZES[HIDDEN_SIZES.index(model.hidden_dim) - 1]
    assert f"hidden size {next_up} would have" in reason  # what held it back
    assert "characters it reads in the time can train well" in reason


def test_a_longer_budget_wants_more_characters_for_each_parameter():
    """The limit on parameters grows with the square root of the characters read, so a
    longer run reads more characters for each parameter."""
    shares = []
    for budget in (60, 300, 1200):
        result = recommend(SHAKESPEARE_CHARS, budget, 65, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
        model, training = result.model_config, result.training_config
        chars = 0.9 * budget * MEMORY_BOUND_CPU.chars_per_second(
            model, training.batch_size, training.sequence_length)
        shares.append(chars / model.num_parameters())
    assert shares[0] < shares[1] < shares[2]


def test_longer_budget_gives_a_bigger_regularised_model():
    short = recommend(SHAKESPEARE_CHARS, 60, 65, CPU_LIKE, PLENTY_OF_MEMORY)
    long = recommend(SHAKESPEARE_CHARS, 600, 65, CPU_LIKE, PLENTY_OF_MEMORY)
    assert long.model_config.num_parameters() > short.model_config.num_parameters()
    assert long.model_config.dropout > 0  # it reads the text many times: could memorise it
    assert long.training_config.time_budget_s == 600


def test_small_corpus_caps_the_model_size():
    result = recommend(20_000, 600, 40, CPU_LIKE, PLENTY_OF_MEMORY)
    parameters = result.model_config.num_parameters()
    # read many times: up to 8 x the training text, with dropout 0.3 above 4 x
    assert parameters <= 8 * 18_000
    assert result.model_config.dropout >= (0.3 if parameters > 4 * 18_000 else 0.1)


def test_a_model_that_reads_the_text_few_times_stays_within_4_parameters_per_character():
    result = recommend(40_000, 0.5, 40, CPU_LIKE, PLENTY_OF_MEMORY)  # 36,000 to train on
    passes = float(re.search(r"reads the text ~([0-9.]+) times", " ".join(result.reasons))[1])
    assert 1 < passes < 8
    assert result.model_config.num_parameters() <= 4 * 36_000
    # the limit is what stopped the next size up
    assert "more parameters than the text can teach (~144,000)" in result.reasons[0]


def test_a_model_that_reads_the_text_many_times_may_be_10_parameters_per_character():
    train_chars = 465_000 - 46_500  # the Python documentation sample, 10 % held out
    result = recommend(465_000, 1800, 103, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
    config = result.model_config
    assert result.estimate.chars_per_second * 1620 >= 4 * train_chars  # 4+ passes
    # hidden 768 with 1,024 output units: 3.66 M parameters, 8.8 per training character
    assert (config.hidden_dim, config.output_hidden_dim, config.dropout) == (768, 1024, 0.3)
    assert 8 * train_chars < config.num_parameters() <= 10 * train_chars


def test_recommendation_never_exceeds_memory():
    tight = 112 * 2**20  # 112 MiB free: 56 for training, of which 36 the fixed working space
    result = recommend(SHAKESPEARE_CHARS, 3600, 65, CPU_LIKE, tight)
    assert result.estimate.memory_bytes <= tight // 2
    roomy = recommend(SHAKESPEARE_CHARS, 3600, 65, CPU_LIKE, PLENTY_OF_MEMORY)
    assert roomy.model_config.num_parameters() > result.model_config.num_parameters()


def test_the_recommendation_adds_output_units_and_says_what_they_cost_here():
    speed = replace(MEMORY_BOUND_CPU, output_value_s=5e-9)
    result = recommend(SHAKESPEARE_CHARS, 60, 65, speed, PLENTY_OF_MEMORY)
    config, training = result.model_config, result.training_config
    assert config.output_hidden_dim == OUTPUT_HIDDEN_DIM == 1024
    # the speeds quoted are those of the model with its output layer
    assert result.estimate.chars_per_second == pytest.approx(
        speed.chars_per_second(config, training.batch_size, training.sequence_length))
    linear = replace(config, output_hidden_dim=0)
    share = 1 - (speed.step_seconds(linear, training.batch_size, training.sequence_length)
                 / speed.step_seconds(config, training.batch_size, training.sequence_length))
    assert 0.05 < share < 0.95
    reason = next(r for r in result.reasons if r.startswith("Output layer"))
    assert "of 1,024 units" in reason and f"~{share:.0%} of a step" in reason


# ---- the batch ----

def test_a_cpu_that_streams_its_weights_trains_on_batches_of_32_at_a_higher_rate():
    result = recommend(SHAKESPEARE_CHARS, 60, 65, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
    training = result.training_config
    assert training.batch_size == 32
    assert training.learning_rate == pytest.approx(1e-2)
    assert result.model_config.hidden_dim >= 256
    text = " ".join(result.reasons)
    assert "Batch size 32:" in text and "batch 8 would read" in text
    assert "outgrow the caches" in text  # 64 would be faster on the cost model's line


def test_batch_doubles_only_while_it_reads_enough_more_characters_to_pay_for_the_steps():
    assert NOISE_BATCH == 60
    assert batch_gain_needed(8) == pytest.approx(76 / 68)  # 1.12: far below the noise batch
    assert batch_gain_needed(16) == pytest.approx(92 / 76)  # 1.21
    assert batch_gain_needed(128) == pytest.approx(316 / 188)  # 1.68: near twice

    for speed in (CPU_LIKE, MEMORY_BOUND_CPU, GPU_LIKE):
        for hidden in (128, 256, 512, 1024):
            config = ModelConfig(65, 128, hidden, 1, 0.0)
            batch = _batch_for(speed, config, 64)

            def rate(b: int, speed=speed, config=config) -> float:
                return speed.chars_per_second(config, b, 64)

            if batch > BATCH_SIZES[0]:
                assert rate(batch) >= batch_gain_needed(batch // 2) * rate(batch // 2)
            if batch < (CPU_MAX_BATCH if speed.device == "cpu" else BATCH_SIZES[-1]):
                assert rate(2 * batch) < batch_gain_needed(batch) * rate(batch)


def test_a_cpu_batch_stays_within_32_windows_however_cheap_the_model_says_it_is():
    # the cost model's straight line: every doubling nearly doubles the characters per second
    streaming = MachineSpeed("cpu", step_overhead_s=0.05, flops_per_second=1e13,
                             weight_pass_s=1e-9)
    result = recommend(SHAKESPEARE_CHARS, 600, 65, streaming, PLENTY_OF_MEMORY)
    assert result.training_config.batch_size == CPU_MAX_BATCH == 32
    gpu = replace(streaming, device="cuda")
    assert recommend(SHAKESPEARE_CHARS, 600, 65, gpu,
                     PLENTY_OF_MEMORY).training_config.batch_size > 32


def test_gpu_like_speed_gets_bigger_batches():
    result = recommend(10_000_000, 600, 96, GPU_LIKE, PLENTY_OF_MEMORY)
    assert result.training_config.batch_size > 8


@pytest.mark.parametrize("timings", AVX2_EPYC_TIMINGS)
def test_the_slow_cpu_trains_on_batch_16_whichever_calibration_it_got(timings):
    """Batch 16 trained best on that CPU (see NOISE_BATCH): the batch rule must pick it
    with either calibration, at either end of the gains its calibrations gave."""
    speed = speed_from_timings("cpu", "float32", 2, timings, 32 * 2**20)
    linear = ModelConfig(65, 128, 256, 1, 0.0)
    gains = [speed.chars_per_second(linear, 2 * b, 64) / speed.chars_per_second(linear, b, 64)
             for b in (8, 16)]
    assert gains[0] > 1.15 and 1.05 < gains[1] < 1.2
    # so hidden 256 doubles its batch from 8 to 16, and no further
    assert gains[0] >= batch_gain_needed(8) and gains[1] < batch_gain_needed(16)
    result = recommend(int(0.9 * SHAKESPEARE_CHARS), 60, 65, speed, PLENTY_OF_MEMORY)
    assert result.training_config.batch_size == 16
    assert result.model_config.output_hidden_dim == OUTPUT_HIDDEN_DIM
    assert result.training_config.learning_rate == pytest.approx(1e-2)


# ---- steps, windows and learning rate ----

def test_less_compute_needs_fewer_steps():
    slow = [steps_scale(SLOW_AVX2_CPU, seconds, 65) for seconds in (5, 10, 54, 100, 200, 1000)]
    # below half the steps (a quarter of the reference's characters), in proportion to the
    # compute: half the time, half the steps
    assert slow[0] == pytest.approx(slow[1] / 2) and slow[1] < MIN_STEPS_SCALE == 0.5
    assert 0.5 <= slow[2] < 0.6 < slow[3] < slow[4] < 1.0  # the square root of the shortfall
    assert slow[5] == 1.0  # enough compute: the steps measured
    assert steps_scale(MEMORY_BOUND_CPU, 54, 65) == 1.0  # the machine they were measured on
    assert min_steps(32, 1024, compute_scale=0.5) == pytest.approx(437.5)
    # the two laws meet where the square root reaches MIN_STEPS_SCALE
    reference = ModelConfig(65, 128, 256, 1, 0.0, OUTPUT_HIDDEN_DIM)
    edge = MIN_STEPS_REFERENCE_CHARS / 4 / SLOW_AVX2_CPU.chars_per_second(reference, 32, 64)
    assert steps_scale(SLOW_AVX2_CPU, edge * 0.999, 65) == pytest.approx(0.4995, rel=1e-3)
    assert steps_scale(SLOW_AVX2_CPU, edge * 1.001, 65) == pytest.approx(0.50025, rel=1e-3)


def test_a_slow_machine_trains_a_wider_model_with_output_units_in_fewer_steps():
    """With less compute the step floor falls (steps_scale): a slow machine still trains a
    model with the output units, in fewer steps than the unscaled rule wants."""
    result = recommend(SHAKESPEARE_CHARS, 57, 65, SLOW_AVX2_CPU, PLENTY_OF_MEMORY)
    model, training = result.model_config, result.training_config
    assert model.output_hidden_dim == OUTPUT_HIDDEN_DIM
    assert model.hidden_dim in (192, 256)
    steps = 0.9 * 57 * result.estimate.chars_per_second / (training.batch_size
                                                           * training.sequence_length)
    unscaled = min_steps(training.batch_size, OUTPUT_HIDDEN_DIM)
    assert unscaled * MIN_STEPS_SCALE <= steps < unscaled  # allowed only by the scaling
    assert "characters it reads in the time can train well" in result.reasons[0]


@pytest.mark.parametrize("timings", AVX2_EPYC_TIMINGS)
def test_a_short_run_on_the_slow_cpu_keeps_the_output_units(timings):
    """Short runs on that CPU trained best with the output units (see MIN_STEPS_SCALE): the
    step floor must not leave only a model with a linear output layer."""
    speed = speed_from_timings("cpu", "float32", 2, timings, 32 * 2**20)
    for budget in (10, 20):
        result = recommend(SHAKESPEARE_CHARS, budget - 4, 65, speed, PLENTY_OF_MEMORY)
        model = result.model_config
        assert model.output_hidden_dim == OUTPUT_HIDDEN_DIM, budget
        assert model.hidden_dim >= (128 if budget == 20 else 64), budget


def test_long_windows_need_twice_the_steps_when_half_length_windows_are_the_alternative():
    """On that EPYC at 60 s, windows of 128 get the plain step floor but not twice it, and
    windows of 64 trained better there: the recommendation takes the shorter windows."""
    result = recommend(SHAKESPEARE_CHARS, 60, 65, AVX512_EPYC, PLENTY_OF_MEMORY)
    model, training = result.model_config, result.training_config
    assert (model.hidden_dim, training.sequence_length, model.dropout) == (384, 64, 0.0)
    long_steps = 0.9 * 60 * AVX512_EPYC.chars_per_second(model, 32, 128) / (32 * 128)
    floor = min_steps(32, OUTPUT_HIDDEN_DIM, steps_scale(AVX512_EPYC, 54, 65))
    assert floor <= long_steps < LONG_WINDOW_STEPS * floor  # only the doubled floor says no
    assert "Windows of 128 would cost twice as much per step" in " ".join(result.reasons)
    # With five times the time the long windows get their steps, and the model grows.
    long_run = recommend(SHAKESPEARE_CHARS, 300, 65, AVX512_EPYC, PLENTY_OF_MEMORY)
    assert long_run.training_config.sequence_length == 128
    assert long_run.model_config.hidden_dim > 384


def test_larger_batches_need_fewer_steps_and_take_a_larger_learning_rate():
    assert min_steps(8) == MIN_STEPS == 3_500
    assert min_steps(32) == pytest.approx(1_750)
    assert min_steps(32, output_hidden_dim=1024) == pytest.approx(875)  # x 0.5
    assert learning_rate_for(256, 8) == pytest.approx(6e-3)
    assert learning_rate_for(256, 16) == pytest.approx(1e-2)
    assert learning_rate_for(256, 32) == pytest.approx(1e-2)
    assert learning_rate_for(768, 8) == pytest.approx(3e-3)
    assert learning_rate_for(768, 32) == pytest.approx(6e-3)


def test_tiny_corpus_shortens_the_window():
    result = recommend(200, 60, 20, CPU_LIKE, PLENTY_OF_MEMORY)
    assert result.training_config.sequence_length <= 180 // 4
    assert result.training_config.eval_chars <= 20


# ---- dropout ----

def test_dropout_comes_only_with_many_readings_and_grows_with_the_model_next_to_the_text():
    assert _dropout_for(9.0, 400_000, 1_000_000) == 0.0  # 0.4 parameters per character
    assert _dropout_for(9.0, 700_000, 1_000_000) == 0.1
    assert _dropout_for(9.0, 2_000_000, 1_000_000) == 0.2
    assert _dropout_for(9.0, 5_000_000, 1_000_000) == 0.3
    assert _dropout_for(6.0, 5_000_000, 1_000_000) == 0.0  # reads it too few times (< 8)


def test_a_model_small_next_to_the_text_gets_no_dropout_however_often_it_reads_it():
    # the largest model (5.9 M parameters) reads a text of 27 M training characters ~45 times
    result = recommend(30_000_000, 3600, 65, GPU_LIKE, PLENTY_OF_MEMORY)
    assert result.model_config.dropout == 0.0
    reason = next(r for r in result.reasons if r.startswith("No dropout"))
    assert "too small next to the text to memorise it" in reason


def test_the_dropout_rule_weighs_the_whole_model_output_layer_included():
    # hidden 384 with 1,024 output units has 1,258,689 parameters, 1.25 per training
    # character: it would get dropout 0.2 if it read the text 8+ times, but it reads it ~2.2
    result = recommend(SHAKESPEARE_CHARS, 60, 65, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
    config = result.model_config
    assert (config.hidden_dim, config.output_hidden_dim) == (384, 1024)
    assert config.num_parameters() == 1_258_689
    assert _dropout_for(MANY_PASSES, 1_258_689, int(0.9 * SHAKESPEARE_CHARS)) == 0.2
    assert result.estimate.chars_per_second * 54 < MANY_PASSES * 0.9 * SHAKESPEARE_CHARS
    assert config.dropout == 0.0
    # on a text of 300,000 characters the same model reads it ~8 times; with its output
    # layer counted it has 4.7 parameters per training character (dropout 0.3), without it
    # 3.0 (0.2)
    result = recommend(300_000, 60, 65, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
    config = result.model_config
    assert (config.hidden_dim, config.output_hidden_dim) == (384, 1024)
    assert result.estimate.chars_per_second * 54 >= MANY_PASSES * 0.9 * 300_000
    # (the same model with a linear output layer: 25,025 parameters there, not 460,865)
    assert _dropout_for(9.0, config.num_parameters() - 460_865 + 25_025, 270_000) == 0.2
    assert config.dropout == 0.3
    # this speed prices the output units at nothing: the reason says so, not "~-1%"
    output_reason = next(r for r in result.reasons if r.startswith("Output layer"))
    assert "costs under 1% of a step" in output_reason


def test_reasons_and_the_estimate_quote_one_speed_for_a_model_with_dropout():
    speed = replace(MEMORY_BOUND_CPU, dropout_value_s=3e-9)
    result = recommend(200_000, 60, 103, speed, PLENTY_OF_MEMORY)  # read ~12 times
    assert result.model_config.dropout > 0
    rate = f"~{format_count(result.estimate.chars_per_second)} chars/s"
    hidden_reason = result.explained[0]
    batch_reason = next(r for r in result.explained if r.sentence.startswith("Batch size 32"))
    assert hidden_reason.sentence.startswith(f"Hidden size {result.model_config.hidden_dim}: ")
    assert hidden_reason.details.startswith(f"At {rate}")
    assert batch_reason.details.startswith(rate)
    without = replace(result.model_config, dropout=0.0)
    assert speed.chars_per_second(without, 32, 64) > result.estimate.chars_per_second


# ---- the budget: epochs and evaluation ----

def test_time_not_epochs_ends_the_run():
    result = recommend(SHAKESPEARE_CHARS, 60, 65, CPU_LIKE, PLENTY_OF_MEMORY)
    training = result.training_config
    expected_chars = result.estimate.chars_per_second * 60
    train_chars = SHAKESPEARE_CHARS * 0.9
    assert training.epochs * train_chars >= 2 * expected_chars


def test_tiny_corpus_epochs_cover_the_budget():
    # An epoch is at least one step, so a 200-character text needs many epochs to fill 60 s.
    result = recommend(200, 60, 20, CPU_LIKE, PLENTY_OF_MEMORY)
    training = result.training_config
    steps = 0.9 * 60 * result.estimate.chars_per_second / (
        training.batch_size * training.sequence_length)
    assert training.epochs >= 2 * steps


def test_evaluation_costs_under_five_percent_of_the_budget():
    for budget in (60, 600):
        result = recommend(SHAKESPEARE_CHARS, budget, 65, CPU_LIKE, PLENTY_OF_MEMORY)
        training = result.training_config
        steps = result.estimate.chars_per_second * 0.9 * budget / (
            training.batch_size * training.sequence_length)
        evaluations = steps / training.eval_interval + 1  # plus the final one
        windows = math.ceil(training.eval_chars / (64 * training.sequence_length))
        eval_seconds = windows * CPU_LIKE.step_seconds(result.model_config, 64,
                                                       training.sequence_length) / 3
        assert evaluations * eval_seconds <= 0.06 * budget
        assert evaluations >= 5


# ---- the recommendation as a whole ----

def test_reasons_explain_each_choice_with_numbers():
    result = recommend(SHAKESPEARE_CHARS, 60, 65, CPU_LIKE, PLENTY_OF_MEMORY)
    assert len(result.reasons) >= 6
    assert all(reason.strip().endswith(".") for reason in result.reasons)
    text = " ".join(result.reasons)
    assert f"Hidden size {result.model_config.hidden_dim}" in text
    assert "chars/s" in text and "60 s" in text
    assert "No dropout" in text
    assert f"Batch size {result.training_config.batch_size}" in text
    assert result.training_config.weight_decay == 0.3
    assert "Weight decay 0.3:" in text
    assert result.training_config.ema_decay == 0.98
    assert "Weight averaging 0.98:" in text and "last 50 steps" in text


def test_recommendation_is_deterministic_with_a_given_speed():
    first = recommend(500_000, 120, 80, CPU_LIKE, PLENTY_OF_MEMORY)
    second = recommend(500_000, 120, 80, CPU_LIKE, PLENTY_OF_MEMORY)
    assert first == second


def test_recommended_configuration_builds_a_model_that_runs():
    result = recommend(5_000, 30, 30, CPU_LIKE, PLENTY_OF_MEMORY)
    model = MicroLM(config=result.model_config)
    inputs = torch.zeros(2, result.training_config.sequence_length, dtype=torch.long)
    assert model(inputs).shape == (2, result.training_config.sequence_length, 30)


def test_recommend_rejects_a_budget_of_zero():
    with pytest.raises(ValueError, match="time_budget_s"):
        recommend(10_000, 0, 65, CPU_LIKE, PLENTY_OF_MEMORY)


# ---- reasons in plain words, with their details ----

def test_each_reason_is_one_plain_sentence_with_its_measurements_in_the_details():
    result = recommend(SHAKESPEARE_CHARS, 60, 65, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
    assert len(result.explained) == len(result.reasons) >= 10
    for reason in result.explained:
        assert reason.sentence.endswith(".") and reason.details.endswith(".")
        # one sentence: no full stop inside it but the ones in numbers
        assert re.sub(r"\d\.\d", "", reason.sentence[:-1]).count(". ") == 0, reason.sentence
        assert "chars/s" not in reason.sentence and "~" not in reason.sentence
        assert reason.text == f"{reason.sentence} {reason.details}"
    assert result.reasons == tuple(reason.text for reason in result.explained)
    hidden = result.explained[0]
    assert hidden.sentence.startswith(f"Hidden size {result.model_config.hidden_dim}: the ")
    assert "chars/s" in hidden.details
    decay = next(r for r in result.explained if r.sentence.startswith("Weight decay"))
    assert "biases and the character vectors (embedding) are exempt" in decay.details


def test_the_headline_says_the_model_batch_rate_and_steps_in_one_line():
    result = recommend(SHAKESPEARE_CHARS, 60, 65, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
    model, training = result.model_config, result.training_config
    steps = result.steps
    assert steps == pytest.approx(
        result.estimate.chars_per_second * 0.9 * 60
        / (training.batch_size * training.sequence_length))
    shown = int(re.search(r"about ([\d,]+) steps$", result.headline(60))[1].replace(",", ""))
    assert abs(shown - steps) <= 0.05 * steps  # two significant figures
    assert result.headline(60).startswith(
        f"Recommended for 60 s: hidden size {model.hidden_dim}, 1 layer, output layer "
        f"{model.output_hidden_dim:,} units, batch {training.batch_size} x "
        f"{training.sequence_length} characters, learning rate {training.learning_rate:g}, ")


def test_the_speed_in_words_counts_what_the_model_reads_in_the_budget():
    result = recommend(200_000, 60, 65, MEMORY_BOUND_CPU, PLENTY_OF_MEMORY)
    train_chars = 200_000 - 20_000
    passes = result.steps * result.training_config.batch_size * \
        result.training_config.sequence_length / train_chars
    words = result.in_words(60, 200_000)
    assert words.startswith("This computer trains about ")
    assert "characters a second: in 1 minute a model of about " in words
    assert words.endswith(f"reads the text about {passes:.1f} times.") or \
        words.endswith(f"reads the text about {passes:,.0f} times.")


def test_on_a_cuda_gpu_the_default_and_the_reason_are_bfloat16(monkeypatch):
    """A CUDA GPU that computes in bfloat16 trains in it: the device's default precision,
    the calibration's and the run's; the reason says so instead of "no bfloat16 unit"."""
    from microlm import hardware
    from microlm.precision import run_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cuda = torch.device("cuda")
    assert hardware.default_precision(cuda) == "bfloat16"
    assert run_precision("auto", cuda) == ("bfloat16", ())
    gpu = replace(GPU_LIKE, precision="bfloat16")
    result = recommend(10_000_000, 600, 96, gpu, PLENTY_OF_MEMORY)
    assert result.training_config.precision == "bfloat16"
    reason = next(r for r in result.explained if r.sentence.startswith("Precision"))
    assert reason.sentence.startswith("Precision bfloat16: this GPU computes in bfloat16")
    assert "no bfloat16" not in reason.text and "CPU" not in reason.text
    older = next(r for r in recommend(10_000_000, 600, 96, GPU_LIKE, PLENTY_OF_MEMORY).explained
                 if r.sentence.startswith("Precision"))
    assert older.sentence.startswith("Precision float32: this GPU has no fast bfloat16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert hardware.default_precision(cuda) == "float32"
