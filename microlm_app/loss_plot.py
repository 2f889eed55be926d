"""LossPlot: the live training-loss plot (each step's loss, smoothed loss, validation points),
with the simplest guessers' losses, the best model kept, units, and other runs to compare."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QWidget

from microlm.units import LN2, check_unit

from . import loss_words as words

# At most one setData per curve this often: more often, the GUI thread's share of the cores
# slows in-app training (`python tests/benchmarks/app_speed.py CORPUS`).
REDRAW_INTERVAL_MS = 500
SMOOTHING = 0.9  # weight of the past in the smoothed loss: ~the last 10 steps, so it lags little
INITIAL_CAPACITY = 4096  # points; buffers double when full
# Each redraw scans every point (bounds, peak downsampling): past this many points the
# timer slows in proportion, keeping the plot's share of the GUI thread small (1M points:
# one redraw every 2.5 s).
POINTS_AT_FULL_RATE = 200_000

# Okabe & Ito's palette, told apart with every common kind of colour blindness.
OKABE_ITO = {"orange": (230, 159, 0), "sky blue": (86, 180, 233),
             "bluish green": (0, 158, 115), "yellow": (240, 228, 66), "blue": (0, 114, 178),
             "vermillion": (213, 94, 0), "reddish purple": (204, 121, 167), "black": (0, 0, 0)}
# Runs compared with this one, in turn; blue, sky blue, vermillion and yellow are this run's.
COMPARED_COLOURS = tuple(OKABE_ITO[name] for name in
                         ("orange", "reddish purple", "black", "bluish green"))
THIS_RUN = ("loss at each step", "smoothed loss", "validation loss")  # legend names

PLOT_TOOLTIP = "".join(f"<p>{text}</p>" for text in (
    words.LOSS_MEANING,
    "The faint line is the loss of each training step's batch. " + words.SMOOTHED_MEANING,
    "The dots are the loss on validation text, a part the model never trains on; "
    "a rising validation loss means it starts to memorise. " + words.VALIDATION_BELOW,
    words.BEST_MEANING, words.REFERENCE_MEANING))


@dataclass(frozen=True)
class ComparedRun:
    """Another run drawn beside this one: its smoothed loss and its validation points."""

    label: str  # its name in the legend
    steps: Sequence[float]  # training steps, one per loss
    losses: Sequence[float]  # training loss at each step, nats per character
    val_steps: Sequence[float]  # steps at which it was validated
    val_losses: Sequence[float]  # validation loss there, nats per character
    colour: str | tuple[int, ...] | None = None  # None: the next of COMPARED_COLOURS


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


def smoothed_losses(losses: np.ndarray, start: float | None = None) -> np.ndarray:
    """The smoothed loss: each point is SMOOTHING of the one before plus the rest of this
    step's loss; `start` is the smoothed value before the first (None: begin at the first)."""
    out = np.empty(len(losses))
    value = start
    for i, loss in enumerate(np.asarray(losses, dtype=np.float64).tolist()):
        value = loss if value is None else SMOOTHING * value + (1.0 - SMOOTHING) * loss
        out[i] = value
    return out


def _finite_pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} steps but {len(y)} losses: each step needs one loss.")
    keep = np.isfinite(y)
    return x[keep], y[keep]


@dataclass
class _DrawnRun:
    steps: np.ndarray
    smoothed: np.ndarray  # nats
    val_steps: np.ndarray
    val_losses: np.ndarray  # nats
    curve: pg.PlotDataItem
    val_curve: pg.PlotDataItem


