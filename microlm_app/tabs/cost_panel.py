"""The Configure tab's cost box: the parameter count, memory and time of the configuration,
notes about it, and what is wrong with it."""

from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from microlm import ModelConfig, TrainingConfig, presets
from microlm.speed import MachineSpeed
from microlm.units import format_bytes, format_duration

ERROR_STYLE = "QLabel { color: #b00020; }"
NOTE_STYLE = "QLabel { color: #555555; }"


class CostPanel(QGroupBox):
    """What the configuration in the fields costs on this computer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("What this configuration costs", parent)
        layout = QVBoxLayout(self)
        self.parameter_label = QLabel(objectName="parameterCount")
        self.parameter_label.setAccessibleName("Parameter count")
        self.parameter_label.setToolTip(
            "Every weight the model learns. More parameters can capture more of the text "
            "but need more text, memory and time.")
        self.estimate_label = QLabel(objectName="estimateLabel")
        self.estimate_label.setAccessibleName("Memory and time estimate")
        self.estimate_label.setToolTip(
            "The memory training takes, and how long an epoch (one pass over the training "
            "text) takes on this computer, from its measured speed.")
        self.notes_label = QLabel(objectName="configNotes")
        self.notes_label.setAccessibleName("Notes on these settings")
        self.notes_label.setStyleSheet(NOTE_STYLE)
        self.problems_label = QLabel(objectName="configProblems")
        self.problems_label.setAccessibleName("Problems with these settings")
        self.problems_label.setStyleSheet(ERROR_STYLE)
        for label in (self.parameter_label, self.estimate_label, self.notes_label,
                      self.problems_label):
            label.setWordWrap(True)
            layout.addWidget(label)

    def show_notes(self, notes: list[str], problems: list[str]) -> None:
        self.notes_label.setText("\n".join(notes))
        self.notes_label.setVisible(bool(notes))
        self.problems_label.setText("\n".join(f"✖ {p}" for p in problems))
        self.problems_label.setVisible(bool(problems))

    def show_costs(self, model_config: ModelConfig, training_config: TrainingConfig,
                   corpus_chars: int, speed: MachineSpeed | None) -> None:
        parameters = model_config.num_parameters()
        embedding = model_config.vocab_size * model_config.embedding_dim
        lstm = model_config.lstm_parameters()
        self.parameter_label.setText(
            f"<b>Parameters: {parameters:,}</b> (embedding {embedding:,}, LSTM {lstm:,}, "
            f"output layer {parameters - embedding - lstm:,}) for a vocabulary of "
            f"{model_config.vocab_size} characters")
        memory = presets.run_memory_bytes(model_config, training_config, corpus_chars)
        text = f"Training memory ≈ {format_bytes(memory)}"
        if speed is None:
            text += " · time per epoch: known once this computer is measured"
        elif corpus_chars == 0:
            text += " · time per epoch: load a text to estimate"
        else:
            estimate = presets.estimate(model_config, training_config, corpus_chars, speed)
            text += (f" · ≈ {estimate.chars_per_second:,.0f} characters/s · "
                     f"≈ {format_duration(estimate.seconds_per_epoch)} per epoch · "
                     f"≈ {format_duration(estimate.seconds_per_epoch * training_config.epochs)}"
                     f" for {training_config.epochs} epoch(s)")
            if training_config.time_budget_s is not None:
                text += (f", but training stops after the "
                         f"{format_duration(training_config.time_budget_s)} budget")
        self.estimate_label.setText(text)
