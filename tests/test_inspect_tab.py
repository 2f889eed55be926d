"""Tests of the Inspect tab: summary, histogram, gradients, activations, embeddings, next char."""

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtGui import QColor, QTextDocumentFragment
from PySide6.QtWidgets import QWidget

from microlm import CharacterTokenizer, MicroLM, ModelTrainer, TrainingConfig
from microlm.inspection import (
    ActivationTrace,
    EmbeddingProjection,
    LayerActivations,
    activations,
    next_char_distribution,
)
from microlm.neurons import name_neurons
from microlm_app.session import Session
from microlm_app.tabs.inspect.activation_page import (
    ActivationPage,
    activation_colour,
    colour_centre,
)
from microlm_app.tabs.inspect.embedding_page import label_priority, uncrowded
from microlm_app.tabs.inspect.model_page import ModelPage
from microlm_app.tabs.inspect.page import NO_MODEL_MESSAGE, display_char
from microlm_app.tabs.inspect_tab import InspectTab
from microlm_app.workers import running_threads

pg.setConfigOption("background", "w")
pg.setConfigOption("foreground", "k")

TEXT = ("the quick brown fox jumps over the lazy dog.\nthe end\tof it.\n" * 40)
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def trained():
    """A tiny 2-layer model after a few training steps, with its gradient-norm history."""
    torch.manual_seed(0)
    tokenizer = CharacterTokenizer(TEXT)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=2,
                    dropout=0.0)
    trainer = ModelTrainer(model, tokenizer, device="cpu",
                           config=TrainingConfig(epochs=1, batch_size=4, sequence_length=16,
                                                 grad_norm_interval=2, warmup_steps=0))
    trainer.train(trainer.prepare_data(TEXT))
    return trainer.model, tokenizer, {"history": trainer.history}


@pytest.fixture
def tab(qtbot, trained):
    session = Session()
    session.set_model(*trained, unsaved=True)
    widget = InspectTab(session)
    qtbot.addWidget(widget)
    look_at_every_page(widget)
    yield widget
    assert widget.stop_workers()


def test_named_widgets_exist_with_accessible_names_and_tooltips(tab):
    assert tab.objectName() == "inspectTab"
    for name in ("modelSummary", "parameterPlot", "activationView", "embeddingPlot",
                 "nextCharPlot"):
        widget = tab.findChild(QWidget, name)
        assert widget is not None, name
        assert widget.accessibleName(), name
        assert len(widget.toolTip()) > 20, name
    assert isinstance(tab.findChild(QWidget, "parameterPlot"), pg.PlotWidget)


def test_summary_shows_the_true_parameter_count_and_health(qtbot, tab, trained):
    model = trained[0]
    count = sum(p.numel() for p in model.parameters())
    qtbot.waitUntil(lambda: "Health score" in tab.model_summary.toPlainText(), timeout=WAIT_MS)
    text = tab.model_summary.toPlainText()
    assert f"{count:,} parameters" in text
    assert "lstm.weight_hh_l1" in text and "(64, 16)" in text
    assert "MiB" in text
    assert "LSTM layer 2, weights on its previous hidden state" in text  # read as a person


def test_histogram_has_the_values_of_the_chosen_tensor(qtbot, tab, trained):
    model = trained[0]
    name = "lstm.weight_hh_l0"
    tab.parameter_combo.setCurrentIndex(tab.parameter_combo.findData(name))
    assert tab.parameter_combo.currentText() == "LSTM layer 1, weights on its previous hidden state"
    values = dict(model.named_parameters())[name].detach().numpy().ravel()
    qtbot.waitUntil(lambda: tab._histogram.yData is not None
                    and tab._histogram.yData.sum() == values.size
                    and f"{values.size:,} values" in tab.parameter_stats.text(),
                    timeout=WAIT_MS)
    edges, counts = tab._histogram.xData, tab._histogram.yData
    assert len(edges) == len(counts) + 1
    assert edges[0] == pytest.approx(values.min(), abs=1e-6)
    assert edges[-1] == pytest.approx(values.max(), abs=1e-6)
    expected, _ = np.histogram(values, bins=len(counts))
    assert counts.tolist() == expected.tolist()


