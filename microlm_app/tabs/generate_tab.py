"""The Generate tab: sample text from the trained model, streamed from a worker thread."""

from __future__ import annotations

import random
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QKeyEvent,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from microlm import GeneratedChar, TextGenerator
from microlm.surprise import SurpriseMap, surprise_map

from ..session import Session
from ..workers import BaseWorker, GenerationWorker, TaskWorker, start_worker, stop_and_wait

TEMPERATURE_STEP = 0.05  # one slider notch; the slider holds whole numbers 0..40
TEMPERATURE_MAX_STEPS = 40  # 40 x 0.05 = 2.00
DEFAULT_TEMPERATURE_STEPS = 16  # 0.80: the seed README's everyday temperature
COMPARE_TEMPERATURES = (0.2, 0.5, 0.8, 1.0, 1.3)
NO_MODEL_MESSAGE = ("No model yet. Train a model or open one (File > Open Model…) "
                    "to generate text.")
RANDOM_SEED = -1  # seedSpin value shown as "random"


def probability_colour(probability: float) -> QColor:
    """Red for characters the model found unlikely, through yellow, to green for likely ones.

    Light tints (low saturation) keep black text readable on every background.
    """
    probability = min(1.0, max(0.0, probability))
    return QColor.fromHsvF(probability / 3.0, 0.45, 1.0)  # hue 0 (red) .. 1/3 (green)


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


