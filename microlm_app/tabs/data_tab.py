"""The Data tab: open a text or pick a sample, see its statistics, characters and preview."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QThread, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from microlm import (
    SAMPLE_CORPORA,
    CharacterTokenizer,
    Corpus,
    CorpusStats,
    corpus_stats,
    read_corpus,
    sample_corpus,
)
from microlm.data import train_characters
from microlm.units import in_unit, perplexity

from ..session import Session
from ..workers import TaskWorker, start_worker, stop_and_wait, wait_for_thread_end

TEXT_FILTER = ("Text files (*.txt *.md *.py *.csv *.json *.html *.xml *.tex *.rst);;"
               "All files (*)")
PREVIEW_CHARS = 20_000  # more would make the preview slow to lay out and tell nothing new
CHART_CHARS = 30  # bars in the frequency chart
SAMPLE_PROMPT = "Built-in sample…"
VISIBLE_WHITESPACE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


@dataclass(frozen=True)
class LoadedCorpus:
    """What the loading worker hands back to the GUI thread."""

    corpus: Corpus
    stats: CorpusStats
    tokenizer: CharacterTokenizer


def analyse_corpus(corpus: Corpus, progress: Callable[[float], None] | None = None,
                   ) -> LoadedCorpus:
    """Tokenizer and statistics for a corpus (runs in a worker: it walks the whole text)."""
    tokenizer = CharacterTokenizer(corpus.text)
    if progress is not None:
        progress(0.9)
    stats = corpus_stats(corpus.text, tokenizer)
    if progress is not None:
        progress(1.0)
    return LoadedCorpus(corpus, stats, tokenizer)


def load_text_file(path: str, progress: Callable[[float], None] | None = None) -> LoadedCorpus:
    """Read a file (reading is the first 80 % of the progress) and analyse it."""
    def reading(fraction: float) -> None:
        if progress is not None:
            progress(0.8 * fraction)

    return analyse_corpus(read_corpus(path, progress=reading), progress)


def load_sample_corpus(name: str, progress: Callable[[float], None] | None = None,
                       ) -> LoadedCorpus:
    return analyse_corpus(sample_corpus(name), progress)


def visible_char(char: str) -> str:
    """A label for a character in which whitespace and control characters can be seen."""
    if char in VISIBLE_WHITESPACE:
        return VISIBLE_WHITESPACE[char]
    if not char.isprintable():
        return f"U+{ord(char):04X}"
    return char


def baseline_losses(stats: CorpusStats) -> list[tuple[str, float]]:
    """The losses (nats per character) of the two simplest guessers, as (who, loss): one
    that picks every character of the vocabulary alike (ln V), and one that knows only
    how often each character occurs (the text's unigram entropy)."""
    return [("Guessing every character of the vocabulary alike", stats.uniform_loss()),
            ("Knowing only how often each character occurs", stats.unigram_entropy())]


def baseline_text(stats: CorpusStats) -> str:
    """The two baseline losses in nats, bits and words, as rich text: what a trained model's
    loss should beat."""
    rows = []
    for who, loss in baseline_losses(stats):
        rows.append(f"<tr><td>{who}</td><td align='right'>&nbsp;{loss:.2f} nats</td>"
                    f"<td align='right'>&nbsp;= {in_unit(loss, 'bits'):.2f} bits</td>"
                    f"<td>&nbsp;per character: as unsure as choosing among "
                    f"{_among(perplexity(loss))} characters</td></tr>")
    return ("<b>Losses to beat</b> (the Train tab's loss is in nats per character):"
            f"<table cellspacing='1'>{''.join(rows)}</table>"
            "A model that has learnt spelling and words goes well below both.")


def _among(count: float) -> str:
    """A number of characters to choose among: whole when it is (ln V gives V back)."""
    return f"{count:.0f}" if abs(count - round(count)) < 0.05 else f"{count:.1f}"


def split_sizes(characters: int, val_fraction: float) -> tuple[int, int]:
    """(training, validation) characters, exactly as microlm.split_text cuts the text."""
    train = train_characters(characters, val_fraction)
    return train, characters - train


class DataTab(QWidget):
    """Load the text the model will learn from, and show what is in it."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dataTab")
        self.session = session
        self.last_folder = str(Path.home())  # the main window restores it from QSettings
        self._load_worker: TaskWorker | None = None  # the load in progress
        self._load_thread: QThread | None = None
        self._pending: tuple | None = None  # a load asked for while another was running
        self._loading_name = ""
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_source_row())
        self.progress = QProgressBar(objectName="loadProgress")
        self.progress.setAccessibleName("Loading progress")
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.warning_label = QLabel(objectName="corpusWarnings")
        self.warning_label.setAccessibleName("Warnings about the text")
        self.warning_label.setWordWrap(True)
        self.warning_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.warning_label.setStyleSheet(
            "QLabel { background: #fff4d6; color: #7a4b00; border: 1px solid #e0a526;"
            " border-radius: 4px; padding: 6px; }")
        self.warning_label.setVisible(False)
        layout.addWidget(self.warning_label)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self._build_summary())
        splitter.addWidget(self._build_preview())
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout.addWidget(splitter, 1)
        self.session.corpus_changed.connect(self._on_corpus_changed)

    # ---- builders ----

    def _build_source_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.open_button = QPushButton("Open text file…", objectName="openFileButton")
        self.open_button.setAccessibleName("Open text file")
        self.open_button.setToolTip(
            "Choose a plain-text file (a book, your notes, source code…) for the model to "
            "learn from. The more text, the better it learns general patterns: aim for "
            "100,000 characters or more. You can also drop a file on the window.")
        self.open_button.clicked.connect(self._on_open_clicked)
        row.addWidget(self.open_button)
        self.sample_combo = QComboBox(objectName="sampleCorpusCombo")
        self.sample_combo.setAccessibleName("Built-in sample text")
        self.sample_combo.addItem(SAMPLE_PROMPT)
        self.sample_combo.addItems(list(SAMPLE_CORPORA))
        self.sample_combo.setToolTip(
            "Texts built from this Python installation, ready to train on without finding "
            "a file: English prose (the Python documentation) or program code (the "
            "standard library). Code teaches the model indentation and brackets; prose "
            "teaches it words and sentences.")
        self.sample_combo.activated.connect(self._on_sample_chosen)
        row.addWidget(self.sample_combo)
        row.addStretch(1)
        split_label = QLabel("Validation share:")
        row.addWidget(split_label)
        self.val_split_spin = QSpinBox(objectName="valSplitSpin")
        self.val_split_spin.setAccessibleName("Validation share in percent")
        self.val_split_spin.setRange(1, 50)
        self.val_split_spin.setSuffix(" %")
        self.val_split_spin.setValue(round(self.session.val_fraction * 100))
        self.val_split_spin.setToolTip(
            "The last part of the text is kept aside and never trained on. Measuring the "
            "loss on it shows whether the model learns patterns that carry over to new "
            "text or only memorises. 10 % is usual; use more for a small text you want "
            "an honest check on, less when every character of training text counts.")
        split_label.setBuddy(self.val_split_spin)
        self.val_split_spin.valueChanged.connect(self._on_val_split_changed)
        row.addWidget(self.val_split_spin)
        return row

    def _build_summary(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.stats_label = QLabel("No text loaded yet. Open a file or pick a built-in sample.",
                                  objectName="corpusStats")
        self.stats_label.setAccessibleName("Text statistics")
        self.stats_label.setToolTip(
            "How much text there is and how many characters are in its vocabulary: every "
            "character that occurs at least once. The vocabulary is the model's input and "
            "output size: it gives one probability to each of these characters.")
        self.stats_label.setWordWrap(True)
        self.stats_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.stats_label)
        self.baseline_label = QLabel(objectName="baselineLosses")
        self.baseline_label.setAccessibleName("Losses of the simplest guessers")
        self.baseline_label.setToolTip(
            "The loss is the mean of −ln p, where p is the probability a model gave the "
            "character that really came next (nats per character; bits = nats / ln 2). "
            "Guessing every character alike gives ln V for V characters in the vocabulary. "
            "Knowing how often each character occurs, and nothing of what came before, gives "
            "the text's letter-frequency entropy, always lower. Training must beat both.")
        self.baseline_label.setWordWrap(True)
        self.baseline_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.baseline_label.setVisible(False)
        layout.addWidget(self.baseline_label)
        self.frequency_plot = pg.PlotWidget(objectName="charFrequencyPlot")
        self.frequency_plot.setAccessibleName("Most frequent characters")
        self.frequency_plot.setToolTip(
            "The most frequent characters and how often they occur (␣ space, ⏎ new line, "
            "⇥ tab). A model that learnt only these frequencies would already beat guessing "
            "every character alike: see the losses to beat above the chart.")
        self.frequency_plot.setTitle("Most frequent characters")
        self.frequency_plot.setLabel("left", "occurrences")
        self.frequency_plot.setMouseEnabled(x=False, y=False)
        self.frequency_plot.hideButtons()
        self.frequency_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#3182ce")
        self.frequency_plot.addItem(self.frequency_bars)
        layout.addWidget(self.frequency_plot, 1)
        return box

    def _build_preview(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.preview_note = QLabel("Preview", objectName="previewNote")
        layout.addWidget(self.preview_note)
        self.preview = QPlainTextEdit(objectName="corpusPreview")
        self.preview.setAccessibleName("Text preview")
        self.preview.setToolTip(
            "The start of the text exactly as the model will see it. Check that accents "
            "and symbols look right: a wrong encoding shows up here first.")
        self.preview.setReadOnly(True)
        self.preview.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        layout.addWidget(self.preview, 1)
        return box

    # ---- public API ----

    def open_file(self, path: str | None = None) -> None:
        """Load `path`, or ask for a file with the standard dialog when it is None."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open Text", self.last_folder,
                                                  TEXT_FILTER)
            if not path:
                return
        self.load_path(path)

    def load_path(self, path: str | os.PathLike) -> None:
        """Read and analyse a text file in a worker; the corpus changes when it succeeds."""
        path = str(path)
        self.last_folder = str(Path(path).parent)
        self._start_loading(load_text_file, path, Path(path).name, determinate=True)

    def load_sample(self, name: str) -> None:
        """Load one of microlm.SAMPLE_CORPORA in a worker."""
        self._start_loading(load_sample_corpus, name, name, determinate=False)

    @property
    def is_loading(self) -> bool:
        return self._load_worker is not None

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        self._pending = None
        return stop_and_wait(self._load_worker, timeout_ms)

    # ---- loading ----

    def _start_loading(self, load: Callable[..., LoadedCorpus], source: str, name: str,
                       determinate: bool) -> None:
        if self._load_worker is not None:
            # One load at a time, so every signal comes from the load in progress. The
            # newest request wins: the running one is told to drop its result.
            self._pending = (load, source, name, determinate)
            _stop_quietly(self._load_worker)
            return

        def job(progress: Callable[[float], None] | None = None) -> LoadedCorpus:
            return load(source, progress=progress or worker.progressed.emit)

        worker = TaskWorker(job)
        worker.progressed.connect(self._on_load_progressed)
        worker.succeeded.connect(self._on_load_succeeded)
        worker.failed.connect(self._on_load_failed)
        worker.finished.connect(self._on_load_finished)
        self._load_worker = worker
        self._loading_name = name
        self.progress.setRange(0, 1000 if determinate else 0)  # 0..0: a busy indicator
        self.progress.setValue(0)
        self.progress.setFormat(f"Loading {name}… %p%")
        self.progress.setVisible(True)
        self._load_thread = start_worker(worker)

    @Slot(float)
    def _on_load_progressed(self, fraction: float) -> None:
        self.progress.setValue(round(fraction * 1000))

    @Slot(object)
    def _on_load_succeeded(self, loaded: LoadedCorpus) -> None:
        if self._pending is not None:  # a newer request replaces this result
            return
        self.session.set_corpus(loaded.corpus, loaded.stats, loaded.tokenizer)
        stats = loaded.stats
        self._show_status(f"Loaded {self._loading_name}: {stats.characters:,} characters, "
                          f"{stats.unique_characters} characters in the vocabulary.")

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        if self._pending is None:
            QMessageBox.warning(self, "Could not load the text", message)

    @Slot()
    def _on_load_finished(self) -> None:
        wait_for_thread_end(self._load_thread)
        self._load_worker = self._load_thread = None
        self.progress.setVisible(False)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._start_loading(*pending)

    # ---- reacting to the session ----

    @Slot()
    def _on_corpus_changed(self) -> None:
        corpus, stats = self.session.corpus, self.session.corpus_stats
        if corpus is None or stats is None:
            return
        self._show_warnings(corpus)
        self._show_stats()
        self._show_frequencies(stats)
        self.baseline_label.setText(baseline_text(stats))
        self.baseline_label.setVisible(True)
        shown = corpus.text[:PREVIEW_CHARS]
        self.preview.setPlainText(shown)
        if len(corpus.text) > PREVIEW_CHARS:
            self.preview_note.setText(f"Preview: the first {PREVIEW_CHARS:,} of "
                                      f"{len(corpus.text):,} characters (truncated)")
        else:
            self.preview_note.setText(f"Preview: the whole text ({len(corpus.text):,} "
                                      f"characters)")
        if corpus.source in SAMPLE_CORPORA:
            self.sample_combo.setCurrentText(corpus.source)
        else:
            self.sample_combo.setCurrentIndex(0)

    @Slot(int)
    def _on_val_split_changed(self, percent: int) -> None:
        fraction = percent / 100
        self.session.val_fraction = fraction
        self.session.set_configs(
            training_config=replace(self.session.training_config, val_fraction=fraction))
        self._show_stats()

    @Slot()
    def _on_open_clicked(self) -> None:
        self.open_file()

    @Slot(int)
    def _on_sample_chosen(self, index: int) -> None:
        if index > 0:
            self.load_sample(self.sample_combo.itemText(index))

    # ---- drawing ----

    def _show_stats(self) -> None:
        corpus, stats = self.session.corpus, self.session.corpus_stats
        if corpus is None or stats is None:
            return
        train, validation = split_sizes(stats.characters, self.session.val_fraction)
        source = corpus.source if corpus.source in SAMPLE_CORPORA else Path(corpus.source).name
        rows = [
            ("Text", source),
            ("Encoding", corpus.encoding),
            ("Characters", f"{stats.characters:,}"),
            ("Lines", f"{stats.lines:,}"),
            ("Vocabulary", f"{stats.unique_characters:,} characters"),
            ("Training characters", f"{train:,}"),
            ("Validation characters", f"{validation:,}"),
        ]
        self.stats_label.setText(
            "<table cellspacing='2'>"
            + "".join(f"<tr><td><b>{name}</b>&nbsp;&nbsp;</td><td>{_escape(value)}</td></tr>"
                      for name, value in rows)
            + "</table>")

    def _show_warnings(self, corpus: Corpus) -> None:
        notes = list(corpus.warnings)
        if corpus.used_fallback_encoding and not any(corpus.encoding in n for n in notes):
            notes.append(f"The file is not UTF-8; it was read as {corpus.encoding}.")
        self.warning_label.setText("\n".join(f"⚠ {note}" for note in notes))
        self.warning_label.setVisible(bool(notes))

    def _show_frequencies(self, stats: CorpusStats) -> None:
        common = stats.most_common(CHART_CHARS)
        positions = np.arange(len(common))
        counts = np.array([count for _, count in common], dtype=float)
        self.frequency_bars.setOpts(x=positions, height=counts, width=0.8)
        axis = self.frequency_plot.getAxis("bottom")
        axis.setTicks([[(i, visible_char(char)) for i, (char, _) in enumerate(common)]])
        self.frequency_plot.setXRange(-0.6, max(len(common) - 0.4, 0.6), padding=0)
        self.frequency_plot.setYRange(0, max(counts.max() if len(counts) else 1, 1) * 1.05,
                                      padding=0)

    def _show_status(self, message: str) -> None:
        window = self.window()
        if isinstance(window, QMainWindow) and window.statusBar() is not None:
            window.statusBar().showMessage(message, 6000)


def _stop_quietly(worker: TaskWorker) -> None:
    try:
        worker.stop()
    except RuntimeError:  # already deleted: it has finished
        pass


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
