"""The Configure tab: probe the machine, pick a preset or the recommendation, tune the fields."""

from __future__ import annotations

from dataclasses import replace

import psutil
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from microlm import (
    ModelConfig,
    TrainingConfig,
    calibration,
    hardware,
    presets,
    recommendation,
)
from microlm import budget as budgets
from microlm.speed import MachineSpeed
from microlm.units import format_bytes, format_duration

from ..session import Session
from ..workers import TaskWorker, start_worker, stop_and_wait, wait_for_thread_end

CUSTOM = "Custom"
ERROR_STYLE = "QLabel { color: #b00020; }"
NOTE_STYLE = "QLabel { color: #555555; }"

# (attribute, objectName, accessible name, label, tooltip) of every field, in form order.
MODEL_FIELDS = {
    "embedding_dim": ("embeddingDimSpin", "Embedding size", (1, 4096, 16),
                      "How many numbers describe each character before the LSTM reads it. "
                      "Larger lets the model tell characters apart in more ways; beyond "
                      "about 128 it rarely helps a character model."),
    "hidden_dim": ("hiddenDimSpin", "Hidden size", (1, 8192, 32),
                   "The size of the LSTM's memory (its hidden and cell state). This is the "
                   "main knob for model capacity: doubling it roughly quadruples the "
                   "parameters and the time per step. Raise it when the loss stops falling "
                   "and you have text and time to spare."),
    "num_layers": ("numLayersSpin", "Layers", (1, 8, 1),
                   "How many LSTM layers are stacked; each reads the one below. A second "
                   "layer can learn more abstract patterns (words, syntax) but trains "
                   "slower; with little text or time one wide layer usually wins."),
    "output_hidden_dim": ("outputHiddenSpin", "Output layer units", (0, 8192, 128),
                          "0: the LSTM's hidden units are turned into next-character scores "
                          "by one linear map. Above 0: by a small network with this many "
                          "units (and a GELU) between. It adds capacity cheaply: it scores "
                          "every position of a batch at once, while the LSTM must read the "
                          "text one character at a time."),
    "dropout": ("dropoutSpin", "Dropout", (0.0, 0.9, 0.05, 2),
                "During training, randomly silence this share of the LSTM's outputs so the "
                "model cannot lean on any single neuron. It fights memorising a small text; "
                "0 is best when the text is large or training is short. With one layer it "
                "applies only before the output layer."),
}
TRAINING_FIELDS = {
    "sequence_length": ("sequenceLengthSpin", "Sequence length", (1, 100_000, 16),
                        "How many characters the model reads in one training window, which "
                        "is also how far back the learning signal reaches. Longer windows "
                        "teach longer patterns (closing a bracket, ending a sentence) but "
                        "each step takes longer."),
    "batch_size": ("batchSizeSpin", "Batch size", (1, 4096, 8),
                   "How many windows are trained on together in one step. Bigger batches "
                   "give smoother, steadier updates and use a GPU well; smaller ones give "
                   "more updates per second on a CPU. Memory grows with batch size."),
    "epochs": ("epochsSpin", "Epochs", (1, 10_000, 1),
               "How many times training goes over the text. More epochs lower the "
               "training loss; when the validation loss starts rising, more epochs only "
               "make the model memorise."),
    "learning_rate": ("learningRateSpin", "Learning rate", (0.00001, 1.0, 0.0001, 5),
                      "How big a step the optimizer takes on each update (the peak value: it "
                      "warms up, then decays). Too high and the loss jumps around or becomes "
                      "NaN; too low and it falls slowly. 0.001-0.003 suits most LSTMs."),
}
ADVANCED_FIELDS = {
    "eval_interval": ("evalIntervalSpin", "Validation interval (steps)", (0, 1_000_000, 50),
                      "How often (in steps) the model is scored on the held-out validation "
                      "text; 0 means once per epoch. Frequent checks draw a detailed "
                      "validation curve but take time away from training."),
    "patience": ("patienceSpin", "Patience (validations)", (0, 1000, 1),
                 "Early stopping: stop after this many validations in a row without a new "
                 "best validation loss; 0 never stops early. It saves time once the model "
                 "has started to memorise."),
    "grad_clip": ("gradClipSpin", "Gradient clip", (0.0, 100.0, 0.1, 2),
                  "The largest allowed size (norm) of one update's gradient; bigger ones are "
                  "scaled down. It stops one unlucky batch from wrecking an LSTM; 0 turns it "
                  "off."),
    "weight_decay": ("weightDecaySpin", "Weight decay", (0.0, 1.0, 0.01, 3),
                     "Pulls every weight slightly towards zero at each step, a gentle brake on "
                     "memorising. Raise it a little if validation loss rises while training "
                     "loss falls."),
    "ema_decay": ("emaDecaySpin", "Weight averaging", (0.0, 0.999, 0.01, 3),
                  "Validates and keeps a moving average of the weights instead of the last "
                  "ones: each step moves the average 1 - this of the way to the new weights "
                  "(0.98: about the last 50 steps). Averaging smooths out the noise of single "
                  "batches; measured ~1 % lower validation loss. 0 keeps the weights as "
                  "trained."),
}


