"""Tests for microlm.speed: the cost model of a training step and its fit to timings."""

from dataclasses import replace

import pytest
import torch

from microlm import ModelConfig
from microlm import speed as cost_model
from microlm.speed import (
    FITTED_SHAPES,
    STREAMED_WEIGHT_PASSES,
    MachineSpeed,
    calibration_shapes,
    matmul_parameters,
    speed_from_timings,
    spilled_share,
)

SHAPES = calibration_shapes(torch.device("cpu"))
NARROW_SHAPE = 4  # the narrow layer on a large batch: mostly the cost per state value
SHORT_WINDOW_SHAPE = 7  # the wide layer on short windows: its cost per parameter and step


def test_chars_per_second_follows_the_cost_model():
    speed = MachineSpeed("cpu", step_overhead_s=0.01, flops_per_second=1e9)
    config = ModelConfig(10, 4, 8, 1, 0.0)
    # matmul parameters: LSTM 4*8*(4+8+2) = 448, head 8*10+10 = 90 -> 538
    assert matmul_parameters(config) == 538
    step = 0.01 + 6 * 538 * 2 * 5 / 1e9
    assert speed.chars_per_second(config, 2, 5) == pytest.approx(10 / step)


def test_dropout_costs_per_masked_value_and_torch_s_between_layers():
    speed = MachineSpeed("cpu", step_overhead_s=0.01, flops_per_second=1e9,
                         dropout_value_s=2e-9, lstm_dropout_value_s=8e-9)
    plain = speed.step_seconds(ModelConfig(10, 4, 8, 3, 0.0), 2, 5)
    dropped = speed.step_seconds(ModelConfig(10, 4, 8, 3, 0.2), 2, 5)
    # 2 x 5 x 8 = 80 values: the model's own dropout once, torch's between the 3 layers twice
    assert dropped - plain == pytest.approx(80 * (2e-9 + 2 * 8e-9))
    one_layer = speed.step_seconds(ModelConfig(10, 4, 8, 1, 0.2), 2, 5)
    assert one_layer - speed.step_seconds(ModelConfig(10, 4, 8, 1, 0.0), 2, 5) == \
        pytest.approx(80 * 2e-9)


def test_per_character_overhead_is_paid_per_layer():
    config = ModelConfig(10, 4, 8, 1, 0.0)
    with_overhead = MachineSpeed("cpu", 0.0, 1e9, timestep_overhead_s=1e-3)
    assert with_overhead.step_seconds(config, 1, 100) == pytest.approx(
        0.1 + 6 * 538 * 100 / 1e9)
    two_layers = ModelConfig(10, 4, 8, 2, 0.0)  # + LSTM layer 2: 4*8*(8+8+2) = 576
    assert with_overhead.step_seconds(two_layers, 1, 100) == pytest.approx(
        0.2 + 6 * (538 + 576) * 100 / 1e9)


def test_reading_the_weights_costs_the_same_whatever_the_batch():
    config = ModelConfig(10, 4, 8, 1, 0.0)  # 538 matmul parameters, 448 of them the LSTM's
    speed = MachineSpeed("cpu", 0.0, 1e9, weight_pass_s=1e-6)
    for batch in (1, 8, 64):
        assert speed.step_seconds(config, batch, 100) == pytest.approx(
            448 * 100 * 1e-6 + 6 * 538 * batch * 100 / 1e9)
    # so a larger batch costs less per character
    assert speed.chars_per_second(config, 64, 100) > 8 * speed.chars_per_second(config, 1, 100)


def test_the_gate_arithmetic_costs_per_state_value_in_every_layer():
    speed = MachineSpeed("cpu", 0.0, 1e9, state_value_s=1e-8)
    one = ModelConfig(10, 4, 8, 1, 0.0)  # 538 matmul parameters
    # batch 2 x 5 characters x 8 hidden units = 80 state values per layer
    assert speed.step_seconds(one, 2, 5) == pytest.approx(6 * 538 * 10 / 1e9 + 80 * 1e-8)
    three = ModelConfig(10, 4, 8, 3, 0.0)  # + 2 layers of 4*8*(8+8+2) = 576
    assert speed.step_seconds(three, 2, 5) == pytest.approx(
        6 * (538 + 2 * 576) * 10 / 1e9 + 3 * 80 * 1e-8)
    # linear in the width, so it weighs most on narrow layers
    narrow, wide = ModelConfig(10, 4, 8, 1, 0.0), ModelConfig(10, 4, 256, 1, 0.0)
    share = [speed.state_value_s * 64 * 32 * c.hidden_dim / speed.step_seconds(c, 64, 32)
             for c in (narrow, wide)]
    assert share[0] > 5 * share[1]


