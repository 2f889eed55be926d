"""The Surprise page of the Inspect tab: a text coloured by how surprised the model was by
each character (its loss there, in bits), with the mean; hovering a character shows what
the model expected instead."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from microlm import CharacterTokenizer, MicroLM, read_corpus
from microlm.surprise import SurpriseMap, surprise_map
from microlm.units import LN2, perplexity_words

from .coloured_text import ColouredText
from .page import Computations, InspectPage, display_char, show_unknown_characters

SURPRISE_CHARS = 50_000  # characters of a text mapped (the start of a longer one)
SCALE_BITS = 8.0  # surprise shown at the darkest colour; a blind guess among 256 characters
# White through yellow and orange to dark orange (ColorBrewer's YlOrBr): each step darker
# than the one before, so the order reads without telling hues apart (colour-blind safe),
# and black text stays readable on the darkest.
COLOUR_STOPS = ((0.0, (255, 255, 255)), (0.35, (254, 227, 145)), (0.7, (254, 153, 41)),
                (1.0, (204, 76, 2)))
DEFAULT_SURPRISE_TEXT = "The quick brown fox jumps over the lazy dog."


def surprise_colour(bits: float) -> QColor:
    """White for no surprise, through yellow and orange, to dark orange at SCALE_BITS and
    beyond."""
    share = min(1.0, max(0.0, bits / SCALE_BITS))
    for (low, low_rgb), (high, high_rgb) in zip(COLOUR_STOPS, COLOUR_STOPS[1:], strict=False):
        if share <= high:
            mix = (share - low) / (high - low)
            return QColor(*(int(round(a + (b - a) * mix)) for a, b in zip(low_rgb, high_rgb,
                                                                           strict=True)))
    return QColor(*COLOUR_STOPS[-1][1])


def read_and_map(model: MicroLM, tokenizer: CharacterTokenizer,
                 path: str) -> tuple[str, SurpriseMap]:
    """Read a text file (its first SURPRISE_CHARS characters) and map it; in a worker."""
    text = read_corpus(path).text[:SURPRISE_CHARS]
    return text, surprise_map(model, tokenizer, text)


class SurprisePage(InspectPage):
    """A text to read, the mean surprise and the coloured text."""

    title = "Surprise"

    def __init__(self, computations: Computations, parent: QWidget | None = None) -> None:
        super().__init__(computations, parent)
        self._map: SurpriseMap | None = None
        column = QVBoxLayout(self)
        self.surprise_status = self._status_label("surpriseStatus")
        column.addWidget(self.surprise_status)
        column.addLayout(self._build_source())
        self.surprise_input = QPlainTextEdit(DEFAULT_SURPRISE_TEXT)
        self.surprise_input.setObjectName("surpriseTextEdit")
        self.surprise_input.setAccessibleName("Text to measure the model's surprise on")
        self.surprise_input.setToolTip("Paste or type any text; the model reads it once and "
                                       "each character is coloured by its surprise.")
        self.surprise_input.setMaximumHeight(70)
        self.surprise_input.textChanged.connect(self._on_surprise_text_changed)
        column.addWidget(self.surprise_input)
        column.addLayout(self._build_summary())
        self.surprise_view = ColouredText(self._char_tooltip)
        self.surprise_view.setObjectName("surpriseView")
        self.surprise_view.setAccessibleName("Text coloured by the model's surprise")
        self.surprise_view.setToolTip(
            "Each character's background shows how surprised the model was to read it, "
            "knowing everything before it: white when it expected it, yellow, orange, then "
            "dark orange the less it did. "
            "Hover a character for what the model expected there.")
        column.addWidget(self.surprise_view, 1)
        self._surprise_timer = self._typing_pause(self._request_surprise)

    # ----------------------------------------------------------------- building
    def _build_source(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.validation_button = QPushButton("Validation text")
        self.validation_button.setObjectName("surpriseValidationButton")
        self.validation_button.setToolTip("Map the validation part of the loaded text: what "
                                          "the model did not train on.")
        self.validation_button.clicked.connect(self._on_validation_clicked)
        self.open_button = QPushButton("Open text file…")
        self.open_button.setObjectName("surpriseOpenButton")
        self.open_button.setToolTip(f"Map a text file (its first {SURPRISE_CHARS:,} "
                                    f"characters).")
        self.open_button.clicked.connect(self._on_open_clicked)
        self.surprise_source = QLabel()
        self.surprise_source.setObjectName("surpriseSource")
        self.surprise_source.setWordWrap(True)
        row.addWidget(self.validation_button)
        row.addWidget(self.open_button)
        row.addWidget(self.surprise_source, 1)
        return row

    def _build_summary(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.surprise_mean = QLabel()
        self.surprise_mean.setObjectName("surpriseMean")
        self.surprise_mean.setWordWrap(True)
        self.surprise_mean.setToolTip(
            "Surprise is -log2 p, where p is the probability the model gave the character "
            "that came: 0 bits when it was sure and right, 1 bit for a coin flip. The mean "
            "over a text is the model's loss on it, in bits per character.")
        row.addWidget(self.surprise_mean, 1)
        legend = QLabel(f"white: expected (0 bits)  →  dark orange: a surprise of "
                        f"{SCALE_BITS:g} bits or more")
        legend.setObjectName("surpriseLegend")
        stops = ", ".join(f"stop:{share} rgb{rgb}" for share, rgb in COLOUR_STOPS)
        legend.setStyleSheet("QLabel { padding: 3px 10px; color: black; background: "
                             f"qlineargradient(x1:0, y1:0, x2:1, y2:0, {stops}); }}")
        legend.setAccessibleName("What the colours mean")
        legend.setToolTip("White: the model expected this character; the darker the orange, "
                          "the smaller the probability it gave it; darkest at "
                          f"{SCALE_BITS:g} bits, a probability of 2^-{SCALE_BITS:g} = 1 in "
                          f"{2 ** SCALE_BITS:,.0f}.")
        row.addWidget(legend)
        return row

    # ----------------------------------------------------------------- model
    def _on_model_changed(self) -> None:
        self._map = None
        ready = self.inspected.ready
        for widget in (self.surprise_input, self.open_button):
            widget.setEnabled(ready)
        self.validation_button.setEnabled(ready and bool(self.inspected.validation_text))
        self.surprise_view.clear()
        self.surprise_mean.clear()
        if ready:
            self._on_validation_clicked()

    def _on_validation_clicked(self) -> None:
        validation = self.inspected.validation_text
        if validation:
            self._set_text(validation[:SURPRISE_CHARS])
            self.surprise_source.setText(
                f"The validation part of {self.inspected.text_source} (the first "
                f"{min(len(validation), SURPRISE_CHARS):,} characters): text the model did "
                f"not train on.")
        else:
            self.surprise_source.setText("Load the text the model learned from (Data tab) "
                                         "to map its validation part, or paste a text below.")
        self._request_surprise()

    def _on_open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a text to map", "",
                                              "Text files (*.txt *.md *.py);;All files (*)")
        model, tokenizer = self.inspected.model, self.inspected.tokenizer
        if not path or model is None or tokenizer is None:
            return
        self.surprise_source.setText(f"{path} (reading…)")
        self.computations.run("surprise", read_and_map, model, tokenizer, path,
                              on_result=self._on_file_mapped)

    def _set_text(self, text: str) -> None:
        self.surprise_input.blockSignals(True)
        self.surprise_input.setPlainText(text)
        self.surprise_input.blockSignals(False)

    # ----------------------------------------------------------------- computing
    def _on_surprise_text_changed(self) -> None:
        self.surprise_source.setText("Your own text.")
        self._surprise_timer.start()

    def _request_surprise(self) -> None:
        model, tokenizer = self.inspected.model, self.inspected.tokenizer
        if model is None or tokenizer is None:
            return
        text = self.surprise_input.toPlainText()[:SURPRISE_CHARS]
        show_unknown_characters(self.surprise_status, tokenizer, text, "text")
        self.surprise_mean.setText("Reading the text…")
        self.computations.run("surprise", surprise_map, model, tokenizer, text,
                              on_result=self._on_surprise_computed)

    def _on_file_mapped(self, tagged_result: tuple[int, Any]) -> None:
        result = self._accept("surprise", tagged_result)
        if result is None:
            return
        text, mapped = result
        self._set_text(text)
        self.surprise_source.setText(self.surprise_source.text().replace(" (reading…)", ""))
        self._show_map(mapped)

    def _on_surprise_computed(self, tagged_result: tuple[int, Any]) -> None:
        mapped = self._accept("surprise", tagged_result)
        if mapped is not None:
            self._show_map(mapped)

    # ----------------------------------------------------------------- drawing
    def _show_map(self, mapped: SurpriseMap) -> None:
        self._map = mapped
        vocabulary = len(mapped.chars)
        self.surprise_mean.setText(
            f"<b>Mean surprise: {mapped.mean_bits:.3f} bits per character</b> "
            f"({mapped.mean_bits * LN2:.3f} nats) over {len(mapped.bits):,} "
            f"characters: the model's loss on this text, "
            f"{perplexity_words(mapped.mean_bits * LN2)} (0 bits = always sure and right; "
            f"{math.log2(vocabulary):.1f} bits = a blind guess among the {vocabulary} "
            f"characters of its vocabulary).")
        colours = [surprise_colour(float(bits)) for bits in mapped.bits]
        self.surprise_view.show_text(mapped.text, colours)

    def _char_tooltip(self, index: int) -> str:
        mapped = self._map
        if mapped is None or index >= len(mapped.bits):
            return ""
        lines = [f"'{display_char(mapped.text[index])}': {float(mapped.bits[index]):.2f} bits "
                 f"(the model gave it {mapped.probability(index):.1%})", "It expected:"]
        lines += [f"   '{display_char(char)}'  {p:.1%}" for char, p in mapped.expectations(index)]
        return "\n".join(lines)
