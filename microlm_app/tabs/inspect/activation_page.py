"""The Activations page of the Inspect tab: a text coloured by one neuron's value after each
character, the neurons named by the text feature they follow (drawn beneath the text), one
character computed step by step, and how saturated the gates are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from microlm import CharacterTokenizer, MicroLM, ModelConfig
from microlm.inspection import ActivationTrace, activations, gate_extremes
from microlm.naming import lstm_layer_label
from microlm.neurons import STATES, Feature, NeuronName, NeuronNames, neuron_names
from microlm.stepwise import step_by_step

from .coloured_text import ColouredText
from .gate_chart import GateChart
from .neuron_table import NeuronTable, r_text
from .page import Computations, InspectPage, display_char, show_unknown_characters
from .step_panel import StepPanel

ACTIVATION_CHARS = 10_000  # characters of the validation text read by default
MIN_ACTIVATION_CHARS = 2_000  # ... and by default at least, however large the model
TRACE_BYTES = 200 * 2**20  # what the recorded states and gates of that text may take
DEFAULT_ACTIVATION_TEXT = ('The quick brown fox jumps over the lazy dog.\n'
                           '(It said "hello", twice.)')
ACTIVATION_KINDS = {"cell": "cell state (memory)", "hidden": "hidden state (output)",
                    "input_gate": "input gate", "forget_gate": "forget gate",
                    "cell_candidate": "candidate (new content)", "output_gate": "output gate"}
FEATURE_GREEN = (46, 160, 67)  # the colour of a feature at its largest value
# A blue-orange diverging scale (ColorBrewer's PuOr/RdBu ends): told apart by people with
# any common colour-vision deficiency, unlike red and green (or red and blue for some).
POSITIVE_ORANGE, NEGATIVE_BLUE = (230, 97, 1), (33, 102, 172)
STRONGEST_SHARE = 0.7  # the strongest colour is this far from white: the text stays readable
ZERO_CENTRED_TIP = ("Orange: this neuron fires strongly positive after that character; blue: "
                    "strongly negative; white: near zero. The strongest colour is the largest "
                    "value (positive or negative) in this text.")
AVERAGE_CENTRED_TIP = ("This neuron stays far from zero over the whole text, so one colour "
                       "would tell nothing: white is its average here instead, orange where it "
                       "rises above that average, blue where it falls below.")
NO_FEATURE_CAPTION = ("Choose a neuron in the table to see, beneath each line, the feature of "
                      "the text it follows.")


def activation_colour(value: float, scale: float) -> QColor:
    """Blue for negative values, white near zero, orange for positive (at `scale` and beyond
    the strongest); pale enough for black text to stay readable."""
    strength = min(1.0, abs(value) / scale) * STRONGEST_SHARE if scale > 0 else 0.0
    target = POSITIVE_ORANGE if value >= 0 else NEGATIVE_BLUE
    return QColor(*(int(round(255 + (channel - 255) * strength)) for channel in target))


def swatch(colour: QColor, text: str) -> str:
    """Rich text: `text` on a patch of `colour`, for a legend in words."""
    return (f"<span style='background-color: {colour.name()}; color: black'>"
            f"&nbsp;{text}&nbsp;</span>")


def legend_text(centre: float, scale: float) -> str:
    """The colour legend of a neuron coloured around `centre` with full colour at
    centre ± scale: what each colour means and its range in plain numbers."""
    orange, blue = activation_colour(1, 1), activation_colour(-1, 1)
    white = QColor(255, 255, 255)
    if centre == 0.0:
        return (f"{swatch(orange, 'orange')} fires strongly positive (up to "
                f"{scale:+.2f}) · {swatch(white, 'white')} near zero · "
                f"{swatch(blue, 'blue')} strongly negative (down to {-scale:+.2f})")
    return (f"{swatch(white, 'white')} its average here, {centre:.2f} · "
            f"{swatch(orange, 'orange')} above it (up to {centre + scale:.2f}) · "
            f"{swatch(blue, 'blue')} below it (down to {centre - scale:.2f})")


def feature_colour(value: float, scale: float) -> QColor:
    """White for 0, through paler greens, to FEATURE_GREEN at `scale` (features are >= 0)."""
    strength = min(1.0, max(0.0, value / scale)) if scale > 0 else 0.0
    return QColor(*(int(round(255 + (channel - 255) * strength)) for channel in FEATURE_GREEN))


def colour_centre(series: np.ndarray) -> float:
    """The value shown white: zero, unless the neuron stays far from zero over the text
    (its average is further from zero than its typical swing), as gates (0 to 1) and
    drifting memory cells do; then its average, so that the text shows where it rises
    and falls instead of one colour throughout."""
    if series.size == 0:
        return 0.0
    mean, spread = float(series.mean()), float(series.std())
    return 0.0 if abs(mean) <= spread else mean


def default_chars(config: ModelConfig) -> int:
    """How much of the validation text to read by default: ACTIVATION_CHARS, or fewer for a
    large model, so that its recorded states and gates (6 float32 numbers per neuron, layer
    and character) stay within TRACE_BYTES (~2,800 characters for 3 layers of 1,024)."""
    per_char = 6 * 4 * config.num_layers * config.hidden_dim
    return max(MIN_ACTIVATION_CHARS, min(ACTIVATION_CHARS, TRACE_BYTES // per_char))


@dataclass(frozen=True)
class ExplainedText:
    trace: ActivationTrace  # every layer's states and gates after each character
    names: NeuronNames  # each neuron's best feature
    gates: list[dict[str, tuple[float, float]]]  # gate_extremes: per layer, near 0 / near 1


def explain_text(model: MicroLM, tokenizer: CharacterTokenizer, text: str) -> ExplainedText:
    """What the page shows of a text, computed in a worker."""
    trace = activations(model, tokenizer, text, on_unknown="drop")
    return ExplainedText(trace, neuron_names(trace), gate_extremes(trace))


class ActivationPage(InspectPage):
    """The text to read and the choice of layer, kind and neuron above the coloured text;
    beside it the named neurons, the step-by-step computation and the gates."""

    title = "Activations"

    def __init__(self, computations: Computations, parent: QWidget | None = None) -> None:
        super().__init__(computations, parent)
        self._trace: ActivationTrace | None = None
        self._names: NeuronNames | None = None
        self._feature: Feature | None = None  # drawn beneath the text
        self._position = -1  # the character shown step by step
        column = QVBoxLayout(self)
        self.activation_status = self._status_label("activationStatus")
        column.addWidget(self.activation_status)
        self.text_source = QLabel()
        self.text_source.setObjectName("activationTextSource")
        column.addWidget(self.text_source)
        column.addWidget(self._build_text_input())
        column.addLayout(self._build_controls())
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self._build_coloured_text())
        views.addWidget(self._build_side())
        views.setSizes([640, 560])
        column.addWidget(views, 1)
        self._activation_timer = self._typing_pause(self._request_activations)

    # ----------------------------------------------------------------- building
    def _build_text_input(self) -> QWidget:
        self.activation_input = QPlainTextEdit(DEFAULT_ACTIVATION_TEXT)
        self.activation_input.setObjectName("activationTextEdit")
        self.activation_input.setAccessibleName("Text to run through the model")
        self.activation_input.setToolTip(
            "The model reads this text one character at a time; its neurons are named by "
            "what they follow in it. It starts as the validation part of the loaded text "
            "(which the model did not train on); type or paste any other.")
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
            "hidden state is what the layer passes on (the memory filtered by the output "
            "gate). The gates decide, per neuron and character, how much new content enters "
            "(input), how much memory is kept (forget) and shown (output); the candidate is "
            "the new content offered.")
        self.activation_kind_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.layer_spin = QSpinBox()
        self.layer_spin.setObjectName("activationLayerSpin")
        self.layer_spin.setAccessibleName("LSTM layer")
        self.layer_spin.setRange(1, 1)
        self.layer_spin.setToolTip("Which LSTM layer to look at (1 = the one that reads the "
                                   "characters; each higher layer reads the one below).")
        self.layer_spin.valueChanged.connect(self._on_choice_changed)
        self.neuron_spin = QSpinBox()
        self.neuron_spin.setObjectName("activationNeuronSpin")
        self.neuron_spin.setAccessibleName("Neuron")
        self.neuron_spin.setToolTip("Which unit of the layer colours the text. The table of "
                                    "named neurons finds interesting ones quickly.")
        self.neuron_spin.valueChanged.connect(self._on_choice_changed)
        for label, widget in (("Show", self.activation_kind_combo), ("LSTM layer", self.layer_spin),
                              ("Neuron", self.neuron_spin)):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        self.activation_legend = QLabel()
        self.activation_legend.setObjectName("activationLegend")
        self.activation_legend.setAccessibleName("What the colours mean")
        self.activation_legend.setTextFormat(Qt.TextFormat.RichText)
        self.activation_legend.setWordWrap(True)
        # on white, as the text is: the "white" of the legend is the page's own
        self.activation_legend.setStyleSheet("QLabel { background: white; color: black; "
                                             "border: 1px solid #b8b8b8; padding: 2px 6px; }")
        self.activation_legend.setToolTip(ZERO_CENTRED_TIP)
        controls.addWidget(self.activation_legend, 1)
        return controls

    def _build_coloured_text(self) -> QWidget:
        box = QWidget()
        text_column = QVBoxLayout(box)
        text_column.setContentsMargins(0, 0, 0, 0)
        self.activation_view = ColouredText(self._char_tooltip)
        self.activation_view.setObjectName("activationView")
        self.activation_view.setAccessibleName("Text coloured by a neuron")
        self.activation_view.setToolTip(
            "Each character's background shows the chosen neuron's value right after the "
            "model read it: orange positive, blue negative, white near zero (or, for a neuron "
            "that stays far from zero, orange above and blue below its average: see the "
            "legend). Click a character to see it computed step by step; ← and → move on.")
        self.activation_view.char_clicked.connect(self._on_char_clicked)
        self.activation_view.step_requested.connect(self._on_step_requested)
        text_column.addWidget(self.activation_view, 1)
        self.feature_caption = QLabel(NO_FEATURE_CAPTION)
        self.feature_caption.setObjectName("featureCaption")
        self.feature_caption.setWordWrap(True)
        text_column.addWidget(self.feature_caption)
        return box

    def _build_side(self) -> QWidget:
        self.side_tabs = QTabWidget()
        self.side_tabs.setObjectName("activationSideTabs")
        self.neuron_table = NeuronTable()
        self.neuron_table.neuron_chosen.connect(self._on_neuron_chosen)
        self.step_panel = StepPanel()
        self.gate_chart = GateChart()
        self.gate_chart.setObjectName("gateSaturation")
        self.side_tabs.addTab(self.neuron_table, "Named neurons")
        self.side_tabs.addTab(self.step_panel, "Step by step")
        self.side_tabs.addTab(self.gate_chart, "Gate saturation")
        return self.side_tabs

    # ----------------------------------------------------------------- model
    def _on_model_changed(self) -> None:
        self._trace, self._names, self._feature, self._position = None, None, None, -1
        for widget in (self.activation_input, self.layer_spin, self.neuron_spin,
                       self.activation_kind_combo):
            widget.setEnabled(self.inspected.ready)
        self.activation_view.clear()
        self.neuron_table.show_names(None)
        self.gate_chart.show_extremes(None)
        self.step_panel.clear()
        self._show_text_source()
        if not self.inspected.ready:
            return
        config = self.inspected.model.config
        self.layer_spin.setRange(1, config.num_layers)
        self.neuron_spin.setRange(0, config.hidden_dim - 1)
        if self.inspected.validation_text:
            self.activation_input.blockSignals(True)
            self.activation_input.setPlainText(
                self.inspected.validation_text[:default_chars(config)])
            self.activation_input.blockSignals(False)
        self._request_activations()

    def _show_text_source(self) -> None:
        self.text_source.setVisible(self.inspected.ready)
        validation = self.inspected.validation_text
        if validation and self.inspected.model is not None:
            shown = min(len(validation), default_chars(self.inspected.model.config))
            self.text_source.setText(
                f"The first {shown:,} characters of the "
                f"validation part of {self.inspected.text_source} (text the model did not "
                f"train on); type or paste any other text below.")
        else:
            self.text_source.setText(
                "Load the text the model learned from (Data tab) to read its validation "
                "part here: naming neurons needs a few thousand characters.")

    # ----------------------------------------------------------------- computing
    def _on_activation_text_changed(self) -> None:
        """The person's own text: say so, instead of naming the validation part."""
        chars = len(self.activation_input.toPlainText())
        self.text_source.setText(
            f"Your text ({chars:,} characters). Neurons are named on it"
            + ("; a few thousand characters give steadier names." if chars < 2_000 else "."))
        self._activation_timer.start()

    def _request_activations(self) -> None:
        model, tokenizer = self.inspected.model, self.inspected.tokenizer
        if model is None or tokenizer is None:
            return
        text = self.activation_input.toPlainText()
        show_unknown_characters(self.activation_status, tokenizer, text, "text")
        self.computations.run("activations", explain_text, model, tokenizer, text,
                              on_result=self._on_activations_computed)

    def _on_activations_computed(self, tagged_result: tuple[int, Any]) -> None:
        result: ExplainedText | None = self._accept("activations", tagged_result)
        if result is None:
            return
        first_trace = self._trace is None
        self._trace, self._names, self._position = result.trace, result.names, -1
        self.step_panel.clear()
        self.neuron_table.show_names(result.names)
        self.gate_chart.show_extremes(result.gates)
        best = result.names.best()
        if first_trace and best is not None:  # open on the best-named neuron, not neuron 0
            self._show_neuron(best.layer, best.state, best.neuron)
        self._on_choice_changed()

    def _request_step(self, position: int) -> None:
        model, tokenizer, trace = self.inspected.model, self.inspected.tokenizer, self._trace
        if model is None or tokenizer is None or trace is None:
            return
        self._position = position
        self.activation_view.select(position)
        self.side_tabs.setCurrentWidget(self.step_panel)
        self.computations.run("step", step_by_step, model, tokenizer, trace.text, position,
                              trace, on_result=self._on_step_computed)

    def _on_step_computed(self, tagged_result: tuple[int, Any]) -> None:
        step = self._accept("step", tagged_result)
        if step is not None and step.position == self._position:
            self.step_panel.show_step(step, self.neuron_spin.value())

    # ----------------------------------------------------------------- choosing
    def _show_neuron(self, layer: int, state: str, neuron: int) -> None:
        """Set the controls to this neuron without each change redrawing."""
        for widget in (self.layer_spin, self.activation_kind_combo, self.neuron_spin):
            widget.blockSignals(True)
        self.layer_spin.setValue(layer + 1)
        self.activation_kind_combo.setCurrentIndex(self.activation_kind_combo.findData(state))
        self.neuron_spin.setValue(neuron)
        for widget in (self.layer_spin, self.activation_kind_combo, self.neuron_spin):
            widget.blockSignals(False)

    def _on_neuron_chosen(self, name: NeuronName) -> None:
        self._show_neuron(name.layer, name.state, name.neuron)
        self._on_choice_changed()

    def _on_choice_changed(self, *_args: object) -> None:
        """A new layer, kind or neuron: its feature beneath the text, its row, its colours."""
        kind, layer, neuron = self._activation_kind(), self._layer(), self.neuron_spin.value()
        names = self._names
        self._feature = None
        if names is not None and kind in STATES and layer < names.correlations.shape[0]:
            self._feature = names.name_of(layer, kind, neuron).feature
        self.neuron_table.select(layer, kind, neuron)
        self._draw_activations()
        step = self.step_panel.step
        if step is not None:
            self.step_panel.show_step(step, neuron)

    def _on_char_clicked(self, index: int) -> None:
        self._request_step(index)

    def _on_step_requested(self, delta: int) -> None:
        if self._trace is not None and self._trace.chars:
            self._request_step(min(max(0, self._position + delta), len(self._trace.chars) - 1))

    def _layer(self) -> int:
        """The chosen LSTM layer's index (the spin box counts from 1, as people do)."""
        return self.layer_spin.value() - 1

    def _activation_kind(self) -> str:
        return self.activation_kind_combo.currentData() or "cell"

    # ----------------------------------------------------------------- drawing
    def _series(self) -> np.ndarray | None:
        """The chosen neuron's value after each character, or None."""
        trace, layer = self._trace, self._layer()
        if trace is None or layer >= len(trace.layers):
            return None
        values = getattr(trace.layers[layer], self._activation_kind())  # (T, hidden_dim)
        neuron = self.neuron_spin.value()
        if values.shape[0] == 0 or neuron >= values.shape[1]:
            return None
        return values[:, neuron]

    def _draw_activations(self) -> None:
        """Colour each character by the chosen neuron's value after reading it, with the
        neuron's feature in a second row beneath each line."""
        series = self._series()
        if series is None:
            self.activation_view.clear()
            return
        centre = colour_centre(series)
        scale = float(np.abs(series - centre).max())
        self.activation_legend.setText(legend_text(centre, scale))
        self.activation_legend.setToolTip(ZERO_CENTRED_TIP if centre == 0.0
                                          else AVERAGE_CENTRED_TIP)
        colours = [activation_colour(float(value) - centre, scale) for value in series]
        self.activation_view.show_text(self._trace.chars, colours, self._feature_row())
        if self._position >= 0:
            self.activation_view.select(self._position)

    def _feature_row(self) -> list[QColor] | None:
        feature, names, trace = self._feature, self._names, self._trace
        if feature is None or names is None or trace is None or names.text != trace.text:
            self.feature_caption.setText(NO_FEATURE_CAPTION)
            return None
        values = names.feature(feature.name)
        top = float(values.max()) if values.size else 0.0
        name = names.name_of(self._layer(), self._activation_kind(),
                             self.neuron_spin.value())
        self.feature_caption.setText(
            f"<span style='color: rgb{FEATURE_GREEN}'>▄</span> Beneath each line: "
            f"<b>{feature.phrase}</b>, from 0 (white) to {top:g} (green). This neuron follows "
            f"it with r = {r_text(name.r)}" + (" (it falls where the feature rises)."
                                              if name.r < 0 else "."))
        return [feature_colour(float(value), top) for value in values]

    def _char_tooltip(self, index: int) -> str:
        series, trace = self._series(), self._trace
        if series is None or trace is None or index >= len(series):
            return ""
        lines = [f"'{display_char(trace.chars[index])}' (character {index + 1:,}): "
                 f"{ACTIVATION_KINDS[self._activation_kind()]} of neuron "
                 f"{self.neuron_spin.value()}, {lstm_layer_label(self._layer())} = "
                 f"{float(series[index]):+.3f}"]
        if self._feature is not None and self._names is not None and \
                self._names.text == trace.text:
            value = float(self._names.feature(self._feature.name)[index])
            lines.append(f"{self._feature.phrase}: {value:g}")
        lines.append("Click to see this character computed step by step.")
        return "\n".join(lines)