def test_an_output_layer_is_priced_per_unit_and_position_not_per_weight_and_time_step():
    speed = MachineSpeed("cpu", 0.0, 1e9, weight_pass_s=1e-6, output_value_s=2e-9)
    linear = ModelConfig(10, 4, 8, 1, 0.0)  # LSTM 448 + linear output 90
    deep = ModelConfig(10, 4, 8, 1, 0.0, 32)
    assert linear.lstm_parameters() == deep.lstm_parameters() == 448
    assert speed.step_seconds(linear, 2, 5) == pytest.approx(448 * 5 * 1e-6
                                                             + 6 * 538 * 10 / 1e9)
    # its weights are not read once per character, and its arithmetic is in the per-unit
    # cost, which the calibration measured under hidden 256 and 96 characters: here each
    # unit has 8 + 10 + 1 inputs, not 353, and its products cost that much less
    scale = cost_model.OUTPUT_FIXED_SHARE + (1 - cost_model.OUTPUT_FIXED_SHARE) * 19 / 353
    assert speed.step_seconds(deep, 2, 5) == pytest.approx(
        448 * 5 * 1e-6 + 6 * 448 * 10 / 1e9 + 10 * 32 * 2e-9 * scale)
    wide = ModelConfig(96, 128, 256, 1, 0.0, 32)  # the calibration's width: 2 ns a unit
    assert speed.step_seconds(wide, 2, 5) - speed.step_seconds(replace(wide, output_hidden_dim=0),
                                                              2, 5) == pytest.approx(
        10 * 32 * 2e-9 - 6 * (256 * 96 + 96) * 10 / 1e9, rel=1e-6)


def test_each_step_costs_per_parameter_whatever_the_window():
    speed = MachineSpeed("cpu", 0.0, 1e9, parameter_step_s=5e-9)
    config = ModelConfig(65, 128, 512, 1, 0.0)
    for window in (16, 128):
        assert speed.step_seconds(config, 8, window) == pytest.approx(
            6 * matmul_parameters(config) * 8 * window / 1e9 + 5e-9 * config.num_parameters())
    assert "0.0 ms fixed cost per step and 5.0 ms per million parameters" in speed.summary()


def test_the_speed_summary_names_each_fitted_cost():
    speed = MachineSpeed("cpu", 0.0017, 7.05e11, 1e-5, 2, "bfloat16", 2.5e-10)
    assert speed.summary() == (
        f"{speed.reference_chars_per_second():,.0f} training characters/s for a one-layer "
        f"LSTM of 256 with 1,024 output units on batches of 16 x 128. Fitted costs: "
        f"705.0 GFLOP/s of LSTM math, 0.25 ms per million weights read at each character, "
        f"1.7 ms fixed cost per step")
    assert "weights" not in MachineSpeed("cuda", 0.004, 2e13).summary()
    with_values = MachineSpeed("cpu", 0.0017, 7.05e11, 1e-5, 2, "bfloat16", 2.5e-10,
                               state_value_s=1.2e-8)
    assert "at each character, 12.0 ns per state value (a character's hidden unit in one " \
        "layer), 1.7 ms fixed" in with_values.summary()
    with_dropout = MachineSpeed("cpu", 0.0017, 7.05e11, 1e-5, 2, "bfloat16", 2.5e-10,
                                dropout_value_s=1.5e-9, lstm_dropout_value_s=1.1e-8)
    assert with_dropout.summary().endswith(
        "dropout 1.5 ns per value (torch's, between LSTM layers: 11.0 ns)")


# ---- layers too large for the cache ----

