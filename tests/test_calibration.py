"""Tests for microlm.calibration: timing real training steps, and remembered calibrations."""

import json
import time
from dataclasses import replace

import pytest
import torch

from microlm import ModelConfig, calibration
from microlm.calibration import CALIBRATION_MAX_AGE_S, calibrate, calibration_file
from microlm.speed import (
    OUTPUT_HIDDEN_DIM,
    REUSE_MAX_AGE_S,
    REUSE_RECENT,
    MachineSpeed,
    calibration_shapes,
    speed_from_timings,
)

# A made-up 2-core CPU (no timing): 2 ms per step, 10 us per character position, 150 GFLOP/s.
CPU_LIKE = MachineSpeed("cpu", step_overhead_s=0.002, flops_per_second=150e9,
                        timestep_overhead_s=1e-5)
# A 2-core AMD EPYC with AVX-512 BF16, as calibrated.
AVX512_EPYC = MachineSpeed("cpu", step_overhead_s=0.000992, flops_per_second=873e9,
                           timestep_overhead_s=1.84e-6, threads=2, precision="bfloat16",
                           weight_pass_s=5.67e-11, dropout_value_s=1.71e-9,
                           lstm_dropout_value_s=6.02e-9, state_value_s=5.04e-9,
                           output_value_s=3.33e-9)


def _speed_at(flops: float) -> MachineSpeed:
    return replace(CPU_LIKE, flops_per_second=flops)


@pytest.fixture
def calibrate_anew(monkeypatch):
    """calibrate() as a new process on this machine runs it (nothing calibrated in this
    one yet), its measurement replaced by the speed given: what it remembers in the test's
    own calibration folder, pools and reuses is real."""

    def run(measured: MachineSpeed, **options) -> MachineSpeed:
        monkeypatch.setattr(calibration, "_CALIBRATIONS", {})
        monkeypatch.setattr(calibration, "_measure_speed",
                            lambda seconds, device, precision: measured)
        return calibrate(seconds=0.3, device="cpu", precision=measured.precision, **options)

    return run


def _remembered() -> list[dict]:
    """The remembered calibrations of the one machine set-up in the file, oldest first."""
    [history] = json.loads(calibration_file().read_text()).values()
    return history


def _backdate(*ages: float) -> None:
    """Make the remembered calibrations (of the one set-up in the file) `ages` seconds old."""
    path = calibration_file()
    saved = json.loads(path.read_text())
    [history] = saved.values()
    now = time.time()
    for entry, age in zip(history, ages, strict=True):
        entry["time"] = now - age
    path.write_text(json.dumps(saved))


def test_calibrate_returns_positive_numbers_and_is_cached(one_torch_thread):
    speed = calibrate(seconds=0.2, device="cpu")
    assert speed.device == "cpu"
    assert speed.flops_per_second > 0
    assert speed.step_overhead_s >= 0 and speed.timestep_overhead_s >= 0
    assert speed.weight_pass_s >= 0 and speed.state_value_s >= 0
    assert speed.dropout_value_s > 0 and speed.lstm_dropout_value_s > 0
    assert speed.chars_per_second(ModelConfig(65, 16, 32, 1, 0.0), 8, 64) > 0
    assert calibrate(seconds=0.2, device="cpu") is speed


# ---- remembered calibrations ----

def test_calibrations_are_remembered_and_the_median_of_the_last_five_used(
        own_calibration_cache, calibrate_anew):
    flops = [100e9, 400e9, 50e9, 200e9, 300e9, 25e9]
    used = [calibrate_anew(_speed_at(f)) for f in flops]
    # the first alone; then the faster of two; then the median of three, four (the lower
    # of the middle two: the faster), five and the last five
    assert [u.flops_per_second for u in used] == [100e9, 400e9, 100e9, 200e9, 200e9, 200e9]
    assert [u.calibrations for u in used] == [1, 2, 3, 4, 5, 5]
    assert "median of this machine's last 5 calibrations" in used[-1].summary()
    assert "median" not in used[0].summary()
    assert calibration_file() == own_calibration_cache / "calibrations.json"
    assert [e["speed"]["flops_per_second"] for e in _remembered()] == flops[1:]
    # another set-up (here another precision) has a history of its own
    assert calibrate_anew(replace(_speed_at(10e9), precision="bfloat16")).calibrations == 1


def test_three_calibrations_from_the_last_ten_minutes_are_reused(calibrate_anew):
    assert REUSE_RECENT == 3 and REUSE_MAX_AGE_S == 600.0
    for flops in (100e9, 300e9, 200e9, 400e9):
        calibrate_anew(_speed_at(flops))
    # within the hour but not recent; just too old to count as recent; two recent ones
    _backdate(3000, 700, 500, 100)
    assert calibrate_anew(_speed_at(250e9), reuse_recent=True).measured  # two recent only
    reused = calibrate_anew(_speed_at(1e9), reuse_recent=True)  # now three
    assert not reused.measured
    # pooled as a new calibration would be pooled: the median of all five from the hour
    assert (reused.flops_per_second, reused.calibrations) == (250e9, 5)
    assert "none taken now, as 3 or more were taken in the last 10 minutes" in reused.summary()
    saved = _remembered()
    assert len(saved) == 5 and all("measured" not in entry["speed"] for entry in saved)
    # 500 s later two of the three have aged past 10 minutes
    _backdate(3500, 1200, 1000, 600, 500)
    assert calibrate_anew(_speed_at(1e9), reuse_recent=True).measured
    other_setup = calibrate_anew(replace(_speed_at(1e9), precision="bfloat16"),
                                 reuse_recent=True)
    assert other_setup.measured and other_setup.calibrations == 1