def test_gradient_norm_plot_has_one_curve_per_layer(tab, trained):
    records = trained[2]["history"]["grad_norms"]
    assert records
    layers = set(records[0][1])
    assert layers == {"embedding", "lstm.0", "lstm.1", "head"}
    assert set(tab._gradient_curves) == layers
    xs, _ = tab._gradient_curves["head"].getData()
    assert list(xs) == [float(step) for step, _ in records]
    assert tab.gradient_status.isHidden()


def test_without_history_the_gradient_plot_says_so(qtbot, trained):
    session = Session()
    session.set_model(trained[0], trained[1], {}, unsaved=False)
    tab = InspectTab(session)
    qtbot.addWidget(tab)
    assert not tab.gradient_status.isHidden()
    assert "No gradient record" in tab.gradient_status.text()
    assert tab._gradient_curves == {}
    assert tab.stop_workers()


def _coloured_chars(tab) -> list[tuple[str, str]]:
    """(character as shown, background colour) of every character of the activation view."""
    view = tab.activation_view
    return list(zip(view.shown_chars(), view.char_colours(), strict=True))


def _plain(rich_text: str) -> str:
    return QTextDocumentFragment.fromHtml(rich_text).toPlainText().replace("\xa0", " ")


def _expected_colours(series: np.ndarray) -> list[str]:
    centre = colour_centre(series)
    scale = float(np.abs(series - centre).max())
    return [activation_colour(float(v) - centre, scale).name() for v in series]


def test_activation_view_colours_each_character_and_names_every_neuron(qtbot, tab, trained):
    model, tokenizer, _ = trained
    page = tab.page(ActivationPage)
    text = "the fox\nate."
    tab.activation_input.setPlainText(text)
    qtbot.waitUntil(lambda: tab._trace is not None and tab._trace.text == text,
                    timeout=WAIT_MS)
    coloured = _coloured_chars(tab)
    assert len(coloured) == len(text)
    assert "".join(char for char, _ in coloured) == text.replace("\n", "⏎")

    names = name_neurons(model, tokenizer, text)
    rows = page.neuron_table.rows()
    assert [(n.layer, n.state, n.neuron) for n in rows] == [
        (n.layer, n.state, n.neuron) for n in names.names]
    assert len(rows) == 2 * 2 * 16  # layers x (cell, hidden) x neurons

    chosen = rows[3]
    page.neuron_table.choose_row(3)
    # layers are numbered from 1 where a person reads them
    assert (tab.layer_spin.value(), tab.neuron_spin.value()) == (chosen.layer + 1,
                                                                 chosen.neuron)
    assert tab.activation_kind_combo.currentData() == chosen.state
    layer = activations(model, tokenizer, text).layers[chosen.layer]
    series = getattr(layer, chosen.state)[:, chosen.neuron]
    colours = [colour for _, colour in _coloured_chars(tab)]
    assert colours == _expected_colours(series)
    assert len(set(colours)) > 1

    tab.layer_spin.setValue(2 - chosen.layer)  # the other layer: its own values
    series = getattr(activations(model, tokenizer, text).layers[1 - chosen.layer],
                     chosen.state)[:, chosen.neuron]
    assert [c for _, c in _coloured_chars(tab)] == _expected_colours(series)
    current = page.neuron_table.current()
    assert (current.layer, current.state, current.neuron) == (
        1 - chosen.layer, chosen.state, chosen.neuron)


def test_activation_text_with_unknown_characters_is_pointed_out_not_a_crash(qtbot, tab):
    tab.activation_input.setPlainText("the Z€ fox")
    qtbot.waitUntil(lambda: tab._trace is not None and tab._trace.text == "the  fox",
                    timeout=WAIT_MS)
    assert not tab.activation_status.isHidden()
    assert "'Z', '€'" in tab.activation_status.text()
    assert len(_coloured_chars(tab)) == len("the  fox")


def test_white_is_zero_unless_the_neuron_stays_far_from_it():
    assert colour_centre(np.array([-1.0, 0.5, 1.0, -0.2])) == 0.0
    assert colour_centre(np.array([0.9, 0.95, 0.7, 0.99])) == pytest.approx(0.885)  # a gate
    assert colour_centre(np.array([20.0, 40.0, 30.0, 30.0])) == pytest.approx(30.0)
    assert colour_centre(np.array([-4.0, -6.0])) == pytest.approx(-5.0)
    assert colour_centre(np.array([])) == 0.0


