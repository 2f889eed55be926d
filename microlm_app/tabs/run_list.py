"""The Train tab's runs to compare: the list of runs (tick some to overlay their curves on
the plot), a table of the settings in which the ticked runs differ and their results, and
text generated side by side from their models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from microlm import TextGenerator
from microlm.run import SAMPLE_TEMPERATURE
from microlm.units import format_duration

from ..loss_plot import ComparedRun
from ..session import RunRecord, Session
from ..workers import TaskWorker, start_worker, stop_and_wait

SIDE_BY_SIDE_LENGTH = 200  # characters generated from each run's model
RUN_ROLE = Qt.ItemDataRole.UserRole  # a list item's index into session.runs

# The settings a person reads in the comparison table, in their words; the others (where
# files go, which device) say nothing about how a run learned.
SETTING_NAMES = {
    "embedding_dim": "embedding size", "hidden_dim": "hidden size", "num_layers": "layers",
    "output_hidden_dim": "output layer units", "dropout": "dropout",
    "vocab_size": "characters in the vocabulary", "epochs": "epochs",
    "learning_rate": "learning rate", "batch_size": "batch size",
    "sequence_length": "sequence length", "weight_decay": "weight decay",
    "ema_decay": "weight averaging", "warmup_steps": "warm-up steps",
    "min_lr_fraction": "final learning rate share", "grad_clip": "gradient clipping",
    "eval_interval": "steps between validations", "eval_chars": "validation characters",
    "patience": "patience", "time_budget_s": "time budget", "val_fraction": "validation share",
    "batching": "batching", "precision": "precision", "seed": "seed",
    "sample_interval": "steps between samples", "sample_length": "sample length",
}


def setting_rows(runs: Sequence[RunRecord]) -> list[tuple[str, list[str]]]:
    """(setting in words, its value for each run) for the settings in which `runs` differ,
    model settings first."""
    rows = []
    for part in ("model_config", "training_config"):
        names = dict.fromkeys(name for run in runs for name in getattr(run, part))
        for name in names:
            if name not in SETTING_NAMES:
                continue
            values = [getattr(run, part).get(name) for run in runs]
            if len(runs) > 1 and any(value != values[0] for value in values):
                rows.append((SETTING_NAMES[name], [_shown(name, v) for v in values]))
    return rows


def result_rows(runs: Sequence[RunRecord]) -> list[tuple[str, list[str]]]:
    return [("best validation loss", ["—" if run.best_val_loss is None
                                      else f"{run.best_val_loss:.3f}" for run in runs]),
            ("training time", [format_duration(run.seconds) for run in runs]),
            ("steps", [f"{run.end_step - run.start_step:,}" for run in runs])]


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "none"
    if name == "time_budget_s":
        return format_duration(float(value))
    if name == "ema_decay" and not value:
        return "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def generate_side_by_side(entries: Sequence[tuple[str, Any, Any]], prompt: str, length: int,
                          seed: int) -> list[tuple[str, str]]:
    """(label, text) for each (label, model, tokenizer): the same prompt, seed and
    temperature for every model. Runs in a worker thread."""
    texts = []
    for label, model, tokenizer in entries:
        try:
            text = TextGenerator(model, tokenizer).generate(
                prompt, length, SAMPLE_TEMPERATURE, seed=seed, on_unknown="drop")
        except ValueError as err:
            text = f"(could not generate: {err})"
        texts.append((label, text))
    return texts


class RunsPanel(QTabWidget):
    """Two pages: "Runs" (the run list, the comparison table, Generate side by side) and
    "Side by side" (the texts of the last side-by-side generation, in columns)."""

    compared_runs_changed = Signal()  # the ticked runs changed: redraw them on the plot
    side_by_side_finished = Signal()  # the texts are shown (or the failure is)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runsPanel")
        self.setAccessibleName("Runs to compare")
        self.session = session
        self._worker: TaskWorker | None = None
        self.addTab(self._build_runs_page(), "Runs")
        self.setTabToolTip(0, "Every run of this window and of loaded models: tick runs to "
                              "draw their curves on the plot and compare their settings.")
        self.side_page = self._build_side_by_side_page()
        self.addTab(self.side_page, "Side by side")
        self.setTabToolTip(1, "Text generated from the ticked runs' models, in columns.")
        session.runs_changed.connect(self._on_runs_changed)
        self._on_runs_changed()

    # ---- building ----

    def _build_runs_page(self) -> QWidget:
        self.run_list = QListWidget()
        self.run_list.setObjectName("runList")
        self.run_list.setAccessibleName("Runs")
        self.run_list.setToolTip(
            "Every training run of this window, and the runs a loaded model's history "
            "records. Tick runs to draw their smoothed loss and validation points on the "
            "plot beside the current run, and to compare them in the table below.")
        self.run_list.itemChanged.connect(self._on_item_changed)

        self.compare_table = QTableWidget()
        self.compare_table.setObjectName("runCompareTable")
        self.compare_table.setAccessibleName("Comparison of the ticked runs")
        self.compare_table.setToolTip(
            "One column per ticked run: only the settings in which they differ, then their "
            "results (best validation loss in nats per character, training time, steps).")
        self.compare_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

        self.prompt_edit = QLineEdit()
        self.prompt_edit.setObjectName("sideBySidePrompt")
        self.prompt_edit.setAccessibleName("Prompt for side-by-side generation")
        self.prompt_edit.setPlaceholderText("prompt (optional)")
        self.prompt_edit.setToolTip("Every ticked run's model continues this same text (empty: "
                                    "each starts after a new line); characters a model never "
                                    "saw are left out for it.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("sideBySideSeed")
        self.seed_spin.setAccessibleName("Random seed for side-by-side generation")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(1)
        self.seed_spin.setPrefix("seed ")
        self.seed_spin.setMaximumWidth(110)  # the prompt takes the rest of the row
        self.seed_spin.setToolTip("The same random seed for every model, so the texts differ "
                                  "only by what the models learned.")
        self.side_by_side_button = QPushButton("Generate side by side")
        self.side_by_side_button.setObjectName("sideBySideButton")
        self.side_by_side_button.setAccessibleName("Generate side by side")
        self.side_by_side_button.setToolTip(
            f"Let each ticked run's model write {SIDE_BY_SIDE_LENGTH} characters from the same "
            f"prompt and seed at temperature {SAMPLE_TEMPERATURE:g}, shown in columns on the "
            f"Side by side page. A run known only from a loaded model's history has no model "
            f"to generate with (only the loaded model itself has).")
        self.side_by_side_button.clicked.connect(self.generate_side_by_side)
        self.note = QLabel()
        self.note.setObjectName("sideBySideNote")
        self.note.setAccessibleName("Why a run cannot generate")
        self.note.setWordWrap(True)

        row = QHBoxLayout()  # the prompt gets the row's width; the button a row of its own
        row.addWidget(self.prompt_edit, stretch=1)
        row.addWidget(self.seed_spin)
        bottom = QWidget()
        column = QVBoxLayout(bottom)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.compare_table)
        column.addLayout(row)
        column.addWidget(self.side_by_side_button)
        column.addWidget(self.note)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.run_list)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 2)
        return splitter

    def _build_side_by_side_page(self) -> QWidget:
        self.side_by_side_view = QWidget()
        self.side_by_side_view.setObjectName("sideBySideView")
        self.side_by_side_view.setAccessibleName("Texts generated side by side")
        self.side_by_side_view.setToolTip("What each ticked run's model wrote from the same "
                                          "prompt and seed, one column per run.")
        self._columns = QHBoxLayout(self.side_by_side_view)
        self._columns.setContentsMargins(4, 4, 4, 4)
        self._placeholder = QLabel("Tick runs on the Runs page and press Generate side by side.")
        self._placeholder.setWordWrap(True)
        self._columns.addWidget(self._placeholder)
        return self.side_by_side_view

    # ---- public API ----

    def ticked_runs(self) -> list[RunRecord]:
        runs = []
        for row in range(self.run_list.count()):
            item = self.run_list.item(row)
            if item.checkState() == Qt.CheckState.Checked:
                runs.append(self.session.runs[item.data(RUN_ROLE)])
        return runs

    def set_ticked(self, labels: Sequence[str]) -> None:
        """Tick exactly the runs with these labels."""
        for row in range(self.run_list.count()):
            item = self.run_list.item(row)
            run = self.session.runs[item.data(RUN_ROLE)]
            item.setCheckState(Qt.CheckState.Checked if run.label in labels
                               else Qt.CheckState.Unchecked)

    def compared_runs(self) -> list[ComparedRun]:
        return [ComparedRun(run.label, run.steps, run.losses, run.val_steps, run.val_losses)
                for run in self.ticked_runs()]

    def side_by_side_texts(self) -> list[tuple[str, str]]:
        """(title, text) of each column shown on the Side by side page."""
        return [(edit.property("runLabel"), edit.toPlainText())
                for edit in self.side_by_side_view.findChildren(QPlainTextEdit)]

    @property
    def is_generating(self) -> bool:
        return self._worker is not None

    def generate_side_by_side(self) -> None:
        """Generate from the ticked runs that have a model, in a worker thread."""
        runs = self.ticked_runs()
        usable = [run for run in runs if run.model is not None]
        if self._worker is not None or not usable:
            return
        entries = [(run.label, run.model, run.tokenizer) for run in usable]
        self._worker = worker = TaskWorker(generate_side_by_side, entries,
                                           self.prompt_edit.text(), SIDE_BY_SIDE_LENGTH,
                                           self.seed_spin.value())
        worker.succeeded.connect(self._on_generated)
        worker.failed.connect(self._on_generation_failed)
        worker.finished.connect(self._on_generation_finished)
        self.side_by_side_button.setText("Generating…")
        self._update_controls()
        start_worker(worker)

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        return stop_and_wait(self._worker, timeout_ms)

    # ---- slots ----

    def _on_runs_changed(self) -> None:
        ticked = {run.label for run in self.ticked_runs()}
        self.run_list.blockSignals(True)
        self.run_list.clear()
        for index, run in enumerate(self.session.runs):
            best = "" if run.best_val_loss is None else f", best {run.best_val_loss:.3f}"
            item = QListWidgetItem(f"{run.label} ({format_duration(run.seconds)}{best})")
            item.setData(RUN_ROLE, index)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if run.label in ticked
                               else Qt.CheckState.Unchecked)
            kept = ("its model is kept in memory for side-by-side generation"
                    if run.model is not None else
                    "no model in memory: it is known only from a loaded model's history")
            item.setToolTip(f"{run.label}, {run.source}; steps {run.start_step + 1:,} to "
                            f"{run.end_step:,}, ended: {run.reason or 'unknown'}; {kept}.")
            self.run_list.addItem(item)
        self.run_list.blockSignals(False)
        self._on_ticked_changed()

    def _on_item_changed(self, _item: QListWidgetItem) -> None:
        self._on_ticked_changed()

    def _on_ticked_changed(self) -> None:
        runs = self.ticked_runs()
        self._fill_table(runs)
        without = [run.label for run in runs if run.model is None]
        if not runs:
            self.note.setText("Tick runs in the list to draw them on the plot and compare "
                              "them in the table." if self.session.runs else
                              "Each finished run is listed here, to compare with the next.")
        else:
            self.note.setText(
                "" if not without else
                f"{', '.join(without)}: no model in memory (known only from a loaded "
                f"model's history), so {'it' if len(without) == 1 else 'they'} cannot "
                f"generate side by side.")
        self._update_controls()
        self.compared_runs_changed.emit()

    def _fill_table(self, runs: list[RunRecord]) -> None:
        rows = setting_rows(runs) + result_rows(runs) if runs else []
        table = self.compare_table
        table.clear()
        table.setColumnCount(len(runs))
        table.setRowCount(len(rows))
        # the short name ("Run 2") heads the column, so two or three fit side by side
        for column, run in enumerate(runs):
            header = QTableWidgetItem(run.label.split(" · ")[0])
            header.setToolTip(run.label)
            table.setHorizontalHeaderItem(column, header)
        table.setVerticalHeaderLabels([name for name, _ in rows])
        for row, (_name, values) in enumerate(rows):
            for column, value in enumerate(values):
                cell = QTableWidgetItem(value)
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(row, column, cell)
        table.resizeColumnsToContents()

    def table_rows(self) -> list[str]:
        """The comparison table's row names, top to bottom."""
        table = self.compare_table
        return [table.verticalHeaderItem(row).text() for row in range(table.rowCount())]

    def _on_generated(self, texts: list[tuple[str, str]]) -> None:
        while self._columns.count():
            widget = self._columns.takeAt(0).widget()
            if widget is not None:
                widget.setParent(None)
                widget.deleteLater()
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        for label, text in texts:
            column = QWidget()
            layout = QVBoxLayout(column)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.addWidget(QLabel(f"<b>{label}</b>"))
            edit = QPlainTextEdit(text)
            edit.setObjectName("sideBySideText")
            edit.setAccessibleName(f"Text generated by {label}")
            edit.setToolTip(f"What the model of {label} wrote.")
            edit.setProperty("runLabel", label)
            edit.setReadOnly(True)
            edit.setFont(font)
            layout.addWidget(edit)
            self._columns.addWidget(column)
        self.setCurrentWidget(self.side_page)

    def _on_generation_failed(self, message: str) -> None:
        self.note.setText(f"Side-by-side generation failed: {message}")

    def _on_generation_finished(self) -> None:
        self._worker = None
        self.side_by_side_button.setText("Generate side by side")
        self._update_controls()
        self.side_by_side_finished.emit()

    def _update_controls(self) -> None:
        usable = any(run.model is not None for run in self.ticked_runs())
        self.side_by_side_button.setEnabled(usable and self._worker is None)
