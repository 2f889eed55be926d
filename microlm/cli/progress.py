"""The training progress shown by `microlm train`: one line on a terminal rewritten in place,
or a plain line now and then in a log file, plus a line per validation."""

from __future__ import annotations

import math
import os
import shutil
import time
from typing import TextIO

from ..trainer import Evaluated, StepCompleted, TrainingStarted
from ..units import format_duration


class ProgressLine:
    """One line on a terminal, rewritten in place, plus a line per validation.

    Redrawn at most ten times a second so a fast tiny model is not slowed by printing.
    When the stream is not a terminal (a log file), a plain line is written every
    ten seconds instead.
    """

    def __init__(self, stream: TextIO, run_epochs: int | None, width: int = 24,
                 time_budget_s: float | None = None):
        self.stream = stream
        self.run_epochs = run_epochs  # None: the run ends on time, not on epochs
        self.time_budget_s = time_budget_s  # seconds of training the run may take, if limited
        self.width = width
        self.is_terminal = hasattr(stream, "isatty") and stream.isatty()
        self.redraw_every = 0.1 if self.is_terminal else 10.0
        self.total_steps = 0
        self.run_start_step = 0
        self.val_loss: float | None = None
        self.best_val_loss: float | None = None
        self.last: StepCompleted | None = None
        self._drawn_at = 0.0
        self._line_length = 0

    def started(self, event: TrainingStarted, trainer_step: int) -> None:
        self.run_start_step = trainer_step - event.start_step
        self.total_steps = event.total_steps

    def step(self, event: StepCompleted) -> None:
        self.last = event
        now = time.monotonic()
        if now - self._drawn_at >= self.redraw_every:
            self._drawn_at = now
            self._draw()

    def evaluated(self, event: Evaluated) -> None:
        self.val_loss, self.best_val_loss = event.val_loss, event.best_val_loss
        mark = "  (new best)" if event.improved else ""
        train = (f"  train loss {event.train_loss:.4f}" if math.isfinite(event.train_loss)
                 else "")  # NaN: no step since the last validation
        self.message(f"step {event.step:,}  epoch {event.epoch}{train}  val loss "
                     f"{event.val_loss:.4f}  best {event.best_val_loss:.4f}{mark}")

    def message(self, text: str) -> None:
        self._clear()
        self._write(text + "\n")
        if self.last is not None and self.is_terminal:
            self._draw()

    def close(self) -> None:
        if self.last is not None and self.is_terminal:
            self._draw()
            self._write("\n")
            self._line_length = 0

    def _draw(self) -> None:
        self._write(("\r" if self.is_terminal else "") + self._line()
                    + ("" if self.is_terminal else "\n"))

    def _clear(self) -> None:
        if self.is_terminal and self._line_length:
            self._write("\r" + " " * self._line_length + "\r")
            self._line_length = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:  # a closed terminal: showing progress is not worth ending the run
            self.stream = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the line

    def _line(self) -> str:
        e = self.last
        run_step = e.step - self.run_start_step
        epoch = f"epoch {e.epoch}" + (f"/{self.run_epochs}" if self.run_epochs else "")
        val = f"{self.val_loss:.3f}" if self.val_loss is not None else "-"
        best = f"{self.best_val_loss:.3f}" if self.best_val_loss is not None else "-"
        # Most wanted first: a narrow terminal cuts the end of the line.
        text = (f"{e.progress:4.0%} ETA {format_duration(e.eta_s)}  "
                f"{steps_text(run_step, self.total_steps, e.elapsed_s, self.time_budget_s)}  "
                f"{epoch}  loss {e.loss:.3f}  val {val}  best {best}  "
                f"{e.chars_per_second:,.0f} chars/s")
        width = self.width
        if self.is_terminal:
            # A line wider than the terminal would wrap, and "\r" only returns to its last
            # row: shrink the bar first, then cut the end.
            columns = shutil.get_terminal_size().columns - 1
            width = max(5, min(self.width, columns - len(text) - 3))
        done = int(width * e.progress)
        line = f"[{'#' * done}{'-' * (width - done)}] {text}"
        if self.is_terminal:
            line = line[:columns]
        padding = " " * max(0, self._line_length - len(line))
        self._line_length = len(line)
        return line + padding


def steps_text(run_step: int, total_steps: int, elapsed_s: float,
               time_budget_s: float | None) -> str:
    """The steps taken and how far the run goes: "step 812/2,000" for a run of epochs,
    "step 812 · 41 s of 1:00" for a run with a time budget.

    A time budget fixes the time, not the number of steps: a total estimated from the speed
    so far moved up and down by hundreds as validations and a busy machine changed the
    speed. Time is what the budget promises, it only moves forward, and the same clock
    ends the run, so the line shows that. The run's steps (`total_steps`) still bound it:
    when the epochs end first, the ETA says so.
    """
    if time_budget_s:
        return (f"step {run_step:,} · {format_duration(elapsed_s)} of "
                f"{format_duration(time_budget_s)}")
    return f"step {run_step:,}/{total_steps:,}"
