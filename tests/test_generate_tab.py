"""Tests of the Generate tab: settings, streamed generation, stop, live preview, colouring,
compare, save."""

import time
from types import SimpleNamespace

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFileDialog,
    QMessageBox,
    QPlainTextEdit,
    QSlider,
    QTextEdit,
    QWidget,
)

from microlm import CharacterTokenizer, MicroLM, TextGenerator
from microlm.surprise import surprise_map
from microlm_app.session import Session
from microlm_app.tabs import generate_tab
from microlm_app.tabs.generate_tab import COMPARE_TEMPERATURES, PREVIEW_INTERVAL_MS, GenerateTab
from microlm_app.tabs.probability_colours import (
    contrast_ratio,
    legend_html,
    probability_colour,
    text_colour_on,
)
from microlm_app.workers import GenerationWorker, running_threads

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
    qtbot.waitUntil(lambda: len(tab.generated_chars) > 0, timeout=30_000)
    # Streaming: characters are on screen while the worker is still producing more.
    assert tab.is_generating
    assert len(tab.generated_text_edit.toPlainText()) > 0
    tab.generate_button.click()
    qtbot.waitUntil(lambda: not tab.is_generating, timeout=30_000)
    count = len(tab.generated_chars)
    assert 0 < count < tab.length_spin.maximum()
    assert tab.generated_text_edit.toPlainText() == tab.generated_text()
    assert tab.generation_stats.text().startswith(f"Stopped after {count} characters")
    assert tab.generate_button.text() == "Generate"
    assert tab.generate_button.isEnabled()
    assert not running_threads()


def test_stop_workers_stops_a_running_generation(qtbot, tab):
    tab.length_spin.setValue(tab.length_spin.maximum())
    tab.generate_button.click()
    qtbot.waitUntil(lambda: len(tab.generated_chars) > 0, timeout=30_000)
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


# ---- live preview ----

class SlowGenerator(TextGenerator):
    """Streams like TextGenerator, 5 ms a character: a 400-character preview lasts 2 s, so
    a setting moved meanwhile surely finds it in flight."""

    def stream(self, *args, **kwargs):
        for generated in super().stream(*args, **kwargs):
            time.sleep(0.005)
            yield generated


