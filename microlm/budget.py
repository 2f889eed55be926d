"""The one time-budget policy: what "60 s" means, the same for the command line and the app.

A budget counts from the moment a person asks for a run (the command starts, Train is
pressed) to the model being ready (saved by the command, handed over in the app), with
everything in it: reading the text, calibrating, building the model, training, the last
validation and saving. The trainer's own clock is given what is left once the set-up so far
and a reserve for finishing are taken off.
"""

from __future__ import annotations

from .calibration import calibrate
from .config import TrainingConfig
from .model import ModelConfig
from .speed import MachineSpeed

CALIBRATION_SHARE = 0.03  # a budgeted run's calibration takes at most this share ...
CALIBRATION_SECONDS = (0.2, 1.5)  # ... and between these many seconds
# Before the model is chosen the finishing cost is unknown: the recommendation plans for
# the budget less this rough reserve (seconds + share of the budget).
PLANNING_RESERVE = (0.1, 0.03)
# The finishing reserve, once the model is known: saving and exiting (seconds + share of the
# budget), the step the clock may run over by (in steps), the last validation, at most this
# share of the budget.
FINISHING_RESERVE = (0.1, 0.01)
OVERRUN_STEPS = 1.5
MAX_RESERVE_SHARE = 0.3
# Validation is a forward pass only: scoring a character costs about this share of training
# on it.
VALIDATION_COST = 1 / 3


class BudgetTooShort(ValueError):
    """The set-up used the whole budget before training could start."""


def calibration_seconds(budget_s: float) -> float:
    """How long a budgeted run may calibrate: short for short budgets."""
    low, high = CALIBRATION_SECONDS
    return min(high, max(low, CALIBRATION_SHARE * budget_s))


def calibrate_for(budget_s: float, device: str | None = None) -> MachineSpeed:
    """This machine's speed for a budgeted run: a short calibration, or none where a few were
    taken in the last minutes (calibrate's reuse_recent)."""
    return calibrate(seconds=calibration_seconds(budget_s), device=device, reuse_recent=True)


def planning_seconds(budget_s: float, elapsed_s: float) -> float:
    """The seconds a recommendation made `elapsed_s` into the budget may plan training for."""
    seconds, share = PLANNING_RESERVE
    return max(round(budget_s - elapsed_s - (seconds + share * budget_s), 1), 1.0)


def finishing_reserve(speed: MachineSpeed, model_config: ModelConfig,
                      training_config: TrainingConfig, val_chars: int, budget_s: float) -> float:
    """Seconds kept back from the training clock so the whole run ends within its budget.

    The trainer stops before a step once its clock is spent, so the last step can run over
    by up to one step; then come a last validation (when none just happened), keeping the
    best weights, and saving. Step and validation times come from the calibration."""
    cfg = training_config
    chars_per_second = speed.chars_per_second(model_config, cfg.batch_size, cfg.sequence_length)
    step_s = cfg.batch_size * cfg.sequence_length / chars_per_second
    validation_s = min(cfg.eval_chars, val_chars) * VALIDATION_COST / chars_per_second
    seconds, share = FINISHING_RESERVE
    reserve = seconds + share * budget_s + OVERRUN_STEPS * step_s + validation_s
    return min(reserve, MAX_RESERVE_SHARE * budget_s)


def training_seconds(budget_s: float, elapsed_s: float, reserve_s: float) -> float:
    """The trainer's clock for a run `elapsed_s` into its budget, with `reserve_s` kept for
    finishing. Raises BudgetTooShort when nothing is left."""
    remaining = budget_s - elapsed_s - reserve_s
    if remaining <= 0:
        raise BudgetTooShort(
            f"the time budget of {budget_s:g} s was used up before training could start "
            f"(reading and preparing took {elapsed_s:.1f} s); give more time.")
    return remaining
