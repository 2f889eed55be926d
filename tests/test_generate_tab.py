"""Tests of the Generate tab: settings, streamed generation, stop, colouring, compare, save."""

from types import SimpleNamespace

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QMessageBox,
    QPlainTextEdit,
    QSlider,
    QTextEdit,
    QWidget,
)

from microlm import CharacterTokenizer, MicroLM, TextGenerator
from microlm_app.session import Session
from microlm_app.tabs.generate_tab import COMPARE_TEMPERATURES, GenerateTab
from microlm_app.workers import running_threads

TEXT = "the quick brown fox jumps over the lazy dog.\nthe end.\n"


@pytest.fixture
def model_and_tokenizer():
    torch.manual_seed(0)
    tokenizer = CharacterTokenizer(TEXT)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=1,
                    dropout=0.0)
    return model, tokenizer


@pytest.fixture
def tab(qtbot, model_and_tokenizer):
    session = Session()
    session.set_model(*model_and_tokenizer, {}, unsaved=False)
    widget = GenerateTab(session)
    qtbot.addWidget(widget)
    yield widget
    widget.stop_workers()


def generate_and_wait(qtbot, tab):
    with qtbot.waitSignal(tab.generate_button.clicked, timeout=1000):
        tab.generate_button.click()
    qtbot.waitUntil(lambda: not tab.is_generating, timeout=30_000)


def test_named_widgets_exist_with_accessible_names_and_tooltips(tab):
    for name in ("promptEdit", "lengthSpin", "temperatureSlider", "temperatureLabel",
                 "topKSpin", "topPSpin", "seedSpin", "generateButton", "generatedText"):
        widget = tab.findChild(QWidget, name)
        assert widget is not None, name
        assert widget.accessibleName(), name
        assert len(widget.toolTip()) > 20, name
    assert isinstance(tab.findChild(QWidget, "temperatureSlider"), QSlider)
    assert tab.objectName() == "generateTab"


def test_temperature_slider_updates_label_and_is_used_for_generation(qtbot, tab,
                                                                     model_and_tokenizer):
    assert tab.temperature_label.text() == "0.80"
    tab.temperature_slider.setValue(25)
    assert tab.temperature_label.text() == "1.25"
    tab.temperature_slider.setValue(0)
    assert tab.temperature_label.text() == "0.00"
    tab.temperature_slider.setValue(tab.temperature_slider.maximum())
    assert tab.temperature_label.text() == "2.00"

    tab.temperature_slider.setValue(25)
    tab.prompt_edit.setPlainText("the ")
    tab.length_spin.setValue(60)
    tab.seed_spin.setValue(7)
    generate_and_wait(qtbot, tab)
    expected = TextGenerator(*model_and_tokenizer).generate("the ", 60, 1.25, seed=7)
    assert tab.generated_text() == expected
    # The same seed at another temperature gives another text: the slider value matters.
    assert expected != TextGenerator(*model_and_tokenizer).generate("the ", 60, 0.2, seed=7)


def test_generate_streams_exactly_length_characters_matching_text_generator(
        qtbot, tab, model_and_tokenizer):
    tab.prompt_edit.setPlainText("fox")
    tab.length_spin.setValue(120)
    tab.top_k_spin.setValue(5)
    tab.top_p_spin.setValue(0.9)
    tab.seed_spin.setValue(123)
    generate_and_wait(qtbot, tab)

    expected = TextGenerator(*model_and_tokenizer).generate("fox", 120, 0.8, top_k=5,
                                                            top_p=0.9, seed=123)
    shown = tab.generated_text_edit.toPlainText()
    assert shown == expected
    assert len(shown) == len("fox") + 120
    assert tab.generated_text() == expected
    assert "chars/s" in tab.generation_stats.text()
    assert "seed 123" in tab.generation_stats.text()
    assert tab.generate_button.text() == "Generate"
    assert not running_threads()


