"""The Parameters page of the Inspect tab: a histogram of the values of one tensor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from microlm import MicroLM
from microlm.inspection import parameter_values
from microlm.naming import parameter_label

from .page import Computations, InspectPage

HISTOGRAM_BINS = 60


def starting_shape(name: str, hidden_dim: int) -> str:
    """How a tensor's values were spread before training (microlm.model's initialisation:
    PyTorch's defaults, and the forget-gate biases set to 1)."""
    if name == "embedding.weight":
        return ("Before training: a bell curve around 0 with a standard deviation of 1 (each "
                "character's vector drawn at random). Training moves characters used alike "
                "closer together.")
    limit = 1 / hidden_dim ** 0.5
    if name.startswith("lstm.bias_ih"):
        return (f"Before training: spread evenly between ±{limit:.3g}, except the forget "
                f"gate's quarter, set to 1 on purpose (so the memory is kept at first): a "
                f"second bump at 1.")
    if name.startswith("lstm.bias_hh"):
        return (f"Before training: spread evenly between ±{limit:.3g}, except the forget "
                f"gate's quarter, set to 0 (its partner above holds the 1): a spike at 0.")
    if name.startswith("lstm."):
        return (f"Before training: spread evenly between ±{limit:.3g} (1 / √{hidden_dim}). "
                "Training widens the spread and grows tails where weights matter.")
    return ("Before training: spread evenly in a small range around 0 (± 1 / √ of the "
            "number of inputs). Training widens the spread and grows tails.")


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
        self._chosen = ""  # the tensor shown, by its name in the code
        column = QVBoxLayout(self)
        self.parameter_status = self._status_label("parameterStatus")
        column.addWidget(self.parameter_status)
        column.addLayout(self._build_chooser())
        self.parameter_stats = QLabel()
        self.parameter_stats.setObjectName("parameterStats")
        self.parameter_stats.setWordWrap(True)
        column.addWidget(self.parameter_stats)
        column.addWidget(self._build_histogram(), 1)

    # ----------------------------------------------------------------- building
    def _build_chooser(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Tensor"))
        self.parameter_combo = QComboBox()
        self.parameter_combo.setObjectName("parameterCombo")
        self.parameter_combo.setAccessibleName("Parameter tensor")
        self.parameter_combo.setToolTip(
            "Choose a weight matrix or bias vector to see how its values are spread. Most "
            "trained weights sit around zero with tails, but not all: the embedding is a "
            "bell curve about 1 wide, and the LSTM's forget-gate biases start at 1 on purpose "
            "(a second bump). Values far out (tens or more), NaN or infinite ones suggest "
            "too high a learning rate.")
        self.parameter_combo.currentIndexChanged.connect(self._on_parameter_chosen)
        row.addWidget(self.parameter_combo, 1)
        return row

    def _build_histogram(self) -> QWidget:
        self.parameter_plot = self._plot(
            "parameterPlot", "Parameter histogram",
            "How many values of the chosen tensor fall in each range. The line beneath the "
            "chooser says how they were spread before training; compare to see what "
            "training did.")
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
        previous = self.parameter_combo.currentData()
        self.parameter_combo.blockSignals(True)
        self.parameter_combo.clear()
        for name, param in model.named_parameters():
            self.parameter_combo.addItem(parameter_label(name), name)
            index = self.parameter_combo.count() - 1
            self.parameter_combo.setItemData(index, f"{name} in the code: shape "
                                             f"{tuple(param.shape)}, {param.numel():,} values",
                                             Qt.ItemDataRole.ToolTipRole)
        if previous and self.parameter_combo.findData(previous) >= 0:
            self.parameter_combo.setCurrentIndex(self.parameter_combo.findData(previous))
        self.parameter_combo.blockSignals(False)
        self._on_parameter_chosen()

    def _on_parameter_chosen(self, *_args: object) -> None:
        name = self.parameter_combo.currentData()
        if not name or self.inspected.model is None:
            return
        self.parameter_stats.setText(f"Counting the values of {parameter_label(name)}…")
        self._chosen = name
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
        start = starting_shape(self._chosen, self.inspected.model.config.hidden_dim)
        self.parameter_stats.setText(f"{size:,} values {spread}{missing}. {start}")