SPILLING_CPU = MachineSpeed("cpu", step_overhead_s=0.002, flops_per_second=140e9,
                            weight_pass_s=8e-11, cache_bytes=32 * 2**20,
                            memory_byte_s=1 / 18e9)


def test_a_layer_spills_from_a_third_to_a_half_of_the_cache():
    cache = 120 * 2**20
    assert spilled_share(40 * 2**20, cache) == 0.0
    assert spilled_share(50 * 2**20, cache) == pytest.approx(0.5)
    assert spilled_share(60 * 2**20, cache) == pytest.approx(1.0)
    assert spilled_share(400 * 2**20, cache) == 1.0
    assert spilled_share(400 * 2**20, 0) == 0.0  # cache size unknown: no spill priced


def test_recurrent_weights_read_from_memory_slow_small_batches_of_wide_layers():
    """Hidden 1,280 in float32 (25 MiB of recurrent weights) no longer fits a 32 MiB cache:
    at each character 1.4x those weights come from memory, which a batch of 8 feels much
    more than a batch of 64 (whose arithmetic takes longer)."""
    wide = ModelConfig(65, 128, 1280, 1, 0.0)
    cached = replace(SPILLING_CPU, cache_bytes=0)
    recurrent = 4 * 1280 * 1280 * 4
    streamed = STREAMED_WEIGHT_PASSES * recurrent / 18e9 * 64
    assert SPILLING_CPU.streamed_seconds(wide, 64) == pytest.approx(streamed)
    assert SPILLING_CPU.step_seconds(wide, 8, 64) == pytest.approx(
        cached.step_seconds(wide, 8, 64) + streamed)
    assert SPILLING_CPU.step_seconds(wide, 8, 64) > 1.3 * cached.step_seconds(wide, 8, 64)
    assert SPILLING_CPU.step_seconds(wide, 64, 64) < 1.1 * cached.step_seconds(wide, 64, 64)
    # hidden 768 (9 MiB, under a third of the cache) fits: priced as before
    fits = ModelConfig(65, 128, 768, 1, 0.0)
    assert SPILLING_CPU.step_seconds(fits, 8, 64) == cached.step_seconds(fits, 8, 64)
    # in bfloat16 the same weights are half as large (12.5 MiB): partly in the cache
    half = replace(SPILLING_CPU, precision="bfloat16")
    assert 0 < half.streamed_seconds(wide, 64) < 0.25 * streamed
    # each layer of a stack reads its own recurrent weights at every character
    two = ModelConfig(65, 128, 1280, 2, 0.0)
    assert SPILLING_CPU.streamed_seconds(two, 64) == pytest.approx(2 * streamed)


def test_a_calibration_prices_memory_reads_only_where_its_wide_shape_fits_the_cache():
    timings = [SPILLING_CPU.step_seconds(*shape) for shape in SHAPES] + [1e-9, 1e-8]
    measured = speed_from_timings("cpu", "float32", 2, [*timings, 5e-11], 32 * 2**20)
    assert (measured.cache_bytes, measured.memory_byte_s) == (32 * 2**20, 5e-11)
    assert "18.6 GiB/s from memory for the weights of layers too large for the 32 MiB " \
        "cache" in measured.summary()
    # an 8 MiB cache cannot hold hidden 512's weights: the calibration's own weight cost
    # already includes reading them from memory, and nothing is added for wider layers
    small = speed_from_timings("cpu", "float32", 2, [*timings, 5e-11], 8 * 2**20)
    assert small.memory_byte_s == 0.0
    assert "GiB/s" not in small.summary()
    # a calibration remembered from before memory reads were measured
    old = speed_from_timings("cpu", "float32", 2, timings, 32 * 2**20)
    assert old.memory_byte_s == 0.0


# ---- fitting the costs to a calibration's timings ----

