"""Tests of the main window: tabs, menus, opening and saving, drag and drop, settings, closing."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

import microlm
from microlm import CharacterTokenizer, MicroLM
from microlm_app import MainWindow

TEXT = "to be or not to be, that is the question.\n" * 40


@pytest.fixture(autouse=True)
def private_settings(tmp_path_factory):
    """Even a MainWindow() built without settings must not touch the user's real ones."""
    folder = str(tmp_path_factory.mktemp("settings"))
    for settings_format in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(settings_format, QSettings.UserScope, folder)


@pytest.fixture
def settings_file(tmp_path):
    return str(tmp_path / "MicroLM Studio.ini")


@pytest.fixture
def window(qtbot, settings_file):
    window = MainWindow(settings=QSettings(settings_file, QSettings.IniFormat))
    qtbot.addWidget(window)
    yield window
    window.stop_workers()


@pytest.fixture
def warnings_shown(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning",
                        staticmethod(lambda parent, title, text, *a, **k: shown.append(text)))
    return shown


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "hamlet.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def tiny_model(window: MainWindow, unsaved: bool = True) -> MicroLM:
    tokenizer = CharacterTokenizer(TEXT)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=1,
                    dropout=0.0)
    history = {"step_losses": [3.2, 2.9], "val_losses": [[2, 3.0]]}
    window.session.set_model(model, tokenizer, {"history": history, "best_val_loss": 3.0},
                             unsaved=unsaved)
    return model


def menu_actions(window: MainWindow, title: str) -> dict[str, object]:
    menu = next(action.menu() for action in window.menuBar().actions()
                if action.text().replace("&", "") == title)
    return {action.text().replace("&", ""): action for action in menu.actions()
            if not action.isSeparator()}


def test_title_tabs_and_icon(window):
    assert window.windowTitle() == "MicroLM Studio"
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles == ["Data", "Configure", "Train", "Generate", "Inspect"]
    names = [window.tabs.widget(i).objectName() for i in range(window.tabs.count())]
    assert names == ["dataTab", "configureTab", "trainTab", "generateTab", "inspectTab"]
    assert not window.windowIcon().isNull()


def test_main_window_builds_without_arguments(qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    assert window.windowTitle() == "MicroLM Studio"


def test_menus_and_shortcuts(window):
    file_actions = menu_actions(window, "File")
    assert list(file_actions) == ["Open Text…", "Open Model…", "Save Model…",
                                  "Export Generated Text…", "Quit"]
    assert file_actions["Open Text…"].shortcut() == QKeySequence("Ctrl+O")
    assert file_actions["Save Model…"].shortcut() == QKeySequence("Ctrl+S")
    assert file_actions["Quit"].shortcut() == QKeySequence("Ctrl+Q")
    assert not file_actions["Save Model…"].isEnabled()  # nothing to save yet
    help_actions = menu_actions(window, "Help")
    assert "About MicroLM Studio" in help_actions and "How It Works" in help_actions


def test_help_pages_open_with_readable_text(qtbot, window):
    dialog = window.show_text_dialog("How it works", microlm_app_how_it_works(), "howItWorks")
    text = dialog.findChild(object, "howItWorksText").toPlainText()
    assert "forget gate" in text and "temperature" in text.lower()
    dialog.close()
    window.about_action.trigger()
    about = window.findChild(object, "aboutDialog")
    about_text = about.findChild(object, "aboutDialogText").toPlainText()
    assert microlm.__version__ in about_text and "PyTorch" in about_text


def microlm_app_how_it_works() -> str:
    from microlm_app.help import HOW_IT_WORKS_HTML

    return HOW_IT_WORKS_HTML


def test_open_text_through_the_file_dialog_loads_it(qtbot, window, text_file, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(text_file), "")))
    with qtbot.waitSignal(window.session.corpus_changed, timeout=30_000):
        window.open_text_action.trigger()
    qtbot.waitUntil(lambda: not window.data_tab.is_loading, timeout=30_000)
    assert window.session.corpus.text == TEXT
    assert "hamlet.txt" in window.status_summary.text()
    assert f"{len(TEXT):,} characters" in window.status_summary.text()


def drag_enter_event(mime: QMimeData) -> QDragEnterEvent:
    """A drag entering at (10, 10); PySide6 < 6.12 wants a QPoint, 6.12 a QPointF."""
    args = (Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    try:
        return QDragEnterEvent(QPointF(10, 10), *args)
    except TypeError:
        return QDragEnterEvent(QPointF(10, 10).toPoint(), *args)


def test_dropping_a_text_file_loads_it(qtbot, window, text_file):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(text_file))])
    enter = drag_enter_event(mime)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.session.corpus_changed, timeout=30_000):
        window.dropEvent(drop)
    qtbot.waitUntil(lambda: not window.data_tab.is_loading, timeout=30_000)
    assert window.session.corpus.source == str(text_file)