def test_generate_button_becomes_stop_and_stop_leaves_shorter_text(qtbot, tab):
    tab.length_spin.setValue(tab.length_spin.maximum())
    tab.seed_spin.setValue(1)
    tab.generate_button.click()
    assert tab.generate_button.text() == "Stop"
    qtbot.waitUntil(lambda: len(tab._generated) > 0, timeout=30_000)
    # Streaming: characters are on screen while the worker is still producing more.
    assert tab.is_generating
    assert len(tab.generated_text_edit.toPlainText()) > 0
    tab.generate_button.click()
    qtbot.waitUntil(lambda: not tab.is_generating, timeout=30_000)
    count = len(tab._generated)
    assert 0 < count < tab.length_spin.maximum()
    assert tab.generated_text_edit.toPlainText() == tab.generated_text()
    assert tab.generation_stats.text().startswith(f"Stopped after {count} characters")
    assert tab.generate_button.text() == "Generate"
    assert tab.generate_button.isEnabled()
    assert not running_threads()


def test_stop_workers_stops_a_running_generation(qtbot, tab):
    tab.length_spin.setValue(tab.length_spin.maximum())
    tab.generate_button.click()
    qtbot.waitUntil(lambda: len(tab._generated) > 0, timeout=30_000)
    assert tab.stop_workers(10_000)
    assert not running_threads()


def _backgrounds(text_edit: QTextEdit) -> list[str]:
    document = text_edit.document()
    colours = []
    block = document.begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            brush = fragment.charFormat().background()
            for _ in fragment.text():
                colours.append(brush.color().name() if brush.style() != Qt.BrushStyle.NoBrush
                               else None)
            iterator += 1
        block = block.next()
    return colours


def test_colour_by_probability_formats_each_generated_character(qtbot, tab):
    tab.prompt_edit.setPlainText("the")
    tab.length_spin.setValue(80)
    tab.seed_spin.setValue(3)
    tab.temperature_slider.setValue(30)
    generate_and_wait(qtbot, tab)
    assert set(_backgrounds(tab.generated_text_edit)) == {None}

    tab.colour_check.setChecked(True)
    assert not tab.colour_legend.isHidden()
    colours = _backgrounds(tab.generated_text_edit)
    newlines = tab.generated_text().count("\n")  # block separators carry no fragment
    assert len(colours) == len(tab.generated_text()) - newlines
    assert colours[:3] == [None, None, None]  # the prompt is not coloured
    generated_colours = colours[3:]
    assert None not in generated_colours
    assert len(set(generated_colours)) > 1  # different probabilities, different tints

    tab.colour_check.setChecked(False)
    assert set(_backgrounds(tab.generated_text_edit)) == {None}


def test_compare_temperatures_fills_one_pane_per_temperature(qtbot, tab, model_and_tokenizer):
    tab.prompt_edit.setPlainText("the")
    tab.length_spin.setValue(40)
    tab.seed_spin.setValue(11)
    tab.compare_button.click()
    assert tab.compare_button.text() == "Stop comparing"
    assert not tab.generate_button.isEnabled()
    qtbot.waitUntil(lambda: not tab.is_generating, timeout=30_000)
    generator = TextGenerator(*model_and_tokenizer)
    panes = [tab.findChild(QPlainTextEdit, f"compareText{i}")
             for i in range(len(COMPARE_TEMPERATURES))]
    for pane, temperature in zip(panes, COMPARE_TEMPERATURES, strict=True):
        assert pane.isReadOnly()
        assert pane.toPlainText() == generator.generate("the", 40, temperature, seed=11)
    assert len({pane.toPlainText() for pane in panes}) > 1
    assert tab.output_tabs.currentIndex() == 1
    assert tab.generate_button.isEnabled()
    assert not running_threads()


def test_stop_comparing_ends_the_worker_and_marks_unfinished_panes(qtbot, tab):
    tab.length_spin.setValue(tab.length_spin.maximum())
    tab.compare_button.click()
    qtbot.waitUntil(lambda: tab.generation_stats.text().startswith("Comparing"), timeout=1000)
    tab.compare_button.click()
    assert tab.compare_button.text() == "Stop comparing"
    qtbot.waitUntil(lambda: not tab.is_generating, timeout=30_000)
    texts = [tab.findChild(QPlainTextEdit, f"compareText{i}").toPlainText()
             for i in range(len(COMPARE_TEMPERATURES))]
    assert texts[-1] == "(stopped)"
    assert all(len(text) < tab.length_spin.maximum() for text in texts)
    assert tab.compare_button.text() == "Compare temperatures"
    assert tab.compare_button.isEnabled()
    assert not running_threads()


