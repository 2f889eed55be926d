"""Compare temperatures: the same prompt and seed generated at several temperatures, one pane
each, in a worker thread."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from microlm import TextGenerator

from ..workers import BaseWorker

WAITING = "Generating…"
STOPPED = "(stopped)"


class CompareWorker(BaseWorker):
    """Generates the prompt at several temperatures, one pane's text at a time."""

    temperature_generated = Signal(float, str)  # temperature, prompt + new text

    def __init__(self, generator: TextGenerator, prompt: str, length: int,
                 temperatures: Sequence[float], top_k: int | None, top_p: float | None,
                 seed: int) -> None:
        super().__init__()
        self.generator = generator
        self._prompt, self._length, self._temperatures = prompt, length, tuple(temperatures)
        self._top_k, self._top_p, self._seed = top_k, top_p, seed

    def work(self) -> None:
        for temperature in self._temperatures:
            if self.stop_requested:
                return
            # The same seed at every temperature: differences come from temperature alone.
            new_chars = []
            for generated in self.generator.stream(self._prompt, self._length, temperature,
                                                   self._top_k, self._top_p, self._seed):
                if self.stop_requested:  # checked per character so Stop is prompt
                    break
                new_chars.append(generated.char)
            self.temperature_generated.emit(temperature, self._prompt + "".join(new_chars))


class ComparisonPanes(QWidget):
    """One read-only pane per temperature, three to a row."""

    def __init__(self, temperatures: Sequence[float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        monospace = QFont("Monospace")
        monospace.setStyleHint(QFont.StyleHint.TypeWriter)
        grid = QGridLayout(self)
        self.panes: dict[float, QPlainTextEdit] = {}
        for position, temperature in enumerate(temperatures):
            cell = QVBoxLayout()
            title = QLabel(f"<b>temperature {temperature:.1f}</b>")
            pane = QPlainTextEdit()
            pane.setObjectName(f"compareText{position}")
            pane.setAccessibleName(f"Text at temperature {temperature:.1f}")
            pane.setReadOnly(True)
            pane.setFont(monospace)
            pane.setToolTip(f"The prompt continued at temperature {temperature:.1f}, with the "
                            "same seed as the other panes.")
            cell.addWidget(title)
            cell.addWidget(pane, 1)
            grid.addLayout(cell, position // 3, position % 3)
            self.panes[temperature] = pane

    def start(self) -> None:
        for pane in self.panes.values():
            pane.setPlainText(WAITING)

    def show_text(self, temperature: float, text: str) -> None:
        self.panes[temperature].setPlainText(text)

    def finish(self) -> int:
        """Mark the panes a stopped comparison never reached; return how many were filled."""
        waiting = [pane for pane in self.panes.values() if pane.toPlainText() == WAITING]
        for pane in waiting:
            pane.setPlainText(STOPPED)
        return len(self.panes) - len(waiting)
