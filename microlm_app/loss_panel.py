"""LossPanel: the loss plot with its options (log scale, bits per character) and a line
saying what the loss means."""

from __future__ import annotations

import math

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from microlm import CharacterTokenizer, CorpusStats

from . import loss_words as words
from .loss_plot import LossPlot


class LossPanel(QWidget):
    """The Train tab's plot area: options above the plot, a hint below it."""

    units_changed = Signal(str)  # "nats" or "bits"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lossPanel")
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        options = QHBoxLayout()
        options.addStretch(1)
        self.log_scale_check = _check(
            "logScaleCheck", "Log scale", "Logarithmic loss axis",
            "Show the loss axis on a logarithmic scale. Late in training the loss changes by "
            "small amounts; a log scale makes those late improvements visible.")
        self.bits_check = _check(
            "bitsCheck", "Bits per character", "Show the loss in bits per character",
            f"<p>Checked: every loss on the plot and in the status line is in bits per "
            f"character; unchecked: in nats per character.</p><p>{words.UNITS_MEANING}</p>")
        options.addWidget(self.log_scale_check)
        options.addWidget(self.bits_check)
        column.addLayout(options)

        self.plot = LossPlot()
        self.plot.setMinimumHeight(220)
        column.addWidget(self.plot, stretch=1)

        self.hint = QLabel(words.PLOT_HINT)
        self.hint.setObjectName("lossHint")
        self.hint.setAccessibleName("What the loss means")
        self.hint.setToolTip(self.plot.toolTip())
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #555;")
        column.addWidget(self.hint)

        self.log_scale_check.toggled.connect(self._on_log_scale_changed)
        self.bits_check.toggled.connect(self._on_units_changed)

    @property
    def units(self) -> str:
        return self.plot.units

    def show_reference_losses(self, stats: CorpusStats | None,
                              tokenizer: CharacterTokenizer | None) -> None:
        """The simplest guessers' losses on the plot: from the loaded text's statistics, or
        only ln V of a model's own vocabulary when the model came without text."""
        if stats is not None:
            self.plot.set_reference_losses(stats.uniform_loss(), stats.unigram_entropy())
        elif tokenizer is not None:
            self.plot.set_reference_losses(math.log(tokenizer.vocab_size()), None)
        else:
            self.plot.set_reference_losses(None, None)

    def _on_log_scale_changed(self, checked: bool) -> None:
        self.plot.set_log_scale(checked)

    def _on_units_changed(self, checked: bool) -> None:
        self.plot.set_units("bits" if checked else "nats")
        self.units_changed.emit(self.plot.units)


def _check(name: str, text: str, accessible: str, tip: str) -> QCheckBox:
    check = QCheckBox(text)
    check.setObjectName(name)
    check.setAccessibleName(accessible)
    check.setToolTip(tip)
    return check