def test_unknown_prompt_characters_are_pointed_out_and_dropped(qtbot, tab, model_and_tokenizer):
    tab.prompt_edit.setPlainText("the Z€ fox")
    label = tab.unknown_chars_label.text()
    assert not tab.unknown_chars_label.isHidden()
    assert "'Z', '€'" in label and "dropped" in label
    tab.length_spin.setValue(20)
    tab.seed_spin.setValue(5)
    generate_and_wait(qtbot, tab)
    assert tab.generated_text() == TextGenerator(*model_and_tokenizer).generate(
        "the  fox", 20, 0.8, seed=5)
    tab.prompt_edit.setPlainText("the fox")
    assert tab.unknown_chars_label.isHidden()


def test_save_writes_the_generated_text_as_utf8(qtbot, tab, tmp_path, monkeypatch):
    tab.prompt_edit.setPlainText("the")
    tab.length_spin.setValue(30)
    generate_and_wait(qtbot, tab)
    target = tmp_path / "out.txt"
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (asked.append(a), (str(target), ""))[1]))
    tab.save_button.click()
    assert asked
    assert target.read_bytes().decode("utf-8") == tab.generated_text()
    assert len(tab.generated_text()) == 33

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("", "")))
    assert tab.export_text() is False  # cancelled


def test_export_with_nothing_generated_warns(tab, monkeypatch):
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *a, **k: warnings.append(a)))
    assert tab.export_text() is False
    assert warnings
    assert not tab.save_button.isEnabled()


def test_copy_puts_the_text_on_the_clipboard(qtbot, tab):
    tab.length_spin.setValue(10)
    generate_and_wait(qtbot, tab)
    tab.copy_button.click()
    assert QGuiApplication.clipboard().text() == tab.generated_text()


def test_without_a_model_generate_is_disabled_and_explains(qtbot, model_and_tokenizer):
    session = Session()
    tab = GenerateTab(session)
    qtbot.addWidget(tab)
    assert not tab.generate_button.isEnabled()
    assert not tab.compare_button.isEnabled()
    assert "Train a model or open one (File > Open Model…)" in tab.model_status.text()
    assert not tab.model_status.isHidden()
    tab.prompt_edit.setPlainText("anything Z")  # no vocabulary to check against: no crash
    assert tab.unknown_chars_label.isHidden()

    session.set_model(*model_and_tokenizer, {}, unsaved=True)
    assert tab.generate_button.isEnabled()
    assert tab.model_status.isHidden()
    assert not tab.unknown_chars_label.isHidden()  # 'Z' is now checked against the vocabulary


def test_generate_is_disabled_while_training_updates_the_same_model(tab):
    session = tab.session
    session.trainer = SimpleNamespace(model=session.model)
    session.set_training_active(True)
    assert not tab.generate_button.isEnabled()
    assert "Training" in tab.model_status.text()
    session.set_training_active(False)
    assert tab.generate_button.isEnabled()


def test_random_seed_is_shown_and_reproduces_the_text(qtbot, tab):
    assert tab.seed_spin.text() == "random"
    tab.length_spin.setValue(50)
    tab.temperature_slider.setValue(40)
    generate_and_wait(qtbot, tab)
    first = tab.generated_text()
    seed = int(tab.generation_stats.text().split("seed ")[1].rstrip(").").split(")")[0])
    tab.seed_spin.setValue(seed)
    generate_and_wait(qtbot, tab)
    assert tab.generated_text() == first


def test_ctrl_return_generates(qtbot, tab):
    tab.length_spin.setValue(15)
    qtbot.keyClick(tab.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert tab.prompt_edit.toPlainText() == ""  # no new line typed into the prompt
    qtbot.waitUntil(lambda: len(tab.generated_text()) == 15 and not tab.is_generating,
                    timeout=30_000)
    tab.length_spin.setValue(9)  # from a spin box too
    qtbot.keyClick(tab.length_spin, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(tab.generated_text()) == 9 and not tab.is_generating,
                    timeout=30_000)


def test_a_model_that_does_not_match_its_tokenizer_gives_a_warning(qtbot, monkeypatch):
    tokenizer = CharacterTokenizer(TEXT)
    model = MicroLM(3, embedding_dim=4, hidden_dim=4, num_layers=1, dropout=0.0)
    session = Session()
    session.set_model(model, tokenizer, {}, unsaved=False)
    tab = GenerateTab(session)
    qtbot.addWidget(tab)
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *a, **k: warnings.append(a)))
    tab.generate_button.click()
    assert warnings and "do not belong together" in warnings[0][2]
    assert not tab.is_generating
