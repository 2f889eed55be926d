"""Tests of the Data tab: loading texts in a worker, statistics, warnings, the split."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QComboBox, QFileDialog, QLabel, QMessageBox, QPlainTextEdit, QSpinBox

from microlm import split_text
from microlm_app.session import Session
from microlm_app.tabs.data_tab import DataTab, split_sizes, visible_char

TEXT = "hello world\nthe cat sat on the mat\n\ttabbed line\n" * 50


@pytest.fixture
def tab(qtbot):
    tab = DataTab(Session())
    qtbot.addWidget(tab)
    return tab


@pytest.fixture
def warnings_shown(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning",
                        staticmethod(lambda parent, title, text, *a, **k: shown.append(text)))
    return shown


def load(qtbot, tab: DataTab, path) -> None:
    tab.load_path(path)
    qtbot.waitUntil(lambda: not tab.is_loading, timeout=30_000)


def test_widgets_carry_the_design_object_names(tab):
    for cls, name in ((QComboBox, "sampleCorpusCombo"), (QLabel, "corpusStats"),
                      (QPlainTextEdit, "corpusPreview"), (QSpinBox, "valSplitSpin")):
        widget = tab.findChild(cls, name)
        assert widget is not None, name
        assert widget.toolTip() and widget.accessibleName()
    assert tab.objectName() == "dataTab"
    assert tab.open_button.objectName() == "openFileButton"


def test_utf8_file_shows_exact_statistics_preview_and_chart(qtbot, tab, tmp_path):
    path = tmp_path / "story.txt"
    path.write_text(TEXT, encoding="utf-8")
    with qtbot.waitSignal(tab.session.corpus_changed, timeout=30_000):
        tab.open_file(str(path))
    qtbot.waitUntil(lambda: not tab.is_loading, timeout=30_000)
    stats = tab.session.corpus_stats
    assert stats.characters == len(TEXT) == 2400
    assert stats.lines == 150
    assert stats.unique_characters == len(set(TEXT))
    text = tab.stats_label.text()
    assert "2,400" in text and "150" in text and f"{len(set(TEXT))}" in text
    assert "2,160" in text and "240" in text  # 90 % / 10 % of 2,400
    assert tab.preview.toPlainText() == TEXT
    heights = list(tab.frequency_bars.opts["height"])
    assert heights[0] == TEXT.count(" ")  # the space is the most frequent character
    assert len(heights) == len(set(TEXT))  # fewer than 30 distinct: one bar each
    labels = [label for _, label in tab.frequency_plot.getAxis("bottom")._tickLevels[0]]
    assert labels[0] == "␣" and "⏎" in labels and "⇥" in labels
    assert tab.warning_label.isVisibleTo(tab)  # fewer than 10,000 characters: a warning
    assert "memorise" in tab.warning_label.text()
    assert tab.last_folder == str(tmp_path)


def test_long_text_preview_is_truncated_and_says_so(qtbot, tab, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("abcdefghij" * 5_000, encoding="utf-8")
    load(qtbot, tab, path)
    assert len(tab.preview.toPlainText()) == 20_000
    assert "truncated" in tab.preview_note.text()


def test_open_file_without_a_path_uses_the_file_dialog(qtbot, tab, tmp_path, monkeypatch):
    path = tmp_path / "dialog.txt"
    path.write_text(TEXT, encoding="utf-8")
    calls = []

    def fake_dialog(parent, caption, folder, filters):
        calls.append((caption, filters))
        return str(path), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake_dialog))
    with qtbot.waitSignal(tab.session.corpus_changed, timeout=30_000):
        tab.open_button.click()
    qtbot.waitUntil(lambda: not tab.is_loading, timeout=30_000)
    assert calls[0][0] == "Open Text" and "All files (*)" in calls[0][1]
    assert tab.session.corpus.source == str(path)


@pytest.mark.parametrize("content", [b"\x00\x01\x02binary\x00" * 100, b"", b"   \n\n  "])
def test_binary_or_empty_file_warns_and_keeps_the_previous_corpus(
        qtbot, tab, tmp_path, warnings_shown, content):
    good = tmp_path / "good.txt"
    good.write_text(TEXT, encoding="utf-8")
    load(qtbot, tab, good)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    load(qtbot, tab, bad)
    assert len(warnings_shown) == 1
    assert "binary" in warnings_shown[0] or "empty" in warnings_shown[0] \
        or "whitespace" in warnings_shown[0]
    assert tab.session.corpus.source == str(good)
    assert tab.preview.toPlainText() == TEXT


def test_cp1252_file_shows_the_fallback_encoding_warning(qtbot, tab, tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(("Café crème brûlée, naïve façade. " * 400).encode("cp1252"))
    load(qtbot, tab, path)
    assert tab.session.corpus.encoding == "cp1252"
    assert tab.warning_label.isVisibleTo(tab)
    assert "cp1252" in tab.warning_label.text()
    assert "Café" in tab.preview.toPlainText()


@pytest.mark.parametrize("ending, message", [
    (b"\r\n", "Windows line endings (CRLF) were converted to plain line breaks."),
    (b"\r", "Old Mac line endings (CR) were converted to plain line breaks."),
])
def test_converted_line_endings_are_shown_with_the_notes(qtbot, tab, tmp_path, ending,
                                                        message):
    path = tmp_path / "windows.txt"
    path.write_bytes(TEXT.encode().replace(b"\n", ending))
    load(qtbot, tab, path)
    assert message in tab.warning_label.text()
    assert tab.warning_label.isVisibleTo(tab)
    assert tab.preview.toPlainText() == TEXT
    assert tab.session.corpus_stats.lines == 150


def test_removed_control_characters_are_shown_with_the_notes(qtbot, tab, tmp_path):
    path = tmp_path / "nul.txt"
    path.write_bytes(TEXT.encode() * 40 + b"\x00" + b"tail\n")
    load(qtbot, tab, path)
    assert "1 NUL (U+0000) at byte offset 96,000" in tab.warning_label.text()
    assert "\x00" not in tab.session.tokenizer.chars


def test_sample_corpus_loads_from_the_combo(qtbot, tab):
    index = tab.sample_combo.findText("Python documentation")
    with qtbot.waitSignal(tab.session.corpus_changed, timeout=60_000):
        tab.sample_combo.activated.emit(index)
    qtbot.waitUntil(lambda: not tab.is_loading, timeout=30_000)
    assert tab.session.corpus.source == "Python documentation"
    assert tab.session.corpus_stats.characters > 100_000
    assert tab.sample_combo.currentText() == "Python documentation"
    assert "truncated" in tab.preview_note.text()


def test_validation_split_changes_sizes_and_the_session(qtbot, tab, tmp_path):
    path = tmp_path / "story.txt"
    path.write_text(TEXT, encoding="utf-8")
    load(qtbot, tab, path)
    tab.val_split_spin.setValue(20)
    assert tab.session.val_fraction == pytest.approx(0.2)
    assert tab.session.training_config.val_fraction == pytest.approx(0.2)
    assert "1,920" in tab.stats_label.text() and "480" in tab.stats_label.text()


@pytest.mark.parametrize("characters", [2400, 177_603, 1_000_001])
def test_split_sizes_are_the_lengths_split_text_gives(characters):
    train, validation = split_text("x" * characters, 0.1)
    assert split_sizes(characters, 0.1) == (len(train), len(validation))


def test_visible_char_labels_whitespace():
    assert [visible_char(c) for c in " \n\tA\x07"] == ["␣", "⏎", "⇥", "A", "U+0007"]


def test_losses_to_beat_are_shown_in_nats_bits_and_words(qtbot, tab, tmp_path):
    # Two characters, 'a' three times as often as 'b': guessing alike costs ln 2 nats
    # (1 bit); knowing the frequencies costs -(3/4 ln 3/4 + 1/4 ln 1/4) = 0.562 nats.
    path = tmp_path / "ab.txt"
    path.write_text("aaab" * 100, encoding="utf-8")
    load(qtbot, tab, path)
    assert tab.baseline_label.isVisibleTo(tab)
    text = tab.baseline_label.text()
    assert "0.69 nats" in text and "1.00 bits" in text and "among 2 characters" in text
    assert "0.56 nats" in text and "0.81 bits" in text and "among 1.8 characters" in text
    assert "Vocabulary" in tab.stats_label.text() and "2 characters" in tab.stats_label.text()
    assert "Unique" not in tab.stats_label.text()
