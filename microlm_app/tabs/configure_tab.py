"""The Configure tab: this computer's speed, the recommendation for a time budget (filled in
by itself until a person changes a field), presets and the fields themselves."""

from __future__ import annotations

import time
from dataclasses import replace

import psutil
from PySide6.QtCore import QThread, QTimer, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from microlm import ModelConfig, TrainingConfig, hardware, machine_profile, presets
from microlm import budget as budgets
from microlm.machine_profile import MachineProfile
from microlm.recommendation import Recommendation, recommend
from microlm.recommendation_reasons import budget_in_words, reference_speed_in_words
from microlm.speed import MachineSpeed
from microlm.units import format_bytes

from ..session import Session
from ..workers import TaskWorker, start_worker, stop_and_wait, wait_for_thread_end
from .configure_fields import (
    ADVANCED_FIELDS,
    MODEL_FIELDS,
    TRAINING_FIELDS,
    doubling_note,
    make_spin,
)
from .cost_panel import CostPanel
from .hardware_panel import HardwarePanel
from .preset_panel import PresetPanel
from .recommendation_panel import RecommendationPanel

# Who set the fields: nobody yet (they follow the recommendation), a person, or settings
# restored from the last launch (a person's, unless they equal the recommendation).
UNTOUCHED, PERSON, RESTORED = None, "person", "restored"


