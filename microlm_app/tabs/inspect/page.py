"""What the pages of the Inspect tab share: the model shown, the work done in workers for
them, the base class of a page, and how a character is displayed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QWidget

from microlm import CharacterTokenizer, MicroLM

from ...workers import TaskWorker, describe_error, start_worker, stop_and_wait

NO_MODEL_MESSAGE = ("No model to inspect yet. Train a model or open one "
                    "(File > Open Model…).")
WHITESPACE_SYMBOLS = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}
TYPING_PAUSE_MS = 300  # how long typing must pause before a page computes again


def display_char(char: str) -> str:
    """A visible stand-in for whitespace and control characters."""
    if char in WHITESPACE_SYMBOLS:
        return WHITESPACE_SYMBOLS[char]
    if not char.isprintable():
        return f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}"
    return char


@dataclass(frozen=True)
class InspectedModel:
    """The model the Inspect tab shows, with what its pages need beside it."""

    model: MicroLM | None = None
    tokenizer: CharacterTokenizer | None = None  # the model's vocabulary
    metadata: dict = field(default_factory=dict)  # history, training config, best val loss
    # The start of the validation part of the loaded text (what the model did not train
    # on), and where the text comes from; empty when no text is loaded.
    validation_text: str = ""
    text_source: str = ""

    @property
    def ready(self) -> bool:
        """Whether there is a model to inspect: the network and its vocabulary."""
        return self.model is not None and self.tokenizer is not None


@dataclass(frozen=True)
class TaskError:
    message: str  # what went wrong, in words


def show_unknown_characters(label: QLabel, tokenizer: CharacterTokenizer, text: str,
                            where: str) -> None:
    """Say in `label` which characters of `text` the model never saw (they are dropped
    from the `where`: "text", "prompt"); hide it when there are none."""
    unknown = tokenizer.unknown_characters(text)
    if unknown:
        shown = ", ".join(repr(ch) for ch in unknown[:10])
        label.setText(f"{shown} not in the model's vocabulary — dropped from the {where}.")
    label.setVisible(bool(unknown))


def tagged(request: int, fn: Callable[..., Any], *args: Any) -> tuple[int, Any]:
    """Run fn and return its result (or a TaskError) with the request number, so the tab
    can drop stale results and show an error where the view would have been."""
    try:
        return request, fn(*args)
    except Exception as err:  # noqa: BLE001 - shown to the person in the view's place
        return request, TaskError(describe_error(err))


class Computations:
    """The work the pages ask for, each piece in a worker of its own. Only the newest
    request of each kind is drawn: a result that a newer request (or another model)
    replaced is dropped."""

    def __init__(self) -> None:
        self._workers: list[TaskWorker] = []
        self.latest: dict[str, int] = {}  # kind of work -> number of the newest request
        self._requests = 0

    def run(self, kind: str, fn: Callable[..., Any], *args: Any,
            on_result: Callable[[tuple[int, Any]], None]) -> None:
        """Compute fn(*args) in a worker; on_result gets (request, result) if still wanted."""
        self._prune_workers()
        self._requests += 1
        self.latest[kind] = self._requests
        worker = TaskWorker(tagged, self._requests, fn, *args)
        worker.succeeded.connect(on_result)
        self._workers.append(worker)
        start_worker(worker)

    def accept(self, kind: str, tagged_result: tuple[int, Any]) -> Any | None:
        """The result (a TaskError if it failed) if it answers the newest request of its
        kind; None if a newer request or another model replaced it."""
        request, result = tagged_result
        return result if self.latest.get(kind) == request else None

    def forget(self) -> None:
        """Drop the results of every request made so far, when they come."""
        self.latest.clear()

    def stop(self, timeout_ms: int) -> bool:
        # Results of stopped work may still be queued: with no request outstanding,
        # accept drops them instead of drawing into a tab that may be closing.
        self.forget()
        stopped = True
        for worker in self._workers:
            stopped = stop_and_wait(worker, timeout_ms) and stopped
        self._workers.clear()
        return stopped

    @property
    def is_busy(self) -> bool:
        """True while a computation a page asked for is running."""
        self._prune_workers()
        return bool(self._workers)

    def _prune_workers(self) -> None:
        self._workers = [worker for worker in self._workers if worker.is_running]


class InspectPage(QWidget):
    """One page of the Inspect tab: builds its views, and draws the model the tab shows
    it from results computed in workers. A page has one status label, which says that
    there is no model yet or what went wrong."""

    title = ""  # the page's name on its tab

    def __init__(self, computations: Computations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.computations = computations
        self.inspected = InspectedModel()
        self._status: QLabel | None = None
        self._pause_timers: list[QTimer] = []

    def show_model(self, inspected: InspectedModel) -> None:
        """Forget the model shown before and show this one."""
        self.inspected = inspected
        if self._status is not None:
            self._status.setText(NO_MODEL_MESSAGE)
            self._status.setVisible(not inspected.ready)
        self._on_model_changed()

    def stop_timers(self) -> None:
        """Stop waiting for a pause in typing, which would start new work."""
        for timer in self._pause_timers:
            timer.stop()

    def _on_model_changed(self) -> None:
        """Clear the views; start the computations of the new model, if there is one."""
        raise NotImplementedError

    # ----------------------------------------------------------------- building
    def _status_label(self, name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setWordWrap(True)
        self._status = label
        return label

    @staticmethod
    def _plot(name: str, accessible: str, tooltip: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plot.setObjectName(name)
        plot.setAccessibleName(accessible)
        plot.setToolTip(tooltip)
        plot.showGrid(x=True, y=True, alpha=0.2)
        return plot

    def _typing_pause(self, slot: Callable[[], None]) -> QTimer:
        """A timer that calls slot once typing has paused (start it on each key)."""
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(TYPING_PAUSE_MS)
        timer.timeout.connect(slot)
        self._pause_timers.append(timer)
        return timer

    # ----------------------------------------------------------------- results
    def _accept(self, kind: str, tagged_result: tuple[int, Any]) -> Any | None:
        """The result if it answers the newest request of its kind and did not fail."""
        result = self.computations.accept(kind, tagged_result)
        if isinstance(result, TaskError):
            self._show_error(f"Could not compute this view: {result.message}")
            return None
        return result

    def _show_error(self, message: str) -> None:
        """Say what went wrong where the person looks for the view."""
        if self._status is not None:
            self._status.setText(message)
            self._status.show()