class ConfigureTab(QWidget):
    """Choose the model and training settings, with estimates for this machine and text."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("configureTab")
        self.session = session
        self.hardware_info: hardware.HardwareInfo | None = None
        self.speed: MachineSpeed | None = None
        self.problems: list[str] = []
        self._default_precision: str | None = None  # this CPU's, found when first needed
        self._task: TaskWorker | None = None  # the probe or recommendation in progress
        self._task_thread = None
        self._filling = False  # True while fields are set in bulk: validate once, after
        self._writing = False  # True while this tab writes the session's configs
        # Fields the form does not show (evaluation size, samples, seed…) come from here.
        self._base_training = session.training_config
        self.spins: dict[str, QSpinBox | QDoubleSpinBox] = {}

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        content = QWidget()
        grid = QGridLayout(content)
        grid.addWidget(self._build_hardware(), 0, 0)
        grid.addWidget(self._build_presets(), 1, 0)
        grid.addWidget(self._build_recommendation(), 2, 0)
        grid.addWidget(self._build_model_fields(), 0, 1)
        grid.addWidget(self._build_training_fields(), 1, 1, 2, 1)
        grid.addWidget(self._build_summary(), 3, 0, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(2, 1)  # the reasons list takes the spare height
        scroll.setWidget(content)
        QVBoxLayout(self).addWidget(scroll)

        self.apply_configs(session.model_config, session.training_config)
        self.session.corpus_changed.connect(self._on_corpus_changed)
        self.session.config_changed.connect(self._on_config_changed)

    # ---- builders ----

    def _build_hardware(self) -> QGroupBox:
        box = QGroupBox("This machine")
        layout = QVBoxLayout(box)
        self.probe_button = QPushButton("Probe hardware", objectName="probeButton")
        self.probe_button.setAccessibleName("Probe hardware")
        self.probe_button.setToolTip(
            "Read this computer's CPU, memory and GPU, and time a few real training steps "
            "(about two seconds). The measured speed turns every model size into an "
            "estimate of minutes per epoch, so you can pick one that fits your patience.")
        self.probe_button.clicked.connect(self._on_probe_clicked)
        layout.addWidget(self.probe_button, 0, Qt.AlignLeft)
        self.hardware_label = QLabel("Not probed yet. Probe the hardware to see what this "
                                     "machine has and how fast it trains.",
                                     objectName="hardwareSummary")
        self.hardware_label.setAccessibleName("Hardware summary")
        self.hardware_label.setToolTip(
            "What training will run on. A GPU (CUDA or Apple MPS) trains large models many "
            "times faster than a CPU; on a CPU, smaller models are the better choice.")
        self.hardware_label.setWordWrap(True)
        self.hardware_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.hardware_label)
        return box

    def _build_presets(self) -> QGroupBox:
        box = QGroupBox("Presets")
        layout = QVBoxLayout(box)
        self.preset_combo = QComboBox(objectName="presetCombo")
        self.preset_combo.setAccessibleName("Model preset")
        self.preset_combo.setToolTip(
            "Ready-made model sizes from nano (trains in seconds, learns letter frequencies) "
            "to xlarge (needs a GPU). Each shows its true parameter count for your text's "
            "vocabulary, and once the hardware is probed, its memory and time per epoch.")
        self.preset_combo.addItem(CUSTOM, CUSTOM)
        for name in presets.PRESETS:
            self.preset_combo.addItem(name, name)
        self.preset_combo.activated.connect(self._on_preset_chosen)
        # Entries are long; let the combo shrink with the window instead of forcing a scrollbar.
        self.preset_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.preset_combo.setMinimumContentsLength(24)
        layout.addWidget(self.preset_combo)
        self.preset_description = QLabel(objectName="presetDescription")
        self.preset_description.setWordWrap(True)
        self.preset_description.setStyleSheet(NOTE_STYLE)
        layout.addWidget(self.preset_description)
        return box

    def _build_recommendation(self) -> QGroupBox:
        box = QGroupBox("Recommendation for a time budget")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Time budget:"))
        self.budget_spin = QSpinBox(objectName="timeBudgetSpin")
        self.budget_spin.setAccessibleName("Time budget")
        self.budget_spin.setRange(1, 9999)
        self.budget_spin.setValue(5)
        self.budget_spin.setToolTip(
            "How long you are willing to train. The recommendation picks the largest model "
            "that still gets enough training steps in this time on this machine.")
        self.budget_spin.valueChanged.connect(self._on_field_changed)
        row.addWidget(self.budget_spin)
        self.budget_unit = QComboBox(objectName="timeBudgetUnit")
        self.budget_unit.setAccessibleName("Time budget unit")
        self.budget_unit.addItems(["minutes", "seconds"])
        self.budget_unit.setToolTip("Unit of the time budget.")
        self.budget_unit.currentIndexChanged.connect(self._on_field_changed)
        row.addWidget(self.budget_unit)
        self.stop_at_budget = QCheckBox("Stop training when it runs out",
                                        objectName="stopAtBudgetCheck")
        self.stop_at_budget.setAccessibleName("Stop training when the time budget runs out")
        self.stop_at_budget.setToolTip(
            "When ticked, training ends (keeping the best model so far) once the budget is "
            "spent, even if epochs remain. Apply recommended ticks it.")
        self.stop_at_budget.toggled.connect(self._on_field_changed)
        row.addWidget(self.stop_at_budget)
        row.addStretch(1)
        layout.addLayout(row)
        self.recommend_button = QPushButton("Apply recommended",
                                            objectName="applyRecommendedButton")
        self.recommend_button.setAccessibleName("Apply recommended settings")
        self.recommend_button.setToolTip(
            "Fill every field with the settings expected to reach the lowest validation "
            "loss on your text within the time budget on this machine, and explain each "
            "choice below. Probes the hardware first if needed.")
        self.recommend_button.clicked.connect(self._on_recommend_clicked)
        layout.addWidget(self.recommend_button, 0, Qt.AlignLeft)
        self.reasons_list = QListWidget(objectName="recommendationReasons")
        self.reasons_list.setAccessibleName("Why these settings")
        self.reasons_list.setToolTip("Why each recommended value was chosen.")
        self.reasons_list.setWordWrap(True)
        self.reasons_list.setAlternatingRowColors(True)  # tells one reason from the next
        self.reasons_list.setSpacing(2)
        self.reasons_list.setMinimumHeight(140)
        # Until a recommendation exists, say what will appear here (an empty box reads as
        # broken); the hint is replaced by the reasons.
        hint = QListWidgetItem("Set a time budget and press Apply recommended: the settings "
                               "that train the best model in that time appear in the fields, "
                               "and the reason for each one is listed here.")
        hint.setFlags(Qt.ItemFlag.NoItemFlags)
        self.reasons_list.addItem(hint)
        layout.addWidget(self.reasons_list, 1)
        return box

    def _build_model_fields(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        for name, spec in MODEL_FIELDS.items():
            form.addRow(spec[1] + ":", self._make_spin(name, *spec))
        return box

    def _build_training_fields(self) -> QGroupBox:
        box = QGroupBox("Training")
        form = QFormLayout(box)
        for name, spec in TRAINING_FIELDS.items():
            form.addRow(spec[1] + ":", self._make_spin(name, *spec))
        # A check box that shows a group, rather than a checkable group box: collapsed,
        # that drew an empty frame under its title.
        self.advanced_toggle = QCheckBox("Show advanced settings", objectName="advancedToggle")
        self.advanced_toggle.setToolTip("Show the settings most runs leave alone. They "
                                        "apply whether this section is shown or not.")
        self.advanced_box = QGroupBox("Advanced", objectName="advancedGroup")
        advanced = QFormLayout(self.advanced_box)
        for name, spec in ADVANCED_FIELDS.items():
            advanced.addRow(spec[1] + ":", self._make_spin(name, *spec))
        self.advanced_box.setVisible(False)
        self.advanced_toggle.toggled.connect(self.advanced_box.setVisible)
        form.addRow(self.advanced_toggle)
        form.addRow(self.advanced_box)
        return box

    def _build_summary(self) -> QGroupBox:
        box = QGroupBox("What this configuration costs")
        layout = QVBoxLayout(box)
        self.parameter_label = QLabel(objectName="parameterCount")
        self.parameter_label.setAccessibleName("Parameter count")
        self.parameter_label.setToolTip(
            "Every weight the model learns. More parameters can capture more of the text "
            "but need more text, memory and time.")
        self.estimate_label = QLabel(objectName="estimateLabel")
        self.estimate_label.setAccessibleName("Memory and time estimate")
        self.notes_label = QLabel(objectName="configNotes")
        self.notes_label.setStyleSheet(NOTE_STYLE)
        self.problems_label = QLabel(objectName="configProblems")
        self.problems_label.setAccessibleName("Problems with these settings")
        self.problems_label.setStyleSheet(ERROR_STYLE)
        for label in (self.parameter_label, self.estimate_label, self.notes_label,
                      self.problems_label):
            label.setWordWrap(True)
            layout.addWidget(label)
        return box

    def _make_spin(self, name: str, object_name: str, label: str,
                   limits: tuple[int, int, int] | tuple[float, float, float, int],
                   tooltip: str) -> QAbstractSpinBox:
        """A spin box for a field table's row: (low, high, step) makes a whole-number box,
        (low, high, step, decimals) a fractional one."""
        if len(limits) == 4:
            spin = QDoubleSpinBox(objectName=object_name)
            spin.setDecimals(limits[3])
        else:
            spin = QSpinBox(objectName=object_name)
        spin.setRange(limits[0], limits[1])
        spin.setSingleStep(limits[2])
        return self._register(name, spin, label, tooltip)

    def _register(self, name: str, spin: QAbstractSpinBox, label: str, tooltip: str):
        spin.setAccessibleName(label)
        spin.setToolTip(tooltip)
        spin.setKeyboardTracking(False)  # validate the number typed, not each keystroke
        spin.valueChanged.connect(self._on_field_changed)
        self.spins[name] = spin
        return spin

    # ---- public API ----

    @property
    def vocab_size(self) -> int:
        tokenizer = self.session.tokenizer
        return tokenizer.vocab_size() if tokenizer is not None else \
            self.session.model_config.vocab_size

    @property
    def corpus_chars(self) -> int:
        return self.session.corpus_stats.characters if self.session.corpus_stats else 0

    @property
    def precision(self) -> str:
        """What the LSTM trains in on a CPU: what the probe timed, else this CPU's default
        (bfloat16 where its LSTM kernel runs it: faster at the same loss, see the README)."""
        if self.speed is not None:
            return self.speed.precision
        if self._default_precision is None:
            self._default_precision = hardware.default_precision("cpu")
        return self._default_precision

    @property
    def time_budget_s(self) -> float:
        scale = 60 if self.budget_unit.currentText() == "minutes" else 1
        return float(self.budget_spin.value() * scale)

    def apply_configs(self, model_config: ModelConfig | dict,
                      training_config: TrainingConfig | dict) -> None:
        """Fill the fields from configs (or their dicts, as saved in the settings)."""
        if isinstance(model_config, dict):
            model_config = ModelConfig.from_dict({**model_config, "vocab_size": self.vocab_size})
        if isinstance(training_config, dict):
            training_config = TrainingConfig.from_dict(training_config)
        self._base_training = replace(training_config, val_fraction=self.session.val_fraction)
        budget = training_config.time_budget_s
        if budget is not None:
            in_minutes = budget >= 60 and budget % 60 == 0
            self.budget_unit.setCurrentText("minutes" if in_minutes else "seconds")
            self.budget_spin.setValue(round(budget / 60 if in_minutes else budget))
        self.stop_at_budget.setChecked(budget is not None)
        self._fill({**model_config.to_dict(), **training_config.to_dict()})

    def apply_preset(self, name: str) -> None:
        preset = presets.PRESETS[name]
        # A preset sets the model and batch shape; epochs and Advanced stay as they are.
        self._fill({**preset.model_config(self.vocab_size).to_dict(),
                    "sequence_length": preset.sequence_length, "batch_size": preset.batch_size,
                    "learning_rate": preset.learning_rate})

    def probe_hardware(self) -> None:
        """Probe and calibrate in a worker; the summary and estimates update when done."""
        self._start_task(_probe_and_calibrate, self._on_probe_succeeded)

    def apply_recommended(self) -> None:
        """Ask microlm.recommendation.recommend for this text and budget (calibrating if needed)."""
        if self.session.corpus_stats is None:
            QMessageBox.warning(self, "No text loaded",
                                "Load a text on the Data tab first: the recommendation "
                                "depends on how much text there is.")
            return
        self._start_task(_recommend, self._on_recommendation_succeeded, self.corpus_chars,
                         self.time_budget_s, self.vocab_size, self.speed,
                         self.hardware_info.available_ram_bytes if self.hardware_info else None)

    @property
    def is_busy(self) -> bool:
        return self._task is not None

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        return stop_and_wait(self._task, timeout_ms)

    # ---- workers ----

    def _start_task(self, fn, on_success, *args) -> None:
        if self._task is not None:  # one at a time; the buttons are disabled meanwhile
            return
        worker = TaskWorker(fn, *args)
        worker.succeeded.connect(on_success)
        worker.failed.connect(self._on_task_failed)
        worker.finished.connect(self._on_task_finished)
        self._task = worker
        self.probe_button.setEnabled(False)
        self.recommend_button.setEnabled(False)
        self.probe_button.setText("Measuring…")
        self._task_thread = start_worker(worker)

    @Slot(object)
    def _on_probe_succeeded(self, result: tuple) -> None:
        self.hardware_info, self.speed = result
        self._show_hardware()
        self._update()
        self._show_status("Hardware probed; estimates now use this machine's measured speed.")

    @Slot(object)
    def _on_recommendation_succeeded(self, result: tuple) -> None:
        recommendation, self.speed, self.hardware_info = result
        self._show_hardware()
        self._base_training = replace(
            recommendation.training_config, val_fraction=self.session.val_fraction,
            sample_interval=self._base_training.sample_interval)
        self._fill({**recommendation.model_config.to_dict(),
                    **recommendation.training_config.to_dict()})
        self.stop_at_budget.setChecked(True)
        self.reasons_list.clear()
        self.reasons_list.addItems(list(recommendation.reasons))
        self._show_status("Recommended settings applied; the reasons are listed.")

    @Slot(str)
    def _on_task_failed(self, message: str) -> None:
        QMessageBox.warning(self, "Could not measure this machine", message)

    @Slot()
    def _on_task_finished(self) -> None:
        wait_for_thread_end(self._task_thread)
        self._task = self._task_thread = None
        self.probe_button.setEnabled(True)
        self.recommend_button.setEnabled(True)
        self.probe_button.setText("Probe hardware")

    # ---- reacting to changes ----

    @Slot()
    def _on_probe_clicked(self) -> None:
        self.probe_hardware()

    @Slot()
    def _on_recommend_clicked(self) -> None:
        self.apply_recommended()

    @Slot(int)
    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name != CUSTOM:
            self.apply_preset(name)

    @Slot()
    def _on_field_changed(self) -> None:
        if self._filling:
            return
        self._update()
        self._sync_preset_combo()

    @Slot()
    def _on_corpus_changed(self) -> None:
        self._update()

    @Slot()
    def _on_config_changed(self) -> None:
        if not self._writing:  # e.g. the Data tab changed the validation share
            self._update()

    # ---- the configs and their checks ----

    def _fill(self, values: dict) -> None:
        self._filling = True
        try:
            for name, spin in self.spins.items():
                if name in values:
                    spin.setValue(values[name])
        finally:
            self._filling = False
        self._update()
        self._sync_preset_combo()

    def _sync_preset_combo(self) -> None:
        """Show the preset the fields match, or Custom once they match none."""
        name = next((name for name in presets.PRESETS if self._matches_preset(name)), None)
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(name or CUSTOM))
        self.preset_description.setText(presets.PRESETS[name].description if name else
                                        "Your own settings (no preset matches them).")

    def _matches_preset(self, name: str) -> bool:
        preset = presets.PRESETS[name]
        return all(abs(self.spins[field].value() - getattr(preset, field)) < 1e-9
                   for field in ("embedding_dim", "hidden_dim", "num_layers", "dropout",
                                 "output_hidden_dim", "sequence_length", "batch_size",
                                 "learning_rate"))

    def current_configs(self) -> tuple[ModelConfig | None, TrainingConfig | None, list[str]]:
        """The configs the fields describe and what is wrong with them (empty: valid)."""
        values = {name: spin.value() for name, spin in self.spins.items()}
        problems: list[str] = []
        model_config = training_config = None
        try:
            model_config = ModelConfig(self.vocab_size, values["embedding_dim"],
                                       values["hidden_dim"], values["num_layers"],
                                       values["dropout"], values["output_hidden_dim"])
            training_config = replace(
                self._base_training, val_fraction=self.session.val_fraction,
                time_budget_s=self.time_budget_s if self.stop_at_budget.isChecked() else None,
                precision=self.precision,
                **{name: values[name] for name in (*TRAINING_FIELDS, *ADVANCED_FIELDS)})
        except ValueError as err:
            return model_config, training_config, [str(err)]
        train_chars = self.corpus_chars - int(self.corpus_chars * self.session.val_fraction)
        if self.session.corpus_stats is not None and training_config.sequence_length >= \
                train_chars:
            problems.append(
                f"Sequence length {training_config.sequence_length:,} is longer than the "
                f"training text ({train_chars:,} characters). Use at most "
                f"{max(train_chars - 1, 1):,} or load a longer text.")
        memory = presets.run_memory_bytes(model_config, training_config, self.corpus_chars)
        available, where = self._available_memory()
        if memory > available:
            problems.append(
                f"Training this model needs about {format_bytes(memory)}, more than the "
                f"{format_bytes(available)} of {where} available. Choose a smaller hidden "
                f"size, batch size or sequence length.")
        return model_config, training_config, problems

    def _available_memory(self) -> tuple[int, str]:
        info = self.hardware_info
        if info is not None and info.device == "cuda" and info.cuda_devices:
            return info.cuda_devices[0].total_memory_bytes, "GPU memory"
        if info is not None:
            return info.available_ram_bytes, "memory"
        return int(psutil.virtual_memory().available), "memory"

    def _update(self) -> None:
        """Validate the fields, show the costs and write the configs to the session."""
        model_config, training_config, problems = self.current_configs()
        self.problems = problems
        self.problems_label.setText("\n".join(f"✖ {p}" for p in problems))
        self.problems_label.setVisible(bool(problems))
        notes = []
        if model_config is not None and model_config.num_layers == 1 and \
                model_config.dropout > 0:
            notes.append("With one layer, dropout applies only before the output layer "
                         "(dropout between LSTM layers needs two or more).")
        self.notes_label.setText("\n".join(notes))
        self.notes_label.setVisible(bool(notes))
        if model_config is not None and training_config is not None:
            self._show_costs(model_config, training_config)
        self._update_preset_labels()
        self._writing = True
        try:
            self.session.set_configs(model_config, training_config, problems)
        finally:
            self._writing = False

    # ---- drawing ----

    def _show_costs(self, model_config: ModelConfig, training_config: TrainingConfig) -> None:
        parameters = model_config.num_parameters()
        embedding = model_config.vocab_size * model_config.embedding_dim
        lstm = model_config.lstm_parameters()
        self.parameter_label.setText(
            f"<b>Parameters: {parameters:,}</b> (embedding {embedding:,}, LSTM {lstm:,}, "
            f"output layer {parameters - embedding - lstm:,}) for a vocabulary of "
            f"{model_config.vocab_size} characters")
        memory = presets.run_memory_bytes(model_config, training_config, self.corpus_chars)
        text = f"Training memory ≈ {format_bytes(memory)}"
        if self.speed is None:
            text += " · time per epoch: probe to estimate"
        elif self.corpus_chars == 0:
            text += " · time per epoch: load a text to estimate"
        else:
            estimate = presets.estimate(model_config, training_config, self.corpus_chars,
                                         self.speed)
            text += (f" · ≈ {estimate.chars_per_second:,.0f} characters/s · "
                     f"≈ {format_duration(estimate.seconds_per_epoch)} per epoch · "
                     f"≈ {format_duration(estimate.seconds_per_epoch * training_config.epochs)}"
                     f" for {training_config.epochs} epoch(s)")
            if training_config.time_budget_s is not None:
                text += (f", but training stops after the "
                         f"{format_duration(training_config.time_budget_s)} budget")
        self.estimate_label.setText(text)

    def _update_preset_labels(self) -> None:
        for index in range(1, self.preset_combo.count()):
            name = self.preset_combo.itemData(index)
            preset = presets.PRESETS[name]
            model_config = preset.model_config(self.vocab_size)
            training_config = preset.training_config(val_fraction=self.session.val_fraction,
                                                     precision=self.precision)
            text = f"{name} — {model_config.num_parameters():,} parameters"
            if self.speed is None or self.corpus_chars == 0:
                memory = presets.run_memory_bytes(model_config, training_config,
                                                   self.corpus_chars)
                text += f" · {format_bytes(memory)} · probe to estimate time"
            else:
                estimate = presets.estimate(model_config, training_config, self.corpus_chars,
                                             self.speed)
                text += (f" · {format_bytes(estimate.memory_bytes)} · "
                         f"{format_duration(estimate.seconds_per_epoch)} per epoch")
            self.preset_combo.setItemText(index, text)

    def _show_hardware(self) -> None:
        lines = [self.hardware_info.summary()] if self.hardware_info else []
        if self.speed is not None:
            lines.append(f"Measured speed ({self.speed.device}): {self.speed.summary()}")
        self.hardware_label.setText("\n".join(lines))

    def _show_status(self, message: str) -> None:
        window = self.window()
        if isinstance(window, QMainWindow) and window.statusBar() is not None:
            window.statusBar().showMessage(message, 6000)


def _probe_and_calibrate() -> tuple[hardware.HardwareInfo, MachineSpeed]:
    return hardware.probe(), calibration.calibrate()


def _recommend(corpus_chars: int, budget_s: float, vocab_size: int,
               speed: MachineSpeed | None, memory_bytes: int | None,
               ) -> tuple[recommendation.Recommendation, MachineSpeed, hardware.HardwareInfo]:
    info = hardware.probe()
    speed = speed or calibration.calibrate()
    # The budget counts from pressing Train to the model ready, as on the command line: the
    # model is planned for the budget less a reserve for finishing (microlm.budget), and
    # the run keeps the person's budget, which the Train tab turns into its training clock.
    recommended = recommendation.recommend(corpus_chars, budgets.planning_seconds(budget_s, 0.0),
                                           vocab_size, speed,
                                           memory_bytes or info.available_ram_bytes)
    training = replace(recommended.training_config, time_budget_s=budget_s)
    return replace(recommended, training_config=training), speed, info
