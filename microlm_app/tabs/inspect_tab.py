"""The Inspect tab (placeholder until built)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..session import Session


class InspectTab(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectTab")
        self.session = session
        QVBoxLayout(self).addWidget(QLabel("Inspect"))

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        return True
