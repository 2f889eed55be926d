"""The Configure tab's presets box: ready-made model sizes, each with its true size and,
once this computer is measured, its time per epoch here."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGroupBox, QLabel, QVBoxLayout, QWidget

from microlm import presets
from microlm.speed import MachineSpeed
from microlm.units import format_bytes, format_duration

CUSTOM = "Custom"
NOTE_STYLE = "QLabel { color: #555555; }"
PRESET_FIELDS = ("embedding_dim", "hidden_dim", "num_layers", "dropout", "output_hidden_dim",
                 "sequence_length", "batch_size", "learning_rate")


class PresetPanel(QGroupBox):
    """A combo of the presets; `chosen` carries the name a person picked."""

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Presets", parent)
        layout = QVBoxLayout(self)
        self.combo = QComboBox(objectName="presetCombo")
        self.combo.setAccessibleName("Model preset")
        self.combo.setToolTip(
            "Ready-made model sizes from nano (trains in seconds, learns letter frequencies) "
            "to xlarge (needs a GPU). Each shows its true parameter count for your text's "
            "vocabulary, and once this computer is measured, its memory and time per epoch.")
        self.combo.addItem(CUSTOM, CUSTOM)
        for name in presets.PRESETS:
            self.combo.addItem(name, name)
        self.combo.activated.connect(self._on_activated)
        # Entries are long; let the combo shrink with the window instead of forcing a scrollbar.
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(24)
        layout.addWidget(self.combo)
        self.description = QLabel(objectName="presetDescription")
        self.description.setWordWrap(True)
        self.description.setStyleSheet(NOTE_STYLE)
        layout.addWidget(self.description)

    def _on_activated(self, index: int) -> None:
        name = self.combo.itemData(index)
        if name != CUSTOM:
            self.chosen.emit(name)

    def show_matching(self, values: dict) -> None:
        """Select the preset the field values match, or Custom once they match none."""
        name = next((name for name in presets.PRESETS
                     if all(abs(values[field] - getattr(presets.PRESETS[name], field)) < 1e-9
                            for field in PRESET_FIELDS)), None)
        self.combo.setCurrentIndex(self.combo.findData(name or CUSTOM))
        self.description.setText(presets.PRESETS[name].description if name else
                                 "No preset matches the settings in the fields.")

    def update_labels(self, vocab_size: int, corpus_chars: int, val_fraction: float,
                      precision: str, speed: MachineSpeed | None) -> None:
        """Each preset's size for this vocabulary, and its memory and time per epoch."""
        for index in range(1, self.combo.count()):
            name = self.combo.itemData(index)
            preset = presets.PRESETS[name]
            model_config = preset.model_config(vocab_size)
            training_config = preset.training_config(val_fraction=val_fraction,
                                                     precision=precision)
            text = f"{name} — {model_config.num_parameters():,} parameters"
            if speed is None or corpus_chars == 0:
                memory = presets.run_memory_bytes(model_config, training_config, corpus_chars)
                text += f" · {format_bytes(memory)}"
            else:
                estimate = presets.estimate(model_config, training_config, corpus_chars, speed)
                text += (f" · {format_bytes(estimate.memory_bytes)} · "
                         f"{format_duration(estimate.seconds_per_epoch)} per epoch")
            self.combo.setItemText(index, text)
