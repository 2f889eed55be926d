"""The Activations page of the Inspect tab: a text coloured by one neuron's value after
each character, beside the neurons that respond most."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSpinBox,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from microlm import CharacterTokenizer, MicroLM
from microlm.inspection import ActivationTrace, activations, top_neurons

from .page import WHITESPACE_SYMBOLS, Computations, InspectPage, display_char

TOP_NEURONS = 10
DEFAULT_ACTIVATION_TEXT = ('The quick brown fox jumps over the lazy dog.\n'
                           '(It said "hello", twice.)')
ACTIVATION_KINDS = {"cell": "cell state (memory)", "hidden": "hidden state (output)"}
ZERO_CENTRED_TIP = "White is zero; the strongest colour is the largest value in this text."
AVERAGE_CENTRED_TIP = ("This neuron stays far from zero over the text, so white is its average "
                       "here: red where it rises above it, blue where it falls below.")


def activation_colour(value: float, scale: float) -> QColor:
    """Blue for negative values, white near zero, red for positive; pale enough to read."""
    strength = min(1.0, abs(value) / scale) * 0.7 if scale > 0 else 0.0
    fade = int(round(255 * (1 - strength)))
    return QColor(255, fade, fade) if value >= 0 else QColor(fade, fade, 255)


def colour_centre(series: np.ndarray) -> float:
    """The value shown white: zero, unless the neuron stays far from zero over the text
    (its average is further from zero than its typical swing), as gates (0 to 1) and
    drifting memory cells do; then its average, so that the text shows where it rises
    and falls instead of one colour throughout."""
    if series.size == 0:
        return 0.0
    mean, spread = float(series.mean()), float(series.std())
    return 0.0 if abs(mean) <= spread else mean


def trace_with_top_neurons(model: MicroLM, tokenizer: CharacterTokenizer,
                           text: str) -> tuple[ActivationTrace, dict]:
    """The activations over `text` and, per (layer, kind), its most responsive neurons."""
    trace = activations(model, tokenizer, text, on_unknown="drop")
    ranked = {(layer, kind): top_neurons(trace, layer, kind, TOP_NEURONS)
              for layer in range(len(trace.layers)) for kind in ACTIVATION_KINDS}
    return trace, ranked


class ActivationPage(InspectPage):
    """The text to read, the choice of layer, kind and neuron, the coloured text and the
    list of the neurons that respond most."""

    title = "Activations"

    def __init__(self, computations: Computations, parent: QWidget | None = None) -> None:
        super().__init__(computations, parent)
        self._trace: ActivationTrace | None = None
        self._ranked: dict = {}  # (layer, kind) -> [(neuron, score)], most responsive first
        column = QVBoxLayout(self)
        self.activation_status = self._status_label("activationStatus")
        column.addWidget(self.activation_status)
        column.addWidget(self._build_text_input())
        column.addLayout(self._build_controls())
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self._build_coloured_text())
        views.addWidget(self._build_top_neurons())
        views.setSizes([860, 260])
        column.addWidget(views, 1)
        self._activation_timer = self._typing_pause(self._request_activations)

    # ----------------------------------------------------------------- building
    def _build_text_input(self) -> QWidget:
        self.activation_input = QPlainTextEdit(DEFAULT_ACTIVATION_TEXT)
        self.activation_input.setObjectName("activationTextEdit")
        self.activation_input.setAccessibleName("Text to run through the model")
        self.activation_input.setToolTip(
            "Type any text: the model reads it one character at a time and you see how one "
            "neuron's value changes as it goes. Try quotes, brackets or new lines: some "
            "neurons learn to track them.")
        self.activation_input.setMaximumHeight(70)
        self.activation_input.textChanged.connect(self._on_activation_text_changed)
        return self.activation_input

    def _build_controls(self) -> QHBoxLayout:
        controls = QHBoxLayout()
        self.activation_kind_combo = QComboBox()
        self.activation_kind_combo.setObjectName("activationKindCombo")
        self.activation_kind_combo.setAccessibleName("Activation kind")
        for kind, label in ACTIVATION_KINDS.items():
            self.activation_kind_combo.addItem(label, kind)
        self.activation_kind_combo.setToolTip(
            "The cell state is the LSTM's memory, carried from character to character; the "
            "hidden state is what the layer passes on (the memory filtered by the output gate).")
        self.activation_kind_combo.currentIndexChanged.connect(self._on_activation_kind_changed)
        self.layer_spin = QSpinBox()
        self.layer_spin.setObjectName("activationLayerSpin")
        self.layer_spin.setAccessibleName("LSTM layer")
        self.layer_spin.setToolTip("Which LSTM layer to look at (0 = the one that reads the "
                                   "characters; higher layers see the layer below).")
        self.layer_spin.valueChanged.connect(self._on_layer_changed)
        self.neuron_spin = QSpinBox()
        self.neuron_spin.setObjectName("activationNeuronSpin")
        self.neuron_spin.setAccessibleName("Neuron")
        self.neuron_spin.setToolTip("Which unit of the layer colours the text. Pick one from "
                                    "the list of strongest responders to find interesting "
                                    "ones quickly.")
        self.neuron_spin.valueChanged.connect(self._on_neuron_changed)
        for label, widget in (("Show", self.activation_kind_combo), ("Layer", self.layer_spin),
                              ("Neuron", self.neuron_spin)):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        controls.addStretch(1)
        self.activation_legend = QLabel()
        self.activation_legend.setObjectName("activationLegend")
        self.activation_legend.setStyleSheet(
            "QLabel { padding: 3px 10px; color: black; background: qlineargradient(x1:0, "
            f"y1:0, x2:1, y2:0, stop:0 {activation_colour(-1, 1).name()}, stop:0.5 #ffffff, "
            f"stop:1 {activation_colour(1, 1).name()}); }}")
        self.activation_legend.setToolTip(ZERO_CENTRED_TIP)
        controls.addWidget(self.activation_legend)
        return controls

    def _build_coloured_text(self) -> QWidget:
        self.activation_view = QTextEdit()
        self.activation_view.setObjectName("activationView")
        self.activation_view.setAccessibleName("Text coloured by a neuron")
        self.activation_view.setReadOnly(True)
        font = QFont("Monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        font.setPointSize(font.pointSize() + 3)
        self.activation_view.setFont(font)
        self.activation_view.setToolTip(
            "Each character's background shows the chosen neuron's value right after the "
            "model read it: red positive, blue negative, white near zero (or, for a neuron "
            "that stays far from zero, red above and blue below its average: see the "
            "legend). Hover a character for the number.")
        return self.activation_view

    def _build_top_neurons(self) -> QWidget:
        neurons = QWidget()
        neuron_column = QVBoxLayout(neurons)
        neuron_column.setContentsMargins(0, 0, 0, 0)
        neuron_column.addWidget(QLabel("Neurons that respond most"))
        self.top_neurons_list = QListWidget()
        self.top_neurons_list.setObjectName("topNeuronsList")
        self.top_neurons_list.setAccessibleName("Neurons that respond most")
        self.top_neurons_list.setToolTip(
            "The neurons whose value changes most over this text (mean distance from their "
            "own average). Click one to colour the text by it.")
        self.top_neurons_list.itemClicked.connect(self._on_top_neuron_clicked)
        neuron_column.addWidget(self.top_neurons_list)
        return neurons

    # ----------------------------------------------------------------- model
    def _on_model_changed(self) -> None:
        self._trace, self._ranked = None, {}
        for widget in (self.activation_input, self.layer_spin, self.neuron_spin,
                       self.activation_kind_combo):
            widget.setEnabled(self.inspected.ready)
        self.activation_view.clear()
        self.top_neurons_list.clear()
        if not self.inspected.ready:
            return
        config = self.inspected.model.config
        self.layer_spin.setRange(0, config.num_layers - 1)
        self.neuron_spin.setRange(0, config.hidden_dim - 1)
        self._request_activations()

    # ----------------------------------------------------------------- computing
    def _on_activation_text_changed(self) -> None:
        self._activation_timer.start()

    def _request_activations(self) -> None:
        model, tokenizer = self.inspected.model, self.inspected.tokenizer
        if model is None or tokenizer is None:
            return
        text = self.activation_input.toPlainText()
        unknown = tokenizer.unknown_characters(text)
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown[:10])
            self.activation_status.setText(f"{shown} not in the model's vocabulary — dropped "
                                           f"from the text.")
        self.activation_status.setVisible(bool(unknown))
        self.computations.run("activations", trace_with_top_neurons, model, tokenizer, text,
                              on_result=self._on_activations_computed)

    def _on_activations_computed(self, tagged_result: tuple[int, Any]) -> None:
        result = self._accept("activations", tagged_result)
        if result is None:
            return
        (trace, ranked) = result
        first_trace = self._trace is None
        self._trace, self._ranked = trace, ranked
        if first_trace:  # start on the neuron that responds most, not on neuron 0
            self._select_top_neuron()
        self._draw_top_neurons()
        self._draw_activations()

    # ----------------------------------------------------------------- choosing a neuron
    def _select_top_neuron(self) -> None:
        """Show the neuron that responds most in the chosen layer and kind (a neuron
        number means nothing across layers, so a new layer starts on its own best)."""
        best = self._ranked.get((self.layer_spin.value(), self._activation_kind()))
        if best:
            self.neuron_spin.blockSignals(True)
            self.neuron_spin.setValue(best[0][0])
            self.neuron_spin.blockSignals(False)

    def _on_layer_changed(self, _layer: int) -> None:
        self._select_top_neuron()
        self._draw_top_neurons()
        self._draw_activations()

    def _on_activation_kind_changed(self, _index: int) -> None:
        self._select_top_neuron()
        self._draw_top_neurons()
        self._draw_activations()

    def _on_neuron_changed(self, _neuron: int) -> None:
        self._mark_current_neuron()
        self._draw_activations()

    def _mark_current_neuron(self) -> None:
        """Highlight the shown neuron in the list of top neurons (none if it is not one)."""
        self.top_neurons_list.setCurrentRow(-1)
        for row in range(self.top_neurons_list.count()):
            item = self.top_neurons_list.item(row)
            if int(item.data(Qt.ItemDataRole.UserRole)) == self.neuron_spin.value():
                self.top_neurons_list.setCurrentRow(row)
                break

    def _on_top_neuron_clicked(self, item: QListWidgetItem) -> None:
        self.neuron_spin.setValue(int(item.data(Qt.ItemDataRole.UserRole)))

    def _activation_kind(self) -> str:
        return self.activation_kind_combo.currentData() or "cell"

    # ----------------------------------------------------------------- drawing
    def _draw_top_neurons(self) -> None:
        self.top_neurons_list.clear()
        key = (self.layer_spin.value(), self._activation_kind())
        for neuron, score in self._ranked.get(key, []):
            item = QListWidgetItem(f"neuron {neuron}   (varies by {score:.3f})")
            item.setData(Qt.ItemDataRole.UserRole, neuron)
            self.top_neurons_list.addItem(item)
        self._mark_current_neuron()

    def _draw_activations(self) -> None:
        """Colour each character by the chosen neuron's value after reading it."""
        self.activation_view.clear()
        trace = self._trace
        layer = self.layer_spin.value()
        if trace is None or layer >= len(trace.layers):
            return
        values = getattr(trace.layers[layer], self._activation_kind())  # (T, hidden_dim)
        neuron = self.neuron_spin.value()
        if values.shape[0] == 0 or neuron >= values.shape[1]:
            return
        series = values[:, neuron]
        centre = colour_centre(series)
        scale = float(np.abs(series - centre).max())
        if centre == 0.0:
            self.activation_legend.setText(f"−{scale:.2f}  ←  blue · 0 · red  →  +{scale:.2f}")
            self.activation_legend.setToolTip(ZERO_CENTRED_TIP)
        else:
            self.activation_legend.setText(f"{centre - scale:.2f}  ←  blue · average "
                                           f"{centre:.2f} · red  →  {centre + scale:.2f}")
            self.activation_legend.setToolTip(AVERAGE_CENTRED_TIP)
        cursor = QTextCursor(self.activation_view.document())
        cursor.beginEditBlock()
        for char, value in zip(trace.chars, series, strict=True):
            char_format = QTextCharFormat()
            char_format.setBackground(activation_colour(float(value) - centre, scale))
            char_format.setToolTip(f"{display_char(char)}: {float(value):+.3f}")
            cursor.insertText(display_char(char) if char in WHITESPACE_SYMBOLS and char != " "
                              else char, char_format)
            if char == "\n":  # the ⏎ carries the colour; then really start a new line
                cursor.insertText("\n", QTextCharFormat())
        cursor.endEditBlock()