def test_only_a_calibration_asked_to_reuse_skips_measuring(calibrate_anew):
    reuse = (True, True, True, True, False, True)
    speeds = [calibrate_anew(_speed_at(100e9 + 10e9 * turn), reuse_recent=each)
              for turn, each in enumerate(reuse, start=1)]
    # three measured while fewer than three were recent; then reused; measured when asked
    assert [speed.measured for speed in speeds] == [True, True, True, False, True, False]
    assert [speed.calibrations for speed in speeds] == [1, 2, 3, 3, 4, 4]
    assert speeds[3].flops_per_second == 120e9  # the median of 110, 120 and 130


def test_calibrations_older_than_an_hour_are_forgotten(calibrate_anew):
    calibrate_anew(_speed_at(900e9))
    calibrate_anew(_speed_at(800e9))
    _backdate(CALIBRATION_MAX_AGE_S + 10, CALIBRATION_MAX_AGE_S)
    later = calibrate_anew(_speed_at(100e9))
    assert (later.flops_per_second, later.calibrations) == (100e9, 1)


def test_remembered_calibrations_are_refitted_to_each_shape_s_median_time(calibrate_anew):
    """Five calibrations, each with a different shape timed 1.6x too slow (a busy moment):
    each one's fitted costs are off, and picking the median calibration keeps one of those
    errors; the refit to each shape's median time recovers the machine's costs."""
    true = AVX512_EPYC
    shapes = calibration_shapes(torch.device("cpu"))
    exact = [true.step_seconds(*shape) for shape in shapes]
    exact += [true.dropout_value_s, true.lstm_dropout_value_s]
    fitted = speed_from_timings("cpu", "bfloat16", 2, exact)
    assert fitted.flops_per_second == pytest.approx(true.flops_per_second, rel=1e-6)
    assert fitted.state_value_s == pytest.approx(true.state_value_s, rel=1e-6)
    # (the output shapes' difference also drops a linear layer, priced at the FLOP rate)
    assert fitted.output_value_s == pytest.approx(true.output_value_s, rel=0.1)
    assert fitted.timings == tuple(exact)

    candidates = [(ModelConfig(65, 128, hidden, 1, 0.0, OUTPUT_HIDDEN_DIM), batch, length)
                  for hidden in (128, 384, 768) for batch in (8, 32) for length in (64, 128)]

    def error(speed: MachineSpeed) -> float:  # the worst over shapes a recommendation weighs
        return max(abs(speed.step_seconds(*shape) / fitted.step_seconds(*shape) - 1)
                   for shape in candidates)

    used = None
    for slow in (7, 4, 3, 2, 1):
        timings = list(exact)
        timings[slow] *= 1.6
        alone = speed_from_timings("cpu", "bfloat16", 2, timings)
        assert error(alone) > 0.1  # each calibration alone mispredicts some shape by 10 %+
        used = calibrate_anew(alone)
    assert used.calibrations == 5
    assert error(used) < 1e-6
    assert used.flops_per_second == pytest.approx(true.flops_per_second, rel=1e-6)
    assert used.state_value_s == pytest.approx(true.state_value_s, rel=1e-6)
    # the file keeps each calibration's own timings, as measured
    assert _remembered()[0]["speed"]["timings"][7] / exact[7] == pytest.approx(1.6)
    # a calibration with another thread count is not pooled with them
    one_thread = speed_from_timings("cpu", "bfloat16", 1, [3 * t for t in exact])
    assert calibrate_anew(one_thread).threads == 2


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"m": [{"time": "x"}, 5]}',
                                     '{"m": [{"time": 1.0, "speed": {"unknown": 1}}]}'])
def test_an_unreadable_calibration_file_is_replaced(calibrate_anew, content):
    calibrate_anew(_speed_at(1e9))
    [setup] = json.loads(calibration_file().read_text())  # this machine's set-up, for "m"
    calibration_file().write_text(content.replace('"m"', json.dumps(setup)))
    used = calibrate_anew(_speed_at(123e9))
    assert (used.flops_per_second, used.calibrations) == (123e9, 1)
    saved = json.loads(calibration_file().read_text())[setup]
    assert saved[-1]["speed"]["flops_per_second"] == 123e9


def test_a_calibration_file_that_cannot_be_written_is_left_alone(own_calibration_cache,
                                                                  calibrate_anew):
    (own_calibration_cache / "calibrations.json").mkdir()  # a folder where the file should be
    used = calibrate_anew(_speed_at(7e9))
    assert (used.flops_per_second, used.calibrations) == (7e9, 1)
    # no temporary file left behind
    assert [p.name for p in own_calibration_cache.iterdir()] == ["calibrations.json"]


