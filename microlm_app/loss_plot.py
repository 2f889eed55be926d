"""LossPlot: the live training-loss plot (raw loss, smoothed loss, validation points)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

# At most one setData per curve this often: more often, the GUI thread's share of the cores
# slows in-app training (`python tests/benchmarks/app_speed.py CORPUS`).
REDRAW_INTERVAL_MS = 500
SMOOTHING = 0.9  # EMA weight of the past: averages ~the last 10 steps, so it lags little
INITIAL_CAPACITY = 4096  # points; buffers double when full
# Each redraw scans every point (bounds, peak downsampling): past this many points the
# timer slows in proportion, keeping the plot's share of the GUI thread small (1M points:
# one redraw every 2.5 s).
POINTS_AT_FULL_RATE = 200_000


class _Series:
    """x/y float64 buffers that double when full, so appending a point is amortised O(1)."""

    def __init__(self, capacity: int = INITIAL_CAPACITY) -> None:
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.count = 0

    def extend(self, x: np.ndarray, y: np.ndarray) -> None:
        needed = self.count + len(x)
        if needed > len(self.x):
            capacity = len(self.x)
            while capacity < needed:
                capacity *= 2
            self.x = _grown(self.x, capacity, self.count)
            self.y = _grown(self.y, capacity, self.count)
        self.x[self.count:needed] = x
        self.y[self.count:needed] = y
        self.count = needed

    def clear(self) -> None:
        self.count = 0

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        # views, not copies: setData reads them once per redraw
        return self.x[:self.count], self.y[:self.count]


def _grown(buffer: np.ndarray, capacity: int, count: int) -> np.ndarray:
    bigger = np.empty(capacity)
    bigger[:count] = buffer[:count]
    return bigger


class LossPlot(pg.PlotWidget):
    """Training loss per step (faint), its exponential moving average, validation loss.

    Points are appended into growing numpy buffers; a single-shot 50 ms timer hands
    them to the curves only when new points arrived, and the curves draw with peak
    downsampling and clip-to-view, so a run of a million steps stays smooth.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lossPlot")
        self.setAccessibleName("Training loss plot")
        self.setToolTip(
            "Loss (cross-entropy in nats per character) after each training step. The faint "
            "line is each batch's loss, the dark line its moving average, the dots the loss on "
            "validation text the model never trains on. Falling lines mean the model predicts "
            "the next character better; a rising validation loss means it starts to memorise.")
        self.steps = _Series()  # (step, raw training loss)
        self.smoothed = _Series()  # (step, EMA of the training loss)
        self.validation = _Series(256)  # (step, validation loss)
        self._ema: float | None = None
        self._dirty = False
        self.diverged = False

        item = self.getPlotItem()
        item.setLabel("bottom", "step")
        item.setLabel("left", "loss (nats/char)")
        # room for labels like "3.5125": a width that follows the labels lags a frame behind
        # and the title then overlaps them
        item.getAxis("left").setWidth(72)
        # No grid: pyqtgraph draws one line per tick of every level across the whole
        # plot, which makes each repaint several times dearer and lengthens the event-loop
        # gaps in training.
        item.addLegend(offset=(-10, 10))
        # No antialiasing on the two step curves: with thousands of segments it makes each
        # repaint 2-3x slower, and a 1-px line looks the same without it.
        self.raw_curve = self.plot(name="training loss (each step)", antialias=False,
                                   pen=pg.mkPen((70, 130, 220, 120), width=1))
        self.smooth_curve = self.plot(name="smoothed training loss", antialias=False,
                                      pen=pg.mkPen((15, 40, 120), width=1))
        self.val_curve = self.plot(name="validation loss", pen=None, symbol="o", symbolSize=7,
                                   symbolBrush=(220, 110, 20), symbolPen=pg.mkPen("k", width=1))
        for curve in (self.raw_curve, self.smooth_curve):
            # peak mode keeps spikes visible when thousands of steps share one pixel
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self._message = pg.TextItem(color=(190, 30, 30), anchor=(0, 0))
        self._message.setParentItem(item.getViewBox())
        self._message.setPos(10, 10)
        self._message.hide()

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)

    # ---- data in ----

    def append_losses(self, steps: Sequence[int] | np.ndarray,
                      losses: Sequence[float] | np.ndarray) -> None:
        """Add training losses for these steps; the curves update on the next timer tick."""
        x = np.asarray(steps, dtype=np.float64)
        y = np.asarray(losses, dtype=np.float64)
        finite = np.isfinite(y)
        if not finite.all():
            self.mark_diverged(int(x[~finite][0]))
            x, y = x[finite], y[finite]
        if not len(x):
            return
        self.steps.extend(x, y)
        self.smoothed.extend(x, self._smooth(y))
        self._schedule()

    def add_validation(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            self.mark_diverged(step)
            return
        self.validation.extend(np.array([step], float), np.array([loss], float))
        self._schedule()

    def set_history(self, step_losses: Sequence[float],
                    val_losses: Sequence[Sequence[float]]) -> None:
        """Show a saved run: step_losses[i] belongs to step i + 1; val_losses [[step, loss]]."""
        self.clear_data()
        self.append_losses(np.arange(1, len(step_losses) + 1), step_losses)
        for step, loss in val_losses:
            self.add_validation(int(step), float(loss))
        self.refresh()

    def clear_data(self) -> None:
        was_empty = not (self.steps.count or self.validation.count)
        for series in (self.steps, self.smoothed, self.validation):
            series.clear()
        self._ema = None
        self.diverged = False
        self._message.hide()
        if not was_empty:  # redrawing an empty plot as empty costs ~20 ms at a run's start
            self.refresh()

    def mark_diverged(self, step: int) -> None:
        """Say on the plot that the loss became NaN (or infinite): the run diverged."""
        self.diverged = True
        self._message.setText(f"loss became NaN at step {step}: training diverged")
        self._message.show()

    def set_log_scale(self, on: bool) -> None:
        self.getPlotItem().setLogMode(y=on)

    # ---- drawing ----

    def refresh(self) -> None:
        """Hand the buffers to the curves now (the timer calls this ~2 times a second)."""
        self._timer.stop()
        self._dirty = False
        self.raw_curve.setData(*self.steps.data())
        self.smooth_curve.setData(*self.smoothed.data())
        self.val_curve.setData(*self.validation.data())

    @property
    def has_pending_points(self) -> bool:
        return self._dirty

    def _schedule(self) -> None:
        self._dirty = True
        if not self._timer.isActive():
            slower = max(1.0, self.steps.count / POINTS_AT_FULL_RATE)
            self._timer.start(round(REDRAW_INTERVAL_MS * slower))

    def _smooth(self, losses: np.ndarray) -> np.ndarray:
        out = np.empty_like(losses)
        ema = self._ema
        for i, loss in enumerate(losses.tolist()):
            ema = loss if ema is None else SMOOTHING * ema + (1.0 - SMOOTHING) * loss
            out[i] = ema
        self._ema = ema
        return out