class GenerateTab(QWidget):
    """Prompt and sampling settings on the left, the generated text on the right."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generateTab")
        self.session = session
        self._generation_worker: GenerationWorker | None = None
        self._compare_worker: CompareWorker | None = None
        self._prompt_used = ""  # the prompt as fed to the model (unknown characters dropped)
        self._generated: list[GeneratedChar] = []
        # What the model expected at each generated character (its top 5), for the tooltips
        # of the coloured text; computed after generation, in a worker.
        self._expectations: SurpriseMap | None = None
        self._expectation_worker: TaskWorker | None = None
        self._expectations_asked = ""  # the generated text they were asked for
        self._compare_panes: dict[float, QPlainTextEdit] = {}

        layout = QHBoxLayout(self)
        layout.addWidget(self._build_settings(), 0)
        layout.addWidget(self._build_output(), 1)
        session.model_changed.connect(self._on_model_changed)
        session.training_state_changed.connect(self._on_training_state_changed)
        self._on_model_changed()

    # ----------------------------------------------------------------- building
    def _build_settings(self) -> QWidget:
        box = QWidget()
        box.setMaximumWidth(420)
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)

        self.model_status = QLabel(NO_MODEL_MESSAGE)
        self.model_status.setObjectName("generateModelStatus")
        self.model_status.setWordWrap(True)
        self.model_status.setStyleSheet("QLabel { color: #7a4b00; background: #fff4d6; "
                                        "padding: 6px; border-radius: 4px; }")
        column.addWidget(self.model_status)

        prompt_box = QGroupBox("Prompt")
        prompt_layout = QVBoxLayout(prompt_box)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setObjectName("promptEdit")
        self.prompt_edit.setAccessibleName("Prompt")
        self.prompt_edit.setPlaceholderText("Text the model continues, e.g. ROMEO:")
        self.prompt_edit.setToolTip(
            "The text the model starts from. It reads the prompt one character at a time to "
            "build up its memory (the LSTM state), then continues it. Leave it empty to "
            "start from a new line. Ctrl+Return generates.")
        self.prompt_edit.setMaximumHeight(80)
        self.prompt_edit.textChanged.connect(self._on_prompt_changed)
        prompt_layout.addWidget(self.prompt_edit)
        self.unknown_chars_label = QLabel()
        self.unknown_chars_label.setObjectName("unknownCharsLabel")
        self.unknown_chars_label.setWordWrap(True)
        self.unknown_chars_label.setStyleSheet("QLabel { color: #a03000; }")
        self.unknown_chars_label.hide()
        prompt_layout.addWidget(self.unknown_chars_label)
        column.addWidget(prompt_box)

        sampling = QGroupBox("Sampling")
        form = QFormLayout(sampling)
        self.length_spin = QSpinBox()
        self.length_spin.setObjectName("lengthSpin")
        self.length_spin.setAccessibleName("Length")
        self.length_spin.setRange(1, 20_000)
        self.length_spin.setValue(300)
        self.length_spin.setSuffix(" characters")
        self.length_spin.setToolTip(
            "How many new characters to generate after the prompt. Each one costs a single "
            "LSTM step, because the model carries its memory forward instead of re-reading "
            "the text, so time grows in proportion to length.")
        form.addRow("Length", self.length_spin)

        self.temperature_slider = QSlider(Qt.Orientation.Horizontal)
        self.temperature_slider.setObjectName("temperatureSlider")
        self.temperature_slider.setAccessibleName("Temperature")
        self.temperature_slider.setRange(0, TEMPERATURE_MAX_STEPS)
        self.temperature_slider.setSingleStep(1)
        self.temperature_slider.setPageStep(4)
        self.temperature_slider.setTickInterval(4)
        self.temperature_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.temperature_slider.setValue(DEFAULT_TEMPERATURE_STEPS)
        self.temperature_slider.setToolTip(
            "Temperature divides the model's scores before they become probabilities.\n"
            "Low (0.2-0.5): the likeliest characters win almost always: safe, repetitive text. "
            "0.00 is greedy: always the single most likely character.\n"
            "Around 0.8-1.0: the model's own uncertainty, varied but mostly sensible.\n"
            "High (1.3-2.0): unlikely characters get a real chance: creative, then gibberish.")
        self.temperature_label = QLabel()
        self.temperature_label.setObjectName("temperatureLabel")
        self.temperature_label.setAccessibleName("Temperature value")
        self.temperature_label.setMinimumWidth(36)
        self.temperature_label.setToolTip("The temperature the slider is set to (0.00 = greedy).")
        self.temperature_slider.valueChanged.connect(self._on_temperature_changed)
        self._on_temperature_changed(self.temperature_slider.value())
        row = QHBoxLayout()
        row.addWidget(self.temperature_slider, 1)
        row.addWidget(self.temperature_label)
        form.addRow("Temperature", row)

        self.top_k_spin = QSpinBox()
        self.top_k_spin.setObjectName("topKSpin")
        self.top_k_spin.setAccessibleName("Top-k")
        self.top_k_spin.setRange(0, 1000)
        self.top_k_spin.setSpecialValueText("off")
        self.top_k_spin.setToolTip(
            "Top-k keeps only the k most likely next characters and samples among them "
            "(0 = off: every character stays possible). A small k such as 5 removes rare "
            "mistakes at high temperature; k = 1 is the same as greedy.")
        form.addRow("Top-k", self.top_k_spin)

        self.top_p_spin = QDoubleSpinBox()
        self.top_p_spin.setObjectName("topPSpin")
        self.top_p_spin.setAccessibleName("Top-p")
        self.top_p_spin.setRange(0.05, 1.0)
        self.top_p_spin.setSingleStep(0.05)
        self.top_p_spin.setDecimals(2)
        self.top_p_spin.setValue(1.0)
        self.top_p_spin.setSuffix("  (1.00 = off)")
        self.top_p_spin.setToolTip(
            "Top-p (nucleus sampling) keeps the smallest set of likely characters whose "
            "probabilities add up to p, so the choice adapts: few candidates when the model "
            "is sure, many when it is not. 0.9 is a common setting; 1.00 = off.")
        form.addRow("Top-p", self.top_p_spin)

        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("seedSpin")
        self.seed_spin.setAccessibleName("Seed")
        self.seed_spin.setRange(RANDOM_SEED, 2_147_483_647)
        self.seed_spin.setSpecialValueText("random")
        self.seed_spin.setValue(RANDOM_SEED)
        self.seed_spin.setToolTip(
            "The seed fixes the random draws: the same model, prompt, settings and seed "
            "always give the same text, so you can change one setting and see its effect "
            "alone. 'random' picks a new seed each time (shown after generating, so you "
            "can reuse it).")
        form.addRow("Seed", self.seed_spin)
        column.addWidget(sampling)

        self.colour_check = QCheckBox("Colour by probability")
        self.colour_check.setObjectName("colourByProbabilityCheck")
        self.colour_check.setAccessibleName("Colour by probability")
        self.colour_check.setToolTip(
            "Tint each generated character by the probability the model gave it (before "
            "temperature): green = the model was confident, red = a surprising pick. High "
            "temperatures produce more red.")
        self.colour_check.toggled.connect(self._on_colour_changed)
        column.addWidget(self.colour_check)
        self.colour_legend = QLabel("low probability  →  high probability")
        self.colour_legend.setObjectName("probabilityLegend")
        self.colour_legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        low, mid, high = (probability_colour(p).name() for p in (0.0, 0.5, 1.0))
        self.colour_legend.setStyleSheet(
            "QLabel { padding: 3px; color: black; background: qlineargradient(x1:0, y1:0, "
            f"x2:1, y2:0, stop:0 {low}, stop:0.5 {mid}, stop:1 {high}); }}")
        self.colour_legend.setVisible(False)
        column.addWidget(self.colour_legend)

        buttons = QGridLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setAccessibleName("Generate")
        self.generate_button.setToolTip(
            "Continue the prompt with the model, streaming characters as they are sampled "
            "(Ctrl+Return). While it runs the button becomes Stop.")
        self.generate_button.clicked.connect(self._on_generate_clicked)
        self.compare_button = QPushButton("Compare temperatures")
        self.compare_button.setObjectName("compareTemperaturesButton")
        self.compare_button.setAccessibleName("Compare temperatures")
        self.compare_button.setToolTip(
            "Generate the same prompt with the same seed at temperatures "
            + ", ".join(f"{t:.1f}" for t in COMPARE_TEMPERATURES)
            + " side by side, to see how temperature trades safety for variety.")
        self.compare_button.clicked.connect(self._on_compare_clicked)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setObjectName("copyGeneratedButton")
        self.copy_button.setAccessibleName("Copy generated text")
        self.copy_button.setToolTip("Copy the prompt and generated text to the clipboard.")
        self.copy_button.clicked.connect(self._on_copy_clicked)
        self.save_button = QPushButton("Save…")
        self.save_button.setObjectName("saveGeneratedButton")
        self.save_button.setAccessibleName("Save generated text")
        self.save_button.setToolTip("Save the prompt and generated text as a UTF-8 text file.")
        self.save_button.clicked.connect(lambda: self.export_text())
        buttons.addWidget(self.generate_button, 0, 0, 1, 2)
        buttons.addWidget(self.compare_button, 1, 0, 1, 2)
        buttons.addWidget(self.copy_button, 2, 0)
        buttons.addWidget(self.save_button, 2, 1)
        column.addLayout(buttons)

        self.generation_stats = QLabel()
        self.generation_stats.setObjectName("generationStats")
        self.generation_stats.setWordWrap(True)
        column.addWidget(self.generation_stats)
        column.addStretch(1)
        return box

    def _build_output(self) -> QWidget:
        self.output_tabs = QTabWidget()
        self.output_tabs.setObjectName("generateOutputTabs")
        monospace = QFont("Monospace")
        monospace.setStyleHint(QFont.StyleHint.TypeWriter)

        self.generated_text_edit = QTextEdit()
        self.generated_text_edit.setObjectName("generatedText")
        self.generated_text_edit.setAccessibleName("Generated text")
        self.generated_text_edit.setReadOnly(True)
        self.generated_text_edit.setFont(monospace)
        self.generated_text_edit.setPlaceholderText("Generated text appears here.")
        self.generated_text_edit.setToolTip(
            "The prompt (bold) followed by what the model wrote, streamed as it is sampled.")
        self.output_tabs.addTab(self.generated_text_edit, "Output")

        compare_page = QWidget()
        grid = QGridLayout(compare_page)
        for position, temperature in enumerate(COMPARE_TEMPERATURES):
            cell = QVBoxLayout()
            title = QLabel(f"<b>temperature {temperature:.1f}</b>")
            pane = QPlainTextEdit()
            pane.setObjectName(f"compareText{position}")
            pane.setAccessibleName(f"Text at temperature {temperature:.1f}")
            pane.setReadOnly(True)
            pane.setFont(monospace)
            pane.setToolTip(f"The prompt continued at temperature {temperature:.1f}.")
            cell.addWidget(title)
            cell.addWidget(pane, 1)
            grid.addLayout(cell, position // 3, position % 3)
            self._compare_panes[temperature] = pane
        self.output_tabs.addTab(compare_page, "Temperature comparison")
        return self.output_tabs

    # ----------------------------------------------------------------- public API
    def generated_text(self) -> str:
        """The prompt and the characters generated after it (the Output pane's text)."""
        return self._prompt_used + "".join(g.char for g in self._generated)

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
        return self._generation_worker is not None or self._compare_worker is not None

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        stopped = stop_and_wait(self._generation_worker, timeout_ms)
        stopped = stop_and_wait(self._expectation_worker, timeout_ms) and stopped
        return stop_and_wait(self._compare_worker, timeout_ms) and stopped

    def temperature(self) -> float:
        return round(self.temperature_slider.value() * TEMPERATURE_STEP, 2)

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
        generating = self._generation_worker is not None
        comparing = self._compare_worker is not None
        self.generate_button.setText("Stop" if generating else "Generate")
        self.generate_button.setEnabled(generating or (can_start and not comparing))
        self.compare_button.setText("Stop comparing" if comparing else "Compare temperatures")
        self.compare_button.setEnabled(comparing or (can_start and not generating))
        has_text = bool(self._prompt_used or self._generated)
        self.copy_button.setEnabled(has_text)
        self.save_button.setEnabled(has_text)

    # ----------------------------------------------------------------- settings
    def _on_temperature_changed(self, _steps: int) -> None:
        self.temperature_label.setText(f"{self.temperature():.2f}")

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
        self._render_output()
        if checked and self._generation_worker is None:
            self._request_expectations()

    def _prompt(self) -> str:
        return self.prompt_edit.toPlainText()

    def _sampling_options(self) -> dict:
        seed = self.seed_spin.value()
        if seed == RANDOM_SEED:  # pick it here so it can be shown and reused
            seed = random.randrange(2**31 - 1)
        top_k = self.top_k_spin.value()
        top_p = round(self.top_p_spin.value(), 2)
        return dict(prompt=self.session.model_tokenizer.clean(self._prompt(), "drop"),
                    length=self.length_spin.value(), temperature=self.temperature(),
                    top_k=top_k or None, top_p=top_p if top_p < 1.0 else None, seed=seed)

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
            if self.generate_button.isEnabled() and self._generation_worker is None:
                self._on_generate_clicked()
            event.accept()
            return
        super().keyPressEvent(event)

    def _on_generate_clicked(self) -> None:
        if self._generation_worker is not None:
            self._generation_worker.stop()
            self.generate_button.setEnabled(False)  # until the worker confirms it ended
            return
        generator = self._make_generator()
        if generator is None:
            return
        options = self._sampling_options()
        self._prompt_used, self._generated = options["prompt"], []
        self._expectations = None
        self._generation_seed, self._generation_length = options["seed"], options["length"]
        self.output_tabs.setCurrentIndex(0)
        self._render_output()
        self.generation_stats.setText("Generating…")
        worker = GenerationWorker(generator, **options)
        worker.chars_generated.connect(self._on_chars_generated)
        worker.generation_finished.connect(self._on_generation_finished)
        worker.failed.connect(self._on_generation_failed)
        worker.finished.connect(self._on_generation_worker_finished)
        self._generation_worker = worker
        start_worker(worker)
        self._update_enabled()

    def _on_chars_generated(self, chars: tuple[GeneratedChar, ...]) -> None:
        self._generated.extend(chars)
        self._append_chars(chars)

    def _on_generation_finished(self, chars_per_second: float) -> None:
        count = len(self._generated)
        stopped = count < self._generation_length
        what = f"Stopped after {count}" if stopped else f"Generated {count}"
        message = (f"{what} characters at {chars_per_second:,.0f} chars/s "
                   f"(seed {self._generation_seed}).")
        self.generation_stats.setText(message)
        self._show_status(message)

    def _on_generation_failed(self, message: str) -> None:
        self.generation_stats.setText("Generation failed.")
        QMessageBox.warning(self, "Generation failed", message)

    def _on_generation_worker_finished(self) -> None:
        self._generation_worker = None
        self._update_enabled()
        if self.colour_check.isChecked():
            self._request_expectations()

    def _request_expectations(self) -> None:
        """Compute the top 5 the model expected at each generated character, in a worker."""
        model, tokenizer = self.session.model, self.session.model_tokenizer
        if (not self._generated or self._expectations is not None or model is None
                or tokenizer is None or self._expectation_worker is not None):
            return
        text = "".join(g.char for g in self._generated)
        self._expectations_asked = text
        worker = TaskWorker(surprise_map, model, tokenizer, text, self._prompt_used)
        worker.succeeded.connect(self._on_expectations_computed)
        worker.finished.connect(self._on_expectation_worker_finished)
        self._expectation_worker = worker
        start_worker(worker)

    def _on_expectations_computed(self, expectations: SurpriseMap) -> None:
        if expectations.text == "".join(g.char for g in self._generated):  # still shown
            self._expectations = expectations
            if self.colour_check.isChecked():
                self._render_output()

    def _on_expectation_worker_finished(self) -> None:
        self._expectation_worker = None
        still_shown = self._expectations_asked == "".join(g.char for g in self._generated)
        if not still_shown and self.colour_check.isChecked():
            self._request_expectations()  # a new text was generated while it ran

    # ----------------------------------------------------------------- comparing
    def _on_compare_clicked(self) -> None:
        if self._compare_worker is not None:
            self._compare_worker.stop()
            self.compare_button.setEnabled(False)
            return
        generator = self._make_generator()
        if generator is None:
            return
        options = self._sampling_options()
        for pane in self._compare_panes.values():
            pane.setPlainText("Generating…")
        self.output_tabs.setCurrentIndex(1)
        self.generation_stats.setText(f"Comparing temperatures (seed {options['seed']})…")
        worker = CompareWorker(generator, options["prompt"], options["length"],
                               COMPARE_TEMPERATURES, options["top_k"], options["top_p"],
                               options["seed"])
        worker.temperature_generated.connect(self._on_temperature_generated)
        worker.failed.connect(self._on_generation_failed)
        worker.finished.connect(self._on_compare_worker_finished)
        self._compare_seed = options["seed"]
        self._compare_worker = worker
        start_worker(worker)
        self._update_enabled()

    def _on_temperature_generated(self, temperature: float, text: str) -> None:
        self._compare_panes[temperature].setPlainText(text)

    def _on_compare_worker_finished(self) -> None:
        self._compare_worker = None
        done = sum(pane.toPlainText() != "Generating…" for pane in self._compare_panes.values())
        for pane in self._compare_panes.values():
            if pane.toPlainText() == "Generating…":
                pane.setPlainText("(stopped)")
        self.generation_stats.setText(f"Compared {done} temperatures with seed "
                                      f"{self._compare_seed}.")
        self._update_enabled()

    # ----------------------------------------------------------------- drawing
    def _render_output(self) -> None:
        """Redraw the whole Output pane (after a new start or a colour toggle)."""
        self.generated_text_edit.clear()
        cursor = self.generated_text_edit.textCursor()
        prompt_format = QTextCharFormat()
        prompt_format.setFontWeight(QFont.Weight.Bold)
        cursor.insertText(self._prompt_used, prompt_format)
        self._append_chars(self._generated)

    def _append_chars(self, chars: Sequence[GeneratedChar]) -> None:
        cursor = QTextCursor(self.generated_text_edit.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        if self.colour_check.isChecked():
            for generated in chars:
                char_format = QTextCharFormat()
                char_format.setBackground(probability_colour(generated.probability))
                char_format.setToolTip(self._probability_tip(generated))
                cursor.insertText(generated.char, char_format)
        else:
            cursor.insertText("".join(g.char for g in chars), QTextCharFormat())
        cursor.endEditBlock()
        scroll_bar = self.generated_text_edit.verticalScrollBar()
        scroll_bar.setValue(scroll_bar.maximum())  # follow the text as it streams in
        self._update_enabled()

    def _probability_tip(self, generated: GeneratedChar) -> str:
        """The character's probability and, once computed, the 5 the model expected."""
        tip = f"{generated.char!r}: probability {generated.probability:.3f}"
        expectations = self._expectations
        if expectations is not None and generated.index < len(expectations.bits):
            tip += "\nThe model expected:" + "".join(
                f"\n   {char!r}  {p:.1%}" for char, p in expectations.expectations(generated.index))
        return tip

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.generated_text())
        self._show_status("Copied the generated text to the clipboard.")

    def _show_status(self, message: str) -> None:
        window = self.window()
        if isinstance(window, QMainWindow) and window.statusBar() is not None:
            window.statusBar().showMessage(message, 5000)
