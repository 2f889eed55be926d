"""The books of one training run: ModelTrainer.fit() does the work, a Run keeps count.

A Run knows the run's plan in steps (its length, the learning rate at each step, when to
validate and save), its clock and time budget, and the losses it records into the
trainer's history. It holds no model: everything here is plain numbers.
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager

from .config import TrainingConfig
from .events import StepCompleted
from .schedule import learning_rate_at

# How a run's samples are drawn: alike every time (the run's seed, no prompt, so they
# start after a newline) so that they differ only by what the model learned in between.
SAMPLE_TEMPERATURE = 0.8
SAMPLE_PROMPT = ""
# A long run keeps at most this many samples in its history (the first, the last and
# evenly spread ones): ~200 x 120 characters is ~25 KiB in a checkpoint.
MAX_SAMPLES = 200


def new_history() -> dict:
    """A trainer's history, which its runs record into: losses per step, learning rates,
    [step, validation loss] pairs, mean loss per epoch, [step, gradient norms per layer]
    pairs, the seconds trained, samples [step, seconds trained, latest validation loss or
    None, text] and one record per run (run_record). A checkpoint saved before samples and
    runs were recorded loads with both empty."""
    return {"step_losses": [], "learning_rates": [], "val_losses": [], "epoch_losses": [],
            "grad_norms": [], "training_time": 0.0, "samples": [], "runs": []}


def thin_samples(samples: list, limit: int | None = None) -> list:
    """At most `limit` (MAX_SAMPLES) of `samples` ([step, ...] in step order): the first,
    the last and those nearest to evenly spaced steps between them."""
    limit = limit or MAX_SAMPLES
    if len(samples) <= limit:
        return list(samples)
    first, last = samples[0][0], samples[-1][0]
    chosen, index = [], 0
    for k in range(limit):
        target = first + (last - first) * k / (limit - 1)
        while index + 1 < len(samples) and (abs(samples[index + 1][0] - target)
                                            <= abs(samples[index][0] - target)):
            index += 1
        if not chosen or chosen[-1] is not samples[index]:
            chosen.append(samples[index])
    return chosen


def run_record(start_step: int, end_step: int, seconds: float, reason: str,
               val_losses: list, model_config: dict, training_config: dict) -> dict:
    """What the history keeps of one run of fit(): its steps (start_step + 1 to end_step;
    its curve is that slice of the history), its training seconds, the best validation
    loss among its own validations (None without one), why it ended and its settings."""
    own = [loss for step, loss in val_losses if start_step < step <= end_step]
    return {"start_step": start_step, "end_step": end_step, "seconds": float(seconds),
            "best_val_loss": min(own) if own else None, "reason": reason,
            "model_config": dict(model_config), "training_config": dict(training_config)}


def recorded_runs(history: dict) -> list[dict]:
    """The run records of `history` that have what run_record writes: whole step numbers
    in order and a number of seconds. A file edited by hand or written by another program
    may hold anything there; such entries are left out rather than trusted."""
    def readable(record: object) -> bool:
        return (isinstance(record, dict)
                and all(type(record.get(key)) is int for key in ("start_step", "end_step"))
                and 0 <= record["start_step"] <= record["end_step"]
                and isinstance(record.get("seconds"), (int, float))
                and isinstance(record.get("best_val_loss"), (int, float, type(None))))
    runs = history.get("runs")
    return [record for record in runs if readable(record)] if isinstance(runs, list) else []


def recorded_samples(history: dict) -> list[list]:
    """The samples of `history` that read as [step, seconds, validation loss or None,
    text]; others (see recorded_runs) are left out."""
    def readable(sample: object) -> bool:
        return (isinstance(sample, (list, tuple)) and len(sample) == 4
                and type(sample[0]) is int and isinstance(sample[1], (int, float))
                and isinstance(sample[2], (int, float, type(None)))
                and isinstance(sample[3], str))
    samples = history.get("samples")
    return [list(s) for s in samples if readable(s)] if isinstance(samples, list) else []


class RunClock:
    """Seconds spent training in this run, not counting pauses."""

    def __init__(self, already_used: float = 0.0):
        self._start = time.perf_counter() - already_used

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    @contextmanager
    def paused(self):
        paused_at = time.perf_counter()
        try:
            yield
        finally:
            self._start += time.perf_counter() - paused_at


class Run:
    """One run of fit(): `cfg.epochs` epochs from step `start_step` of the trainer, with its
    own warm-up and decay; a run continued from a checkpoint keeps its start and its time.

    Steps are counted from the run's start (run_step 1 is its first step). The clock starts
    with start_clock(), once the run has announced itself."""

    def __init__(self, cfg: TrainingConfig, start_step: int, steps_per_epoch: int,
                 history: dict):
        self.cfg = cfg
        self.start_step = start_step
        self.steps_per_epoch = steps_per_epoch
        self.steps = steps_per_epoch * cfg.epochs
        self.end_step = start_step + self.steps
        self.eval_interval = cfg.eval_interval or steps_per_epoch
        self.history = history  # the trainer's: step losses, learning rates, epoch means, time
        self.clock: RunClock  # set by start_clock()
        self.saved_at: float  # the clock's reading at the last checkpoint (checkpoint_minutes)
        self.step_seconds: deque[float] = deque(maxlen=20)  # the last steps, for speed and ETA
        self.last_eval_cost = 0.0  # seconds the last validation took
        self.losses_since_eval: list[float] = []
        self.epoch_losses: list[float] = []
        self._time_used_at_start = 0.0
        self._history_time_at_start = 0.0

    def start_clock(self, time_used: float, setup_started: float) -> None:
        """Start the clock at the run's `time_used` seconds so far (a continued run's) plus
        the set-up since `setup_started` (a perf_counter reading): the time a budget counts
        starts with fit()."""
        self.clock = RunClock(time_used + time.perf_counter() - setup_started)
        self._time_used_at_start = time_used
        self._history_time_at_start = float(self.history["training_time"])
        self.saved_at = self.clock.elapsed()

    def continue_epoch(self, step: int) -> None:
        """A run continued mid-epoch from `step` replaces the partial mean recorded at the
        stop by the whole epoch's mean when it ends, as an uninterrupted run would."""
        into_epoch = (step - self.start_step) % self.steps_per_epoch
        if into_epoch and self.history["epoch_losses"]:
            self.history["epoch_losses"].pop()
            self.epoch_losses = list(self.history["step_losses"][-into_epoch:])

    # ---- the plan ----

    def progress(self, run_step: int, elapsed: float) -> float:
        """Fraction of the run done: by steps, or by time when a budget is set."""
        fraction = run_step / max(1, self.steps)
        if self.cfg.time_budget_s:
            fraction = max(fraction, elapsed / self.cfg.time_budget_s)
        return min(1.0, fraction)

    def learning_rate(self, run_step: int, elapsed: float) -> float:
        """The learning rate of the run's step `run_step` (0-based), `elapsed` s into it."""
        return learning_rate_at(run_step, self.steps, self.progress(run_step, elapsed),
                                self.cfg)

    def epoch(self, run_step: int) -> int:
        """The 1-based epoch of the run that its step `run_step` belongs to."""
        return (run_step - 1) // self.steps_per_epoch + 1

    def budget_spent(self) -> bool:
        """No time is left for another step and a final validation."""
        return self.cfg.time_budget_s is not None and (
            self.clock.elapsed() + 1.2 * self.last_eval_cost >= self.cfg.time_budget_s)

    def validation_due(self, run_step: int) -> bool:
        """A periodic validation is due after this step. With a time budget, one that would
        not end in time is left to the final one (the loop stops at the top while that one
        still fits)."""
        out_of_time = self.cfg.time_budget_s is not None and (
            self.clock.elapsed() + 2.2 * self.last_eval_cost >= self.cfg.time_budget_s)
        return not out_of_time and (run_step % self.eval_interval == 0
                                    or run_step == self.steps)

    def checkpoint_due(self, run_step: int, end_of_epoch: bool) -> bool:
        """A checkpoint is due after this step: every checkpoint_every epochs, or
        checkpoint_minutes after the last one; the run's end saves one anyway."""
        cfg = self.cfg
        by_epochs = (end_of_epoch and cfg.checkpoint_every
                     and self.epoch(run_step) % cfg.checkpoint_every == 0)
        by_time = (cfg.checkpoint_minutes is not None
                   and self.clock.elapsed() - self.saved_at >= 60 * cfg.checkpoint_minutes)
        return bool(cfg.checkpoint_path and (by_epochs or by_time) and run_step < self.steps)

    # ---- the records ----

    def record_step(self, loss: float, learning_rate: float) -> None:
        """Record a step's training loss (nats per character) and learning rate."""
        self.losses_since_eval.append(loss)
        self.epoch_losses.append(loss)
        self.history["step_losses"].append(loss)
        self.history["learning_rates"].append(learning_rate)
        self.record_time()

    def record_time(self) -> None:
        """The history's training time: the seconds before this run plus this run's."""
        self.history["training_time"] = (self._history_time_at_start + self.clock.elapsed()
                                         - self._time_used_at_start)

    def end_epoch(self, run_step: int) -> bool:
        """Record the epoch's mean loss if this step ends one; whether it did."""
        if run_step % self.steps_per_epoch:
            return False
        self.record_epoch()
        return True

    def record_epoch(self) -> None:
        """Record the mean loss of the epoch's steps so far (all of them at its end)."""
        if self.epoch_losses:
            self.history["epoch_losses"].append(sum(self.epoch_losses) / len(self.epoch_losses))
        self.epoch_losses = []

    def record_sample(self, step: int, text: str) -> tuple[float, float | None]:
        """Keep a sample in the history (thinned to MAX_SAMPLES once it has twice as many,
        so thinning is rare); returns its seconds trained and latest validation loss."""
        val_losses = self.history["val_losses"]
        val_loss = float(val_losses[-1][1]) if val_losses else None
        elapsed = float(self.history["training_time"])
        samples = self.history.setdefault("samples", [])
        samples.append([step, elapsed, val_loss, text])
        if len(samples) > 2 * MAX_SAMPLES:
            samples[:] = thin_samples(samples)
        return elapsed, val_loss

    def record_run(self, end_step: int, reason: str, model_config: dict) -> None:
        """Add this run's record to the history's runs; a run continued from a checkpoint
        replaces the record its stop left."""
        runs = self.history.setdefault("runs", [])
        if runs and runs[-1]["start_step"] == self.start_step:
            runs.pop()
        # the run's seconds as the history's time counts them (record_time)
        seconds = (self.history["training_time"] - self._history_time_at_start
                   + self._time_used_at_start)
        runs.append(run_record(self.start_step, end_step, seconds, reason,
                               self.history["val_losses"], model_config, self.cfg.to_dict()))
        if len(self.history.get("samples", ())) > MAX_SAMPLES:
            self.history["samples"] = thin_samples(self.history["samples"])

    def train_loss_since_eval(self) -> float:
        """The mean training loss since the previous validation; the next mean starts."""
        losses, self.losses_since_eval = self.losses_since_eval, []
        return sum(losses) / len(losses) if losses else float("nan")

    def step_completed(self, step: int, run_step: int, loss: float, learning_rate: float,
                       chars_per_step: int) -> StepCompleted:
        """The report of the step just taken: speed and time left over the last steps."""
        elapsed = self.clock.elapsed()
        average_step = sum(self.step_seconds) / len(self.step_seconds)
        eta = (self.steps - run_step) * average_step
        if self.cfg.time_budget_s:
            eta = min(eta, max(0.0, self.cfg.time_budget_s - elapsed))
        return StepCompleted(step, self.epoch(run_step), loss, learning_rate,
                             chars_per_step / average_step, elapsed,
                             self.progress(run_step, elapsed), eta)