@pytest.fixture
def started_workers(monkeypatch):
    """Every GenerationWorker the tab starts, in order."""
    workers = []

    class RecordedWorker(GenerationWorker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            workers.append(self)

    monkeypatch.setattr(generate_tab, "GenerationWorker", RecordedWorker)
    return workers


def wait_until_idle(qtbot, tab):
    qtbot.waitUntil(lambda: not tab.is_generating, timeout=30_000)


def test_moving_the_slider_previews_the_same_text_a_full_generate_gives(
        qtbot, tab, model_and_tokenizer):
    tab.prompt_edit.setPlainText("the ")
    tab.length_spin.setValue(200)
    tab.seed_spin.setValue(42)
    assert tab.live_preview_check.isChecked()  # on by default
    tab.temperature_slider.setValue(14)  # 0.70
    wait_until_idle(qtbot, tab)
    expected = TextGenerator(*model_and_tokenizer).generate("the ", 200, 0.7, seed=42)
    assert tab.generated_text() == expected
    assert tab.shown_request.preview
    assert tab.generation_stats.text() == ("Live preview (temperature 0.70, seed 42): "
                                           "200 characters.")
    assert tab.speed_label.text().endswith(" chars/s")

    generate_and_wait(qtbot, tab)
    assert tab.generated_text() == expected
    assert not tab.shown_request.preview
    assert tab.generation_stats.text().startswith("Generated 200 characters with Generate at ")
    assert tab.generation_stats.text().endswith("(temperature 0.70, seed 42).")


def test_top_k_and_top_p_changes_preview_too_and_the_status_names_them(
        qtbot, tab, model_and_tokenizer):
    tab.length_spin.setValue(80)
    tab.seed_spin.setValue(3)
    tab.top_k_spin.setValue(4)
    wait_until_idle(qtbot, tab)
    tab.top_p_spin.setValue(0.8)
    wait_until_idle(qtbot, tab)
    assert tab.generated_text() == TextGenerator(*model_and_tokenizer).generate(
        "", 80, 0.8, top_k=4, top_p=0.8, seed=3)
    assert "(temperature 0.80, top-k 4, top-p 0.80, seed 3)" in tab.generation_stats.text()


def test_quick_slider_moves_stop_the_preview_in_flight_and_show_only_the_last(
        qtbot, tab, model_and_tokenizer, monkeypatch, started_workers):
    monkeypatch.setattr(generate_tab, "TextGenerator", SlowGenerator)
    tab.prompt_edit.setPlainText("the")
    tab.length_spin.setValue(400)
    tab.seed_spin.setValue(8)
    for steps in (10, 20, 30, 5):
        tab.temperature_slider.setValue(steps)
        # This setting's preview streams (after the one before it stopped).
        qtbot.waitUntil(lambda: tab.shown_request is not None
                        and tab.shown_request.temperature == tab.temperature()
                        and len(tab.generated_chars) > 0, timeout=30_000)
    wait_until_idle(qtbot, tab)
    assert len(started_workers) == 4
    assert [w.stop_requested for w in started_workers] == [True, True, True, False]
    assert tab.replaced_requests == 3
    assert tab.generated_text() == TextGenerator(*model_and_tokenizer).generate(
        "the", 400, 0.25, seed=8)
    assert tab.generation_stats.text().startswith("Live preview (temperature 0.25, seed 8)")
    assert not running_threads()


def test_moves_within_one_interval_make_a_single_preview(qtbot, tab, model_and_tokenizer,
                                                          started_workers):
    tab.length_spin.setValue(50)
    tab.seed_spin.setValue(4)
    for steps in (3, 9, 27, 12, 30):  # all before the event loop runs: one timer start
        tab.temperature_slider.setValue(steps)
    wait_until_idle(qtbot, tab)
    assert len(started_workers) == 1
    assert tab.generated_text() == TextGenerator(*model_and_tokenizer).generate(
        "", 50, 1.5, seed=4)


def test_late_chunks_of_a_replaced_request_are_dropped(qtbot, tab):
    tab.length_spin.setValue(20)
    tab.seed_spin.setValue(1)
    generate_and_wait(qtbot, tab)
    old = tab.shown_request.serial
    generate_and_wait(qtbot, tab)
    shown = tab.generated_text()
    stale = tuple(tab.generated_chars[:5])
    tab._on_chars_generated(old, stale, 123.0)
    tab._on_generation_finished(old, 123.0)
    assert tab.generated_text() == shown
    assert "123" not in tab.speed_label.text() + tab.generation_stats.text()


def test_a_long_length_previews_only_the_first_characters_and_says_so(
        qtbot, tab, model_and_tokenizer, monkeypatch):
    assert generate_tab.PREVIEW_MAX_CHARS == 1_000
    monkeypatch.setattr(generate_tab, "PREVIEW_MAX_CHARS", 100)  # the same rule, quicker
    tab.length_spin.setValue(5_000)
    tab.seed_spin.setValue(2)
    tab.temperature_slider.setValue(20)
    wait_until_idle(qtbot, tab)
    assert len(tab.generated_chars) == 100
    assert tab.generation_stats.text() == (
        "Live preview (temperature 1.00, seed 2): the first 100 of 5,000 characters; "
        "press Generate for all of them.")
    # The preview is the start of the full text: one seed, one sequence of draws, one draw
    # per character whatever the length.
    full = TextGenerator(*model_and_tokenizer).generate("", 300, 1.0, seed=2)
    assert full.startswith(tab.generated_text()) and len(full) > len(tab.generated_text())


def test_with_a_random_seed_the_preview_keeps_the_seed_of_the_text_shown(qtbot, tab):
    tab.length_spin.setValue(40)
    generate_and_wait(qtbot, tab)
    seed = tab.shown_request.seed
    tab.temperature_slider.setValue(30)
    wait_until_idle(qtbot, tab)
    assert tab.shown_request.preview and tab.shown_request.seed == seed
    assert f"seed {seed})" in tab.generation_stats.text()


def test_live_preview_off_means_the_slider_does_not_generate(qtbot, tab, started_workers):
    tab.live_preview_check.setChecked(False)
    tab.temperature_slider.setValue(30)
    tab.top_k_spin.setValue(3)
    assert not tab.is_generating
    qtbot.wait(PREVIEW_INTERVAL_MS * 3)  # past the moment a preview would have started
    assert started_workers == [] and tab.generated_text() == ""
    tab.live_preview_check.setChecked(True)
    tab.temperature_slider.setValue(31)
    wait_until_idle(qtbot, tab)
    assert len(started_workers) == 1


def test_no_preview_while_training_updates_the_model(qtbot, tab, started_workers):
    session = tab.session
    session.trainer = SimpleNamespace(model=session.model)
    session.set_training_active(True)
    tab.temperature_slider.setValue(30)
    qtbot.waitUntil(lambda: not tab.is_generating, timeout=5_000)
    assert started_workers == [] and tab.generated_text() == ""
    session.set_training_active(False)


def test_the_speed_label_updates_while_the_text_streams(qtbot, tab):
    tab.length_spin.setValue(tab.length_spin.maximum())
    tab.generate_button.click()
    qtbot.waitUntil(lambda: tab.speed_label.text().endswith(" chars/s"), timeout=30_000)
    assert tab.is_generating and tab.generate_button.text() == "Stop"
    assert int(tab.speed_label.text().split()[0].replace(",", "")) > 0
    tab.generate_button.click()
    wait_until_idle(qtbot, tab)


# ---- colour by probability ----

def test_colour_tooltips_list_the_models_top_five_at_temperature_one(
        qtbot, tab, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tab.prompt_edit.setPlainText("the ")
    tab.length_spin.setValue(30)
    tab.seed_spin.setValue(5)
    tab.colour_check.setChecked(True)
    generate_and_wait(qtbot, tab)
    generated = "".join(g.char for g in tab.generated_chars)
    # The same expectations as the Inspect tab's surprise map reads from the same text.
    expected = surprise_map(model, tokenizer, generated, context="the ")
    document = tab.generated_text_edit.document()
    for index, char in enumerate(tab.generated_chars):
        offered = expected.expectations(index)
        assert [c for c, _ in char.alternatives] == [c for c, _ in offered]
        assert [p for _, p in char.alternatives] == pytest.approx([p for _, p in offered],
                                                                  abs=1e-4)
        if char.char == "\n":  # a new line is a block's end, with no format of its own
            continue
        cursor = QTextCursor(document)
        cursor.setPosition(len("the ") + index + 1)
        lines = QTextCharFormat(cursor.charFormat()).toolTip().splitlines()
        assert lines[0] == f"{char.char!r}: probability {char.probability:.3f}"
        assert lines[1] == ("The model's top 5 here (its own probabilities, at "
                            "temperature 1):")
        assert [line.strip() for line in lines[2:]] == [f"{c!r}  {p:.1%}"
                                                         for c, p in char.alternatives]


def test_the_colour_scale_runs_orange_to_dark_blue_with_readable_text():
    surprise, sure = probability_colour(0.05), probability_colour(1.0)
    assert surprise.red() > surprise.blue()  # orange
    assert sure.blue() > 2 * sure.red() and sure.lightness() < 128  # dark blue
    for step in range(101):
        background = probability_colour(step / 100)
        assert contrast_ratio(background, text_colour_on(background)) >= 4.5, step
    assert text_colour_on(sure) == QColor("white")
    assert text_colour_on(probability_colour(0.5)) == QColor("black")
    words = legend_html()
    assert "the model was sure (p near 1)" in words and "a surprise (p under 0.1)" in words


def test_the_temperature_tooltip_says_only_one_samples_the_models_own_probabilities(tab):
    tip = tab.temperature_slider.toolTip()
    assert "1.00: sample from the model's own probabilities" in tip
    assert "Below 1 sharpens" in tip and "Above 1 flattens" in tip
    assert "0.8-1.0" not in tip
