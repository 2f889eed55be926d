"""Tests of the Inspect tab's explaining views, driven as a person would: the named-neuron
table, the feature beneath the text, one character step by step, the gate saturation
charts, the surprise map and the Generate tab's top-5 tooltips."""

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QHelpEvent, QTextCursor
from PySide6.QtWidgets import QToolTip

from microlm import (
    CharacterTokenizer,
    Corpus,
    MicroLM,
    ModelConfig,
    ModelTrainer,
    TrainingConfig,
)
from microlm.inspection import activations, gate_extremes
from microlm.neurons import name_neurons
from microlm.stepwise import step_by_step
from microlm.surprise import surprise_map
from microlm_app.session import Session
from microlm_app.tabs.inspect.activation_page import (
    ActivationPage,
    activation_colour,
    colour_centre,
    default_chars,
    feature_colour,
)
from microlm_app.tabs.inspect.page import display_char
from microlm_app.tabs.inspect.step_panel import number
from microlm_app.tabs.inspect.surprise_page import SurprisePage, surprise_colour
from microlm_app.tabs.inspect_tab import InspectTab

pg.setConfigOption("background", "w")
pg.setConfigOption("foreground", "k")

TEXT = ('def f(x):\n    return "a (b)"  # say it\nThe cat sat. It ran (far) away.\n' * 12)
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    tokenizer = CharacterTokenizer(TEXT)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=12, num_layers=2,
                    dropout=0.0, output_hidden_dim=10)
    trainer = ModelTrainer(model, tokenizer, device="cpu",
                           config=TrainingConfig(epochs=1, batch_size=4, sequence_length=16,
                                                 warmup_steps=0))
    trainer.train(trainer.prepare_data(TEXT))
    return trainer.model, tokenizer


@pytest.fixture
def tab(qtbot, trained):
    session = Session()
    session.corpus = Corpus(text=TEXT, source="example.py", encoding="utf-8",
                            size_bytes=len(TEXT))
    session.set_model(*trained, {"training_config": {"val_fraction": 0.25}}, unsaved=True)
    widget = InspectTab(session)
    widget.resize(1200, 800)
    qtbot.addWidget(widget)
    look_at_every_page(widget)
    yield widget
    assert widget.stop_workers()


def validation_part() -> str:
    return TEXT[int(len(TEXT) * 0.75):]


def ready(qtbot, page):
    qtbot.waitUntil(lambda: page._trace is not None and page._names is not None
                    and not page.activation_view.is_drawing, timeout=WAIT_MS)


def expected_colours(series):
    centre = colour_centre(series)
    scale = float(np.abs(series - centre).max())
    return [activation_colour(float(v) - centre, scale).name() for v in series]


def test_a_text_of_ones_own_is_named_as_such(qtbot, tab):
    page = tab.page(ActivationPage)
    ready(qtbot, page)
    page.activation_input.setPlainText('print("hi")')
    assert page.text_source.text().startswith("Your text (11 characters)")
    assert "validation part" not in page.text_source.text()
    ready(qtbot, page)


def test_the_page_reads_the_validation_text_and_opens_on_the_best_named_neuron(qtbot, tab,
                                                                               trained):
    page = tab.page(ActivationPage)
    ready(qtbot, page)
    assert page.activation_input.toPlainText() == validation_part()
    assert "validation part of example.py" in page.text_source.text()
    names = name_neurons(*trained, validation_part())
    best = names.names[0]
    assert (tab.layer_spin.value(), tab.activation_kind_combo.currentData(),
            tab.neuron_spin.value()) == (best.layer + 1, best.state, best.neuron)
    assert page.neuron_table.current() == page.neuron_table.rows()[0]
    assert best.feature.phrase in page.feature_caption.text()


def test_a_large_model_reads_a_shorter_default_text():
    assert default_chars(ModelConfig(65, 128, 384, 1)) == 10_000
    # 3 layers of 1,024: 6 float32 values x 3,072 neurons = 73,728 bytes per character
    assert default_chars(ModelConfig(65, 512, 1024, 3)) == 200 * 2**20 // 73_728 == 2_844
    assert default_chars(ModelConfig(65, 512, 8192, 8)) == 2_000