def test_a_neuron_far_from_zero_is_coloured_around_its_average(qtbot, tab):
    # a memory cell that varies by +-10 around +30: all red if coloured by sign
    qtbot.waitUntil(lambda: tab._trace is not None, timeout=WAIT_MS)  # the tab's own first
    series = np.array([30.0, 40.0, 20.0, 30.0, 30.0], dtype=np.float32)  # average 30
    zeros = np.zeros((5, 1), dtype=np.float32)
    layer = LayerActivations(hidden=zeros, cell=series[:, None], input_gate=zeros,
                             forget_gate=zeros, cell_candidate=zeros, output_gate=zeros)
    tab._trace = ActivationTrace("ab cd", tuple("ab cd"), (layer,))
    tab.layer_spin.setValue(1)
    tab.neuron_spin.setValue(0)
    tab._draw_activations()
    colours = [QColor(c) for _, c in _coloured_chars(tab)]
    assert colours[0] == QColor(255, 255, 255)  # at the average: white
    assert colours[1].red() > colours[1].green() > colours[1].blue()  # above: orange
    assert colours[2].blue() > colours[2].green() > colours[2].red()  # below: blue
    legend = _plain(tab.activation_legend.text())
    assert "white  its average here, 30.00" in legend
    assert "orange  above it (up to 40.00)" in legend
    assert "blue  below it (down to 20.00)" in legend


def test_activation_colours_are_blue_negative_orange_positive():
    orange, blue = activation_colour(1.0, 1.0), activation_colour(-1.0, 1.0)
    assert orange.red() > orange.green() > orange.blue()  # orange: not red, for colour-blind
    assert blue.blue() > blue.green() > blue.red()
    # equally far from white, so equal values weigh the same on both sides
    assert 255 * 3 - sum(orange.getRgb()[:3]) == pytest.approx(
        255 * 3 - sum(blue.getRgb()[:3]), rel=0.3)
    assert activation_colour(0.0, 1.0) == QColor(255, 255, 255)
    half = activation_colour(0.5, 1.0)  # paler than the full colour, the same hue
    assert sum(half.getRgb()[:3]) > sum(orange.getRgb()[:3])
    assert half.red() > half.green() > half.blue()


def test_a_zero_centred_legend_says_what_the_colours_mean_in_numbers(qtbot, tab):
    qtbot.waitUntil(lambda: tab._trace is not None, timeout=WAIT_MS)
    series = np.array([-0.5, 0.25, 0.1, 0.0], dtype=np.float32)
    zeros = np.zeros((4, 1), dtype=np.float32)
    layer = LayerActivations(hidden=zeros, cell=series[:, None], input_gate=zeros,
                             forget_gate=zeros, cell_candidate=zeros, output_gate=zeros)
    tab._trace = ActivationTrace("ab c", tuple("ab c"), (layer,))
    tab.layer_spin.setValue(1)
    tab.neuron_spin.setValue(0)
    tab._draw_activations()
    legend = _plain(tab.activation_legend.text())
    assert "orange  fires strongly positive (up to +0.50)" in legend
    assert "white  near zero" in legend
    assert "blue  strongly negative (down to -0.50)" in legend


def test_embedding_plot_has_one_label_per_vocabulary_character(qtbot, tab, trained):
    tokenizer = trained[1]
    qtbot.waitUntil(lambda: len(tab._embedding_labels) == tokenizer.vocab_size(),
                    timeout=WAIT_MS)
    labels = [label.textItem.toPlainText() for label in tab._embedding_labels]
    assert labels == [display_char(ch) for ch in tokenizer.chars]
    assert "␣" in labels and "⏎" in labels and "⇥" in labels
    axis_label = tab.embedding_plot.getAxis("bottom").labelText
    assert "component 1" in axis_label and "% of the spread" in axis_label
    xs, ys = tab._embedding_points.getData()
    assert len(xs) == tokenizer.vocab_size()
    # each dot carries its character, which its tooltip names (crowded labels overlap)
    points = tab._embedding_points.points()
    assert [point.data() for point in points] == labels
    assert tab._embedding_points.opts["hoverable"]
    tip = tab._embedding_points.opts["tip"]
    first = points[0]
    assert tip(x=first.pos().x(), y=first.pos().y(), data=first.data()).startswith(
        f"{labels[0]}  (component 1: {xs[0]:.2f}, component 2: {ys[0]:.2f})")
    assert "zoom in" in tab.embedding_plot.toolTip()