def test_an_empty_cache_dir_remembers_nothing(tmp_path, monkeypatch, calibrate_anew):
    monkeypatch.setenv("MICROLM_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)
    assert calibration_file() is None
    assert calibrate_anew(_speed_at(5e9)) == _speed_at(5e9)
    assert list(tmp_path.iterdir()) == []


# ---- timing the steps ----

def test_calibration_times_its_shapes_in_turns_so_a_slow_moment_hits_all_alike(monkeypatch):
    calls: list[str] = []
    clock = {"now": 0.0}
    cost = {"small": 1.0, "large": 4.0}

    def fake_training_step(config, batch_size, sequence_length, device, precision):
        name = "small" if config.hidden_dim == 8 else "large"

        def step():
            calls.append(name)
            slow = 3.0 if 20 <= clock["now"] < 40 else 1.0  # the machine slows for a while
            clock["now"] += cost[name] * slow
        return step

    def fake_timed(action):
        start = clock["now"]
        action()
        return clock["now"] - start

    monkeypatch.setattr(calibration, "_training_step", fake_training_step)
    monkeypatch.setattr(calibration, "_timed", fake_timed)
    monkeypatch.setattr(calibration.time, "perf_counter", lambda: clock["now"])
    shapes = [(ModelConfig(10, 4, 8, 1, 0.0), 2, 4), (ModelConfig(10, 4, 16, 1, 0.0), 2, 4)]
    times = calibration._interleaved_step_seconds(shapes, torch.device("cpu"), 100.0, "float32")
    assert calls[:2] == ["small", "large"]  # one first step of each, to set up
    # then in turns (a first step warms the caches, untimed), not all of one shape first
    turn = 1 + calibration.TIMED_PER_TURN
    assert calls[2:2 + 4 * turn] == (["small"] * turn + ["large"] * turn) * 2
    assert calls.count("small") == calls.count("large") >= 4
    # medians over the turns: the slow stretch does not move the ratio from 4
    assert times[1] / times[0] == pytest.approx(4.0)


def test_calibration_starts_no_turn_that_would_end_past_its_time(monkeypatch):
    clock = {"now": 0.0}
    cost = {8: 1.0, 16: 4.0}  # seconds a step of each shape takes: a turn is 5 + 20 = 25

    def fake_training_step(config, batch_size, sequence_length, device, precision):
        def step():
            clock["now"] += cost[config.hidden_dim]
        return step

    monkeypatch.setattr(calibration, "_training_step", fake_training_step)
    monkeypatch.setattr(calibration.time, "perf_counter", lambda: clock["now"])
    shapes = [(ModelConfig(10, 4, 8, 1, 0.0), 2, 4), (ModelConfig(10, 4, 16, 1, 0.0), 2, 4)]
    calibration._interleaved_step_seconds(shapes, torch.device("cpu"), 60.0, "float32")
    # Set-up 5 s, then turns ending at 30 and 55; a third would end at 80, past 5 + 60.
    assert clock["now"] == 55.0
    # The first turn runs whatever the time: every shape needs its timed steps.
    clock["now"] = 0.0
    calibration._interleaved_step_seconds(shapes, torch.device("cpu"), 1.0, "float32")
    assert clock["now"] == 30.0


def test_calibration_leaves_the_random_state_alone(one_torch_thread):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    calibration._interleaved_step_seconds([(ModelConfig(20, 4, 8, 1, 0.0), 2, 4)],
                                          torch.device("cpu"), 0.0, "float32")
    assert torch.equal(torch.rand(3), expected)


def test_memory_speed_is_measured_on_a_matrix_larger_than_the_cache():
    seconds = calibration._memory_seconds_per_byte(2**20, torch.device("cpu"))  # 64 MiB matrix
    assert 1e-12 < seconds < 1e-8  # between 100 MB/s and 1 TB/s
    assert calibration._memory_seconds_per_byte(0, torch.device("cpu")) == 0.0
    assert calibration._memory_seconds_per_byte(2**20, torch.device("meta")) == 0.0


@pytest.mark.parametrize(("one_thread_s", "many_threads_s", "chosen"), [
    (0.10, 0.06, 2),  # all the threads are faster: taken
    (0.10, 0.105, 2),  # one thread faster by under THREADS_MARGIN: all the threads still
    (0.10, 0.12, 1),  # one thread faster by more than the margin: one thread
    (0.10, 0.50, 1),  # a busy machine: the first step with all the threads gives it away
])
def test_one_thread_is_chosen_only_when_clearly_faster(monkeypatch, one_thread_s,
                                                       many_threads_s, chosen):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    threads = {"now": 2}
    monkeypatch.setattr(torch, "set_num_threads", lambda n: threads.update(now=n))
    monkeypatch.setattr(calibration, "_timed", lambda step: (
        one_thread_s if threads["now"] == 1 else many_threads_s))
    assert calibration._faster_thread_count(lambda: None) == chosen
