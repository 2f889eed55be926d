"""The Inspect tab: look inside the model; microlm.inspection computes in workers, the tab draws."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from microlm import CharacterTokenizer, MicroLM
from microlm.inspection import (
    ActivationTrace,
    activations,
    analyze_parameters,
    embedding_projection,
    inspect_model,
    next_char_distribution,
    parameter_values,
    top_neurons,
)

from ..session import Session
from ..workers import TaskWorker, describe_error, start_worker, stop_and_wait

NO_MODEL_MESSAGE = ("No model to inspect yet. Train a model or open one "
                    "(File > Open Model…).")
HISTOGRAM_BINS = 60
NEXT_CHAR_BARS = 20
TOP_NEURONS = 10
DEFAULT_ACTIVATION_TEXT = ('The quick brown fox jumps over the lazy dog.\n'
                           '(It said "hello", twice.)')
ACTIVATION_KINDS = {"cell": "cell state (memory)", "hidden": "hidden state (output)"}
WHITESPACE_SYMBOLS = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}
LINE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")


def display_char(char: str) -> str:
    """A visible stand-in for whitespace and control characters."""
    if char in WHITESPACE_SYMBOLS:
        return WHITESPACE_SYMBOLS[char]
    if not char.isprintable():
        return f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}"
    return char


def activation_colour(value: float, scale: float) -> QColor:
    """Blue for negative values, white near zero, red for positive; pale enough to read."""
    strength = min(1.0, abs(value) / scale) * 0.7 if scale > 0 else 0.0
    fade = int(round(255 * (1 - strength)))
    return QColor(255, fade, fade) if value >= 0 else QColor(fade, fade, 255)


ZERO_CENTRED_TIP = "White is zero; the strongest colour is the largest value in this text."
AVERAGE_CENTRED_TIP = ("This neuron stays far from zero over the text, so white is its average "
                       "here: red where it rises above it, blue where it falls below.")


def colour_centre(series: np.ndarray) -> float:
    """The value shown white: zero, unless the neuron stays far from zero over the text
    (its average is further from zero than its typical swing), as gates (0 to 1) and
    drifting memory cells do; then its average, so that the text shows where it rises
    and falls instead of one colour throughout."""
    if series.size == 0:
        return 0.0
    mean, spread = float(series.mean()), float(series.std())
    return 0.0 if abs(mean) <= spread else mean


# ---- work done in worker threads: plain functions of the model -------------------------

def summarize_model(model: MicroLM) -> tuple[dict, dict]:
    return inspect_model(model), analyze_parameters(model)


def parameter_histogram(model: MicroLM, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(counts, bin edges, number of values) of one parameter tensor."""
    values = parameter_values(model, name)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(1), np.array([-0.5, 0.5]), values.size
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return counts.astype(float), edges, values.size


def trace_with_top_neurons(model: MicroLM, tokenizer: CharacterTokenizer,
                           text: str) -> tuple[ActivationTrace, dict]:
    """The activations over `text` and, per (layer, kind), its most responsive neurons."""
    trace = activations(model, tokenizer, text, on_unknown="drop")
    ranked = {(layer, kind): top_neurons(trace, layer, kind, TOP_NEURONS)
              for layer in range(len(trace.layers)) for kind in ACTIVATION_KINDS}
    return trace, ranked


@dataclass(frozen=True)
class TaskError:
    message: str  # what went wrong, in words


def tagged(request: int, fn: Callable[..., Any], *args: Any) -> tuple[int, Any]:
    """Run fn and return its result (or a TaskError) with the request number, so the tab
    can drop stale results and show an error where the view would have been."""
    try:
        return request, fn(*args)
    except Exception as err:  # noqa: BLE001 - shown to the person in the view's place
        return request, TaskError(describe_error(err))


def embedding_tip(x: float, y: float, data: object) -> str:
    """The tooltip of one dot of the embedding plot: its character and where it lies."""
    return f"{data}  (component 1: {x:.2f}, component 2: {y:.2f})"