def test_the_table_sorts_by_the_size_of_r_and_filters_by_feature(qtbot, tab, trained):
    page = tab.page(ActivationPage)
    ready(qtbot, page)
    rows = page.neuron_table.rows()
    assert len(rows) == 2 * 2 * 12
    sizes = [abs(row.r) for row in rows]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    shown_r = page.neuron_table._proxy.index(0, 4).data()
    assert shown_r == f"{rows[0].r:.2f}".replace("-", "−")

    page.neuron_table.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # by neuron number
    by_number = [row.neuron for row in page.neuron_table.rows()]
    assert by_number == sorted(by_number)

    combo = page.neuron_table.feature_filter
    feature = rows[0].feature.name
    combo.setCurrentIndex(combo.findData(feature))
    filtered = page.neuron_table.rows()
    assert filtered and all(row.feature.name == feature for row in filtered)
    assert len(filtered) == sum(row.feature.name == feature for row in rows)
    combo.setCurrentIndex(0)
    assert len(page.neuron_table.rows()) == len(rows)


def test_choosing_a_row_recolours_the_text_with_its_feature_beneath(qtbot, tab, trained):
    page = tab.page(ActivationPage)
    ready(qtbot, page)
    model, tokenizer = trained
    text = validation_part()
    row = 5
    chosen = page.neuron_table.rows()[row]
    page.neuron_table.choose_row(row)
    assert (tab.layer_spin.value(), tab.neuron_spin.value()) == (chosen.layer + 1,
                                                                 chosen.neuron)
    series = getattr(activations(model, tokenizer, text).layers[chosen.layer],
                     chosen.state)[:, chosen.neuron]
    qtbot.waitUntil(lambda: not page.activation_view.is_drawing, timeout=WAIT_MS)
    assert page.activation_view.char_colours() == expected_colours(series)
    values = chosen.feature.values(text)
    assert page.activation_view.second_row_colours() == [
        feature_colour(float(v), float(values.max())).name() for v in values]
    assert chosen.feature.phrase in page.feature_caption.text()


def char_point(view, index):
    """The middle of character `index` of a coloured text, in viewport coordinates."""
    cursor = QTextCursor(view.document())
    cursor.setPosition(view._positions[index])
    left = view.cursorRect(cursor)
    return QPoint(left.x() + view.fontMetrics().horizontalAdvance("M") // 2, left.center().y())


def test_clicking_a_character_fills_the_step_by_step_panel(qtbot, tab, trained):
    page = tab.page(ActivationPage)
    ready(qtbot, page)
    model, tokenizer = trained
    text = page._trace.text
    index = 14
    view = page.activation_view
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=char_point(view, index))
    qtbot.waitUntil(lambda: page.step_panel.step is not None, timeout=WAIT_MS)
    assert page.side_tabs.currentWidget() is page.step_panel
    expected = step_by_step(model, tokenizer, text, index)
    shown = page.step_panel.step
    assert shown.position == index and shown.char == text[index]
    for mine, theirs in zip(shown.layers, expected.layers, strict=True):
        np.testing.assert_allclose(mine.cell, theirs.cell, atol=1e-5)
    neuron, layer = tab.neuron_spin.value(), expected.layers[0]
    sections = page.step_panel.sections
    forget = layer.gate("forget")
    assert f"σ({number(forget.total[neuron])}) = <b>{number(forget.value[neuron])}</b>" in \
        sections["l0_forget"].label.text()
    assert f"= <b>{number(layer.cell[neuron])}</b>" in sections["l0_cell"].label.text()
    heights = sections["l1_hidden"].bars.opts["height"]
    np.testing.assert_allclose(heights, expected.layers[1].hidden, atol=1e-5)
    top_char, top_p = expected.output.top[0]
    assert f"{top_p:.1%}" in sections["top"].label.text()
    assert "units" in sections  # the output layer's GELU units
    # layers are numbered from 1, as a person counts them
    assert "LSTM layer 1</b> reads x, the embedding" in sections["l0_input"].label.text()
    assert "LSTM layer 2</b> reads x, the output h of LSTM layer 1" in \
        sections["l1_input"].label.text()
    assert "h goes to LSTM layer 2" in sections["l0_hidden"].label.text()
    assert "h goes to the output layer" in sections["l1_hidden"].label.text()

    qtbot.keyClick(view, Qt.Key.Key_Right)  # → moves on to the next character
    qtbot.waitUntil(lambda: page.step_panel.step.position == index + 1, timeout=WAIT_MS)
    assert page.step_panel.step.char == text[index + 1]
    qtbot.keyClick(view, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: page.step_panel.step.position == index, timeout=WAIT_MS)


