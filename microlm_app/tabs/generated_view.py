"""The Generate tab's Output pane: the prompt in bold, then the generated characters as they
stream in, optionally coloured by the probability the model gave each one, with a tooltip
of the characters it found likeliest there."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextEdit, QWidget

from microlm import GeneratedChar

from .probability_colours import probability_colour, text_colour_on


def probability_tip(generated: GeneratedChar) -> str:
    """The character's probability and the characters the model found likeliest there."""
    tip = f"{generated.char!r}: probability {generated.probability:.3f}"
    if generated.alternatives:
        tip += (f"\nThe model's top {len(generated.alternatives)} here (its own probabilities, "
                "at temperature 1):")
        tip += "".join(f"\n   {char!r}  {p:.1%}" for char, p in generated.alternatives)
    return tip


class GeneratedView(QTextEdit):
    """A read-only text of one prompt and the characters generated after it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generatedText")
        self.setAccessibleName("Generated text")
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        monospace = QFont("Monospace")
        monospace.setStyleHint(QFont.StyleHint.TypeWriter)
        self.setFont(monospace)
        self.setPlaceholderText("Generated text appears here.")
        self.setToolTip(
            "The prompt (bold) followed by what the model wrote, streamed as it is sampled. "
            "With Colour by probability on, hover a character to see the characters the "
            "model found likeliest there.")
        self.prompt = ""  # as fed to the model (characters it never saw dropped)
        self.chars: list[GeneratedChar] = []
        self._coloured = False

    def text(self) -> str:
        return self.prompt + "".join(g.char for g in self.chars)

    def start(self, prompt: str) -> None:
        """Show `prompt` alone; generated characters follow through append()."""
        self.prompt, self.chars = prompt, []
        self._redraw()

    def append(self, chars: Sequence[GeneratedChar]) -> None:
        self.chars.extend(chars)
        self._draw(chars)

    def set_coloured(self, coloured: bool) -> None:
        if coloured != self._coloured:
            self._coloured = coloured
            self._redraw()

    def _redraw(self) -> None:
        self.clear()
        prompt_format = QTextCharFormat()
        prompt_format.setFontWeight(QFont.Weight.Bold)
        self.textCursor().insertText(self.prompt, prompt_format)
        self._draw(self.chars)

    def _draw(self, chars: Sequence[GeneratedChar]) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        if self._coloured:
            for generated in chars:
                char_format = QTextCharFormat()
                background = probability_colour(generated.probability)
                char_format.setBackground(background)
                char_format.setForeground(text_colour_on(background))
                char_format.setToolTip(probability_tip(generated))
                cursor.insertText(generated.char, char_format)
        else:
            cursor.insertText("".join(g.char for g in chars), QTextCharFormat())
        cursor.endEditBlock()
        scroll_bar = self.verticalScrollBar()
        scroll_bar.setValue(scroll_bar.maximum())  # follow the text as it streams in
