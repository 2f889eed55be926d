"""Tests for the live loss plot: growing buffers, smoothing, validation points, NaN notice."""

import math

import numpy as np
import pyqtgraph as pg
import pytest

from microlm_app.loss_plot import (
    INITIAL_CAPACITY,
    POINTS_AT_FULL_RATE,
    REDRAW_INTERVAL_MS,
    SMOOTHING,
    LossPlot,
)

pg.setConfigOption("background", "w")
pg.setConfigOption("foreground", "k")


@pytest.fixture
def plot(qtbot):
    widget = LossPlot()
    qtbot.addWidget(widget)
    return widget


def test_a_million_steps_in_batches_reach_the_buffers_and_the_curves(plot, qtbot):
    total, batch = 1_000_000, 20_000
    rng = np.random.default_rng(0)
    for start in range(0, total, batch):
        steps = np.arange(start + 1, start + batch + 1)
        plot.append_losses(steps, 4.0 * np.exp(-steps / 2e5) + 0.1 * rng.random(batch))
    assert plot.steps.count == total
    assert plot.smoothed.count == total
    assert len(plot.steps.x) >= total  # grown by doubling from the initial capacity
    assert len(plot.steps.x) < 2 * total + INITIAL_CAPACITY
    # the timer hands the buffers to the curves; nothing is drawn per point
    qtbot.waitUntil(lambda: not plot.has_pending_points, timeout=30_000)
    x, y = plot.raw_curve.getOriginalDataset()
    assert len(x) == total
    assert x[0] == 1 and x[-1] == total
    assert y[-1] == plot.steps.y[total - 1]
    assert len(plot.smooth_curve.getOriginalDataset()[0]) == total
    # with a million points, redraws come less often so they stay a small share of the GUI
    plot.append_losses([total + 1], [0.5])
    assert plot._timer.interval() == REDRAW_INTERVAL_MS * total // POINTS_AT_FULL_RATE


def test_curves_downsample_by_peak_and_clip_to_view(plot):
    for curve in (plot.raw_curve, plot.smooth_curve):
        assert curve.opts["autoDownsample"] is True
        assert curve.opts["downsampleMethod"] == "peak"
        assert curve.opts["clipToView"] is True
        assert curve.opts["pen"].width() <= 1


def test_the_smoothed_curve_is_an_exponential_moving_average(plot):
    plot.append_losses([1, 2], [4.0, 2.0])
    plot.append_losses([3], [1.0])
    expected_2 = SMOOTHING * 4.0 + (1 - SMOOTHING) * 2.0
    expected_3 = SMOOTHING * expected_2 + (1 - SMOOTHING) * 1.0
    assert plot.smoothed.data()[1].tolist() == pytest.approx([4.0, expected_2, expected_3])


def test_validation_points_and_history(plot):
    plot.set_history([3.0, 2.5, 2.0, 1.8], [[2, 2.7], [4, 2.1]])
    x, y = plot.val_curve.getOriginalDataset()
    assert x.tolist() == [2, 4] and y.tolist() == [2.7, 2.1]
    assert plot.raw_curve.getOriginalDataset()[0].tolist() == [1, 2, 3, 4]
    assert plot.val_curve.opts["symbol"] == "o"
    plot.clear_data()
    assert plot.steps.count == 0 and plot.validation.count == 0


def test_a_non_finite_loss_says_the_loss_became_nan(plot):
    plot.append_losses([1, 2, 3], [2.0, math.nan, 1.0])
    assert plot.diverged
    assert "loss became NaN at step 2" in plot._message.toPlainText()
    assert plot.steps.data()[0].tolist() == [1, 3]  # the NaN is not drawn


def test_axes_legend_and_log_scale(plot):
    item = plot.getPlotItem()
    assert item.getAxis("bottom").labelText == "step"
    assert item.getAxis("left").labelText == "loss (nats/char)"
    names = [label.text for _, label in item.legend.items]
    assert names == ["training loss (each step)", "smoothed training loss", "validation loss"]
    plot.set_log_scale(True)
    assert item.ctrl.logYCheck.isChecked()
    plot.set_log_scale(False)
    assert not item.ctrl.logYCheck.isChecked()
