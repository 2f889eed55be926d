"""The Configure tab's "This computer" box: what the machine does in plain words, the
engineering figures behind a Details toggle, and the button that measures it again."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from microlm.hardware import HardwareInfo
from microlm.speed import MachineSpeed
from microlm.units import format_bytes

NOTE_STYLE = "QLabel { color: #555555; }"
MEASURE_AGAIN = "Measure again"


class HardwarePanel(QGroupBox):
    """The machine's speed in words; its measurements behind Details."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("This computer", parent)
        layout = QVBoxLayout(self)
        self.summary_label = QLabel(
            "Not measured yet: this computer's training speed is measured once, in a few "
            "seconds, and remembered.", objectName="hardwareSummary")
        self.summary_label.setAccessibleName("What this computer can train")
        self.summary_label.setToolTip(
            "How fast this computer trains, and what that means for the model and time "
            "budget chosen here. The numbers come from timing real training steps on it.")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.summary_label)
        self.progress = QProgressBar(objectName="measureProgress")
        self.progress.setAccessibleName("Measuring this computer")
        self.progress.setToolTip("Timing a few real training steps on this computer; the app "
                                 "stays usable meanwhile.")
        self.progress.setRange(0, 0)  # busy: the calibration does not report its progress
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(12)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        row = QHBoxLayout()
        self.measure_button = QPushButton(MEASURE_AGAIN, objectName="probeButton")
        self.measure_button.setAccessibleName("Measure this computer again")
        self.measure_button.setToolTip(
            "Time a few real training steps on this computer again (a few seconds) and read "
            "its CPU, memory and GPU. The speed turns every model size into an estimate of "
            "time per epoch. Measure again after changing hardware or when the computer was "
            "busy during the first measurement.")
        row.addWidget(self.measure_button)
        self.details_toggle = QPushButton("Details", objectName="hardwareDetailsToggle")
        self.details_toggle.setCheckable(True)
        self.details_toggle.setAccessibleName("Show the measurements")
        self.details_toggle.setToolTip(
            "Show or hide the engineering figures behind the summary: the CPU, memory and "
            "GPU, the precision and threads training uses, and the fitted costs of a "
            "training step.")
        row.addWidget(self.details_toggle)
        row.addStretch(1)
        layout.addLayout(row)
        self.details_label = QLabel(objectName="hardwareDetails")
        self.details_label.setAccessibleName("Measurements of this computer")
        self.details_label.setToolTip("What the summary is computed from.")
        self.details_label.setWordWrap(True)
        self.details_label.setStyleSheet(NOTE_STYLE)
        self.details_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.details_label.setText("Nothing measured yet.")
        self.details_label.setVisible(False)
        self.details_toggle.toggled.connect(self.details_label.setVisible)
        layout.addWidget(self.details_label)
        layout.addStretch(1)  # the summary stays at the top when the box is taller

    def set_measuring(self, measuring: bool) -> None:
        self.progress.setVisible(measuring)
        self.measure_button.setEnabled(not measuring)
        self.measure_button.setText("Measuring…" if measuring else MEASURE_AGAIN)
        if measuring:
            self.summary_label.setText("Measuring this computer's training speed (a few "
                                       "seconds; the rest of the app stays usable)…")

    def show_details(self, info: HardwareInfo | None, speed: MachineSpeed | None,
                     measured_when: str) -> None:
        lines = [info.summary()] if info is not None else []
        if speed is not None:
            precision = f"Precision: {speed.precision}"
            if speed.threads:
                precision += f" · CPU threads: {speed.threads}"
            if speed.cache_bytes:
                precision += f" · last-level cache: {format_bytes(speed.cache_bytes)}"
            lines += [precision, f"Measured speed ({speed.device}, {measured_when}): "
                                 f"{speed.summary()}."]
        self.details_label.setText("\n".join(lines))
