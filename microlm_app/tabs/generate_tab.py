"""The Generate tab: sample text from the trained model, streamed from a worker thread, with a
live preview that follows the temperature slider, top-k and top-p."""

from __future__ import annotations

import random
from dataclasses import dataclass

from PySide6.QtCore import Qt, QThread, QTimer, Slot
from PySide6.QtGui import QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTabWidget,
    QWidget,
)

from microlm import GeneratedChar, TextGenerator

from ..session import Session
from ..workers import GenerationWorker, start_worker, stop_and_wait, wait_for_thread_end
from .generate_settings import (
    COMPARE_TEMPERATURES,
    NO_MODEL_MESSAGE,
    PREVIEW_MAX_CHARS,
    RANDOM_SEED,
    GenerateSettings,
)
from .generated_view import GeneratedView
from .temperature_comparison import CompareWorker, ComparisonPanes

__all__ = ["COMPARE_TEMPERATURES", "PREVIEW_MAX_CHARS", "GenerateTab", "GenerationRequest"]

PREVIEW_INTERVAL_MS = 100  # while a setting moves, at most one preview starts per interval


@dataclass(frozen=True)
class GenerationRequest:
    """One text asked for: its sampling settings, and whether it is a live preview."""

    serial: int  # counts up with every request; a worker's signals carry it
    prompt: str  # as fed to the model (characters it never saw dropped)
    length: int  # characters to generate (a preview's at most PREVIEW_MAX_CHARS)
    asked_length: int  # the Length setting
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int
    preview: bool

    def sampling_options(self) -> dict:
        return dict(prompt=self.prompt, length=self.length, temperature=self.temperature,
                    top_k=self.top_k, top_p=self.top_p, seed=self.seed)

    def settings_text(self) -> str:
        """The settings in words, e.g. 'temperature 0.70, top-k 5, seed 42'."""
        parts = [f"temperature {self.temperature:.2f}"]
        if self.top_k is not None:
            parts.append(f"top-k {self.top_k}")
        if self.top_p is not None:
            parts.append(f"top-p {self.top_p:.2f}")
        return ", ".join([*parts, f"seed {self.seed}"])


