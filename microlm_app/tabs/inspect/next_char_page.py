"""The Next character page of the Inspect tab: the characters the model expects after a
prompt, as bars of their probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFormLayout, QLineEdit, QVBoxLayout, QWidget

from microlm.inspection import next_char_distribution

from .page import Computations, InspectPage, display_char, show_unknown_characters

NEXT_CHAR_BARS = 20


class NextCharPage(InspectPage):
    """A prompt above the bars of the most likely next characters."""

    title = "Next character"

    def __init__(self, computations: Computations, parent: QWidget | None = None) -> None:
        super().__init__(computations, parent)
        self._next_char_distribution: list[tuple[str, float]] = []
        column = QVBoxLayout(self)
        self.next_char_status = self._status_label("nextCharStatus")
        column.addWidget(self.next_char_status)
        column.addLayout(self._build_prompt())
        column.addWidget(self._build_bars(), 1)
        self._next_char_timer = self._typing_pause(self._request_next_chars)

    # ----------------------------------------------------------------- building
    def _build_prompt(self) -> QFormLayout:
        form = QFormLayout()
        self.next_char_prompt = QLineEdit("The ")
        self.next_char_prompt.setObjectName("nextCharPrompt")
        self.next_char_prompt.setAccessibleName("Prompt for next-character prediction")
        self.next_char_prompt.setToolTip(
            "The model reads this text and predicts the character that comes next. Watch the "
            "bars change as you type: after 'th' an 'e' should dominate once it has learned.")
        self.next_char_prompt.textChanged.connect(self._on_next_char_prompt_changed)
        form.addRow("Prompt", self.next_char_prompt)
        return form

    def _build_bars(self) -> QWidget:
        self.next_char_plot = self._plot(
            "nextCharPlot", "Next-character probabilities",
            f"The {NEXT_CHAR_BARS} characters the model finds most likely to come next, with "
            "their probabilities (at temperature 1). Sampling can pick any character of the "
            "vocabulary, each as often as its probability says, so a rare one sometimes comes "
            "too; top-k and top-p on the Generate tab cut off the unlikely ones.")
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
        return self.next_char_plot

    # ----------------------------------------------------------------- model
    def _on_model_changed(self) -> None:
        self.next_char_prompt.setEnabled(self.inspected.ready)
        self._next_char_bars.setOpts(x=[], height=[])
        self.next_char_plot.getAxis("bottom").setTicks(None)
        if self.inspected.ready:
            self._request_next_chars()

    # ----------------------------------------------------------------- computing
    def _on_next_char_prompt_changed(self, _text: str) -> None:
        self._next_char_timer.start()

    def _request_next_chars(self) -> None:
        model, tokenizer = self.inspected.model, self.inspected.tokenizer
        if model is None or tokenizer is None:
            return
        prompt = self.next_char_prompt.text()
        show_unknown_characters(self.next_char_status, tokenizer, prompt, "prompt")
        self.computations.run("next_chars", next_char_distribution, model, tokenizer,
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
        others = (self.inspected.tokenizer.vocab_size() - len(distribution)
                  if self.inspected.tokenizer is not None else 0)
        rest = (f"; sampling can also pick any of the other {others} characters of the "
                f"vocabulary, which share the rest" if others > 0 else "")
        self.next_char_plot.setTitle(f"The top {len(distribution)} characters hold "
                                     f"{heights.sum():.0%} of the probability{rest}",
                                     size="9pt")
