"""MainWindow: the tabs, menus and status bar of MicroLM Studio (skeleton, to be completed)."""

from __future__ import annotations

from PySide6.QtWidgets import QMainWindow, QTabWidget, QWidget

from .session import Session
from .tabs import ConfigureTab, DataTab, GenerateTab, InspectTab, TrainTab


class MainWindow(QMainWindow):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("MicroLM Studio")
        self.session = Session()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.data_tab = DataTab(self.session)
        self.configure_tab = ConfigureTab(self.session)
        self.train_tab = TrainTab(self.session)
        self.generate_tab = GenerateTab(self.session)
        self.inspect_tab = InspectTab(self.session)
        for tab, title in ((self.data_tab, "Data"), (self.configure_tab, "Configure"),
                           (self.train_tab, "Train"), (self.generate_tab, "Generate"),
                           (self.inspect_tab, "Inspect")):
            self.tabs.addTab(tab, title)
        self.setCentralWidget(self.tabs)