class GenerateTab(QWidget):
    """Prompt and sampling settings on the left, the generated text on the right.

    One generation thread at a time: a new request (a preview or Generate) stops the one
    in flight and starts when it has ended; signals of a replaced request are dropped."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generateTab")
        self.session = session
        self._generation_worker: GenerationWorker | None = None
        self._generation_thread: QThread | None = None
        self._compare_worker: CompareWorker | None = None
        self._compare_seed = 0
        self._request: GenerationRequest | None = None  # the text shown or coming
        self._request_done = False  # its worker reported the end of it
        self._generator: TextGenerator | None = None  # for the request's worker
        self._started_serial = 0  # the request whose worker runs (or ran last)
        self._serial = 0
        self.replaced_requests = 0  # requests a newer one replaced before they finished
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_INTERVAL_MS)
        self._preview_timer.timeout.connect(self._start_preview)

        settings = self.settings = GenerateSettings()
        self.model_status, self.prompt_edit = settings.model_status, settings.prompt_edit
        self.unknown_chars_label, self.length_spin = (settings.unknown_chars_label,
                                                      settings.length_spin)
        self.temperature_slider = settings.temperature_slider
        self.temperature_label = settings.temperature_label
        self.top_k_spin, self.top_p_spin = settings.top_k_spin, settings.top_p_spin
        self.seed_spin, self.live_preview_check = settings.seed_spin, settings.live_preview_check
        self.colour_check, self.colour_legend = settings.colour_check, settings.colour_legend
        self.generate_button, self.compare_button = (settings.generate_button,
                                                     settings.compare_button)
        self.copy_button, self.save_button = settings.copy_button, settings.save_button
        self.generation_stats, self.speed_label = (settings.generation_stats,
                                                   settings.speed_label)

        self.output_view = self.generated_text_edit = GeneratedView()
        self.comparison = ComparisonPanes(COMPARE_TEMPERATURES)
        self.output_tabs = QTabWidget()
        self.output_tabs.setObjectName("generateOutputTabs")
        self.output_tabs.addTab(self.output_view, "Output")
        self.output_tabs.addTab(self.comparison, "Temperature comparison")
        # the settings scroll when the window is short, so the window can be
        settings_scroll = QScrollArea()
        settings_scroll.setObjectName("generateSettingsScroll")
        settings_scroll.setWidgetResizable(True)
        settings_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        settings_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        settings_scroll.setWidget(settings)
        settings_scroll.setMinimumWidth(settings.sizeHint().width()
                                        + settings_scroll.verticalScrollBar().sizeHint().width())
        layout = QHBoxLayout(self)
        layout.addWidget(settings_scroll, 0)
        layout.addWidget(self.output_tabs, 1)

        self.prompt_edit.textChanged.connect(self._on_prompt_changed)
        for changed in (self.temperature_slider.valueChanged, self.top_k_spin.valueChanged,
                        self.top_p_spin.valueChanged):
            changed.connect(self._on_sampling_changed)
        self.live_preview_check.toggled.connect(self._on_live_preview_toggled)
        self.colour_check.toggled.connect(self._on_colour_changed)
        self.generate_button.clicked.connect(self._on_generate_clicked)
        self.compare_button.clicked.connect(self._on_compare_clicked)
        self.copy_button.clicked.connect(self._on_copy_clicked)
        self.save_button.clicked.connect(lambda: self.export_text())
        session.model_changed.connect(self._on_model_changed)
        session.training_state_changed.connect(self._on_training_state_changed)
        self._on_model_changed()

    # ----------------------------------------------------------------- public API
    def generated_text(self) -> str:
        """The prompt and the characters generated after it (the Output pane's text)."""
        return self.output_view.text()

    @property
    def generated_chars(self) -> list[GeneratedChar]:
        return self.output_view.chars

    @property
    def shown_request(self) -> GenerationRequest | None:
        """What the Output pane shows (or is about to): a live preview or a full run."""
        return self._request

    def export_text(self, path: str | None = None) -> bool:
        """Write the generated text as UTF-8; asks for a file name when `path` is None."""
        text = self.generated_text()
        if not text:
            QMessageBox.warning(self, "Nothing to export",
                                "Generate some text first, then save it.")
            return False
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export Generated Text",
                                                  "generated.txt",
                                                  "Text files (*.txt);;All files (*)")
            if not path:
                return False
        try:
            with open(path, "w", encoding="utf-8", newline="") as file:
                file.write(text)
        except OSError as err:
            QMessageBox.warning(self, "Could not save the text",
                                f"Could not write {path}: {err.strerror or err}.")
            return False
        self._show_status(f"Saved the generated text to {path}")
        return True

    @property
    def is_generating(self) -> bool:
        """A generation or comparison runs, or a live preview is about to start."""
        return (self._generation_worker is not None or self._compare_worker is not None
                or self._preview_timer.isActive())

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        self._preview_timer.stop()
        stopped = stop_and_wait(self._generation_worker, timeout_ms)
        return stop_and_wait(self._compare_worker, timeout_ms) and stopped

    def temperature(self) -> float:
        return self.settings.temperature()

    # ----------------------------------------------------------------- session
    def _on_model_changed(self) -> None:
        self._on_prompt_changed()
        self._update_enabled()

    def _on_training_state_changed(self, _active: bool) -> None:
        self._update_enabled()

    def _model_in_training(self) -> bool:
        """True while a run updates the very model this tab would sample from."""
        trainer = self.session.trainer
        return (self.session.training_active and trainer is not None
                and getattr(trainer, "model", None) is self.session.model)

    def _can_start(self) -> bool:
        has_model = self.session.model is not None and self.session.model_tokenizer is not None
        return has_model and not self._model_in_training()

    def _full_run_in_flight(self) -> bool:
        return (self._generation_worker is not None and self._request is not None
                and not self._request.preview and not self._request_done)

    def _update_enabled(self) -> None:
        has_model = self.session.model is not None and self.session.model_tokenizer is not None
        busy_model = has_model and self._model_in_training()
        if not has_model:
            self.model_status.setText(NO_MODEL_MESSAGE)
        elif busy_model:
            self.model_status.setText("Training is updating this model; generate when the "
                                      "run ends.")
        self.model_status.setVisible(not has_model or busy_model)
        can_start = has_model and not busy_model
        full_run = self._full_run_in_flight()
        comparing = self._compare_worker is not None
        self.generate_button.setText("Stop" if full_run else "Generate")
        self.generate_button.setEnabled(full_run or (can_start and not comparing))
        self.compare_button.setText("Stop comparing" if comparing else "Compare temperatures")
        self.compare_button.setEnabled(
            comparing or (can_start and self._generation_worker is None))
        has_text = bool(self.generated_text())
        self.copy_button.setEnabled(has_text)
        self.save_button.setEnabled(has_text)

    # ----------------------------------------------------------------- settings
    def _on_prompt_changed(self) -> None:
        """Point out prompt characters the model never saw; they are dropped, not an error."""
        tokenizer = self.session.model_tokenizer
        unknown = tokenizer.unknown_characters(self._prompt()) if tokenizer else []
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            self.unknown_chars_label.setText(
                f"{shown}{more} {'is' if len(unknown) == 1 else 'are'} not in the model's "
                f"vocabulary — they will be dropped from the prompt (the model can only read "
                f"characters it saw in training).")
        self.unknown_chars_label.setVisible(bool(unknown))

    def _on_colour_changed(self, checked: bool) -> None:
        self.colour_legend.setVisible(checked)
        self.output_view.set_coloured(checked)

    def _on_sampling_changed(self) -> None:
        """Temperature, top-k or top-p moved: preview them, at most once per interval."""
        if self.live_preview_check.isChecked() and not self._preview_timer.isActive():
            self._preview_timer.start()

    def _on_live_preview_toggled(self, checked: bool) -> None:
        if not checked:
            self._preview_timer.stop()

    def _prompt(self) -> str:
        return self.prompt_edit.toPlainText()

    def _new_request(self, preview: bool) -> GenerationRequest:
        seed = self.seed_spin.value()
        if seed == RANDOM_SEED:  # picked here so it can be shown and reused
            keep = preview and self._request is not None
            seed = self._request.seed if keep else random.randrange(2**31 - 1)
        top_k, top_p = self.top_k_spin.value(), round(self.top_p_spin.value(), 2)
        length = self.length_spin.value()
        self._serial += 1
        return GenerationRequest(
            serial=self._serial,
            prompt=self.session.model_tokenizer.clean(self._prompt(), "drop"),
            length=min(length, PREVIEW_MAX_CHARS) if preview else length,
            asked_length=length, temperature=self.temperature(), top_k=top_k or None,
            top_p=top_p if top_p < 1.0 else None, seed=seed, preview=preview)

    def _make_generator(self) -> TextGenerator | None:
        try:
            return TextGenerator(self.session.model, self.session.model_tokenizer)
        except ValueError as err:
            QMessageBox.warning(self, "Cannot generate", str(err))
            return None

    # ----------------------------------------------------------------- generating
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        # Ctrl+Return from any field of the tab: the prompt, spin boxes and slider do not
        # use it, so it arrives here (a QShortcut would also need the window to be active).
        is_enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if is_enter and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if self.generate_button.isEnabled() and not self._full_run_in_flight():
                self._on_generate_clicked()
            event.accept()
            return
        super().keyPressEvent(event)

    def _on_generate_clicked(self) -> None:
        if self._full_run_in_flight():
            self._generation_worker.stop()
            self.generate_button.setEnabled(False)  # until the worker confirms it ended
            return
        self._preview_timer.stop()  # this run already uses the latest settings
        self._request_generation(preview=False)

    def _start_preview(self) -> None:
        if (self.live_preview_check.isChecked() and self._can_start()
                and self._compare_worker is None):
            self._request_generation(preview=True)

    def _request_generation(self, preview: bool) -> None:
        """Show a new request; start it now, or once the generation in flight has stopped."""
        generator = self._make_generator()
        if generator is None:
            return
        if self._request is not None and not self._request_done:
            self.replaced_requests += 1
        request = self._request = self._new_request(preview)
        self._request_done, self._generator = False, generator
        self.output_tabs.setCurrentIndex(0)
        self.output_view.start(request.prompt)
        self.generation_stats.setText(self._progress_text(request))
        self.speed_label.setText("")
        if self._generation_worker is None:
            self._start_generation()
        else:
            self._generation_worker.stop()  # its `finished` starts this request
        self._update_enabled()

    def _start_generation(self) -> None:
        request = self._request
        worker = GenerationWorker(self._generator, **request.sampling_options(),
                                  request=request.serial)
        worker.chars_generated.connect(self._on_chars_generated)
        worker.generation_finished.connect(self._on_generation_finished)
        worker.failed.connect(self._on_generation_failed)
        worker.finished.connect(self._on_generation_worker_finished)
        self._generation_worker, self._started_serial = worker, request.serial
        self._generation_thread = start_worker(worker)

    def _is_current(self, serial: int) -> bool:
        return self._request is not None and serial == self._request.serial

    @Slot(int, object, float)
    def _on_chars_generated(self, serial: int, chars: tuple[GeneratedChar, ...],
                            chars_per_second: float) -> None:
        if not self._is_current(serial):  # a late chunk of a replaced request
            return
        self.output_view.append(chars)
        self.speed_label.setText(f"{chars_per_second:,.0f} chars/s")
        self._update_enabled()

    @Slot(int, float)
    def _on_generation_finished(self, serial: int, chars_per_second: float) -> None:
        if not self._is_current(serial):
            return
        self._request_done = True
        message = self._finished_text(self._request, len(self.output_view.chars),
                                      chars_per_second)
        self.generation_stats.setText(message)
        self.speed_label.setText(f"{chars_per_second:,.0f} chars/s")
        if not self._request.preview:
            self._show_status(message)

    @Slot(str)
    def _on_generation_failed(self, message: str) -> None:
        self.generation_stats.setText("Generation failed.")
        QMessageBox.warning(self, "Generation failed", message)

    @Slot()
    def _on_generation_worker_finished(self) -> None:
        wait_for_thread_end(self._generation_thread)
        self._generation_worker = self._generation_thread = None
        if self._request is not None and self._request.serial != self._started_serial:
            self._start_generation()  # the newest request waited for this one to stop
        elif self._request is not None:
            self._request_done = True  # also after a failure, which names no request
        self._update_enabled()

    @staticmethod
    def _progress_text(request: GenerationRequest) -> str:
        if not request.preview:
            return f"Generating {request.length:,} characters ({request.settings_text()})…"
        if request.length < request.asked_length:
            return (f"Live preview of the first {request.length:,} of "
                    f"{request.asked_length:,} characters ({request.settings_text()})…")
        return f"Live preview ({request.settings_text()})…"

    @staticmethod
    def _finished_text(request: GenerationRequest, count: int, speed: float) -> str:
        if request.preview:
            shown = (f"the first {count:,} of {request.asked_length:,} characters; press "
                     "Generate for all of them" if request.length < request.asked_length
                     else f"{count:,} characters")
            return f"Live preview ({request.settings_text()}): {shown}."
        what = f"Stopped after {count:,}" if count < request.length else f"Generated {count:,}"
        return (f"{what} characters with Generate at {speed:,.0f} chars/s "
                f"({request.settings_text()}).")

    # ----------------------------------------------------------------- comparing
    def _on_compare_clicked(self) -> None:
        if self._compare_worker is not None:
            self._compare_worker.stop()
            self.compare_button.setEnabled(False)
            return
        generator = self._make_generator()
        if generator is None:
            return
        self._preview_timer.stop()
        request = self._new_request(preview=False)
        self.comparison.start()
        self.output_tabs.setCurrentIndex(1)
        self.generation_stats.setText(f"Comparing temperatures (seed {request.seed})…")
        worker = CompareWorker(generator, request.prompt, request.length, COMPARE_TEMPERATURES,
                               request.top_k, request.top_p, request.seed)
        worker.temperature_generated.connect(self.comparison.show_text)
        worker.failed.connect(self._on_generation_failed)
        worker.finished.connect(self._on_compare_worker_finished)
        self._compare_seed = request.seed
        self._compare_worker = worker
        start_worker(worker)
        self._update_enabled()

    @Slot()
    def _on_compare_worker_finished(self) -> None:
        self._compare_worker = None
        done = self.comparison.finish()
        self.generation_stats.setText(f"Compared {done} temperatures with seed "
                                      f"{self._compare_seed}.")
        self._update_enabled()

    # ----------------------------------------------------------------- copy
    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.generated_text())
        self._show_status("Copied the generated text to the clipboard.")

    def _show_status(self, message: str) -> None:
        window = self.window()
        if isinstance(window, QMainWindow) and window.statusBar() is not None:
            window.statusBar().showMessage(message, 5000)