def test_dragging_something_that_is_not_a_file_is_refused(window):
    mime = QMimeData()
    mime.setText("just some text")
    enter = drag_enter_event(mime)
    window.dragEnterEvent(enter)
    assert not enter.isAccepted()


def test_open_model_with_a_corrupt_file_warns_and_the_app_stays_usable(
        qtbot, window, tmp_path, monkeypatch, warnings_shown):
    corrupt = tmp_path / "broken.pt"
    corrupt.write_bytes(b"this is not a checkpoint at all" * 10)
    chosen = [str(corrupt)]
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (chosen[0], "")))
    window.open_model_action.trigger()
    qtbot.waitUntil(lambda: not window.is_opening_model, timeout=30_000)
    assert len(warnings_shown) == 1 and "broken.pt" in warnings_shown[0]
    assert window.session.model is None
    # Still usable: a good checkpoint opens afterwards.
    model = tiny_model(window, unsaved=False)
    good = tmp_path / "good.pt"
    microlm.save_model(good, model, window.session.model_tokenizer)
    window.session.model = None
    chosen[0] = str(good)
    with qtbot.waitSignal(window.session.model_changed, timeout=30_000):
        window.open_model_action.trigger()
    qtbot.waitUntil(lambda: not window.is_opening_model, timeout=30_000)
    assert window.session.model is not None and window.session.model_path == str(good)
    assert not window.session.model_unsaved
    assert window.save_model_action.isEnabled()


def test_save_model_writes_a_loadable_checkpoint(window, tmp_path, monkeypatch):
    model = tiny_model(window)
    assert window.save_model_action.isEnabled()
    assert "unsaved" in window.status_summary.text()
    target = tmp_path / "saved"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "")))
    window.save_model_action.trigger()
    loaded, tokenizer, metadata = microlm.load_model(str(target) + ".pt")
    assert tokenizer == window.session.model_tokenizer
    assert loaded.config == model.config
    assert metadata["history"]["step_losses"] == [3.2, 2.9]
    assert not window.session.model_unsaved
    assert "unsaved" not in window.status_summary.text()
    assert "saved" in window.statusBar().currentMessage()


def test_closing_with_an_unsaved_model_asks_and_save_writes_the_file(
        qtbot, window, tmp_path, monkeypatch):
    tiny_model(window)
    target = tmp_path / "on_close.pt"
    questions = []

    def answer(parent, title, text, *args, **kwargs):
        questions.append(title)
        return QMessageBox.Save

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "")))
    window.show()
    assert window.close()
    assert questions == ["Save the model?"]
    assert microlm.load_model(target)[0].config.hidden_dim == 16


def test_cancel_on_close_keeps_the_window_open(qtbot, window, monkeypatch):
    tiny_model(window)
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda *a, **k: QMessageBox.Cancel))
    window.show()
    assert not window.close()
    assert window.isVisible()


def test_settings_persist_between_two_windows(qtbot, settings_file, text_file):
    first = MainWindow(settings=QSettings(settings_file, QSettings.IniFormat))
    qtbot.addWidget(first)
    first.resize(760, 580)  # within the offscreen screen (800 x 600)
    first.configure_tab.spins["hidden_dim"].setValue(72)
    first.configure_tab.spins["patience"].setValue(3)
    first.data_tab.val_split_spin.setValue(20)
    first.last_folder = str(text_file.parent)
    first.show()
    assert first.close()
    second = MainWindow(settings=QSettings(settings_file, QSettings.IniFormat))
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (760, 580)
    assert second.configure_tab.spins["hidden_dim"].value() == 72
    assert second.session.model_config.hidden_dim == 72
    assert second.session.training_config.patience == 3
    assert second.data_tab.val_split_spin.value() == 20
    assert second.session.val_fraction == pytest.approx(0.2)
    assert second.last_folder == str(text_file.parent)


def test_closing_while_training_asks_to_stop_first(qtbot, window, monkeypatch):
    asked = []
    answers = [QMessageBox.No, QMessageBox.Yes]

    def answer(parent, title, text, *args, **kwargs):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    window.session.set_training_active(True)
    window.show()
    assert not window.close()  # "No": keep training
    assert "Stop it and quit?" in asked[0]
    assert window.close()  # "Yes": workers stopped, no unsaved model, the window closes
    assert len(asked) == 2


def test_closing_during_a_temperature_comparison_asks_to_stop_first(qtbot, window,
                                                                     monkeypatch):
    tiny_model(window, unsaved=False)
    asked = []

    def answer(parent, title, text, *args, **kwargs):
        asked.append(text)
        return QMessageBox.Yes

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    window.generate_tab.length_spin.setValue(5000)  # long enough to still run at close
    window.generate_tab.compare_button.click()
    assert window.generate_tab.is_generating
    window.show()
    assert window.close()
    assert len(asked) == 1 and "Stop it and quit?" in asked[0]
    assert not window.generate_tab.is_generating