class ConfigureTab(QWidget):
    """Choose the model and training settings, with estimates for this machine and text.

    At construction the machine's remembered profile is read (instant); where there is none
    (first launch, another machine or set-up) it is measured in a worker. While no field has
    been changed by a person, the fields follow the recommendation for the time budget and
    the loaded text."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("configureTab")
        self.session = session
        self.hardware_info: hardware.HardwareInfo | None = None
        self.speed: MachineSpeed | None = None
        self.profile: MachineProfile | None = None
        self.recommendation: Recommendation | None = None  # for the text and budget now
        self.problems: list[str] = []
        self.edited_by = UNTOUCHED
        self._default_precision: str | None = None  # the device's, found when first needed
        self._task: TaskWorker | None = None  # measuring this computer
        self._task_thread: QThread | None = None
        self._apply_when_measured = False  # Apply recommended was pressed while measuring
        self._filling = False  # True while fields are set in bulk: validate once, after
        self._writing = False  # True while this tab writes the session's configs
        # Fields the form does not show (evaluation size, samples, seed…) come from here.
        self._base_training = session.training_config
        self.spins: dict = {}

        self.hardware_panel = HardwarePanel()
        self.probe_button = self.hardware_panel.measure_button
        self.hardware_label = self.hardware_panel.summary_label
        self.probe_button.clicked.connect(self._on_probe_clicked)
        self.recommendation_panel = panel = RecommendationPanel()
        self.budget_spin, self.budget_unit = panel.budget_spin, panel.budget_unit
        self.stop_at_budget, self.reasons_list = panel.stop_at_budget, panel.reasons_list
        self.recommend_button = panel.apply_button
        self.budget_spin.valueChanged.connect(self._on_budget_changed)
        self.budget_unit.currentIndexChanged.connect(self._on_budget_changed)
        self.stop_at_budget.toggled.connect(self._on_field_changed)
        self.recommend_button.clicked.connect(self._on_recommend_clicked)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        content = QWidget()
        grid = QGridLayout(content)
        grid.addWidget(self.hardware_panel, 0, 0)
        self.preset_panel = PresetPanel()
        self.preset_combo = self.preset_panel.combo
        self.preset_panel.chosen.connect(self._on_preset_chosen)
        grid.addWidget(self.preset_panel, 1, 0)
        grid.addWidget(panel, 2, 0)
        grid.addWidget(self._build_model_fields(), 0, 1)
        grid.addWidget(self._build_training_fields(), 1, 1, 2, 1)
        self.cost_panel = CostPanel()
        self.parameter_label = self.cost_panel.parameter_label
        self.estimate_label = self.cost_panel.estimate_label
        self.notes_label = self.cost_panel.notes_label
        self.problems_label = self.cost_panel.problems_label
        grid.addWidget(self.cost_panel, 3, 0, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(2, 1)  # the reasons list takes the spare height
        scroll.setWidget(content)
        QVBoxLayout(self).addWidget(scroll)

        self._apply_configs(session.model_config, session.training_config)
        self.session.corpus_changed.connect(self._on_corpus_changed)
        self.session.config_changed.connect(self._on_config_changed)
        known = machine_profile.remembered()
        if known is not None:
            self._on_profile_ready(known)
        else:
            self._start_measuring(measure_again=False)
            # once the window holds this tab (after construction), say so in its status bar
            QTimer.singleShot(0, self._announce_measuring)

    # ---- builders ----

    def _build_model_fields(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        for name, (object_name, label, limits, tip) in MODEL_FIELDS.items():
            form.addRow(label + ":", self._register(name, make_spin(limits, object_name,
                                                                     label, tip)))
        return box

    def _build_training_fields(self) -> QGroupBox:
        box = QGroupBox("Training")
        form = QFormLayout(box)
        for name, (object_name, label, limits, tip) in TRAINING_FIELDS.items():
            form.addRow(label + ":", self._register(name, make_spin(limits, object_name,
                                                                     label, tip)))
        # A check box that shows a group, rather than a checkable group box: collapsed,
        # that drew an empty frame under its title.
        self.advanced_toggle = QCheckBox("Show advanced settings", objectName="advancedToggle")
        self.advanced_toggle.setAccessibleName("Show advanced settings")
        self.advanced_toggle.setToolTip("Show the settings most runs leave alone. They "
                                        "apply whether this section is shown or not.")
        self.advanced_box = QGroupBox("Advanced", objectName="advancedGroup")
        advanced = QFormLayout(self.advanced_box)
        for name, (object_name, label, limits, tip) in ADVANCED_FIELDS.items():
            advanced.addRow(label + ":", self._register(name, make_spin(limits, object_name,
                                                                         label, tip)))
        self.advanced_box.setVisible(False)
        self.advanced_toggle.toggled.connect(self.advanced_box.setVisible)
        form.addRow(self.advanced_toggle)
        form.addRow(self.advanced_box)
        return box

    def _register(self, name: str, spin):
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
        """What the run trains in: what the measurement timed, else the training device's
        default (bfloat16 where it runs the LSTM in it: faster at the same loss)."""
        if self.speed is not None:
            return self.speed.precision
        if self._default_precision is None:
            self._default_precision = hardware.default_precision(hardware.select_device())
        return self._default_precision

    @property
    def time_budget_s(self) -> float:
        return self.recommendation_panel.time_budget_s

    @property
    def fields_follow_recommendation(self) -> bool:
        """No person has changed the fields: they follow the recommendation."""
        return self.edited_by is UNTOUCHED

    def apply_configs(self, model_config: ModelConfig | dict,
                      training_config: TrainingConfig | dict) -> None:
        """Fill the fields from configs (or their dicts, as saved in the settings): a
        person's choice, kept from then on unless it equals the recommendation."""
        self._apply_configs(model_config, training_config)
        self.edited_by = RESTORED
        self._refresh_recommendation()

    def apply_preset(self, name: str) -> None:
        preset = presets.PRESETS[name]
        # A preset sets the model and batch shape; epochs and Advanced stay as they are.
        self._fill({**preset.model_config(self.vocab_size).to_dict(),
                    "sequence_length": preset.sequence_length, "batch_size": preset.batch_size,
                    "learning_rate": preset.learning_rate})
        self._mark_edited()

    def probe_hardware(self) -> None:
        """Measure this computer again in a worker (the "Measure again" button)."""
        self._start_measuring(measure_again=True)

    def apply_recommended(self) -> None:
        """Fill the fields with the recommendation for this text and budget (measuring this
        computer first where it has not been)."""
        if self.session.corpus_stats is None:
            QMessageBox.warning(self, "No text loaded",
                                "Load a text on the Data tab first: the recommendation "
                                "depends on how much text there is.")
            return
        if self.speed is None:
            self._apply_when_measured = True
            self._start_measuring(measure_again=False)
            return
        self._refresh_recommendation(apply=True)

    @property
    def is_busy(self) -> bool:
        return self._task is not None

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        return stop_and_wait(self._task, timeout_ms)

    # ---- measuring this computer ----

    def _start_measuring(self, measure_again: bool) -> None:
        if self._task is not None:  # one at a time; the button is disabled meanwhile
            return
        worker = TaskWorker(machine_profile.machine_profile, measure_again=measure_again)
        worker.succeeded.connect(self._on_profile_ready)
        worker.failed.connect(self._on_measure_failed)
        worker.finished.connect(self._on_measure_finished)
        self._task = worker
        self.hardware_panel.set_measuring(True)
        self._show_status("Measuring this computer's training speed (a few seconds)…", 0)
        self._task_thread = start_worker(worker)
        self.session.set_choosing_settings(self.fields_follow_recommendation)

    @Slot()
    def _announce_measuring(self) -> None:
        if self.is_busy:
            self._show_status("Measuring this computer's training speed (a few seconds)…", 0)

    @Slot(object)
    def _on_profile_ready(self, profile: MachineProfile) -> None:
        self.profile, self.hardware_info, self.speed = profile, profile.hardware, profile.speed
        apply, self._apply_when_measured = self._apply_when_measured, False
        self._refresh_recommendation(apply=apply)
        self._update()
        if not profile.remembered:
            self._show_status("Measured this computer's training speed; remembered for the "
                              "next launch.")

    @Slot(str)
    def _on_measure_failed(self, message: str) -> None:
        self._apply_when_measured = False
        self.hardware_label.setText(f"Could not measure this computer: {message} Press "
                                    f"Measure again to retry.")
        self._show_status("Could not measure this computer; see the Configure tab.")

    @Slot()
    def _on_measure_finished(self) -> None:
        wait_for_thread_end(self._task_thread)
        self._task = self._task_thread = None
        self.hardware_panel.set_measuring(False)
        self._show_hardware()
        self.session.set_choosing_settings(False)

    # ---- the recommendation ----

    def _current_recommendation(self) -> Recommendation | None:
        """The recommendation for the loaded text and the budget on this computer (None
        before it is measured or a text is loaded). Fast: arithmetic on the cost model."""
        if self.speed is None or self.session.corpus_stats is None or self.corpus_chars < 3:
            return None
        budget = self.time_budget_s
        memory = self.hardware_info.available_ram_bytes if self.hardware_info else \
            int(psutil.virtual_memory().available)
        # The budget counts from pressing Train to the model ready, as on the command line:
        # the model is planned for the budget less a reserve for finishing (microlm.budget),
        # and the run keeps the person's budget, which the Train tab turns into its clock.
        planned = recommend(self.corpus_chars, budgets.planning_seconds(budget, 0.0),
                            self.vocab_size, self.speed, memory)
        return replace(planned, training_config=replace(planned.training_config,
                                                         time_budget_s=budget))

    def _refresh_recommendation(self, apply: bool = False) -> None:
        """Recompute the recommendation; fill the fields with it when asked or while no
        person has changed them, else offer it."""
        self.recommendation = found = self._current_recommendation()
        panel = self.recommendation_panel
        if found is None:
            panel.status_label.setText(
                "Load a text on the Data tab: the recommendation depends on how much text "
                "there is." if self.speed is not None else
                "The recommendation appears once this computer is measured.")
        else:
            if self.edited_by == RESTORED and self._fields_match(found):
                self.edited_by = UNTOUCHED
            budget = budget_in_words(self.time_budget_s)
            if apply or self.edited_by is UNTOUCHED:
                self._fill_recommended(found)
                panel.status_label.setText(
                    f"The fields hold the recommendation for {budget} on this text, and "
                    f"follow it when the text or the budget changes, until you change a field.")
            else:
                panel.status_label.setText(
                    f"Your own settings are kept. Apply recommended replaces them with the "
                    f"settings recommended for {budget} on this text, explained below.")
            panel.show_reasons(found.explained)
        self._show_hardware()

    def _fill_recommended(self, found: Recommendation) -> None:
        self._base_training = replace(
            found.training_config, val_fraction=self.session.val_fraction,
            sample_interval=self._base_training.sample_interval)
        self._filling = True
        try:
            self.stop_at_budget.setChecked(True)
        finally:
            self._filling = False
        self._fill({**found.model_config.to_dict(), **found.training_config.to_dict()})
        self.edited_by = UNTOUCHED

    def _fields_match(self, found: Recommendation) -> bool:
        values = {**found.model_config.to_dict(), **found.training_config.to_dict()}
        return self.stop_at_budget.isChecked() and all(
            abs(spin.value() - values[name]) < 1e-9 for name, spin in self.spins.items()
            if name in values)

    def _mark_edited(self) -> None:
        self.edited_by = PERSON
        if self.recommendation is not None:
            self.recommendation_panel.status_label.setText(
                "Your own settings are kept. Apply recommended puts the recommended "
                "settings back.")

    # ---- reacting to changes ----

    @Slot()
    def _on_probe_clicked(self) -> None:
        self.probe_hardware()

    @Slot()
    def _on_recommend_clicked(self) -> None:
        self.apply_recommended()

    @Slot(str)
    def _on_preset_chosen(self, name: str) -> None:
        self.apply_preset(name)

    @Slot()
    def _on_field_changed(self) -> None:
        if self._filling:
            return
        self._mark_edited()
        self._update()
        self._sync_preset_combo()

    @Slot()
    def _on_budget_changed(self) -> None:
        if self._filling:
            return
        self._refresh_recommendation()
        self._update()

    @Slot()
    def _on_corpus_changed(self) -> None:
        self._refresh_recommendation()
        self._update()

    @Slot()
    def _on_config_changed(self) -> None:
        if not self._writing:  # e.g. the Data tab changed the validation share
            self._update()

    # ---- the configs and their checks ----

    def _apply_configs(self, model_config: ModelConfig | dict,
                       training_config: TrainingConfig | dict) -> None:
        if isinstance(model_config, dict):
            model_config = ModelConfig.from_dict({**model_config, "vocab_size": self.vocab_size})
        if isinstance(training_config, dict):
            training_config = TrainingConfig.from_dict(training_config)
        self._base_training = replace(training_config, val_fraction=self.session.val_fraction)
        budget = training_config.time_budget_s
        self._filling = True
        try:
            if budget is not None:
                self.recommendation_panel.set_time_budget(budget)
            self.stop_at_budget.setChecked(budget is not None)
        finally:
            self._filling = False
        self._fill({**model_config.to_dict(), **training_config.to_dict()})

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
        self.preset_panel.show_matching({name: spin.value() for name, spin in self.spins.items()})

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
        notes = []
        if model_config is not None and model_config.num_layers == 1 and \
                model_config.dropout > 0:
            notes.append("With one layer, dropout applies only before the output layer "
                         "(dropout between LSTM layers needs two or more).")
        self.cost_panel.show_notes(notes, problems)
        if model_config is not None and training_config is not None:
            self.cost_panel.show_costs(model_config, training_config, self.corpus_chars,
                                       self.speed)
            self.spins["hidden_dim"].setToolTip(
                MODEL_FIELDS["hidden_dim"][3] + " " + doubling_note(
                    model_config, self.speed, training_config.batch_size,
                    training_config.sequence_length))
        self.preset_panel.update_labels(self.vocab_size, self.corpus_chars,
                                        self.session.val_fraction, self.precision,
                                        self.speed)
        self._writing = True
        try:
            self.session.set_configs(model_config, training_config, problems)
        finally:
            self._writing = False

    # ---- drawing ----

    def _show_hardware(self) -> None:
        if self.speed is None:
            if not self.is_busy:
                self.hardware_label.setText("Not measured yet. Press Measure again to time a "
                                            "few training steps on this computer.")
            return
        if self.recommendation is not None:
            text = self.recommendation.in_words(self.time_budget_s, self.corpus_chars)
        else:
            text = (reference_speed_in_words(self.speed) + " Load a text to see what that "
                    "means for it.")
        self.hardware_label.setText(text)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.profile.measured_at)) \
            if self.profile else "?"
        self.hardware_panel.show_details(
            self.hardware_info, self.speed,
            f"measured {when}" + (", remembered" if self.profile and self.profile.remembered
                                  else ""))

    def _show_status(self, message: str, timeout_ms: int = 6000) -> None:
        window = self.window()
        if isinstance(window, QMainWindow) and window.statusBar() is not None:
            window.statusBar().showMessage(message, timeout_ms)
