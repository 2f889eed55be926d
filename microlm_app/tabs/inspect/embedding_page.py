"""The Embeddings page of the Inspect tab: each character's embedding on a 2-D map, with
labels that hide where they would overlap and come back as the view zooms in."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

from microlm.inspection import embedding_projection

from .page import Computations, InspectPage, display_char

LABEL_PLACING_MS = 50  # a pause after a change of the view: dragging sends many
COMPONENT_TIP = ("A principal component is a direction in the space of the character "
                 "vectors: component 1 is the one along which they differ most, component 2 "
                 "the next (at right angles to the first); the share in brackets is how much "
                 "of all their differences each shows. Characters that lie near each other "
                 "are used alike by the model; the distances left out of these two "
                 "directions are not drawn.")


def embedding_tip(x: float, y: float, data: object) -> str:
    """The tooltip of one dot of the embedding plot: its character and where it lies."""
    return f"{data}  (component 1: {x:.2f}, component 2: {y:.2f})"


def label_priority(char: str) -> int:
    """Which labels of the embedding plot keep their place where labels would overlap:
    lower-case letters first (what a learner looks for), then white space, capitals,
    digits and the rest."""
    if char.islower():
        return 0
    if char.isspace():
        return 1
    if char.isupper():
        return 2
    return 3 if char.isdigit() else 4


def uncrowded(boxes: np.ndarray) -> np.ndarray:
    """Which of the boxes (left, top, width, height), in order of priority, can be shown
    without overlapping a box shown before it. Each box is tested against the boxes kept
    so far only, so a hidden label never hides another."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    keep = np.zeros(len(boxes), dtype=bool)
    kept: list[int] = []
    for index, (left, top, width, height) in enumerate(boxes):
        if kept:
            others = boxes[kept]
            overlaps = ((left < others[:, 0] + others[:, 2]) & (others[:, 0] < left + width)
                        & (top < others[:, 1] + others[:, 3]) & (others[:, 1] < top + height))
            if overlaps.any():
                continue
        keep[index] = True
        kept.append(index)
    return keep


class EmbeddingPage(InspectPage):
    """The 2-D map of the character embeddings: one labelled dot per character."""

    title = "Embeddings"

    def __init__(self, computations: Computations, parent: QWidget | None = None) -> None:
        super().__init__(computations, parent)
        self._embedding_labels: list[pg.TextItem] = []
        self._embedding_chars: tuple[str, ...] = ()
        self._embedding_coords = np.zeros((0, 2))
        column = QVBoxLayout(self)
        self.embedding_status = self._status_label("embeddingStatus")
        column.addWidget(self.embedding_status)
        column.addWidget(self._build_map(), 1)

    # ----------------------------------------------------------------- building
    def _build_map(self) -> QWidget:
        self.embedding_plot = self._plot(
            "embeddingPlot", "Character embeddings in 2-D",
            "Each character's embedding vector, flattened to two dimensions with PCA "
            "(principal component analysis): component 1 is the direction along which the "
            "characters' vectors differ most, component 2 the next, at right angles to it. "
            "Characters the model treats alike (digits, vowels, capitals) drift together "
            "as it learns; an untrained model scatters them at random. Where labels would "
            "overlap, only one shows: scroll over the plot to zoom in (the labels keep their "
            "size, and hidden ones come back as they find room), drag to pan, point at a dot "
            "to name its character; right-click > View All zooms back out.")
        # hovering a dot names its character, labelled or not
        self._embedding_points = pg.ScatterPlotItem(
            size=5, brush=pg.mkBrush(120, 120, 120), hoverable=True, hoverSize=9,
            hoverBrush=pg.mkBrush(220, 90, 0), tip=embedding_tip)
        self.embedding_plot.addItem(self._embedding_points)
        # Labels that would overlap are hidden, and come back as the view is zoomed in:
        # placed again after each change of the view.
        self._label_timer = QTimer(self)
        self._label_timer.setSingleShot(True)
        self._label_timer.setInterval(LABEL_PLACING_MS)
        self._label_timer.timeout.connect(self._place_embedding_labels)
        view = self.embedding_plot.getViewBox()
        view.sigRangeChanged.connect(self._label_timer.start)
        view.sigResized.connect(self._label_timer.start)
        for side in ("bottom", "left"):
            self.embedding_plot.getAxis(side).setToolTip(COMPONENT_TIP)
        return self.embedding_plot

    # ----------------------------------------------------------------- model
    def _on_model_changed(self) -> None:
        self._clear_embedding()
        if not self.inspected.ready:
            return
        self.computations.run("embedding", embedding_projection, self.inspected.model,
                              self.inspected.tokenizer, on_result=self._on_embedding_computed)

    def _on_embedding_computed(self, tagged_result: tuple[int, Any]) -> None:
        result = self._accept("embedding", tagged_result)
        if result is None:
            return
        projection = result
        self._clear_embedding()
        coords = projection.coords
        self._embedding_points.setData(coords[:, 0], coords[:, 1],
                                       data=[display_char(char) for char in projection.chars])
        for char, (x, y) in zip(projection.chars, coords, strict=True):
            label = pg.TextItem(display_char(char), color="k", anchor=(0.5, 1.0))
            label.setPos(float(x), float(y))
            self.embedding_plot.addItem(label)
            self._embedding_labels.append(label)
        self._embedding_chars, self._embedding_coords = projection.chars, coords
        first, second = projection.explained_variance
        self.embedding_plot.setLabel("bottom", f"principal component 1 ({first:.0%} of the "
                                     f"spread)")
        self.embedding_plot.setLabel("left", f"principal component 2 ({second:.0%} of the "
                                     f"spread)")
        self.embedding_plot.autoRange()
        self._label_timer.start()  # also when the range stays as it was

    # ----------------------------------------------------------------- drawing
    def _clear_embedding(self) -> None:
        for label in self._embedding_labels:
            self.embedding_plot.removeItem(label)
        self._embedding_labels = []
        self._embedding_chars, self._embedding_coords = (), np.zeros((0, 2))
        self._embedding_points.setData([], [])
        self.embedding_plot.setTitle(None)

    def _place_embedding_labels(self) -> None:
        """Show each character's label where it overlaps no label of a higher priority
        (label_priority), in the view's pixels as they are now; the plot's title says how
        many are hidden and how to see them."""
        labels = self._embedding_labels
        if not labels:
            return
        view = self.embedding_plot.getViewBox()
        boxes = np.zeros((len(labels), 4))
        for index, (label, (x, y)) in enumerate(zip(labels, self._embedding_coords,
                                                    strict=True)):
            anchor = view.mapViewToScene(pg.Point(float(x), float(y)))
            text = label.textItem.boundingRect()  # in pixels: labels keep their size
            margin = label.textItem.document().documentMargin()  # blank, may overlap
            width = max(1.0, text.width() - 2 * margin)
            height = max(1.0, text.height() - 2 * margin)
            # anchored at the middle of the label's bottom edge, just above its dot
            boxes[index] = (anchor.x() - width / 2, anchor.y() - height - margin,
                            width, height)
        order = sorted(range(len(labels)),
                       key=lambda i: (label_priority(self._embedding_chars[i]), i))
        shown = uncrowded(boxes[order])
        for place, index in enumerate(order):
            labels[index].setVisible(bool(shown[place]))
        hidden = len(labels) - int(shown.sum())
        self.embedding_plot.setTitle(
            None if hidden == 0 else
            f"{len(labels) - hidden} of {len(labels)} characters labelled: {hidden} would "
            f"overlap; scroll to zoom in, or point at a dot to name it", size="9pt")
