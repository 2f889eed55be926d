"""The Train tab: start, pause and stop training, watch the loss fall and samples improve."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from microlm import (
    Evaluated,
    ModelTrainer,
    SampleGenerated,
    StepCompleted,
    TrainingFinished,
    TrainingStarted,
)
from microlm.run import recorded_samples
from microlm.units import format_duration

from ..loss_panel import LossPanel
from ..loss_words import describe_loss, in_unit
from ..session import Session
from ..workers import start_worker, stop_and_wait
from .run_list import RunsPanel
from .run_report import (  # noqa: F401 - OVERFITTING_HINT: the hint's text, for its tests
    OVERFITTING_HINT,
    end_message,
    ending,
    is_overfitting,
    overfitting_hint_label,
)
from .sample_timeline import SampleTimeline
from .training_run import (
    TrainingRun,
    continue_option,
    continue_trainer_factory,
    new_trainer_factory,
    train_plan,
    warm_up_optimizer,
)

TRAIN_TIP = ("Start training the model on the loaded text with the settings from the "
             "Configure tab (Ctrl+Return). The plot shows the loss falling as it learns.")


class TrainTab(QWidget):
    """Train, Pause/Resume and Stop; the live loss plot, progress, status and samples."""

    run_started = Signal(object)  # TrainingStarted, once the data is prepared
    run_finished = Signal(object)  # TrainingFinished, or None after a failure; tab is idle

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainTab")
        self.session = session
        self._worker: TrainingRun | None = None
        self._thread: QThread | None = None  # runs until just after the worker's last signal
        self._trainer: ModelTrainer | None = None
        self._paused = False
        self._stopping = False
        self._finished_event: TrainingFinished | None = None
        self._failure: str | None = None
        self._started = 0.0  # time.monotonic() when Train was last pressed
        self._budget_s: float | None = None  # that run's time budget, if any
        self._total_steps = 0
        self._steps_before = 0  # the trainer's step count when this run was handed over
        self._start_step = 0  # global step before this run's first step
        self._continue_available = False
        self._continue_blocked = ""  # why the current model cannot continue, if it cannot
        self._last_val_loss: float | None = None
        self._run_notes = ""  # the trainer's notes on this run (TrainingStarted.notes)
        self._threads_note = ""  # while the run is on one CPU thread: why
        self._best_val_loss: float | None = None
        self._evaluations: list[Evaluated] = []
        self.first_step: StepCompleted | None = None  # of the current run (for chars/s figures)
        self.last_step: StepCompleted | None = None

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_controls())
        layout.addWidget(self._build_blocked_label())
        layout.addWidget(self._build_plot_and_runs(), stretch=3)
        layout.addWidget(self._build_progress())
        layout.addWidget(self._build_status())
        self.overfitting_hint = overfitting_hint_label()
        layout.addWidget(self.overfitting_hint)
        self.timeline = SampleTimeline()
        self.sample_preview = self.timeline.preview
        layout.addWidget(self.timeline, stretch=1)
        self._build_shortcuts()
        warm_up_optimizer()

        session.corpus_changed.connect(self._on_corpus_changed)
        session.config_changed.connect(self._on_config_changed)
        session.model_changed.connect(self._on_model_changed)
        self._on_config_changed()

    # ---- building ----

    def _build_controls(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.train_button = self._button(
            "trainButton", "Train", "Train (Ctrl+Return)", TRAIN_TIP, self.start_training)
        self.pause_button = self._button(
            "pauseButton", "Pause", "Pause or resume training (Ctrl+P)",
            "Pause training to look at the plot and samples, then Resume where it left off "
            "(Ctrl+P). Paused time does not count towards the time budget.",
            self.pause_or_resume)
        self.stop_button = self._button(
            "stopButton", "Stop", "Stop training (Esc)",
            "Stop training after the current step (Esc). The best model so far is kept and "
            "is ready on the Generate and Inspect tabs and for File > Save Model.",
            self.stop_training)
        for button in (self.train_button, self.pause_button, self.stop_button):
            row.addWidget(button)
        self.continue_check = QCheckBox("Continue training the current model")
        self.continue_check.setObjectName("continueTrainingCheck")
        self.continue_check.setAccessibleName("Continue training the current model")
        self.continue_check.toggled.connect(self._on_continue_changed)
        row.addWidget(self.continue_check)
        self.continue_reason = QLabel()
        self.continue_reason.setObjectName("continueReason")
        self.continue_reason.setAccessibleName("Which model Train trains")
        self.continue_reason.setToolTip(
            "Which model Train trains: the current one (when “Continue training” is ticked) "
            "or a new one. Train continues only a model the Configure tab's settings describe.")
        self.continue_reason.setWordWrap(True)
        self.continue_reason.setStyleSheet("color: #a33;")
        row.addWidget(self.continue_reason, stretch=1)
        return row

    def _button(self, name: str, text: str, accessible: str, tip: str,
                slot: Callable[[], Any]) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAccessibleName(accessible)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def _build_blocked_label(self) -> QLabel:
        # says why Train is disabled (no text, invalid settings) or what Train will do
        self.blocked_label = QLabel()
        self.blocked_label.setObjectName("trainBlockedReason")
        self.blocked_label.setAccessibleName("Why training cannot start")
        self.blocked_label.setWordWrap(True)
        self.blocked_label.setStyleSheet("color: #a33;")
        return self.blocked_label

    def _build_plot(self) -> QVBoxLayout:
        column = QVBoxLayout()
        self.loss_panel = LossPanel()  # the plot, its log-scale and bits options, a hint
        self.loss_plot = self.loss_panel.plot
        self.log_scale_check = self.loss_panel.log_scale_check
        self.bits_check = self.loss_panel.bits_check
        self.loss_panel.units_changed.connect(self._on_units_changed)
        self.loss_panel.show_reference_losses(self.session.corpus_stats,
                                              self.session.model_tokenizer)
        column.addWidget(self.loss_panel)
        return column

    def _build_progress(self) -> QProgressBar:
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("trainProgress")
        self.progress_bar.setAccessibleName("Training progress")
        self.progress_bar.setToolTip(
            "How much of the run is done, and an estimate of the time left (ETA) from the "
            "speed of the last steps.")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Not started")
        return self.progress_bar

    def _build_status(self) -> QLabel:
        self.status_label = QLabel("Load a text and press Train.")
        self.status_label.setObjectName("trainStatus")
        self.status_label.setAccessibleName("Training status")
        self.status_label.setToolTip(
            "Epoch and step; loss = the last batch's training loss; validation loss = the "
            "loss on held-out text (of the averaged weights, with weight averaging on), and "
            "how unsure that is in words (perplexity, e^loss); best val = the lowest "
            "validation loss so far (that model is kept); chars/s = training speed; lr = the "
            "learning rate the schedule uses now. Losses are in nats per character, or in "
            "bits per character with “Bits per character” checked.")
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setWordWrap(True)
        return self.status_label

    def _build_plot_and_runs(self) -> QSplitter:
        """The plot, large, with the runs to compare in a panel beside it."""
        plot = QWidget()
        plot.setLayout(self._build_plot())
        plot.layout().setContentsMargins(0, 0, 0, 0)
        self.runs_panel = RunsPanel(self.session)
        self.runs_panel.compared_runs_changed.connect(self._on_compared_runs_changed)
        self.runs_panel.setMinimumWidth(320)  # two runs' labels and columns side by side
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(plot)
        splitter.addWidget(self.runs_panel)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        return splitter

    def _build_shortcuts(self) -> None:
        # Window-wide, but Qt only fires a shortcut whose parent is visible: these act only
        # while the Train tab is the one shown.
        for keys, slot in (("Ctrl+Return", self.start_training),
                           ("Ctrl+Enter", self.start_training),
                           ("Ctrl+P", self.pause_or_resume),
                           ("Esc", self.stop_training)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)

    # ---- public API ----

    @property
    def is_training(self) -> bool:
        return self._worker is not None

    def start_training(self) -> None:
        """Build the model and trainer and start a training run in a worker thread."""
        if self.is_training or self.train_blocked_reason():
            return
        session = self.session
        text = session.corpus.text
        config = replace(session.training_config, val_fraction=session.val_fraction)
        continuing = self._continue_available and self.continue_check.isChecked()
        if continuing:
            make_trainer = continue_trainer_factory(self.session, text, config)
        else:
            make_trainer = new_trainer_factory(
                replace(session.model_config, vocab_size=session.tokenizer.vocab_size()),
                session.tokenizer, config, text)
            self.loss_plot.clear_data()
            self.timeline.clear()
        plan = train_plan(session, continuing)

        self._reset_run_state()
        self._started = time.monotonic()
        self._budget_s = config.time_budget_s
        self._worker = worker = TrainingRun(make_trainer, self._started)
        worker.trainer_ready.connect(self._on_trainer_ready)
        worker.training_started.connect(self._on_training_started)
        worker.steps_completed.connect(self._on_steps_completed)
        worker.threads_changed.connect(self._on_threads_changed)
        worker.evaluated.connect(self._on_evaluated)
        worker.sample_generated.connect(self._on_sample_generated)
        worker.training_finished.connect(self._on_training_finished)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        session.set_training_active(True)
        self.status_label.setText(f"{plan} Preparing the data…")
        self.progress_bar.setFormat("Preparing…")
        self._update_controls()
        self._thread = start_worker(worker)

    def pause_or_resume(self) -> None:
        if self._worker is None or self._stopping:
            return
        if self._paused:
            self._worker.resume()
            self._paused = False
            self.status_label.setText(self.status_label.text().removeprefix("Paused · "))
        else:
            self._worker.pause()
            self._paused = True
            self.status_label.setText("Paused · " + self.status_label.text())
        self._update_controls()

    def stop_training(self) -> None:
        """Ask the run to stop; it ends after the current step and keeps the best model."""
        if self._worker is None or self._stopping:
            return
        self._stopping = True
        self._worker.stop()
        self._paused = False
        self.status_label.setText("Stopping after the current step…")
        self._update_controls()

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        """Stop a run and wait for its thread (which ends just after the run's last signal),
        and a side-by-side generation."""
        if not self.runs_panel.stop_workers(timeout_ms):
            return False
        if self._worker is not None:
            self._stopping = True
            return stop_and_wait(self._worker, timeout_ms)
        try:
            return self._thread is None or self._thread.wait(timeout_ms)
        except RuntimeError:  # the thread object is already deleted: it ended
            return True

    def train_blocked_reason(self) -> str:
        """Why Train cannot start now, in words; empty when it can."""
        session = self.session
        if session.corpus is None or session.tokenizer is None:
            return "Load a text on the Data tab first."
        if not session.config_valid:
            return ("Fix the settings on the Configure tab first: "
                    + "; ".join(session.config_problems))
        if session.choosing_settings:
            return ("The Configure tab is measuring this computer to choose the model "
                    "(a few seconds); Train is ready when it is done.")
        return ""

    # ---- worker signals ----

    def _on_trainer_ready(self, trainer: ModelTrainer, step: int) -> None:
        self._trainer, self._steps_before = trainer, step

    def _on_training_started(self, event: TrainingStarted) -> None:
        self._total_steps = event.total_steps
        # a resumed run already did event.start_step of its steps before the checkpoint
        self._start_step = self._steps_before - event.start_step
        # what the trainer had to change (say, float32 where bfloat16 cannot run) stays in
        # the status line for the whole run
        self._run_notes = " ".join(event.notes)
        self._threads_note = ""
        self.status_label.setText(
            f"Training {event.num_parameters:,} parameters on {event.train_chars:,} characters "
            f"({event.val_chars:,} held out for validation) on {event.device} in "
            f"{event.precision}…" + (f" {self._run_notes}" if self._run_notes else ""))
        if self._run_notes:
            self._show_status_message(self._run_notes)
        self.progress_bar.setFormat("%p%")
        self.run_started.emit(event)

    def _on_steps_completed(self, events: tuple[StepCompleted, ...]) -> None:
        if not events:
            return
        self.loss_plot.append_losses(np.fromiter((e.step for e in events), float, len(events)),
                                     np.fromiter((e.loss for e in events), float, len(events)))
        if self.first_step is None:
            self.first_step = events[0]
        last = self.last_step = events[-1]
        self.progress_bar.setValue(round(last.progress * 1000))
        self.progress_bar.setFormat(f"%p% · ETA {format_duration(last.eta_s)}")
        if not self._stopping:
            self.status_label.setText(("Paused · " if self._paused else "")
                                      + self._status_text(last))

    def _on_threads_changed(self, threads: int, message: str) -> None:
        """The run went on with one CPU thread while other programs kept the cores busy, or
        back to all of them: the status bar says so, the status line while it lasts."""
        self._threads_note = message if threads == 1 else ""
        self._show_status_message(message)

    def _on_evaluated(self, event: Evaluated) -> None:
        self.loss_plot.add_validation(event.step, event.val_loss)
        self._last_val_loss, self._best_val_loss = event.val_loss, event.best_val_loss
        self._evaluations.append(event)
        if len(self._evaluations) >= 2 and math.isfinite(event.train_loss):
            self.overfitting_hint.setVisible(self._overfitting())
        if self.last_step is not None and not self._stopping:
            self.status_label.setText(("Paused · " if self._paused else "")
                                      + self._status_text(self.last_step))

    def _overfitting(self) -> bool:
        return is_overfitting(self._evaluations)

    def _on_sample_generated(self, event: SampleGenerated) -> None:
        self.timeline.add_sample(event.step, event.elapsed_s, event.val_loss, event.text)

    def _on_training_finished(self, event: TrainingFinished) -> None:
        self._finished_event = event
        if event.reason == "diverged":
            self.loss_plot.mark_diverged(event.step)

    def _on_failed(self, message: str) -> None:
        self._failure = message

    def _on_finished(self) -> None:
        """The worker is done (always last): hand the model over, go idle, then report."""
        self.loss_plot.refresh()
        finished, failure, trainer = self._finished_event, self._failure, self._trainer
        weights_finite = self._worker is not None and self._worker.weights_finite
        model_on_cpu = self._worker.model_on_cpu if self._worker is not None else None
        self._worker = None
        self._paused = self._stopping = False
        kept_model = False
        if finished is not None and trainer is not None and weights_finite:
            self.session.set_model(trainer.model, trainer.tokenizer,
                                   {"history": trainer.history,
                                    "best_val_loss": trainer.best_val_loss,
                                    "training_config": trainer.config.to_dict()}, unsaved=True)
            self.session.trainer = trainer
            kept_model = True
        if finished is not None and trainer is not None and trainer.history.get("runs"):
            # the time budget as set (the trainer's clock got it less the set-up)
            record = trainer.history["runs"][-1]
            self.session.add_run(trainer.history, record, model_on_cpu, trainer.tokenizer,
                                 training_config={**record["training_config"],
                                                  "time_budget_s": self._budget_s})
        self.session.set_training_active(False)
        self._update_controls()
        self._report_end(finished, failure, kept_model)
        self.run_finished.emit(finished if failure is None else None)

    def _report_end(self, finished: TrainingFinished | None, failure: str | None,
                    kept_model: bool) -> None:
        if failure is not None:
            self.status_label.setText(f"Training failed: {failure}")
            self.progress_bar.setFormat("Failed")
            QMessageBox.warning(self, "Training failed", failure)
            return
        if finished is None:
            return
        if finished.reason == "completed":
            self.progress_bar.setValue(1000)
        summary = self._finished_summary(finished, kept_model)
        if finished.reason == "diverged":
            summary = "The loss became NaN (training diverged). " + summary
        self.status_label.setText(summary)
        self.progress_bar.setFormat(f"%p% · {ending(finished)}")
        if finished.reason == "diverged":
            QMessageBox.warning(self, "Training diverged: the loss became NaN", finished.message)
            return
        self._show_status_message(end_message(finished, kept_model))

    # ---- session signals ----

    def _on_corpus_changed(self) -> None:
        self.loss_panel.show_reference_losses(self.session.corpus_stats,
                                              self.session.model_tokenizer)
        self._update_continue_option()
        self._update_controls()

    def _on_config_changed(self) -> None:
        self.timeline.set_sample_interval(self.session.training_config.sample_interval)
        self._update_continue_option()
        self._update_controls()

    def _on_model_changed(self) -> None:
        session = self.session
        history = (session.model_metadata or {}).get("history") or {}
        loaded_from_file = bool(session.model_path) and not session.model_unsaved
        if loaded_from_file and not self.is_training:
            self.loss_plot.set_history(history.get("step_losses", []),
                                       history.get("val_losses", []))
            self.overfitting_hint.hide()
            steps = len(history.get("step_losses", []))
            self.status_label.setText(
                f"Loaded a model trained for {steps:,} steps; its loss history is shown. "
                f"Train continues from it when “Continue training” is checked.")
            self.timeline.set_samples(recorded_samples(history))
        self.loss_panel.show_reference_losses(session.corpus_stats, session.model_tokenizer)
        self._update_continue_option(default_on=True)
        self._update_controls()

    def _on_continue_changed(self, checked: bool) -> None:
        self._update_controls()

    def _on_compared_runs_changed(self) -> None:
        self.loss_plot.set_compared_runs(self.runs_panel.compared_runs())

    def _on_units_changed(self, unit: str) -> None:
        # a finished run's summary gives both units; a running one's line follows the plot
        if self.last_step is not None and self.is_training and not self._stopping:
            self.status_label.setText(("Paused · " if self._paused else "")
                                      + self._status_text(self.last_step))

    # ---- helpers ----

    def _update_continue_option(self, default_on: bool = False) -> None:
        """Offer to continue the current model when the Configure tab's model settings
        describe it and its vocabulary covers the text; otherwise say why not."""
        was_available = self._continue_available
        usable, tooltip, self._continue_blocked = continue_option(self.session)
        self._continue_available = usable
        self.continue_check.setToolTip(tooltip)
        if not usable:
            self.continue_check.setChecked(False)
        elif default_on or not was_available:
            self.continue_check.setChecked(True)

    def _update_controls(self) -> None:
        training = self.is_training
        reason = self.train_blocked_reason()
        self.train_button.setEnabled(not training and not reason)
        self.pause_button.setEnabled(training and not self._stopping)
        self.stop_button.setEnabled(training and not self._stopping)
        self.pause_button.setText("Resume" if self._paused else "Pause")
        self.continue_check.setEnabled(self._continue_available and not training)
        continuing = self._continue_available and self.continue_check.isChecked()
        plan = self._continue_blocked or train_plan(self.session, continuing)
        self.continue_reason.setText(plan)
        self.continue_reason.setStyleSheet("color: #a33;" if self._continue_blocked else "")
        self.train_button.setToolTip(f"{TRAIN_TIP} {plan}")
        if training or not reason:
            self.blocked_label.hide()
        else:
            self.blocked_label.setText(reason)
            self.blocked_label.show()

    def _reset_run_state(self) -> None:
        self._trainer = None
        self._finished_event = None
        self._failure = None
        self._paused = self._stopping = False
        self._total_steps = 0
        self._last_val_loss = self._best_val_loss = None
        self._evaluations = []
        self.first_step = self.last_step = None
        self.overfitting_hint.hide()
        self.progress_bar.setValue(0)

    def _status_text(self, step: StepCompleted) -> str:
        epochs = self._trainer.config.epochs if self._trainer is not None else None
        total = self._start_step + self._total_steps
        unit = self.loss_plot.units
        parts = [f"Epoch {step.epoch}" + (f"/{epochs}" if epochs else ""),
                 f"step {step.step:,}/{total:,}",
                 f"loss {in_unit(step.loss, unit):.3f}"]
        if self._last_val_loss is not None:
            parts.append(f"validation loss {describe_loss(self._last_val_loss, unit, 3)}")
        if self._best_val_loss is not None:
            parts.append(f"best val {in_unit(self._best_val_loss, unit):.3f}")
        parts += [f"{step.chars_per_second:,.0f} chars/s", f"lr {step.learning_rate:.2e}"]
        if self._run_notes:
            parts.append(self._run_notes)
        if self._threads_note:
            parts.append(self._threads_note)
        return " · ".join(parts)

    def _finished_summary(self, finished: TrainingFinished, kept_model: bool) -> str:
        best = ("" if finished.best_val_loss is None else "; best validation loss "
                + describe_loss(finished.best_val_loss, self.loss_plot.units))
        where = (" The model is ready on the Generate and Inspect tabs (File > Save Model "
                 "keeps it)." if kept_model else " No usable model was produced.")
        took = time.monotonic() - self._started
        budget = "" if self._budget_s is None else f" of the {self._budget_s:g} s budget"
        # The trainer's message names its own clock; the person set the whole budget.
        message = ("Time budget used." if finished.reason == "time_budget"
                   else finished.message)
        return (f"{message} {finished.step:,} steps in {finished.elapsed_s:.1f} s of "
                f"training{best}; {took:.1f} s{budget} from pressing Train to the model "
                f"ready.{where}")

    def _show_status_message(self, text: str) -> None:
        window = self.window()
        if isinstance(window, QMainWindow) and window.statusBar() is not None:
            window.statusBar().showMessage(text, 10_000)
