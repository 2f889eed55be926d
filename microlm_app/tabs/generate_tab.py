"""The Generate tab (placeholder until built)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..session import Session


class GenerateTab(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generateTab")
        self.session = session
        QVBoxLayout(self).addWidget(QLabel("Generate"))

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        return True
