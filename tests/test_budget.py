"""Tests for microlm.budget: one meaning of a time budget for the command line and the app."""

import pytest

from microlm import budget
from microlm.config import TrainingConfig
from microlm.model import ModelConfig
from microlm.speed import MachineSpeed

# 1 ms a step plus 1 GFLOP/s: a step of the model below on 4 x 16 characters is easy to price
SPEED = MachineSpeed("cpu", step_overhead_s=0.001, flops_per_second=1e9)
MODEL = ModelConfig(20, 8, 16, 1, 0.0)
CONFIG = TrainingConfig(batch_size=4, sequence_length=16, eval_chars=10_000)


@pytest.mark.parametrize(("budget_s", "seconds"), [(3, 0.2), (10, 0.3), (60, 1.5), (600, 1.5)])
def test_the_calibration_gets_a_small_share_of_the_budget(budget_s, seconds):
    assert budget.calibration_seconds(budget_s) == pytest.approx(seconds)


def test_a_budgeted_run_calibrates_briefly_and_reuses_recent_calibrations(monkeypatch):
    calls = []
    monkeypatch.setattr(budget, "calibrate", lambda **kwargs: calls.append(kwargs) or SPEED)
    assert budget.calibrate_for(60.0, "cpu") is SPEED
    assert calls == [{"seconds": 1.5, "device": "cpu", "reuse_recent": True}]


def test_the_recommendation_plans_for_what_is_left_less_a_rough_reserve():
    # 60 s less 2 s already spent less 0.1 s and 3 % of the budget
    assert budget.planning_seconds(60, 2.0) == pytest.approx(56.1)
    assert budget.planning_seconds(5, 10.0) == 1.0  # never less than a second to plan for


def test_the_finishing_reserve_pays_for_the_last_step_validation_and_saving():
    step_s = SPEED.step_seconds(MODEL, 4, 16)
    chars_per_second = 4 * 16 / step_s
    validation_s = 5_000 / 3 / chars_per_second  # 5,000 validation characters, forward only
    expected = 0.1 + 0.01 * 60 + 1.5 * step_s + validation_s
    assert budget.finishing_reserve(SPEED, MODEL, CONFIG, 5_000, 60) == pytest.approx(expected)
    # the validation scores at most eval_chars characters
    capped = budget.finishing_reserve(SPEED, MODEL, CONFIG, 50_000, 60)
    assert capped == pytest.approx(expected + 5_000 / 3 / chars_per_second)


def test_the_reserve_never_takes_more_than_30_percent_of_the_budget():
    slow = MachineSpeed("cpu", step_overhead_s=5.0, flops_per_second=1e6)
    assert budget.finishing_reserve(slow, MODEL, CONFIG, 5_000, 10) == pytest.approx(3.0)


def test_the_training_clock_gets_the_rest():
    assert budget.training_seconds(60, 4.5, 2.0) == pytest.approx(53.5)
    with pytest.raises(budget.BudgetTooShort, match="used up before training could start"):
        budget.training_seconds(5, 4.5, 1.0)
