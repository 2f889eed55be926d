"""One character computed step by step: the numbers of microlm.stepwise.step_by_step, in the
order the arithmetic runs, each equation in plain words beside the chosen neuron's numbers,
with a small bar chart of the same quantity over all neurons."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from microlm.naming import lstm_layer_label
from microlm.stepwise import GATES, CharacterStep, GateStep, LayerStep, OutputStep

from .page import display_char

BAR_COLOUR, CHOSEN_COLOUR = "#9aa7b8", "#ff8c00"
PLOT_HEIGHT = 78
PLACEHOLDER = ("Click a character of the text (or select one and press ← or →) to see how "
               "the network reads it and predicts the next character, number by number.")
GATE_WORDS = {
    "input": ("Input gate", "i", "how much of the new content enters the memory "
              "(0 = none of it, 1 = all)"),
    "forget": ("Forget gate", "f", "how much of the old memory is kept (0 = forget it, "
               "1 = keep it all)"),
    "candidate": ("Candidate", "g", "the new content offered to the memory, between −1 "
                  "and 1"),
    "output": ("Output gate", "o", "how much of the memory is shown to the next layer "
               "(0 = none, 1 = all)"),
}


def number(value: float) -> str:
    """A value as the panel writes it: three decimals."""
    return f"{value:.3f}"


def term(value: float) -> str:
    """A value after an operator: in brackets when negative, as in 2 × (−1)."""
    return f"({number(value)})" if value < 0 else number(value)


class _Section(QWidget):
    """An explanation with numbers above a bar chart of one vector."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 4, 0, 4)
        self.label = QLabel()
        self.label.setObjectName(f"step_{name}")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        column.addWidget(self.label)
        self.plot = pg.PlotWidget()
        self.plot.setObjectName(f"stepPlot_{name}")
        self.plot.setFixedHeight(PLOT_HEIGHT)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.getAxis("left").setWidth(36)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.85, brush=BAR_COLOUR, pen=None)
        self.chosen = pg.BarGraphItem(x=[], height=[], width=0.85, brush=CHOSEN_COLOUR,
                                      pen=None)
        self.plot.addItem(self.bars)
        self.plot.addItem(self.chosen)
        column.addWidget(self.plot)

    def display(self, html: str, values: np.ndarray, chosen: int | None = None,
                labels: list[str] | None = None) -> None:
        self.label.setText(html)
        positions = np.arange(len(values))
        self.bars.setOpts(x=positions, height=values)
        if chosen is not None and 0 <= chosen < len(values):
            # wide enough to be seen among hundreds of bars
            self.chosen.setOpts(x=[chosen], height=[values[chosen]],
                                width=max(0.85, len(values) / 120))
        else:
            self.chosen.setOpts(x=[], height=[])
        axis = self.plot.getAxis("bottom")
        axis.setTicks([list(enumerate(labels))] if labels is not None else None)
        self.plot.setXRange(-0.5, max(len(values), 1) - 0.5, padding=0.01)
        self.plot.enableAutoRange(axis="y")


