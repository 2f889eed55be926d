"""The Train tab's sample timeline: the samples the model wrote while it trained, newest on
top, and the one selected shown whole beside them."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from microlm.run import SAMPLE_TEMPERATURE
from microlm.units import format_duration

COLUMNS = ("Step", "Trained for", "Validation loss", "Sample (first line)")
SAMPLE_ROLE = Qt.ItemDataRole.UserRole  # the item's [step, seconds, validation loss, text]


def timeline_tooltip(sample_interval: int) -> str:
    """What the samples are and how often they come, for the timeline's tooltip."""
    how_often = (f"every {sample_interval:,} training steps" if sample_interval
                 else "never: this run's settings take no samples")
    return (f"<p>A short text the model writes {how_often}, newest on top. Every sample "
            f"is drawn alike: at temperature {SAMPLE_TEMPERATURE:g}, from the same start "
            f"(after a new line) and the same random seed, so two samples differ only by "
            f"what the model learned in between. Watch gibberish turn into words.</p>"
            f"<p>Click a sample to read it whole beside the list; the newest is shown while "
            f"the model trains unless you pick an older one.</p>")


class SampleTimeline(QWidget):
    """A list of samples (step, time trained, validation loss, first line), newest on top,
    and a read-only view of the selected one (samplePreview)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._following = True  # the view shows the newest sample until one is picked
        self._selecting = False  # the timeline itself moves the selection

        self.tree = QTreeWidget()
        self.tree.setObjectName("sampleTimeline")
        self.tree.setAccessibleName("Sample timeline")
        self.tree.setToolTip(timeline_tooltip(0))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        for column, width in enumerate((60, 80, 100)):
            self.tree.setColumnWidth(column, width)
        self.tree.currentItemChanged.connect(self._on_current_changed)

        self.preview = QPlainTextEdit()
        self.preview.setObjectName("samplePreview")
        self.preview.setAccessibleName("The selected sample, whole")
        self.preview.setToolTip(
            "The sample selected in the list, whole: the step it was written at, how long "
            "the model had trained, its validation loss then, and the text.")
        self.preview.setReadOnly(True)
        self.preview.setPlaceholderText("Samples appear here while the model trains.")
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.preview.setFont(font)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.tree)
        splitter.addWidget(self.preview)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("Samples while training (click one to read it whole):")
        title.setBuddy(self.tree)
        layout.addWidget(title)
        layout.addWidget(splitter)

    # ---- public API ----

    def set_sample_interval(self, steps: int) -> None:
        self.tree.setToolTip(timeline_tooltip(steps))

    def add_sample(self, step: int, elapsed_s: float, val_loss: float | None,
                   text: str) -> None:
        """Put a sample on top; show it unless an older one is being read."""
        item = QTreeWidgetItem([f"{step:,}", format_duration(elapsed_s),
                                "—" if val_loss is None else f"{val_loss:.3f}",
                                first_line(text)])
        item.setData(0, SAMPLE_ROLE, [step, elapsed_s, val_loss, text])
        item.setToolTip(3, text)
        self.tree.insertTopLevelItem(0, item)
        if self._following:
            self._select(item)

    def set_samples(self, samples: Sequence[Sequence]) -> None:
        """Show these samples ([step, seconds, validation loss or None, text], oldest
        first), the newest selected."""
        self.clear()
        for step, elapsed_s, val_loss, text in samples:
            self.add_sample(int(step), float(elapsed_s), val_loss, str(text))

    def clear(self) -> None:
        self._selecting = True
        self.tree.clear()
        self._selecting = False
        self.preview.clear()
        self._following = True

    def count(self) -> int:
        return self.tree.topLevelItemCount()

    def samples(self) -> list[list]:
        """The samples shown, newest first: [step, seconds, validation loss, text]."""
        return [self.tree.topLevelItem(row).data(0, SAMPLE_ROLE) for row in range(self.count())]

    # ---- helpers ----

    def _select(self, item: QTreeWidgetItem) -> None:
        self._selecting = True
        self.tree.setCurrentItem(item)
        self._selecting = False
        self._show(item)

    def _on_current_changed(self, current: QTreeWidgetItem | None, _previous) -> None:
        if self._selecting or current is None:
            return
        # reading the newest: follow the new ones; an older one: keep it until unpicked
        self._following = self.tree.indexOfTopLevelItem(current) == 0
        self._show(current)

    def _show(self, item: QTreeWidgetItem) -> None:
        step, elapsed_s, val_loss, text = item.data(0, SAMPLE_ROLE)
        loss = "" if val_loss is None else f" · validation loss {val_loss:.3f}"
        self.preview.setPlainText(f"Step {step:,} · trained for {format_duration(elapsed_s)}"
                                  f"{loss}\n\n{text}")


def first_line(text: str) -> str:
    """The sample's first line with text in it (a sample starts after a new line)."""
    for line in text.splitlines():
        if line.strip():
            return line
    return ""
