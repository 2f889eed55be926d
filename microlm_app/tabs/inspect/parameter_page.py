"""The Parameters page of the Inspect tab: a histogram of the values of one tensor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from microlm import MicroLM
from microlm.inspection import parameter_values

from .page import Computations, InspectPage

HISTOGRAM_BINS = 60


def parameter_histogram(model: MicroLM, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(counts, bin edges, number of values) of one parameter tensor."""
    values = parameter_values(model, name)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(1), np.array([-0.5, 0.5]), values.size
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return counts.astype(float), edges, values.size


class ParameterPage(InspectPage):
    """A chooser of parameter tensors above the histogram of the chosen one."""

    title = "Parameters"

    def __init__(self, computations: Computations, parent: QWidget | None = None) -> None:
        super().__init__(computations, parent)
        column = QVBoxLayout(self)
        self.parameter_status = self._status_label("parameterStatus")
        column.addWidget(self.parameter_status)
        column.addLayout(self._build_chooser())
        self.parameter_stats = QLabel()
        self.parameter_stats.setObjectName("parameterStats")
        column.addWidget(self.parameter_stats)
        column.addWidget(self._build_histogram(), 1)

    # ----------------------------------------------------------------- building
    def _build_chooser(self) -> QHBoxLayout:
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
        return row

    def _build_histogram(self) -> QWidget:
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
        return self.parameter_plot

    # ----------------------------------------------------------------- model
    def _on_model_changed(self) -> None:
        model = self.inspected.model
        self.parameter_combo.setEnabled(self.inspected.ready)
        self._histogram.setData(np.zeros(1), np.zeros(0))
        self.parameter_stats.clear()
        if not self.inspected.ready:
            self.parameter_combo.clear()
            return
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

    def _on_parameter_changed(self, name: str) -> None:
        if not name or self.inspected.model is None:
            return
        self.parameter_stats.setText(f"Counting the values of {name}…")
        self.computations.run("histogram", parameter_histogram, self.inspected.model, name,
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