def test_next_char_bars_match_the_distribution(qtbot, tab, trained):
    model, tokenizer, _ = trained
    tab.next_char_prompt.setText("the qu")
    expected = next_char_distribution(model, tokenizer, "the qu", top_k=20)
    qtbot.waitUntil(lambda: tab._next_char_distribution == expected, timeout=WAIT_MS)
    heights = np.asarray(tab._next_char_bars.opts["height"])
    assert len(heights) == min(20, tokenizer.vocab_size())
    assert heights.tolist() == pytest.approx([p for _, p in expected])
    assert heights.sum() <= 1.0 + 1e-6
    ticks = tab.next_char_plot.getAxis("bottom")._tickLevels[0]
    assert [label for _, label in ticks] == [display_char(ch) for ch, _ in expected]


def test_without_a_model_each_panel_says_what_to_do(qtbot):
    tab = InspectTab(Session())
    qtbot.addWidget(tab)
    assert "Train a model or open one (File > Open Model…)" in tab.model_summary.toPlainText()
    for label in (tab.parameter_status, tab.activation_status, tab.embedding_status,
                  tab.next_char_status, tab.gradient_status):
        assert label.text() == NO_MODEL_MESSAGE
        assert not label.isHidden()
    assert not tab.parameter_combo.isEnabled()
    assert not tab.next_char_prompt.isEnabled()
    assert not running_threads()


def test_a_new_model_refreshes_every_view(qtbot, tab, trained):
    qtbot.waitUntil(lambda: "Health score" in tab.model_summary.toPlainText(), timeout=WAIT_MS)
    tokenizer = trained[1]
    torch.manual_seed(1)
    bigger = MicroLM(tokenizer.vocab_size(), embedding_dim=4, hidden_dim=24, num_layers=1,
                     dropout=0.0)
    count = sum(p.numel() for p in bigger.parameters())
    tab.session.set_model(bigger, tokenizer, {}, unsaved=False)
    look_at_every_page(tab)
    qtbot.waitUntil(lambda: f"{count:,} parameters" in tab.model_summary.toPlainText(),
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: tab._trace is not None and len(tab._trace.layers) == 1,
                    timeout=WAIT_MS)
    assert tab.layer_spin.minimum() == tab.layer_spin.maximum() == 1  # "layer 1"
    assert tab.neuron_spin.maximum() == 23
    assert tab._trace.layers[0].cell.shape[1] == 24
    assert "No gradient record" in tab.gradient_status.text()
    assert tab.parameter_combo.count() == len(list(bigger.named_parameters()))


def test_a_page_out_of_view_computes_the_new_model_only_when_opened(qtbot, tab, trained):
    qtbot.waitUntil(lambda: tab._trace is not None, timeout=WAIT_MS)
    tab.pages.setCurrentWidget(tab.page(ModelPage))
    tokenizer = trained[1]
    smaller = MicroLM(tokenizer.vocab_size(), embedding_dim=4, hidden_dim=8, num_layers=1,
                      dropout=0.0)
    tab.session.set_model(smaller, tokenizer, {}, unsaved=False)
    qtbot.waitUntil(lambda: "Health score" in tab.model_summary.toPlainText(), timeout=WAIT_MS)
    activation_page = tab.page(ActivationPage)
    assert activation_page.inspected.model is not smaller  # not drawn while out of view
    tab.pages.setCurrentWidget(activation_page)
    assert activation_page.inspected.model is smaller
    qtbot.waitUntil(lambda: tab._trace is not None and tab._trace.layers[0].cell.shape[1] == 8,
                    timeout=WAIT_MS)


def test_stop_workers_leaves_no_thread_running(qtbot, tab):
    tab.activation_input.setPlainText("the lazy dog " * 20)
    tab._activation_timer.timeout.emit()  # request now instead of after the typing pause
    tab.next_char_prompt.setText("the la")  # and leave this one waiting for the pause
    assert tab.stop_workers()
    assert not running_threads()
    assert not tab._activation_timer.isActive() and not tab._next_char_timer.isActive()