class LossPlot(pg.PlotWidget):
    """Training loss per step (faint), the smoothed loss, validation loss, the best
    validation point, the simplest guessers' losses, and other runs to compare.

    Points are appended into growing numpy buffers; a single-shot timer (REDRAW_INTERVAL_MS)
    hands them to the curves only when new points arrived, and the curves draw with peak
    downsampling and clip-to-view, so a run of a million steps stays smooth. Losses are
    stored in nats per character; set_units only changes what is drawn.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lossPlot")
        self.setAccessibleName("Training loss plot")
        self.setToolTip(PLOT_TOOLTIP)
        self.steps = _Series()  # (step, raw training loss)
        self.smoothed = _Series()  # (step, smoothed training loss)
        self.validation = _Series(256)  # (step, validation loss)
        self._last_smoothed: float | None = None
        self._dirty = False
        self.diverged = False
        self.units = "nats"
        self.best: tuple[float, float] | None = None  # (step, validation loss in nats)
        self.reference_losses: dict[str, float | None] = {"uniform": None, "unigram": None}
        self._compared: list[_DrawnRun] = []

        item = self.getPlotItem()
        item.setLabel("bottom", "step")
        item.setLabel("left", words.axis_label(self.units))
        # room for labels like "3.5125": a width that follows the labels lags a frame behind
        # and the title then overlaps them
        item.getAxis("left").setWidth(72)
        # No grid: pyqtgraph draws one line per tick of every level across the whole
        # plot, which makes each repaint several times dearer and lengthens the event-loop
        # gaps in training.
        # a light background: the reference lines' dashes would run through the names
        item.addLegend(offset=(-10, 10), brush=(255, 255, 255, 210), labelTextColor=(30, 30, 30))
        # No antialiasing on the two step curves: with thousands of segments it makes each
        # repaint 2-3x slower, and a 1-px line looks the same without it.
        self.raw_curve = self.plot(name=THIS_RUN[0], antialias=False,
                                   pen=pg.mkPen((*OKABE_ITO["sky blue"], 110), width=1))
        self.smooth_curve = self.plot(name=THIS_RUN[1], antialias=False,
                                      pen=pg.mkPen(OKABE_ITO["blue"], width=1))
        self.val_curve = self.plot(name=THIS_RUN[2], pen=None, symbol="o", symbolSize=7,
                                   symbolBrush=OKABE_ITO["vermillion"],
                                   symbolPen=pg.mkPen("k", width=1))
        for curve in (self.raw_curve, self.smooth_curve):
            # peak mode keeps spikes visible when thousands of steps share one pixel
            _fast(curve)
        # the validation point whose weights the trainer keeps; not in the legend, labelled
        self.best_marker = pg.PlotDataItem(pen=None, symbol="star", symbolSize=17,
                                           symbolBrush=OKABE_ITO["yellow"],
                                           symbolPen=pg.mkPen("k", width=1))
        item.addItem(self.best_marker)
        # above the star, ending at it: the best is often the last point, at the right edge
        self.best_text = pg.TextItem(color=(0, 0, 0), anchor=(1, 1.3),
                                     fill=(255, 255, 255, 200))
        item.addItem(self.best_text, ignoreBounds=True)
        self.best_text.hide()
        self.uniform_line = _reference_line(position=0.35)
        self.unigram_line = _reference_line(position=0.35)
        for line in (self.uniform_line, self.unigram_line):
            item.addItem(line)
            line.hide()
        self._message = pg.TextItem(color=(190, 30, 30), anchor=(0, 0))
        self._message.setParentItem(item.getViewBox())
        self._message.setPos(10, 10)
        self._message.hide()
        # the log scale may also be switched from the plot's own context menu
        item.ctrl.logYCheck.toggled.connect(self._place_overlays)

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
        smoothed = smoothed_losses(y, self._last_smoothed)
        self._last_smoothed = float(smoothed[-1])
        self.smoothed.extend(x, smoothed)
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
        self._last_smoothed = None
        self.diverged = False
        self._message.hide()
        if not was_empty:  # redrawing an empty plot as empty costs ~20 ms at a run's start
            self.refresh()

    def mark_diverged(self, step: int) -> None:
        """Say on the plot that the loss became NaN (or infinite): the run diverged."""
        self.diverged = True
        self._message.setText(f"loss became NaN at step {step}: training diverged")
        self._message.show()

    def set_reference_losses(self, uniform: float | None, unigram: float | None) -> None:
        """Draw the losses of the simplest guessers, in nats per character, as dashed lines:
        `uniform` = ln V of a guess among all V characters alike, `unigram` = the entropy of
        the character frequencies. None (or not finite) hides a line."""
        self.reference_losses = {"uniform": uniform, "unigram": unigram}
        self._draw_references()

    def set_compared_runs(self, runs: Sequence[ComparedRun]) -> None:
        """Draw these runs' smoothed losses and validation points beside this run, each in
        its own colour and named in the legend; an empty sequence removes them."""
        item = self.getPlotItem()
        for drawn in self._compared:
            item.removeItem(drawn.curve)
            item.removeItem(drawn.val_curve)
        self._compared = []
        for index, run in enumerate(runs):
            colour = run.colour or COMPARED_COLOURS[index % len(COMPARED_COLOURS)]
            steps, losses = _finite_pairs(run.steps, run.losses)
            val_steps, val_losses = _finite_pairs(run.val_steps, run.val_losses)
            curve = self.plot(name=run.label, antialias=False, pen=pg.mkPen(colour, width=1))
            _fast(curve)
            val_curve = self.plot(pen=None, symbol="t", symbolSize=7, symbolBrush=colour,
                                  symbolPen=pg.mkPen(colour, width=1))
            self._compared.append(_DrawnRun(steps, smoothed_losses(losses), val_steps,
                                            val_losses, curve, val_curve))
        self._name_this_run("this run: " if self._compared else "")
        self._draw_compared()

    # ---- how it is shown ----

    def set_units(self, unit: str) -> None:
        """Show every loss in "nats" or "bits" per character (bits = nats / ln 2)."""
        self.units = check_unit(unit)
        self.getPlotItem().setLabel("left", words.axis_label(unit))
        self.refresh()
        self._draw_references()
        self._draw_compared()

    def set_log_scale(self, on: bool) -> None:
        self.getPlotItem().setLogMode(y=on)

    @property
    def log_scale(self) -> bool:
        return self.getPlotItem().ctrl.logYCheck.isChecked()

    @property
    def compared_curves(self) -> list[pg.PlotDataItem]:
        return [drawn.curve for drawn in self._compared]

    def legend_names(self) -> list[str]:
        return [label.text for _sample, label in self.getPlotItem().legend.items]

    # ---- drawing ----

    def refresh(self) -> None:
        """Hand the buffers to the curves now (the timer calls this ~2 times a second)."""
        self._timer.stop()
        self._dirty = False
        self.raw_curve.setData(*self._shown(*self.steps.data()))
        self.smooth_curve.setData(*self._shown(*self.smoothed.data()))
        self.val_curve.setData(*self._shown(*self.validation.data()))
        self._draw_best()

    @property
    def has_pending_points(self) -> bool:
        return self._dirty

    def _shown(self, x: np.ndarray, nats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # nats are drawn as stored (no copy); bits cost one scaled copy per redraw
        return x, (nats if self.units == "nats" else nats / LN2)

    def _view_y(self, value: float) -> float:
        """Where a loss sits on the vertical axis: pyqtgraph draws log10 of it on a log
        scale, and only its curves know that, not lines and texts."""
        return math.log10(max(value, 1e-9)) if self.log_scale else value

    def _draw_best(self) -> None:
        steps, losses = self.validation.data()
        if not len(losses):
            self.best = None
            self.best_marker.setData([], [])
            self.best_text.hide()
            return
        lowest = int(np.argmin(losses))
        self.best = (float(steps[lowest]), float(losses[lowest]))
        self.best_marker.setData(*self._shown(steps[lowest:lowest + 1],
                                              losses[lowest:lowest + 1]))
        self.best_text.setText(words.best_label(self.best[1], self.units))
        self._place_overlays()
        self.best_text.show()

    def _draw_references(self) -> None:
        for line, key, label in ((self.uniform_line, "uniform", words.uniform_label),
                                 (self.unigram_line, "unigram", words.unigram_label)):
            nats = self.reference_losses[key]
            if nats is None or not math.isfinite(nats):
                line.hide()
                continue
            line.label.setFormat(label(nats, self.units))
            line.show()
        self._place_overlays()

    def _draw_compared(self) -> None:
        for drawn in self._compared:
            drawn.curve.setData(*self._shown(drawn.steps, drawn.smoothed))
            drawn.val_curve.setData(*self._shown(drawn.val_steps, drawn.val_losses))

    def _place_overlays(self) -> None:
        """Put the reference lines and the best model's label where their losses are drawn,
        in this unit and on this scale."""
        for line, key in ((self.uniform_line, "uniform"), (self.unigram_line, "unigram")):
            nats = self.reference_losses[key]
            if nats is not None and math.isfinite(nats):
                line.setPos(self._view_y(words.in_unit(nats, self.units)))
        if self.best is not None:
            step, nats = self.best
            self.best_text.setPos(step, self._view_y(words.in_unit(nats, self.units)))

    def _name_this_run(self, prefix: str) -> None:
        curves = (self.raw_curve, self.smooth_curve, self.val_curve)
        for sample, label in self.getPlotItem().legend.items:
            if sample.item in curves:
                label.setText(prefix + THIS_RUN[curves.index(sample.item)])

    def _schedule(self) -> None:
        self._dirty = True
        if not self._timer.isActive():
            slower = max(1.0, self.steps.count / POINTS_AT_FULL_RATE)
            self._timer.start(round(REDRAW_INTERVAL_MS * slower))


def _fast(curve: pg.PlotDataItem) -> None:
    """Peak downsampling (spikes stay visible when thousands of steps share one pixel) and
    clip-to-view: a long curve costs what its visible pixels cost."""
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)


def _reference_line(position: float) -> pg.InfiniteLine:
    """A dashed horizontal line whose label sits above it, `position` along the view."""
    colour = (90, 90, 90)
    return pg.InfiniteLine(angle=0, movable=False,
                           pen=pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine),
                           label="", labelOpts={"position": position, "color": colour,
                                                "anchors": [(0.5, 1.0), (0.5, 1.0)]})
