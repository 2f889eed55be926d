"""MainWindow: the tabs, menus, status bar, drag and drop, settings and closing of the app."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEventLoop, QSettings, Qt, QThread, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

import microlm

from .help import HOW_IT_WORKS_HTML, about_html
from .session import Session
from .tabs import ConfigureTab, DataTab, GenerateTab, InspectTab, TrainTab
from .workers import (
    TaskWorker,
    describe_error,
    start_worker,
    stop_and_wait,
    wait_for_thread_end,
)

pg.setConfigOptions(antialias=True)
pg.setConfigOption("background", "w")  # light plots read better next to Qt's widgets
pg.setConfigOption("foreground", "k")

ORGANIZATION = "MicroLM"
APPLICATION = "MicroLM Studio"
MODEL_FILTER = "MicroLM models (*.pt);;All files (*)"
STATUS_SECONDS = 6


def resource_path(name: str) -> Path:
    """A file shipped in resources/: inside the installed package, else in the checkout."""
    installed = Path(__file__).parent / "resources" / name
    return installed if installed.exists() else Path(__file__).parents[1] / "resources" / name


def app_icon() -> QIcon:
    icon = QIcon()
    for name in ("microlm.svg", "microlm.png"):
        path = resource_path(name)
        if path.exists():
            icon.addFile(str(path))
    return icon


class MainWindow(QMainWindow):
    """The whole application: five tabs over one Session.

    `settings` defaults to the user's QSettings("MicroLM", "MicroLM Studio"); tests pass
    their own so they never touch the real ones.
    """

    def __init__(self, parent: QWidget | None = None, settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(APPLICATION)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings(ORGANIZATION, APPLICATION)
        self.session = Session()
        self._model_worker: TaskWorker | None = None
        self._model_thread: QThread | None = None
        self._model_path = ""
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
        self._build_menus()
        self._build_status_bar()
        self._restore_settings()
        self.session.corpus_changed.connect(self._on_corpus_changed)
        self.session.model_changed.connect(self._on_model_changed)
        self._update_status_summary()

    @property
    def all_tabs(self) -> tuple[QWidget, ...]:
        return (self.data_tab, self.configure_tab, self.train_tab, self.generate_tab,
                self.inspect_tab)

    @property
    def last_folder(self) -> str:
        return self.data_tab.last_folder

    @last_folder.setter
    def last_folder(self, folder: str) -> None:
        self.data_tab.last_folder = folder

    # ---- builders ----

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_text_action = self._action(
            "Open &Text…", "openTextAction", self._on_open_text, "Ctrl+O",
            "Load a text file for the model to learn from (you can also drop it here).")
        self.open_model_action = self._action(
            "Open &Model…", "openModelAction", self._on_open_model, None,
            "Load a model saved earlier, to generate with it, inspect it or train it further.")
        self.save_model_action = self._action(
            "&Save Model…", "saveModelAction", self._on_save_model, "Ctrl+S",
            "Save the trained model with its vocabulary and training history in one file.")
        self.save_model_action.setEnabled(False)
        self.export_text_action = self._action(
            "&Export Generated Text…", "exportTextAction", self._on_export_text, None,
            "Save the text on the Generate tab to a file.")
        self.quit_action = self._action("&Quit", "quitAction", self.close, "Ctrl+Q",
                                        "Close MicroLM Studio.")
        for action in (self.open_text_action, self.open_model_action, self.save_model_action,
                       self.export_text_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        self.how_it_works_action = self._action(
            "&How It Works", "howItWorksAction", self._on_how_it_works, "F1",
            "A short, readable explanation of language models, LSTMs, training and temperature.")
        self.about_action = self._action("&About MicroLM Studio", "aboutAction", self._on_about,
                                         None, "Version and the libraries this app runs on.")
        help_menu.addAction(self.how_it_works_action)
        help_menu.addAction(self.about_action)

    def _action(self, text: str, name: str, slot, shortcut, tip: str) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setStatusTip(tip)
        action.setToolTip(tip)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _build_status_bar(self) -> None:
        self.status_summary = QLabel(objectName="statusSummary")
        self.status_summary.setAccessibleName("What is loaded")
        self.status_summary.setToolTip("The device training runs on, the loaded text and the "
                                       "current model.")
        self.statusBar().addPermanentWidget(self.status_summary)
        # Each tab keeps its own last message: switching tabs shows that tab's, so one
        # tab's news never reads as another's.
        self._tab_messages: dict[QWidget, str] = {}
        self.statusBar().messageChanged.connect(self._on_status_message_changed)
        self.tabs.currentChanged.connect(self._on_tab_changed)

    # ---- File menu ----

    @Slot()
    def _on_open_text(self) -> None:
        self.data_tab.open_file()

    @Slot()
    def _on_open_model(self) -> None:
        self.open_model()

    @Slot()
    def _on_save_model(self) -> None:
        self.save_model()

    @Slot()
    def _on_export_text(self) -> None:
        self.generate_tab.export_text()

    def open_model(self, path: str | None = None) -> None:
        """Load a checkpoint in a worker (None: ask with the file dialog)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open Model", self.last_folder,
                                                  MODEL_FILTER)
            if not path:
                return
        if self._model_worker is not None:  # one model load at a time
            return
        self.last_folder = str(Path(path).parent)
        self._model_path = path
        worker = TaskWorker(microlm.load_model, path)
        worker.succeeded.connect(self._on_model_loaded)
        worker.failed.connect(self._on_model_load_failed)
        worker.finished.connect(self._on_model_load_finished)
        self._model_worker = worker
        self.open_model_action.setEnabled(False)
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        self._model_thread = start_worker(worker)

    @Slot(object)
    def _on_model_loaded(self, result: tuple) -> None:
        model, tokenizer, metadata = result
        self.session.set_model(model, tokenizer, metadata, unsaved=False, path=self._model_path)
        self.statusBar().showMessage(f"Opened model {Path(self._model_path).name} "
                                     f"({model.config.num_parameters():,} parameters).",
                                     STATUS_SECONDS * 1000)

    @Slot(str)
    def _on_model_load_failed(self, message: str) -> None:
        self.statusBar().clearMessage()
        QMessageBox.warning(self, "Could not open the model", message)

    @Slot()
    def _on_model_load_finished(self) -> None:
        wait_for_thread_end(self._model_thread)
        self._model_worker = self._model_thread = None
        self.open_model_action.setEnabled(True)

    @property
    def is_opening_model(self) -> bool:
        return self._model_worker is not None

    def save_model(self, path: str | None = None) -> bool:
        """Save the current model (None: ask where). True when a file was written."""
        session = self.session
        if session.model is None:
            return False
        if path is None:
            suggested = str(Path(self.last_folder) / Path(session.model_path or "model.pt").name)
            path, _ = QFileDialog.getSaveFileName(self, "Save Model", suggested, MODEL_FILTER)
            if not path:
                return False
            if not Path(path).suffix:
                path += ".pt"
        if session.trainer is not None and session.trainer.model is session.model:
            # The trainer's checkpoint also holds what is needed to train further.
            write = partial(session.trainer.save_checkpoint, path)
        else:
            write = partial(microlm.save_model, path, session.model, session.model_tokenizer,
                            **plain_metadata(session.model_metadata))
        error = self._write_in_worker(write, f"Saving the model to {Path(path).name}…")
        if error is not None:
            QMessageBox.warning(self, "Could not save the model", error)
            return False
        self.last_folder = str(Path(path).parent)
        session.model_unsaved = False
        session.model_path = path
        self._update_status_summary()
        self.statusBar().showMessage(f"Model saved to {path}.", STATUS_SECONDS * 1000)
        return True

    def _write_in_worker(self, write: Callable[[], object], message: str) -> str | None:
        """Run `write` in a worker and wait for it with the window alive (a large model with
        its optimizer state takes seconds to write). None when it succeeded, else the
        error message. A window-modal progress dialog appears if it takes over half a
        second, so nothing else can be started meanwhile."""
        outcome: dict[str, str] = {}

        def guarded() -> None:  # runs in the worker; done before `finished` is emitted
            try:
                write()
            except Exception as err:  # noqa: BLE001 - reported to the person below
                outcome["error"] = describe_error(err)

        worker = TaskWorker(guarded)
        loop = QEventLoop()
        # Queued (the loop lives on this thread): if the worker ends before exec() starts,
        # the quit waits in the queue for it, so exec() cannot miss it.
        worker.finished.connect(loop.quit)
        dialog = QProgressDialog(message, "", 0, 0, self)
        dialog.setObjectName("saveProgressDialog")
        dialog.setWindowTitle("Saving")
        dialog.setCancelButton(None)  # half a file is worse than waiting: no cancel
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(500)
        self.save_model_action.setEnabled(False)
        self.statusBar().showMessage(message)
        thread = start_worker(worker)
        loop.exec()
        wait_for_thread_end(thread)
        dialog.reset()
        dialog.deleteLater()
        self.save_model_action.setEnabled(self.session.model is not None)
        self.statusBar().clearMessage()
        return outcome.get("error")

    # ---- Help menu ----

    @Slot()
    def _on_how_it_works(self) -> None:
        self.show_text_dialog("How it works", HOW_IT_WORKS_HTML, "howItWorksDialog")

    @Slot()
    def _on_about(self) -> None:
        self.show_text_dialog("About MicroLM Studio", about_html(), "aboutDialog", (520, 360))

    def show_text_dialog(self, title: str, html: str, name: str,
                         size: tuple[int, int] = (640, 560)) -> QDialog:
        """A non-modal window with a readable rich-text page."""
        dialog = QDialog(self)
        dialog.setObjectName(name)
        dialog.setWindowTitle(title)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        layout = QVBoxLayout(dialog)
        browser = QTextBrowser(objectName=f"{name}Text")
        browser.setOpenExternalLinks(True)
        browser.setHtml(html)
        layout.addWidget(browser)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(dialog.close)
        layout.addWidget(buttons)
        dialog.resize(*size)
        dialog.show()
        return dialog

    # ---- status bar ----

    @Slot(str)
    def _on_status_message_changed(self, message: str) -> None:
        self._tab_messages[self.tabs.currentWidget()] = message

    @Slot(int)
    def _on_tab_changed(self, _index: int) -> None:
        tab = self.tabs.currentWidget()
        message = self._tab_messages.get(tab, "")
        self.statusBar().clearMessage()
        if message:
            self.statusBar().showMessage(message, STATUS_SECONDS * 1000)

    def tab_message(self, tab: QWidget) -> str:
        """The last status-bar message shown while `tab` was selected ('' once it went)."""
        return self._tab_messages.get(tab, "")

    @Slot()
    def _on_corpus_changed(self) -> None:
        self._update_status_summary()

    @Slot()
    def _on_model_changed(self) -> None:
        self.save_model_action.setEnabled(self.session.model is not None)
        self._update_status_summary()

    def _update_status_summary(self) -> None:
        parts = [f"Device: {microlm.select_device().type}"]
        session = self.session
        if session.corpus is not None and session.corpus_stats is not None:
            source = session.corpus.source
            name = source if source in microlm.SAMPLE_CORPORA else Path(source).name
            parts.append(f"Text: {name} ({session.corpus_stats.characters:,} characters)")
        else:
            parts.append("No text loaded")
        if session.model is not None:
            state = "trained" if session.model_metadata.get("history") else "untrained"
            if session.model_unsaved:
                state += ", unsaved"
            parts.append(f"Model: {session.model.config.num_parameters():,} parameters, {state}")
        else:
            parts.append("No model yet")
        self.status_summary.setText("  ·  ".join(parts))

    # ---- drag and drop ----

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_file(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = dropped_file(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.tabs.setCurrentWidget(self.data_tab)
        self.data_tab.load_path(path)

    # ---- settings ----

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1200, 800)
        folder = self.settings.value("files/lastFolder")
        if folder and Path(str(folder)).is_dir():
            self.last_folder = str(folder)
        model_json = self.settings.value("config/model")
        training_json = self.settings.value("config/training")
        if model_json and training_json:
            try:
                model_dict, training_dict = json.loads(model_json), json.loads(training_json)
                self.data_tab.val_split_spin.setValue(
                    round(training_dict.get("val_fraction", 0.1) * 100))
                self.configure_tab.apply_configs(model_dict, training_dict)
            except (ValueError, TypeError, AttributeError):
                pass  # settings from another version: keep the defaults

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("files/lastFolder", self.last_folder)
        self.settings.setValue("config/model", json.dumps(self.session.model_config.to_dict()))
        self.settings.setValue("config/training",
                               json.dumps(self.session.training_config.to_dict()))
        self.settings.sync()

    # ---- closing ----

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._busy() and QMessageBox.question(
                self, "Quit MicroLM Studio?",
                "Training or generation is still running. Stop it and quit?",
                QMessageBox.Yes | QMessageBox.No, QMessageBox.No) != QMessageBox.Yes:
            event.ignore()
            return
        if not self.stop_workers():
            QMessageBox.warning(self, "Still stopping",
                                "A background task did not stop in time. Try again in a "
                                "moment.")
            event.ignore()
            return
        # A stopped training run hands its model over through queued signals: deliver
        # them now, so the unsaved-model question below knows about it.
        QApplication.processEvents()
        if self.session.model_unsaved and self.session.model is not None:
            answer = QMessageBox.question(
                self, "Save the model?",
                "The trained model has not been saved. Save it before quitting?",
                QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
            if answer == QMessageBox.Cancel or (answer == QMessageBox.Save
                                                and not self.save_model()):
                event.ignore()
                return
        self.save_settings()
        event.accept()

    def _busy(self) -> bool:
        """Training, generation or a temperature comparison runs (loading a file or
        probing can just be stopped)."""
        return (self.session.training_active or self.train_tab.is_training
                or self.generate_tab.is_generating)

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        """Stop every tab's workers and the model loader; True when all have ended."""
        stopped = all([tab.stop_workers(timeout_ms) for tab in self.all_tabs])
        return stop_and_wait(self._model_worker, timeout_ms) and stopped


def dropped_file(mime_data) -> str | None:
    """The first local file among dropped URLs, or None."""
    if mime_data is None or not mime_data.hasUrls():
        return None
    for url in mime_data.urls():
        if url.isLocalFile() and Path(url.toLocalFile()).is_file():
            return url.toLocalFile()
    return None


def plain_metadata(metadata: dict) -> dict:
    """Metadata ready for save_model: configs as dicts, without what load_model added."""
    plain = {}
    for key, value in metadata.items():
        if key == "format_version":
            continue
        plain[key] = value.to_dict() if hasattr(value, "to_dict") else value
    return plain