class StepPanel(QScrollArea):
    """The step-by-step computation of one character (show_step)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stepPanel")
        self.setAccessibleName("How the network computes the next character")
        self.setWidgetResizable(True)
        content = QWidget()
        self._column = QVBoxLayout(content)
        self.header = QLabel(PLACEHOLDER)
        self.header.setObjectName("stepHeader")
        self.header.setWordWrap(True)
        self._column.addWidget(self.header)
        self._column.addStretch(1)
        self.setWidget(content)
        self.sections: dict[str, _Section] = {}
        self.step: CharacterStep | None = None
        self.neuron = 0

    def clear(self) -> None:
        self.step = None
        self.header.setText(PLACEHOLDER)
        self._build([])

    def show_step(self, step: CharacterStep, neuron: int) -> None:
        """Show every number of `step`, following neuron `neuron` in each layer."""
        self.step, self.neuron = step, neuron
        self._build(_section_names(step))
        char = display_char(step.char)
        self.header.setText(
            f"<b>Reading '{char}'</b> (character {step.position + 1:,} of the text) and "
            f"predicting the next one, in the order the network computes it. The orange bar "
            f"and the numbers follow neuron {neuron} of each layer; the grey bars are all "
            f"the neurons.")
        embedding = step.embedding
        self._section("embedding").display(
            f"<b>1. Embedding.</b> The character '{char}' is looked up in a table the model "
            f"learned: it becomes x, a list of {len(embedding)} numbers (the bars).", embedding)
        for layer in step.layers:
            self._show_layer(layer, neuron, 2 + layer.layer, len(step.layers))
        self._show_output(step.output, 2 + len(step.layers))

    def _show_layer(self, layer: LayerStep, neuron: int, number_: int, layers: int) -> None:
        k = layer.layer
        reads = ("x, the embedding above" if k == 0 else
                 f"x, the output h of {lstm_layer_label(k - 1)} just computed")
        for gate in layer.gates:
            words, symbol, meaning = GATE_WORDS[gate.name]
            intro = (f"<b>{number_}. {lstm_layer_label(k)}</b> reads {reads}, and h_prev and "
                     f"c_prev: "
                     f"its own output and memory after the character before. Four gates "
                     f"weigh them, each with its own weights W, U and bias b.<br>"
                     if gate.name == "input" else "")
            self._section(f"l{k}_{gate.name}").display(
                f"{intro}<b>{words}</b> {symbol} = {gate.squash}(W·x + U·h_prev + b): "
                f"{meaning}.<br>{self._gate_numbers(gate, neuron, symbol)}",
                gate.value, neuron)
        i, f, g = (layer.gate(name).value for name in ("input", "forget", "candidate"))
        o = layer.gate("output").value
        if 0 <= neuron < len(layer.cell):
            n = neuron
            cell_numbers = (f"neuron {n}: c = {number(f[n])} × {term(layer.previous_cell[n])} "
                            f"+ {number(i[n])} × {term(g[n])} = <b>{number(layer.cell[n])}</b>")
            hidden_numbers = (f"neuron {n}: h = {number(o[n])} × tanh({number(layer.cell[n])}) "
                              f"= {number(o[n])} × {term(np.tanh(layer.cell[n]))} = "
                              f"<b>{number(layer.hidden[n])}</b>")
        else:
            cell_numbers = hidden_numbers = ""
        self._section(f"l{k}_cell").display(
            f"<b>Memory</b> c = f·c_prev + i·g: keep the share f of the old memory and add "
            f"the share i of the new content.<br>{cell_numbers}", layer.cell, neuron)
        goes_to = ("the output layer" if k == layers - 1 else lstm_layer_label(k + 1))
        self._section(f"l{k}_hidden").display(
            f"<b>Output</b> h = o·tanh(c): tanh squeezes the memory into −1…1 and the output "
            f"gate lets a share of it out. h goes to {goes_to}, and h and c are carried to "
            f"the next character.<br>{hidden_numbers}", layer.hidden, neuron)

    @staticmethod
    def _gate_numbers(gate: GateStep, neuron: int, symbol: str) -> str:
        if not 0 <= neuron < len(gate.value):
            return ""
        n = neuron
        return (f"neuron {n}: {symbol} = {gate.squash}({number(gate.from_input[n])} + "
                f"{term(gate.from_previous[n])} + {term(gate.bias[n])}) = "
                f"{gate.squash}({number(gate.total[n])}) = <b>{number(gate.value[n])}</b>")

    def _show_output(self, output: OutputStep, number_: int) -> None:
        if output.units is not None:
            largest = int(np.argmax(output.units))
            self._section("units").display(
                f"<b>{number_}. Output layer, first part.</b> {len(output.units):,} units read "
                f"h: u = GELU(W₁·h + b₁). GELU passes a positive sum on almost unchanged and "
                f"turns a negative one into about 0.<br>largest: unit {largest}: "
                f"GELU({number(output.unit_totals[largest])}) = "
                f"<b>{number(output.units[largest])}</b>", output.units, largest)
            reads, number_ = "u", number_ + 1
        else:
            reads = "h"
        chars = [display_char(char) for char, _ in output.top]
        probabilities = np.array([p for _, p in output.top])
        listed = ", ".join(f"'{char}' {p:.1%}" for char, p in zip(chars, probabilities,
                                                                   strict=True))
        self._section("top").display(
            f"<b>{number_}. Scores and probabilities.</b> One score per character the model "
            f"knows: s = W·{reads} + b ({len(output.scores)} scores). Softmax turns them into "
            f"probabilities: p = e<sup>s</sup> / (the sum of e<sup>s</sup> over all "
            f"characters), so a higher score means a likelier character and all add up to "
            f"1.<br>Most likely next: {listed}", probabilities, None, chars)

    def _section(self, name: str) -> _Section:
        return self.sections[name]

    def _build(self, names: list[str]) -> None:
        """One section per name, in this order (kept while the model's shape stays)."""
        if names == list(self.sections):
            return
        for section in self.sections.values():
            self._column.removeWidget(section)
            section.deleteLater()
        self.sections = {}
        for name in names:
            self.sections[name] = _Section(name)
            self._column.insertWidget(self._column.count() - 1, self.sections[name])


def _section_names(step: CharacterStep) -> list[str]:
    """The sections a step needs, in the order the arithmetic runs."""
    names = ["embedding"]
    for layer in step.layers:
        names += [f"l{layer.layer}_{part}" for part in (*GATES, "cell", "hidden")]
    if step.output.units is not None:
        names.append("units")
    return [*names, "top"]