def test_qt_calls_and_signals_do_not_use_up_none_or_true(qtbot):
    """PySide6 6.12.0 on Python < 3.12 drops a reference to None on every void Qt call and
    to True on every emit, and the app aborts ("none_dealloc") after ~100,000 of them;
    pyproject.toml keeps such a binding out. This fails if one slips back in."""
    import sys

    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QLabel

    class Emitter(QObject):
        happened = Signal(object)

    label, emitter, received = QLabel(), Emitter(), []
    qtbot.addWidget(label)
    emitter.happened.connect(received.append)
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(5_000):
        label.clear()
        emitter.happened.emit(1)
    after = sys.getrefcount(None), sys.getrefcount(True)
    assert len(received) == 5_000
    assert after[0] - before[0] > -100 and after[1] - before[1] > -100


def test_save_model_uses_the_trainer_checkpoint_to_keep_training_state(window, tmp_path):
    from microlm import ModelTrainer, TrainingConfig

    model = tiny_model(window)
    trainer = ModelTrainer(model, window.session.model_tokenizer, device="cpu",
                           config=TrainingConfig(epochs=1, batch_size=2, sequence_length=8))
    window.session.trainer = trainer
    window.session.model = trainer.model
    target = tmp_path / "trainer.pt"
    assert window.save_model(str(target))
    metadata = microlm.load_model(target)[2]
    assert "training_state" in metadata and metadata["training_config"]["sequence_length"] == 8


def test_closing_while_a_text_loads_stops_the_loader_first(qtbot, window):
    window.data_tab.load_sample("Python source code")
    window.show()
    assert window.close()
    from microlm_app.workers import running_threads

    assert not running_threads()
    assert window.session.corpus is None  # the stopped load dropped its result


def test_save_model_writes_in_a_worker_thread_and_reports_a_failure(window, tmp_path,
                                                                       monkeypatch):
    import threading

    tiny_model(window)
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning",
                        staticmethod(lambda _parent, title, text: warnings.append((title, text))))
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    assert not window.save_model(str(blocked / "model.pt"))  # its folder is a file
    assert len(warnings) == 1 and warnings[0][0] == "Could not save the model"
    assert "choose another place" in warnings[0][1]
    assert window.session.model_unsaved  # nothing was lost: still marked unsaved
    assert window.save_model_action.isEnabled()

    writers = []
    real_save = microlm.save_model

    def recording_save(*args, **kwargs):
        writers.append(threading.current_thread() is threading.main_thread())
        return real_save(*args, **kwargs)

    monkeypatch.setattr(microlm, "save_model", recording_save)
    assert window.save_model(str(tmp_path / "ok.pt"))
    assert writers == [False]  # written off the GUI thread
    assert microlm.load_model(tmp_path / "ok.pt")[0].config == window.session.model.config
    assert not window.session.model_unsaved and not warnings[1:]


def test_each_tab_shows_its_own_status_message(qtbot, window, text_file):
    window.tabs.setCurrentWidget(window.data_tab)
    window.data_tab.load_path(text_file)
    qtbot.waitUntil(lambda: "Loaded hamlet.txt" in window.statusBar().currentMessage(),
                    timeout=30_000)
    loaded = window.statusBar().currentMessage()
    window.tabs.setCurrentWidget(window.generate_tab)
    window.statusBar().showMessage("Generated 500 characters.", 60_000)
    window.tabs.setCurrentWidget(window.inspect_tab)
    assert window.statusBar().currentMessage() == ""  # Generate's news is not Inspect's
    window.tabs.setCurrentWidget(window.generate_tab)
    assert window.statusBar().currentMessage() == "Generated 500 characters."
    window.tabs.setCurrentWidget(window.data_tab)
    assert window.statusBar().currentMessage() == loaded
    window.statusBar().clearMessage()  # a message that has gone stays gone
    window.tabs.setCurrentWidget(window.train_tab)
    window.tabs.setCurrentWidget(window.data_tab)
    assert window.statusBar().currentMessage() == ""
    assert window.tab_message(window.generate_tab) == "Generated 500 characters."


def test_how_it_works_explains_the_gates_the_loss_and_the_stabilisers(qtbot, window):
    dialog = window.show_text_dialog("How it works", microlm_app_how_it_works(), "howItWorks")
    text = " ".join(dialog.findChild(object, "howItWorksText").toPlainText().split())
    dialog.close()
    assert "four small layers" in text and "Three gates" not in text
    assert "the current character's vector" in text and "carried, with c, to the next" in text
    for stabiliser in ("Warm-up and cosine decay", "Gradient clipping", "Weight decay",
                       "Weight averaging"):
        assert stabiliser in text
    assert "first 100 steps" in text and "above 1, they are scaled down" in text  # defaults
    assert "−ln p" in text and "bits per character = nats / ln 2" in text
    assert "as unsure as choosing among e1.5 = 4.5 characters" in text
    assert "Validation dots often sit below" in text
    for wrong in ("LSTM size", "distinct", "moving average", "EMA"):
        assert wrong not in text