def test_the_show_selector_offers_the_gates_and_their_saturation_is_drawn(qtbot, tab,
                                                                          trained):
    page = tab.page(ActivationPage)
    ready(qtbot, page)
    kinds = [tab.activation_kind_combo.itemData(i)
             for i in range(tab.activation_kind_combo.count())]
    assert kinds == ["cell", "hidden", "input_gate", "forget_gate", "cell_candidate",
                     "output_gate"]
    extremes = gate_extremes(activations(*trained, validation_part()))
    assert len(page.gate_chart.bars) == 2
    titles = [plot.plotItem.titleLabel.text for plot in page.gate_chart.plots]
    assert titles == ["LSTM layer 1", "LSTM layer 2"]
    table = page.neuron_table
    shown_layers = {table._proxy.index(row, 1).data() for row in range(table._proxy.rowCount())}
    assert shown_layers == {"1", "2"}  # the table's layer column counts from 1 too
    assert table._proxy.index(0, 1).data() == str(table.rows()[0].layer + 1)
    for layer, (shut, opened) in zip(extremes, page.gate_chart.bars, strict=True):
        assert list(shut.opts["height"]) == [layer[g][0] for g in ("input", "forget", "output")]
        assert list(opened.opts["height"]) == [layer[g][1] for g in ("input", "forget",
                                                                     "output")]


def test_the_surprise_map_colours_each_character_and_lists_five_expectations(qtbot, tab,
                                                                            trained):
    page = tab.page(SurprisePage)
    tab.pages.setCurrentWidget(page)
    text = validation_part()
    qtbot.waitUntil(lambda: page._map is not None and not page.surprise_view.is_drawing,
                    timeout=WAIT_MS)
    expected = surprise_map(*trained, text)
    np.testing.assert_allclose(page._map.bits, expected.bits, atol=1e-5)
    assert f"{expected.mean_bits:.3f} bits per character" in page.surprise_mean.text()
    assert page.surprise_view.char_colours() == [surprise_colour(float(b)).name()
                                                 for b in page._map.bits]
    assert page.surprise_view.shown_chars() == text.replace("\n", "⏎")

    tab.show()
    qtbot.waitExposed(tab)
    view, index = page.surprise_view, 3
    point = char_point(view, index)
    assert view.index_at(point) == index
    QToolTip.hideText()
    event = QHelpEvent(QEvent.Type.ToolTip, point, view.viewport().mapToGlobal(point))
    view.viewportEvent(event)
    tip = QToolTip.text()
    lines = tip.splitlines()
    assert lines[0].startswith(f"'{display_char(text[index])}': ") and "bits" in lines[0]
    assert lines[1] == "It expected:" and len(lines) == 2 + 5
    for line, (char, p) in zip(lines[2:], expected.expectations(index), strict=True):
        assert f"'{display_char(char)}'" in line and f"{p:.1%}" in line


def test_a_pasted_text_is_mapped_after_typing_pauses(qtbot, tab, trained):
    page = tab.page(SurprisePage)
    qtbot.waitUntil(lambda: page._map is not None, timeout=WAIT_MS)
    page.surprise_input.setPlainText("The cat ran.")
    qtbot.waitUntil(lambda: page._map.text == "The cat ran.", timeout=WAIT_MS)
    assert page.surprise_source.text() == "Your own text."
    assert len(page.surprise_view.char_colours()) == len("The cat ran.")


def test_without_a_model_the_surprise_page_says_what_to_do(qtbot):
    tab = InspectTab(Session())
    qtbot.addWidget(tab)
    page = tab.page(SurprisePage)
    assert not page.surprise_status.isHidden()
    assert not page.surprise_input.isEnabled() and not page.open_button.isEnabled()
    assert tab.stop_workers()


def look_at_every_page(tab: InspectTab) -> None:
    """Open each page once, as a person would: a page computes its views when first seen."""
    for index in range(tab.pages.count()):
        tab.pages.setCurrentIndex(index)
    tab.pages.setCurrentIndex(0)
