"""The Model page of the Inspect tab: the layers, their parameters and health, and the
gradient norm of each layer during training."""

from __future__ import annotations

import html
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QTextBrowser, QVBoxLayout, QWidget

from microlm import MicroLM
from microlm.inspection import analyze_parameters, inspect_model
from microlm.naming import in_words, layer_label, parameter_label

from .page import NO_MODEL_MESSAGE, Computations, InspectPage

LINE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
GRADIENT_TIP = (
    "How large each layer's gradient was as training went on: the norm (length) of the "
    "vector of all its weights' gradients. These are the norms after clipping: before each "
    "update the trainer scales all gradients down together whenever their combined norm is "
    "above the clipping limit (1.0 by default), so a spike shows here only up to that "
    "limit, and an unclipped spike is never drawn. The optimizer (AdamW) divides each "
    "weight's step by that weight's own typical gradient size, so a layer with a small "
    "norm here still takes steps of about the learning rate: a small or shrinking norm "
    "does not mean the layer stopped learning. Norms that shrink together over the run "
    "mostly show the loss flattening out.")


def gradient_note(metadata: dict) -> str:
    """What the gradient plot draws, with the clipping limit of the run that trained the
    model (when its checkpoint says)."""
    clip = (metadata.get("training_config") or {}).get("grad_clip")
    if clip is None:
        limit = "the clipping limit (1.0 by default)"
    elif clip:
        limit = f"the clipping limit of this run, {float(clip):.1f}"
    else:
        return "Norms as computed: this run trained without gradient clipping."
    return (f"Norms after clipping: together they are at most {limit}. A small norm does "
            "not mean a layer stopped learning (AdamW scales each weight's step).")


def summarize_model(model: MicroLM) -> tuple[dict, dict]:
    """The model's layers and its weights' health (run in a worker)."""
    return inspect_model(model), analyze_parameters(model)


class ModelPage(InspectPage):
    """The model summary beside the gradient norms per layer."""

    title = "Model"

    def __init__(self, computations: Computations, parent: QWidget | None = None) -> None:
        super().__init__(computations, parent)
        self._gradient_curves: dict[str, pg.PlotDataItem] = {}
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._build_summary())
        splitter.addWidget(self._build_gradients())
        splitter.setSizes([520, 640])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    # ----------------------------------------------------------------- building
    def _build_summary(self) -> QWidget:
        self.model_summary = QTextBrowser()
        self.model_summary.setObjectName("modelSummary")
        self.model_summary.setAccessibleName("Model summary")
        self.model_summary.setToolTip(
            "The model's layers (LSTM layers numbered from 1), the shape and number of "
            "parameters of each tensor with its name in the code, the memory the "
            "weights take, and a health score that flags weights gone wrong (NaN, exploding, "
            "dead or stuck gates).")
        return self.model_summary

    def _build_gradients(self) -> QWidget:
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(QLabel("<b>Gradient norm per layer during training</b>"))
        self.gradient_note = QLabel(gradient_note({}))
        self.gradient_note.setObjectName("gradientNote")
        self.gradient_note.setWordWrap(True)
        self.gradient_note.setToolTip(GRADIENT_TIP)
        column.addWidget(self.gradient_note)
        self.gradient_status = self._status_label("gradientStatus")
        column.addWidget(self.gradient_status)
        self.gradient_plot = self._plot("gradientPlot", "Gradient norms per layer",
                                        GRADIENT_TIP)
        self.gradient_plot.setLogMode(y=True)
        self.gradient_plot.setLabel("bottom", "training step")
        self.gradient_plot.setLabel("left", "gradient norm (log scale)")
        # an SI prefix on a log axis reads as "x0.001" next to 10^2 ticks: confusing
        self.gradient_plot.getAxis("left").enableAutoSIPrefix(False)
        self.gradient_plot.addLegend(offset=(-10, 10))
        column.addWidget(self.gradient_plot, 1)
        return right

    # ----------------------------------------------------------------- model
    def _on_model_changed(self) -> None:
        self._draw_gradient_norms()
        model = self.inspected.model
        if not self.inspected.ready:
            self.model_summary.setHtml(f"<p>{html.escape(NO_MODEL_MESSAGE)}</p>")
            return
        self.model_summary.setHtml("<p>Summarizing the model…</p>")
        self.computations.run("summary", summarize_model, model,
                              on_result=self._on_summary_computed)

    def _show_error(self, message: str) -> None:
        self.model_summary.setPlainText(message)

    def _on_summary_computed(self, tagged_result: tuple[int, Any]) -> None:
        result = self._accept("summary", tagged_result)
        if result is None:
            return
        (info, health) = result
        score = health["health_score"]
        colour = "#1a7f37" if score >= 0.9 else "#b35900" if score >= 0.6 else "#c62828"
        notes = "".join(f"<li>{html.escape(in_words(note))}</li>"
                        for note in health["health_notes"])
        notes = f"<ul>{notes}</ul>" if notes else "<p>No problems found in the weights.</p>"
        rows = []
        for layer in info["layers"]:
            stats = health["tensors"].get(layer["name"], {})
            rows.append(
                f"<tr><td>{html.escape(parameter_label(layer['name']))}</td>"
                f"<td style='white-space: pre'><code>{html.escape(layer['name'])}</code></td>"
                f"<td style='white-space: nowrap'>{layer['shape']}</td>"
                f"<td align='right'>{layer['parameters']:,}</td>"
                f"<td align='right'>{stats.get('mean', 0.0):+.3f}</td>"
                f"<td align='right'>{stats.get('std', 0.0):.3f}</td></tr>")
        self.model_summary.setHtml(
            f"<h3>{info['parameter_count']:,} parameters</h3>"
            f"<p>{info['trainable_parameters']:,} trainable · weights take "
            f"{info['memory_mb']:.2f} MiB</p>"
            f"<p><b>Health score: <span style='color:{colour}'>{score:.2f}</span></b> "
            f"(1 = no warning signs)</p>{notes}"
            "<table cellspacing='0' cellpadding='3' border='1' style='border-collapse:"
            "collapse'><tr style='white-space: nowrap'><th>tensor</th><th>name in the code</th>"
            "<th>shape</th><th>parameters</th>"
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
        history = self.inspected.metadata.get("history") or {}
        records = history.get("grad_norms") or []
        self.gradient_note.setText(gradient_note(self.inspected.metadata))
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
        if self.inspected.model is None:
            return
        if not series:
            self.gradient_status.setText("No gradient record: this model carries no training "
                                         "history. Train it in the Train tab to see one.")
            self.gradient_status.show()
            return
        self.gradient_status.hide()
        for index, (layer, (xs, ys)) in enumerate(series.items()):
            pen = pg.mkPen(LINE_COLOURS[index % len(LINE_COLOURS)], width=1.5)
            self._gradient_curves[layer] = self.gradient_plot.plot(xs, ys, pen=pen,
                                                                   name=layer_label(layer))
