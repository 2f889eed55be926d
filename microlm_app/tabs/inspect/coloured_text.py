"""A read-only text whose characters are coloured one by one, optionally with a second row of
coloured cells under each line (a feature's values beneath a neuron's), that says which
character was clicked or hovered. Long texts are drawn in slices, so the window stays
responsive while tens of thousands of characters are coloured."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QKeyEvent,
    QMouseEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import QTextEdit, QToolTip, QWidget

from .page import WHITESPACE_SYMBOLS, display_char

SLICE_CHARS = 2_000  # characters coloured per turn of the event loop (~30 ms)
SECOND_ROW_CELL = "\u2584"  # ▄: a cell that fills the lower part of the line
CELL_ROW_HEIGHT = 0.6  # of a text line


def shown_char(char: str) -> str:
    """The character as drawn: a visible symbol for a new line or tab (a space stays)."""
    return display_char(char) if char in WHITESPACE_SYMBOLS and char != " " else char


class ColouredText(QTextEdit):
    """Characters on coloured backgrounds. char_clicked(index) on a click, and
    step_requested(-1 or +1) on ← or → once a character is selected; hovering a
    character (or its second-row cell) shows tooltip(index)."""

    char_clicked = Signal(int)
    step_requested = Signal(int)
    drawn = Signal()  # the whole text is coloured

    def __init__(self, tooltip: Callable[[int], str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # for ← and →
        font = QFont("Monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        font.setPointSize(font.pointSize() + 2)
        self.setFont(font)
        self._tooltip = tooltip
        self._index_at: list[int] = []  # document position -> character index (-1: none)
        self._positions: list[int] = []  # character index -> its document position
        self._cell_positions: list[int] = []  # character index -> its second-row cell's
        self._pending: list[tuple[int, int]] = []  # (first, last + 1) lines still to draw
        self._draw_args: tuple = ()
        self._selected = -1
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._draw_slice)
        # The second row is a thin band: half a line high, close under its line.
        self._cell_row_format = QTextBlockFormat()
        self._cell_row_format.setLineHeight(
            self.fontMetrics().height() * CELL_ROW_HEIGHT,
            QTextBlockFormat.LineHeightTypes.FixedHeight.value)

    # ----------------------------------------------------------------- drawing
    def show_text(self, chars: Sequence[str], colours: Sequence[QColor],
                  second_row: Sequence[QColor] | None = None) -> None:
        """Colour chars[i] with colours[i]; with second_row, each line is followed by a row
        of cells coloured second_row[i] under its characters (lines then do not wrap, so
        the cells stay under their characters). The first slice is drawn at once."""
        self._timer.stop()
        self.clear()
        self._index_at, self._positions, self._cell_positions = [], [], []
        self._selected = -1
        self.setLineWrapMode(QTextEdit.LineWrapMode.NoWrap if second_row is not None
                             else QTextEdit.LineWrapMode.WidgetWidth)
        self._draw_args = (chars, colours, second_row)
        self._pending = _lines(chars)
        self._draw_slice()

    @property
    def is_drawing(self) -> bool:
        """True while slices of the text are still to be coloured."""
        return bool(self._pending)

    def _draw_slice(self) -> None:
        chars, colours, second_row = self._draw_args
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        drawn = 0
        while self._pending and drawn < SLICE_CHARS:
            first, stop = self._pending.pop(0)
            if self._positions:
                self._insert(cursor, "\n", QTextCharFormat(), -1)
                cursor.setBlockFormat(QTextBlockFormat())
            for index in range(first, stop):
                char_format = QTextCharFormat()
                char_format.setBackground(colours[index])
                self._positions.append(cursor.position())
                self._insert(cursor, shown_char(chars[index]), char_format, index)
            if second_row is not None:
                self._insert(cursor, "\n", QTextCharFormat(), -1)
                cursor.setBlockFormat(self._cell_row_format)
                for index in range(first, stop):
                    cell = QTextCharFormat()
                    cell.setForeground(second_row[index])
                    self._cell_positions.append(cursor.position())
                    self._insert(cursor, SECOND_ROW_CELL, cell, index)
            drawn += stop - first
        cursor.endEditBlock()
        if self._pending:
            self._timer.start()
        else:
            self.drawn.emit()

    def _insert(self, cursor: QTextCursor, text: str, char_format: QTextCharFormat,
                index: int) -> None:
        cursor.insertText(text, char_format)
        self._index_at.append(index)

    # ----------------------------------------------------------------- reading back
    def shown_chars(self) -> str:
        """The characters drawn so far, as shown (⏎ for a new line)."""
        return "".join(self.document().characterAt(position) for position in self._positions)

    def char_colours(self) -> list[str]:
        """The background colour of each character drawn so far, as '#rrggbb'."""
        return [self._format_at(position).background().color().name()
                for position in self._positions]

    def second_row_colours(self) -> list[str]:
        """The colour of each cell of the second row drawn so far (none without one)."""
        return [self._format_at(position).foreground().color().name()
                for position in self._cell_positions]

    def _format_at(self, position: int) -> QTextCharFormat:
        cursor = QTextCursor(self.document())
        cursor.setPosition(position + 1)  # the format of the character before the cursor
        return cursor.charFormat()

    def index_at(self, point: QPoint) -> int:
        """The index of the character (or second-row cell) under a point of the viewport,
        -1 if none."""
        cursor = self.cursorForPosition(point)
        position = cursor.position()
        if self.cursorRect(cursor).x() > point.x():  # the nearest edge is the char's right
            position -= 1
        if 0 <= position < len(self._index_at):
            return self._index_at[position]
        return -1

    # ----------------------------------------------------------------- choosing
    def select(self, index: int) -> None:
        """Mark character `index` (bold, underlined) and scroll it into view."""
        self._selected = index
        if not 0 <= index < len(self._positions):
            self.setExtraSelections([])
            return
        selection = QTextEdit.ExtraSelection()
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._positions[index])
        cursor.setPosition(self._positions[index] + 1, QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor
        selection.format.setFontWeight(QFont.Weight.Black)
        selection.format.setFontUnderline(True)
        selection.format.setUnderlineColor(QColor("black"))
        self.setExtraSelections([selection])
        cursor.clearSelection()
        self.setTextCursor(cursor)
        self.ensureCursorVisible()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        super().mousePressEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            index = self.index_at(event.position().toPoint())
            if index >= 0:
                self.char_clicked.emit(index)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        steps = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}
        if event.key() in steps and self._selected >= 0:
            self.step_requested.emit(steps[event.key()])
            event.accept()
            return
        super().keyPressEvent(event)

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ToolTip and self._tooltip is not None:
            index = self.index_at(event.pos())
            tip = self._tooltip(index) if index >= 0 else self.toolTip()  # or what it shows
            QToolTip.showText(event.globalPos(), tip, self.viewport())
            return True
        return super().viewportEvent(event)


def _lines(chars: Sequence[str]) -> list[tuple[int, int]]:
    """(first, last + 1) of each line; a new line character ends its line (and is drawn)."""
    lines, first = [], 0
    for index, char in enumerate(chars):
        if char == "\n":
            lines.append((first, index + 1))
            first = index + 1
    if first < len(chars):
        lines.append((first, len(chars)))
    return lines