# (step overhead, per-character overhead, per weight and time step, per FLOP, per state
# value, per parameter and step)
COSTS = [0.003, 1e-5, 1e-10, 1e-11, 1e-8, 5e-9]
# Rows of the six fitted shapes' equations, roughly: small t16, small t64, wide b8 t64,
# wide b32 t32, narrow b128 t32, wide b8 t16.
CALIBRATION_ROWS = [[1, 16, 1e5, 1e8, 8e3, 3.7e4], [1, 64, 4e5, 4e8, 3.3e4, 3.7e4],
                    [1, 64, 5e7, 2.4e10, 2.6e5, 1.4e6], [1, 32, 2.5e7, 4.8e10, 5.2e5, 1.4e6],
                    [1, 32, 1e7, 2e10, 4.2e6, 3.7e4], [1, 16, 1.3e7, 6e9, 6.5e4, 1.4e6]]


def _speed_with(costs: list[float]) -> MachineSpeed:
    overhead, per_character, per_weight, per_flop, per_value, per_parameter = costs
    return MachineSpeed("cpu", overhead, 1 / per_flop, per_character, weight_pass_s=per_weight,
                        state_value_s=per_value, parameter_step_s=per_parameter)


def _costs_of(speed: MachineSpeed) -> list[float]:
    return [speed.step_overhead_s, speed.timestep_overhead_s, speed.weight_pass_s,
            1 / speed.flops_per_second, speed.state_value_s, speed.parameter_step_s]


def _shape_times(costs: list[float]) -> list[float]:
    """The step time of each calibration shape on a machine with these costs."""
    return [_speed_with(costs).step_seconds(*shape) for shape in SHAPES]


def _fitted(shape_times: list[float]) -> list[float]:
    """The six costs fitted to these step times (and two dropout costs)."""
    return _costs_of(speed_from_timings("cpu", "float32", None, [*shape_times, 1e-9, 1e-8]))


def test_the_calibration_solver_recovers_six_costs_of_very_different_sizes():
    from microlm.speed import _solve

    times = [sum(a * b for a, b in zip(row, COSTS, strict=True)) for row in CALIBRATION_ROWS]
    assert _solve(CALIBRATION_ROWS, times) == pytest.approx(COSTS, rel=1e-6)
    assert _solve([[1, 2], [2, 4]], [1, 2]) == [0.0, 0.0]  # singular


def test_a_noisy_shape_drops_a_term_rather_than_charge_a_negative_cost():
    assert _fitted(_shape_times(COSTS)) == pytest.approx(COSTS, rel=1e-6)
    # a machine with no cost per state value: that term fits to nothing
    no_values = [*COSTS[:4], 0.0, COSTS[5]]
    assert _fitted(_shape_times(no_values)) == pytest.approx(no_values, rel=1e-6, abs=1e-15)
    # the narrow shape ran faster than the others allow: the exact solution would charge
    # a negative cost per state value; no cost comes out negative, the FLOP rate stays
    times = _shape_times(COSTS)
    times[NARROW_SHAPE] *= 0.3
    fitted = _fitted(times)
    assert all(cost >= 0 for cost in fitted)
    assert fitted[3] > 0
    assert fitted[4] < COSTS[4]
    # the short-window shape ran 30 % slow: the six terms are still all >= 0 and the other
    # five fitted shapes are predicted within 30 %
    times = _shape_times(COSTS)
    times[SHORT_WINDOW_SHAPE] *= 1.3
    fitted = _fitted(times)
    assert min(fitted) >= 0 and fitted[3] > 0
    predicted, exact = _shape_times(fitted), _shape_times(COSTS)
    assert all(abs(predicted[i] / exact[i] - 1) < 0.3 for i in FITTED_SHAPES
               if i != SHORT_WINDOW_SHAPE)


def test_times_that_only_the_arithmetic_explains_charge_nothing_else():
    flops_only = [0.0, 0.0, 0.0, 2e-11, 0.0, 0.0]
    assert _fitted(_shape_times(flops_only)) == pytest.approx(flops_only, rel=1e-6, abs=1e-15)


def test_the_quoted_speed_is_that_of_the_reference_model():
    speed = MachineSpeed("cpu", 0.002, 1e11, 1e-5, 2, "float32", 2e-10, state_value_s=1e-8)
    expected = speed.chars_per_second(ModelConfig(96, 128, 256, 1, 0.0, 1024), 16, 128)
    assert speed.reference_chars_per_second() == pytest.approx(expected)
