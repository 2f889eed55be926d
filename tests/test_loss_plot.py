"""Tests for the live loss plot: growing buffers, smoothing, validation points, NaN notice,
reference lines, units, the best model's marker and compared runs."""

import math

import numpy as np
import pyqtgraph as pg
import pytest

from microlm_app.loss_plot import (
    COMPARED_COLOURS,
    INITIAL_CAPACITY,
    OKABE_ITO,
    POINTS_AT_FULL_RATE,
    REDRAW_INTERVAL_MS,
    SMOOTHING,
    ComparedRun,
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


def test_the_smoothed_loss_weighs_each_step_against_the_ones_before(plot):
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
    assert item.getAxis("left").labelText == "loss (nats per character)"
    assert plot.legend_names() == ["loss at each step", "smoothed loss", "validation loss"]
    plot.set_log_scale(True)
    assert item.ctrl.logYCheck.isChecked()
    plot.set_log_scale(False)
    assert not item.ctrl.logYCheck.isChecked()


LN2 = math.log(2)


def shown(curve) -> tuple[list[float], list[float]]:
    x, y = curve.getOriginalDataset()
    return ([], []) if x is None else (list(x), list(y))


def test_reference_lines_show_the_guessers_losses_labelled_in_words(plot):
    plot.set_reference_losses(math.log(65), 3.30)
    assert plot.uniform_line.isVisible() and plot.unigram_line.isVisible()
    assert plot.uniform_line.value() == pytest.approx(math.log(65))
    assert plot.unigram_line.value() == pytest.approx(3.30)
    assert plot.uniform_line.label.format == "guessing among all 65 characters: 4.17"
    assert plot.unigram_line.label.format == (
        "knowing only how often each character occurs: 3.30")
    assert plot.uniform_line.pen.style() == pg.QtCore.Qt.PenStyle.DashLine
    plot.set_reference_losses(math.log(65), None)  # a model loaded without its text
    assert plot.uniform_line.isVisible() and not plot.unigram_line.isVisible()


def test_bits_show_every_loss_divided_by_ln_2_and_keep_the_data_in_nats(plot):
    plot.set_history([4.0, 3.0, 2.0], [[2, 2.5], [3, 2.2]])
    plot.set_reference_losses(math.log(4), 1.0)
    plot.set_compared_runs([ComparedRun("earlier", [1, 2], [3.0, 3.0], [2], [2.8])])
    plot.set_units("bits")
    assert plot.getPlotItem().getAxis("left").labelText == "loss (bits per character)"
    assert shown(plot.raw_curve)[1] == pytest.approx([4 / LN2, 3 / LN2, 2 / LN2])
    assert shown(plot.val_curve)[1] == pytest.approx([2.5 / LN2, 2.2 / LN2])
    assert shown(plot.compared_curves[0])[1] == pytest.approx([3 / LN2, 3 / LN2])
    assert plot.uniform_line.value() == pytest.approx(2.0)  # ln 4 nats = 2 bits
    assert plot.uniform_line.label.format == "guessing among all 4 characters: 2.00"
    assert plot.best_text.toPlainText() == f"best model kept: {2.2 / LN2:.2f}"
    assert plot.steps.data()[1].tolist() == [4.0, 3.0, 2.0]  # stored in nats
    plot.set_units("nats")
    assert shown(plot.raw_curve)[1] == [4.0, 3.0, 2.0]
    assert plot.uniform_line.value() == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="nats' or 'bits"):
        plot.set_units("bytes")


def test_on_a_log_scale_lines_and_labels_sit_where_the_curves_draw_their_losses(plot):
    plot.set_reference_losses(math.log(65), 3.30)
    plot.set_history([3.0, 2.0], [[2, 2.2]])
    plot.set_log_scale(True)
    assert plot.uniform_line.value() == pytest.approx(math.log10(math.log(65)))
    assert plot.best_text.pos().y() == pytest.approx(math.log10(2.2))
    plot.set_log_scale(False)
    assert plot.unigram_line.value() == pytest.approx(3.30)
    assert plot.best_text.pos().y() == pytest.approx(2.2)


def test_the_best_marker_sits_on_the_lowest_validation_point_and_follows_a_new_best(plot):
    assert plot.best is None and not plot.best_text.isVisible()
    for step, loss in ((10, 2.4), (20, 1.9), (30, 2.1)):
        plot.add_validation(step, loss)
    plot.refresh()
    assert plot.best == (20, 1.9)
    assert shown(plot.best_marker) == ([20], [1.9])
    assert plot.best_marker.opts["symbol"] == "star" != plot.val_curve.opts["symbol"]
    assert plot.best_text.toPlainText() == "best model kept: 1.90"
    assert (plot.best_text.pos().x(), plot.best_text.pos().y()) == (20, 1.9)
    plot.add_validation(40, 1.52)
    plot.refresh()
    assert shown(plot.best_marker) == ([40], [1.52])
    assert plot.best_text.toPlainText() == "best model kept: 1.52"
    plot.clear_data()
    assert plot.best is None and shown(plot.best_marker) == ([], [])


def test_compared_runs_add_a_named_curve_each_and_an_empty_list_removes_them(plot):
    plot.append_losses([1, 2, 3], [3.0, 2.0, 1.0])
    before = len(plot.getPlotItem().listDataItems())
    runs = [ComparedRun("small model", [1, 2, 3], [4.0, 3.0, 2.0], [3], [2.5]),
            ComparedRun("more dropout", [1, 2], [3.5, math.nan], [2], [3.1])]
    plot.set_compared_runs(runs)
    assert len(plot.compared_curves) == 2
    assert len(plot.getPlotItem().listDataItems()) == before + 4  # curve + points each
    assert plot.legend_names() == ["this run: loss at each step", "this run: smoothed loss",
                                   "this run: validation loss", "small model", "more dropout"]
    first, second = plot.compared_curves
    expected = [4.0, SMOOTHING * 4.0 + (1 - SMOOTHING) * 3.0]
    assert shown(first)[1][:2] == pytest.approx(expected)  # the smoothed loss
    assert shown(second) == ([1], [3.5])  # the NaN is left out
    colours = [curve.opts["pen"].color().getRgb()[:3] for curve in plot.compared_curves]
    assert colours == [COMPARED_COLOURS[0], COMPARED_COLOURS[1]]
    assert set(colours) <= set(OKABE_ITO.values())
    this_run = plot.smooth_curve.opts["pen"].color().getRgb()[:3]
    assert this_run not in colours
    assert plot._compared[0].val_curve.opts["symbolBrush"] == COMPARED_COLOURS[0]

    plot.set_compared_runs([ComparedRun("own colour", [1], [2.0], [], [], colour="#cc79a7")])
    assert plot.compared_curves[0].opts["pen"].color().getRgb()[:3] == (204, 121, 167)
    plot.set_compared_runs([])
    assert plot.compared_curves == []
    assert len(plot.getPlotItem().listDataItems()) == before
    assert plot.legend_names() == ["loss at each step", "smoothed loss", "validation loss"]


def test_a_compared_run_with_a_loss_missing_says_what_is_wrong(plot):
    with pytest.raises(ValueError, match="3 steps but 2 losses"):
        plot.set_compared_runs([ComparedRun("broken", [1, 2, 3], [2.0, 1.0], [], [])])


def test_the_tooltip_explains_the_loss_the_smoothed_line_and_low_validation_dots(plot):
    tip = plot.toolTip()
    for words in ("−ln p", "smoothed loss", "dropout is on while training", "averaged weights",
                  "different part of the text", "best", "dashed lines"):
        assert words in tip
    assert "moving average" not in tip
