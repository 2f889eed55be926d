"""Gate saturation: per LSTM layer, the share of each gate's values near 0 (shut) and near
1 (open) over the text. A gate stuck at either end passes almost no gradient."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from microlm.naming import lstm_layer_label

GATE_NAMES = ("input", "forget", "output")
SHUT_COLOUR, OPEN_COLOUR = "#2166ac", "#e66101"  # blue and orange: told apart by everyone
NEAR_ZERO, NEAR_ONE = 0.1, 0.9  # microlm.inspection.gate_extremes' defaults


class GateChart(QWidget):
    """One bar chart per layer: for each gate, the share near 0 and the share near 1."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._column = QVBoxLayout(self)
        self._column.setContentsMargins(0, 0, 0, 0)
        intro = QLabel(
            f"Each gate is a number between 0 and 1 per neuron and character. "
            f"<span style='color: {SHUT_COLOUR}'>■</span> Blue: the share of its values below "
            f"{NEAR_ZERO:g} (the gate is shut); <span style='color: {OPEN_COLOUR}'>■</span> "
            f"orange: above {NEAR_ONE:g} (wide open). A gate that is nearly always shut or "
            f"open acts like a switch and learns slowly; some of each is usual, all of one is "
            f"a warning.")
        intro.setWordWrap(True)
        self._column.addWidget(intro)
        self.plots: list[pg.PlotWidget] = []
        self.bars: list[tuple[pg.BarGraphItem, pg.BarGraphItem]] = []  # (near 0, near 1)
        self._column.addStretch(1)

    def show_extremes(self, extremes: list[dict[str, tuple[float, float]]] | None) -> None:
        """Draw gate_extremes(trace): one chart per layer (none without a trace)."""
        extremes = extremes or []
        while len(self.plots) > len(extremes):
            plot = self.plots.pop()
            self.bars.pop()
            self._column.removeWidget(plot)
            plot.deleteLater()
        while len(self.plots) < len(extremes):
            self._add_plot()
        for index, (layer, plot, (shut, opened)) in enumerate(
                zip(extremes, self.plots, self.bars, strict=True)):
            near_zero = [layer[gate][0] for gate in GATE_NAMES]
            near_one = [layer[gate][1] for gate in GATE_NAMES]
            shut.setOpts(height=near_zero)
            opened.setOpts(height=near_one)
            words = ", ".join(f"{gate} {low:.0%} shut / {high:.0%} open"
                              for gate, low, high in zip(GATE_NAMES, near_zero, near_one,
                                                         strict=True))
            plot.setTitle(lstm_layer_label(index))
            plot.setToolTip(f"{lstm_layer_label(index)}: {words}.")

    def _add_plot(self) -> None:
        plot = pg.PlotWidget()
        plot.setObjectName(f"gateSaturationPlot{len(self.plots)}")
        plot.setAccessibleName(f"Gate saturation of {lstm_layer_label(len(self.plots))}")
        plot.setMinimumHeight(150)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setYRange(0, 1, padding=0.02)
        plot.setLabel("left", "share of values")
        plot.getAxis("bottom").setTicks([[(i, f"{gate} gate")
                                          for i, gate in enumerate(GATE_NAMES)]])
        positions = list(range(len(GATE_NAMES)))
        shut = pg.BarGraphItem(x=[p - 0.18 for p in positions], height=[0] * 3, width=0.34,
                               brush=SHUT_COLOUR, pen=None, name="near 0 (shut)")
        opened = pg.BarGraphItem(x=[p + 0.18 for p in positions], height=[0] * 3, width=0.34,
                                 brush=OPEN_COLOUR, pen=None, name="near 1 (open)")
        plot.addItem(shut)
        plot.addItem(opened)
        self.plots.append(plot)
        self.bars.append((shut, opened))
        self._column.insertWidget(self._column.count() - 1, plot, 1)