def test_showing_the_hidden_state_colours_by_it_and_marks_its_row(qtbot, tab, trained):
    model, tokenizer, _ = trained
    page = tab.page(ActivationPage)
    text = tab.activation_input.toPlainText()
    qtbot.waitUntil(lambda: tab._trace is not None, timeout=WAIT_MS)
    tab.activation_kind_combo.setCurrentIndex(tab.activation_kind_combo.findData("hidden"))
    clean = tokenizer.clean(text, "drop")
    neuron = tab.neuron_spin.value()
    current = page.neuron_table.current()
    assert (current.state, current.neuron) == ("hidden", neuron)
    layer = tab.layer_spin.value() - 1  # the spin box counts from 1
    series = activations(model, tokenizer, clean).layers[layer].hidden[:, neuron]
    assert [c for _, c in _coloured_chars(tab)] == _expected_colours(series)
    # a gate has no row: the table shows none as chosen, and no feature is drawn beneath
    tab.activation_kind_combo.setCurrentIndex(tab.activation_kind_combo.findData("forget_gate"))
    assert page.neuron_table.current() is None
    assert page.activation_view.second_row_colours() == []
    gate = activations(model, tokenizer, clean).layers[layer].forget_gate
    assert [c for _, c in _coloured_chars(tab)] == _expected_colours(gate[:, neuron])


def test_uncrowded_keeps_boxes_that_overlap_no_box_kept_before_them():
    boxes = [(0, 0, 10, 10),    # kept: the first
             (5, 5, 10, 10),    # overlaps the first: hidden
             (12, 12, 10, 10),  # overlaps only the hidden one: kept
             (10, 0, 5, 5),     # touches the first's edge without overlapping: kept
             (0, 30, 4, 4)]     # alone: kept
    assert uncrowded(np.array(boxes)).tolist() == [True, False, True, True, True]
    assert uncrowded(np.zeros((0, 4))).tolist() == []


def test_label_priority_puts_lower_case_letters_first():
    assert sorted("!7Ee \n", key=label_priority) == ["e", " ", "\n", "E", "7", "!"]


def test_embedding_labels_that_would_overlap_hide_until_zoomed_in(qtbot):
    tab = InspectTab(Session())
    qtbot.addWidget(tab)
    tab.resize(900, 700)
    tab.pages.setCurrentIndex(3)  # Embeddings
    tab.show()
    qtbot.waitExposed(tab)
    # 'a', 'b' and 'A' share a spot at the scale of the whole plot; '!' lies far off
    projection = EmbeddingProjection(
        ("!", "A", "a", "b"),
        np.array([[1.0, 1.0], [0.0005, 0.0], [0.0, 0.0], [0.001, 0.0]]), (0.6, 0.3))
    tab._latest["embedding"] = 7
    tab._on_embedding_computed((7, projection))
    qtbot.waitUntil(lambda: tab._embedding_labels[2].isVisible()
                    and not tab._embedding_labels[1].isVisible(), timeout=WAIT_MS)
    shown = {label.textItem.toPlainText(): label.isVisible() for label in tab._embedding_labels}
    assert shown == {"!": True, "a": True, "A": False, "b": False}  # 'a' outranks 'b', 'A'
    title = tab.embedding_plot.getPlotItem().titleLabel
    assert "2 of 4 characters labelled: 2 would overlap" in title.text
    # zoomed in on the three, 0.0005 apart is ~400 pixels: every label finds room
    tab.embedding_plot.setRange(xRange=(-0.0002, 0.0012), yRange=(-0.001, 0.001), padding=0)
    qtbot.waitUntil(lambda: all(label.isVisible() for label in tab._embedding_labels),
                    timeout=WAIT_MS)
    assert not title.isVisible()
    assert tab.stop_workers()


def look_at_every_page(tab: InspectTab) -> None:
    """Open each page once, as a person would: a page computes its views when first seen."""
    for index in range(tab.pages.count()):
        tab.pages.setCurrentIndex(index)
    tab.pages.setCurrentIndex(0)