def label_priority(char: str) -> int:
    """Which labels of the embedding plot keep their place where labels would overlap:
    lower-case letters first (what a learner looks for), then white space, capitals,
    digits and the rest."""
    if char.islower():
        return 0
    if char.isspace():
        return 1
    if char.isupper():
        return 2
    return 3 if char.isdigit() else 4


def uncrowded(boxes: np.ndarray) -> np.ndarray:
    """Which of the boxes (left, top, width, height), in order of priority, can be shown
    without overlapping a box shown before it. Each box is tested against the boxes kept
    so far only, so a hidden label never hides another."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    keep = np.zeros(len(boxes), dtype=bool)
    kept: list[int] = []
    for index, (left, top, width, height) in enumerate(boxes):
        if kept:
            others = boxes[kept]
            overlaps = ((left < others[:, 0] + others[:, 2]) & (others[:, 0] < left + width)
                        & (top < others[:, 1] + others[:, 3]) & (others[:, 1] < top + height))
            if overlaps.any():
                continue
        keep[index] = True
        kept.append(index)
    return keep


class InspectTab(QWidget):
    """Five pages: the model, its parameters, activations, embeddings, next character."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectTab")
        self.session = session
        self._workers: list[TaskWorker] = []
        self._latest: dict[str, int] = {}  # kind of work -> number of the newest request
        self._requests = 0
        self._trace = None
        self._ranked: dict = {}
        self._status_labels: list[QLabel] = []
        self._gradient_curves: dict[str, pg.PlotDataItem] = {}
        self._next_char_distribution: list[tuple[str, float]] = []

        self.pages = QTabWidget()
        self.pages.setObjectName("inspectPages")
        self.pages.addTab(self._build_model_page(), "Model")
        self.pages.addTab(self._build_parameter_page(), "Parameters")
        self.pages.addTab(self._build_activation_page(), "Activations")
        self.pages.addTab(self._build_embedding_page(), "Embeddings")
        self.pages.addTab(self._build_next_char_page(), "Next character")
        QVBoxLayout(self).addWidget(self.pages)

        self._activation_timer = QTimer(self)  # waits for a pause in typing
        self._activation_timer.setSingleShot(True)
        self._activation_timer.setInterval(300)
        self._activation_timer.timeout.connect(self._request_activations)
        self._next_char_timer = QTimer(self)
        self._next_char_timer.setSingleShot(True)
        self._next_char_timer.setInterval(300)
        self._next_char_timer.timeout.connect(self._request_next_chars)

        session.model_changed.connect(self._on_model_changed)
        self._on_model_changed()

    # ----------------------------------------------------------------- building
    def _status_label(self, name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setWordWrap(True)
        self._status_labels.append(label)
        return label

    @staticmethod
    def _plot(name: str, accessible: str, tooltip: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plot.setObjectName(name)
        plot.setAccessibleName(accessible)
        plot.setToolTip(tooltip)
        plot.showGrid(x=True, y=True, alpha=0.2)
        return plot

    def _build_model_page(self) -> QWidget:
        page = QSplitter(Qt.Orientation.Horizontal)
        self.model_summary = QTextBrowser()
        self.model_summary.setObjectName("modelSummary")
        self.model_summary.setAccessibleName("Model summary")
        self.model_summary.setToolTip(
            "The model's layers, the shape and number of parameters of each, the memory the "
            "weights take, and a health score that flags weights gone wrong (NaN, exploding, "
            "dead or stuck gates).")
        page.addWidget(self.model_summary)

        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(QLabel("<b>Gradient norm per layer during training</b>"))
        self.gradient_status = self._status_label("gradientStatus")
        column.addWidget(self.gradient_status)
        self.gradient_plot = self._plot(
            "gradientPlot", "Gradient norms per layer",
            "How strongly each layer was being changed as training went on (the size of its "
            "gradient). Norms that shrink towards zero in the lower layers mean they stopped "
            "learning (vanishing gradients); spikes mean unstable steps (clipping helps).")
        self.gradient_plot.setLogMode(y=True)
        self.gradient_plot.setLabel("bottom", "training step")
        self.gradient_plot.setLabel("left", "gradient norm (log scale)")
        # an SI prefix on a log axis reads as "x0.001" next to 10^2 ticks: confusing
        self.gradient_plot.getAxis("left").enableAutoSIPrefix(False)
        self.gradient_plot.addLegend(offset=(-10, 10))
        column.addWidget(self.gradient_plot, 1)
        page.addWidget(right)
        page.setSizes([520, 640])
        return page

    def _build_parameter_page(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.parameter_status = self._status_label("parameterStatus")
        column.addWidget(self.parameter_status)
        row = QHBoxLayout()
        row.addWidget(QLabel("Parameter tensor"))
        self.parameter_combo = QComboBox()
        self.parameter_combo.setObjectName("parameterCombo")
        self.parameter_combo.setAccessibleName("Parameter tensor")
        self.parameter_combo.setToolTip(
            "Choose a weight matrix or bias vector to see how its values are spread. Healthy "
            "weights form a narrow bump around zero; a very wide spread or values far out "
            "suggest too high a learning rate.")
        self.parameter_combo.currentTextChanged.connect(self._on_parameter_changed)
        row.addWidget(self.parameter_combo, 1)
        column.addLayout(row)
        self.parameter_stats = QLabel()
        self.parameter_stats.setObjectName("parameterStats")
        column.addWidget(self.parameter_stats)
        self.parameter_plot = self._plot(
            "parameterPlot", "Parameter histogram",
            "How many values of the chosen tensor fall in each range. At the start weights "
            "are spread evenly in a small range; training shapes them.")
        self.parameter_plot.setLabel("bottom", "value")
        self.parameter_plot.setLabel("left", "number of values")
        self._histogram = pg.PlotCurveItem(x=np.zeros(1), y=np.zeros(0), stepMode="center",
                                           fillLevel=0,
                                           brush=pg.mkBrush(31, 119, 180, 150),
                                           pen=pg.mkPen("#1f77b4", width=1))
        self.parameter_plot.addItem(self._histogram)
        column.addWidget(self.parameter_plot, 1)
        return page

    def _build_activation_page(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.activation_status = self._status_label("activationStatus")
        column.addWidget(self.activation_status)
        self.activation_input = QPlainTextEdit(DEFAULT_ACTIVATION_TEXT)
        self.activation_input.setObjectName("activationTextEdit")
        self.activation_input.setAccessibleName("Text to run through the model")
        self.activation_input.setToolTip(
            "Type any text: the model reads it one character at a time and you see how one "
            "neuron's value changes as it goes. Try quotes, brackets or new lines: some "
            "neurons learn to track them.")
        self.activation_input.setMaximumHeight(70)
        self.activation_input.textChanged.connect(self._on_activation_text_changed)
        column.addWidget(self.activation_input)

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
        column.addLayout(controls)

        views = QSplitter(Qt.Orientation.Horizontal)
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
        views.addWidget(self.activation_view)
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
        views.addWidget(neurons)
        views.setSizes([860, 260])
        column.addWidget(views, 1)
        return page

    def _build_embedding_page(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.embedding_status = self._status_label("embeddingStatus")
        column.addWidget(self.embedding_status)
        self.embedding_plot = self._plot(
            "embeddingPlot", "Character embeddings in 2-D",
            "Each character's embedding vector, flattened to two dimensions with PCA. "
            "Characters the model treats alike (digits, vowels, capitals) drift together "
            "as it learns; an untrained model scatters them at random. Where labels would "
            "overlap, only one shows: scroll over the plot to zoom in (the labels keep their "
            "size, and hidden ones come back as they find room), drag to pan, point at a dot "
            "to name its character; right-click > View All zooms back out.")
        # hovering a dot names its character, labelled or not
        self._embedding_points = pg.ScatterPlotItem(
            size=5, brush=pg.mkBrush(120, 120, 120), hoverable=True, hoverSize=9,
            hoverBrush=pg.mkBrush(220, 90, 0), tip=embedding_tip)
        self.embedding_plot.addItem(self._embedding_points)
        self._embedding_labels: list[pg.TextItem] = []
        self._embedding_chars: tuple[str, ...] = ()
        self._embedding_coords = np.zeros((0, 2))
        # Labels that would overlap are hidden, and come back as the view is zoomed in:
        # placed again after each change of the view (a pause of 50 ms: dragging sends many).
        self._label_timer = QTimer(self)
        self._label_timer.setSingleShot(True)
        self._label_timer.setInterval(50)
        self._label_timer.timeout.connect(self._place_embedding_labels)
        view = self.embedding_plot.getViewBox()
        view.sigRangeChanged.connect(self._label_timer.start)
        view.sigResized.connect(self._label_timer.start)
        column.addWidget(self.embedding_plot, 1)
        return page

    def _build_next_char_page(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.next_char_status = self._status_label("nextCharStatus")
        column.addWidget(self.next_char_status)
        form = QFormLayout()
        self.next_char_prompt = QLineEdit("The ")
        self.next_char_prompt.setObjectName("nextCharPrompt")
        self.next_char_prompt.setAccessibleName("Prompt for next-character prediction")
        self.next_char_prompt.setToolTip(
            "The model reads this text and predicts the character that comes next. Watch the "
            "bars change as you type: after 'th' an 'e' should dominate once it has learned.")
        self.next_char_prompt.textChanged.connect(self._on_next_char_prompt_changed)
        form.addRow("Prompt", self.next_char_prompt)
        column.addLayout(form)
        self.next_char_plot = self._plot(
            "nextCharPlot", "Next-character probabilities",
            f"The {NEXT_CHAR_BARS} characters the model finds most likely to come next, with "
            "their probabilities (at temperature 1). Sampling picks among these.")
        self.next_char_plot.setLabel("left", "probability")
        self.next_char_plot.getAxis("left").enableAutoSIPrefix(False)
        self.next_char_plot.showGrid(x=False, y=True, alpha=0.2)
        tick_font = QFont()
        tick_font.setPointSize(tick_font.pointSize() + 3)  # the characters are the point
        self.next_char_plot.getAxis("bottom").setStyle(tickFont=tick_font)
        self.next_char_plot.setLabel("bottom", "next character (␣ space, ⏎ new line)")
        self._next_char_bars = pg.BarGraphItem(x=[], height=[], width=0.8,
                                               brush=pg.mkBrush(31, 119, 180, 180))
        self.next_char_plot.addItem(self._next_char_bars)
        column.addWidget(self.next_char_plot, 1)
        return page

    # ----------------------------------------------------------------- public API
    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        # A pending typing pause would otherwise start new work after this returns.
        self._activation_timer.stop()
        self._next_char_timer.stop()
        # Results of stopped work may still be queued: with no request outstanding,
        # _accept drops them instead of drawing into a tab that may be closing.
        self._latest.clear()
        stopped = True
        for worker in self._workers:
            stopped = stop_and_wait(worker, timeout_ms) and stopped
        self._workers.clear()
        return stopped

    @property
    def is_busy(self) -> bool:
        """True while a computation this tab asked for is running."""
        self._prune_workers()
        return bool(self._workers)

    # ----------------------------------------------------------------- workers
    def _prune_workers(self) -> None:
        self._workers = [worker for worker in self._workers if worker.is_running]

    def _run(self, kind: str, fn: Callable[..., Any], *args: Any,
             on_result: Callable[[tuple[int, Any]], None]) -> None:
        """Compute fn(*args) in a worker; on_result gets (request, result) if still wanted."""
        self._prune_workers()
        self._requests += 1
        self._latest[kind] = self._requests
        worker = TaskWorker(tagged, self._requests, fn, *args)
        worker.succeeded.connect(on_result)
        self._workers.append(worker)
        start_worker(worker)

    def _accept(self, kind: str, tagged_result: tuple[int, Any]) -> Any | None:
        """The result if it answers the newest request of its kind and did not fail."""
        request, result = tagged_result
        if self._latest.get(kind) != request:
            return None  # a newer request (or another model) replaced it
        if isinstance(result, TaskError):
            message = f"Could not compute this view: {result.message}"
            if kind == "summary":
                self.model_summary.setPlainText(message)
            else:
                label = {"histogram": self.parameter_status,
                         "activations": self.activation_status,
                         "embedding": self.embedding_status,
                         "next_chars": self.next_char_status}[kind]
                label.setText(message)
                label.show()
            return None
        return result

    # ----------------------------------------------------------------- session
    def _on_model_changed(self) -> None:
        self._latest.clear()  # results of the previous model are no longer wanted
        self._trace, self._ranked = None, {}
        model, tokenizer = self.session.model, self.session.model_tokenizer
        has_model = model is not None and tokenizer is not None
        for label in self._status_labels:
            label.setText(NO_MODEL_MESSAGE)
            label.setVisible(not has_model)
        for widget in (self.parameter_combo, self.activation_input, self.layer_spin,
                       self.neuron_spin, self.activation_kind_combo, self.next_char_prompt):
            widget.setEnabled(has_model)
        self._histogram.setData(np.zeros(1), np.zeros(0))
        self._next_char_bars.setOpts(x=[], height=[])
        self.next_char_plot.getAxis("bottom").setTicks(None)
        self._clear_embedding()
        self.activation_view.clear()
        self.top_neurons_list.clear()
        self.parameter_stats.clear()
        self._draw_gradient_norms()
        if not has_model:
            self.model_summary.setHtml(f"<p>{html.escape(NO_MODEL_MESSAGE)}</p>")
            self.parameter_combo.clear()
            return
        self.model_summary.setHtml("<p>Summarizing the model…</p>")
        self._run("summary", summarize_model, model, on_result=self._on_summary_computed)

        previous = self.parameter_combo.currentText()
        self.parameter_combo.blockSignals(True)
        self.parameter_combo.clear()
        for name, param in model.named_parameters():
            self.parameter_combo.addItem(name)
            index = self.parameter_combo.count() - 1
            self.parameter_combo.setItemData(index, f"{name}: shape {tuple(param.shape)}, "
                                             f"{param.numel():,} values",
                                             Qt.ItemDataRole.ToolTipRole)
        if previous and self.parameter_combo.findText(previous) >= 0:
            self.parameter_combo.setCurrentText(previous)
        self.parameter_combo.blockSignals(False)
        self._on_parameter_changed(self.parameter_combo.currentText())

        self.layer_spin.setRange(0, model.config.num_layers - 1)
        self.neuron_spin.setRange(0, model.config.hidden_dim - 1)
        self._request_activations()
        self._run("embedding", embedding_projection, model, tokenizer,
                  on_result=self._on_embedding_computed)
        self._request_next_chars()

    # ----------------------------------------------------------------- model page
    def _on_summary_computed(self, tagged_result: tuple[int, Any]) -> None:
        result = self._accept("summary", tagged_result)
        if result is None:
            return
        (info, health) = result
        score = health["health_score"]
        colour = "#1a7f37" if score >= 0.9 else "#b35900" if score >= 0.6 else "#c62828"
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in health["health_notes"])
        notes = f"<ul>{notes}</ul>" if notes else "<p>No problems found in the weights.</p>"
        rows = []
        for layer in info["layers"]:
            stats = health["tensors"].get(layer["name"], {})
            rows.append(
                f"<tr><td>{html.escape(layer['name'])}</td><td>{layer['type']}</td>"
                f"<td>{layer['shape']}</td><td align='right'>{layer['parameters']:,}</td>"
                f"<td align='right'>{stats.get('mean', 0.0):+.3f}</td>"
                f"<td align='right'>{stats.get('std', 0.0):.3f}</td></tr>")
        self.model_summary.setHtml(
            f"<h3>{info['parameter_count']:,} parameters</h3>"
            f"<p>{info['trainable_parameters']:,} trainable · weights take "
            f"{info['memory_mb']:.2f} MB</p>"
            f"<p><b>Health score: <span style='color:{colour}'>{score:.2f}</span></b> "
            f"(1 = no warning signs)</p>{notes}"
            "<table cellspacing='0' cellpadding='3' border='1' style='border-collapse:"
            "collapse'><tr><th>tensor</th><th>type</th><th>shape</th><th>parameters</th>"
            f"<th>mean</th><th>std</th></tr>{''.join(rows)}</table>"
            "<p style='white-space: pre-wrap; font-family: monospace'>"
            f"{html.escape(info['architecture'])}</p>")

    def _draw_gradient_norms(self) -> None:
        """One line per layer from the run's history (already computed: only drawing)."""
        self.gradient_plot.clear()
        legend = self.gradient_plot.plotItem.legend
        if legend is not None:
            legend.clear()
        self._gradient_curves = {}
        history = (self.session.model_metadata or {}).get("history") or {}
        records = history.get("grad_norms") or []
        series: dict[str, tuple[list[float], list[float]]] = {}
        for record in records:
            try:
                step, norms = record
                for layer, norm in norms.items():
                    if norm > 0:  # the log axis cannot show 0
                        xs, ys = series.setdefault(layer, ([], []))
                        xs.append(float(step))
                        ys.append(float(norm))
            except (TypeError, ValueError, AttributeError):
                continue  # a malformed record in an old checkpoint: skip it
        if self.session.model is None:
            return
        if not series:
            self.gradient_status.setText("No gradient record: this model carries no training "
                                         "history. Train it in the Train tab to see one.")
            self.gradient_status.show()
            return
        self.gradient_status.hide()
        for index, (layer, (xs, ys)) in enumerate(series.items()):
            pen = pg.mkPen(LINE_COLOURS[index % len(LINE_COLOURS)], width=1.5)
            self._gradient_curves[layer] = self.gradient_plot.plot(xs, ys, pen=pen, name=layer)

    # ----------------------------------------------------------------- parameters page
    def _on_parameter_changed(self, name: str) -> None:
        if not name or self.session.model is None:
            return
        self.parameter_stats.setText(f"Counting the values of {name}…")
        self._run("histogram", parameter_histogram, self.session.model, name,
                  on_result=self._on_histogram_computed)

    def _on_histogram_computed(self, tagged_result: tuple[int, Any]) -> None:
        result = self._accept("histogram", tagged_result)
        if result is None:
            return
        (counts, edges, size) = result
        self._histogram.setData(edges, counts)
        self.parameter_plot.autoRange()
        finite = int(counts.sum())
        spread = f"from {edges[0]:.3g} to {edges[-1]:.3g}"
        missing = f"; {size - finite:,} are NaN or infinite!" if finite < size else ""
        self.parameter_stats.setText(f"{size:,} values {spread}{missing}")

    # ----------------------------------------------------------------- activations page
    def _on_activation_text_changed(self) -> None:
        self._activation_timer.start()

    def _request_activations(self) -> None:
        model, tokenizer = self.session.model, self.session.model_tokenizer
        if model is None or tokenizer is None:
            return
        text = self.activation_input.toPlainText()
        unknown = tokenizer.unknown_characters(text)
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown[:10])
            self.activation_status.setText(f"{shown} not in the model's vocabulary — dropped "
                                           f"from the text.")
        self.activation_status.setVisible(bool(unknown))
        self._run("activations", trace_with_top_neurons, model, tokenizer, text,
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

    # ----------------------------------------------------------------- embeddings page
    def _clear_embedding(self) -> None:
        for label in self._embedding_labels:
            self.embedding_plot.removeItem(label)
        self._embedding_labels = []
        self._embedding_chars, self._embedding_coords = (), np.zeros((0, 2))
        self._embedding_points.setData([], [])
        self.embedding_plot.setTitle(None)

    def _place_embedding_labels(self) -> None:
        """Show each character's label where it overlaps no label of a higher priority
        (label_priority), in the view's pixels as they are now; the plot's title says how
        many are hidden and how to see them."""
        labels = self._embedding_labels
        if not labels:
            return
        view = self.embedding_plot.getViewBox()
        boxes = np.zeros((len(labels), 4))
        for index, (label, (x, y)) in enumerate(zip(labels, self._embedding_coords,
                                                    strict=True)):
            anchor = view.mapViewToScene(pg.Point(float(x), float(y)))
            text = label.textItem.boundingRect()  # in pixels: labels keep their size
            margin = label.textItem.document().documentMargin()  # blank, may overlap
            width = max(1.0, text.width() - 2 * margin)
            height = max(1.0, text.height() - 2 * margin)
            # anchored at the middle of the label's bottom edge, just above its dot
            boxes[index] = (anchor.x() - width / 2, anchor.y() - height - margin,
                            width, height)
        order = sorted(range(len(labels)),
                       key=lambda i: (label_priority(self._embedding_chars[i]), i))
        shown = uncrowded(boxes[order])
        for place, index in enumerate(order):
            labels[index].setVisible(bool(shown[place]))
        hidden = len(labels) - int(shown.sum())
        self.embedding_plot.setTitle(
            None if hidden == 0 else
            f"{len(labels) - hidden} of {len(labels)} characters labelled: {hidden} would "
            f"overlap; scroll to zoom in, or point at a dot to name it", size="9pt")

    def _on_embedding_computed(self, tagged_result: tuple[int, Any]) -> None:
        result = self._accept("embedding", tagged_result)
        if result is None:
            return
        projection = result
        self._clear_embedding()
        coords = projection.coords
        self._embedding_points.setData(coords[:, 0], coords[:, 1],
                                       data=[display_char(char) for char in projection.chars])
        for char, (x, y) in zip(projection.chars, coords, strict=True):
            label = pg.TextItem(display_char(char), color="k", anchor=(0.5, 1.0))
            label.setPos(float(x), float(y))
            self.embedding_plot.addItem(label)
            self._embedding_labels.append(label)
        self._embedding_chars, self._embedding_coords = projection.chars, coords
        first, second = projection.explained_variance
        self.embedding_plot.setLabel("bottom", f"component 1 ({first:.0%} of the spread)")
        self.embedding_plot.setLabel("left", f"component 2 ({second:.0%} of the spread)")
        self.embedding_plot.autoRange()
        self._label_timer.start()  # also when the range stays as it was

    # ----------------------------------------------------------------- next-character page
    def _on_next_char_prompt_changed(self, _text: str) -> None:
        self._next_char_timer.start()

    def _request_next_chars(self) -> None:
        model, tokenizer = self.session.model, self.session.model_tokenizer
        if model is None or tokenizer is None:
            return
        prompt = self.next_char_prompt.text()
        unknown = tokenizer.unknown_characters(prompt)
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown[:10])
            self.next_char_status.setText(f"{shown} not in the model's vocabulary — dropped "
                                          f"from the prompt.")
        self.next_char_status.setVisible(bool(unknown))
        self._run("next_chars", next_char_distribution, model, tokenizer,
                  tokenizer.clean(prompt, "drop"), NEXT_CHAR_BARS,
                  on_result=self._on_next_chars_computed)

    def _on_next_chars_computed(self, tagged_result: tuple[int, Any]) -> None:
        result = self._accept("next_chars", tagged_result)
        if result is None:
            return
        distribution = result
        self._next_char_distribution = distribution
        positions = np.arange(len(distribution), dtype=float)
        heights = np.array([probability for _, probability in distribution], dtype=float)
        self._next_char_bars.setOpts(x=positions, height=heights, width=0.8)
        ticks = [(float(i), display_char(char)) for i, (char, _) in enumerate(distribution)]
        self.next_char_plot.getAxis("bottom").setTicks([ticks])
        self.next_char_plot.setXRange(-0.6, len(distribution) - 0.4, padding=0)
        self.next_char_plot.setYRange(0, max(0.05, float(heights.max(initial=0))) * 1.1,
                                      padding=0)
        self.next_char_plot.setTitle(f"The top {len(distribution)} characters hold "
                                     f"{heights.sum():.0%} of the probability")
