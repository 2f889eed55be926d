"""The whole path a person takes through the app: open a text, apply the recommendation,
train, move the temperature slider and generate, inspect, save the model and open it again."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QPushButton, QSlider, QSpinBox

from microlm import TextGenerator, calibration, load_model, recommendation, speed
from microlm import budget as budgets
from microlm_app import MainWindow

TEXT = ("To be, or not to be, that is the question:\n"
        "Whether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\n") * 60
FIXED_SPEED = speed.MachineSpeed(device="cpu", step_overhead_s=0.002, flops_per_second=2e9)


@pytest.fixture(autouse=True)
def fixed_speed(monkeypatch):
    """Nothing is timed: calibration returns a fixed, plausible machine."""
    monkeypatch.setattr(calibration, "calibrate", lambda *args, **kwargs: FIXED_SPEED)


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "warning",
                        staticmethod(lambda *a, **k: pytest.fail(f"unexpected warning {a[2]}")))
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    yield window
    window.stop_workers()


def test_open_configure_train_generate_inspect_save_reopen(qtbot, window, tmp_path,
                                                           monkeypatch, gui_thread_tensor_ops):
    session = window.session
    text_file = tmp_path / "hamlet.txt"
    text_file.write_text(TEXT, encoding="utf-8")

    # Open a text through File > Open Text (the dialog answers with our file).
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(text_file), "")))
    with qtbot.waitSignal(session.corpus_changed, timeout=30_000):
        window.open_text_action.trigger()
    assert session.corpus.text == TEXT
    assert f"{len(TEXT):,}" in window.findChild(object, "corpusStats").text()

    # Configure: a short budget, then "Apply recommended" fills the fields.
    configure = window.configure_tab
    window.tabs.setCurrentWidget(configure)
    configure.budget_unit.setCurrentText("seconds")
    configure.budget_spin.setValue(20)
    qtbot.mouseClick(window.findChild(QPushButton, "applyRecommendedButton"),
                     Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not configure.is_busy, timeout=30_000)
    expected = recommendation.recommend(len(TEXT), budgets.planning_seconds(20, 0.0),
                                        session.tokenizer.vocab_size(), FIXED_SPEED)
    hidden = window.findChild(QSpinBox, "hiddenDimSpin")
    assert hidden.value() == expected.model_config.hidden_dim
    assert session.model_config.hidden_dim == expected.model_config.hidden_dim
    assert configure.reasons_list.count() == len(expected.reasons)
    output_units = window.findChild(QSpinBox, "outputHiddenSpin")
    assert output_units.value() == expected.model_config.output_hidden_dim
    # This short text gets a single linear output layer; the path below runs with hidden
    # units in it, as longer texts get.
    output_units.setValue(48)
    assert session.model_config.output_hidden_dim == 48
    # Keep the run short and ending by its epochs, not by the clock.
    configure.stop_at_budget.setChecked(False)
    window.findChild(QSpinBox, "epochsSpin").setValue(2)
    window.findChild(QSpinBox, "sequenceLengthSpin").setValue(32)
    assert session.config_valid, session.config_problems

    # Train to completion while the plot receives points.
    train = window.train_tab
    window.tabs.setCurrentWidget(train)
    with qtbot.waitSignal(train.run_finished, timeout=120_000) as finished:
        qtbot.mouseClick(window.findChild(QPushButton, "trainButton"),
                         Qt.MouseButton.LeftButton)
    assert finished.args[0].reason == "completed"
    steps = finished.args[0].step
    assert steps > 0 and train.loss_plot.steps.count == steps
    assert session.model is not None and session.model_unsaved
    assert window.save_model_action.isEnabled()

    # Generate: the temperature slider sets the temperature the text is sampled with.
    generate = window.generate_tab
    window.tabs.setCurrentWidget(generate)
    window.findChild(QSlider, "temperatureSlider").setValue(24)
    assert window.findChild(object, "temperatureLabel").text() == "1.20"
    generate.prompt_edit.setPlainText("To be")
    generate.length_spin.setValue(60)
    generate.seed_spin.setValue(11)
    qtbot.mouseClick(window.findChild(QPushButton, "generateButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not generate.is_generating, timeout=60_000)
    # All the math so far ran in workers (the test's own starts below).
    assert gui_thread_tensor_ops == []
    expected_text = TextGenerator(session.model, session.model_tokenizer).generate(
        "To be", 60, 1.2, seed=11)
    gui_thread_tensor_ops.clear()
    assert generate.generated_text() == expected_text

    # Inspect: the summary reports the trained model's true parameter count.
    inspect = window.inspect_tab
    window.tabs.setCurrentWidget(inspect)
    qtbot.waitUntil(lambda: not inspect.is_busy, timeout=60_000)
    parameters = sum(p.numel() for p in session.model.parameters())
    qtbot.waitUntil(lambda: f"{parameters:,}" in inspect.model_summary.toPlainText(),
                    timeout=30_000)

    # Save the model (File > Save Model) and open it again (File > Open Model).
    model_file = tmp_path / "hamlet.pt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(model_file), "")))
    window.save_model_action.trigger()
    assert model_file.exists() and not session.model_unsaved
    assert gui_thread_tensor_ops == []  # inspecting and saving ran in workers too
    reloaded, tokenizer, metadata = load_model(model_file)
    assert len(metadata["history"]["step_losses"]) == steps
    assert reloaded.config.output_hidden_dim == 48
    gui_thread_tensor_ops.clear()  # the test's own load_model above

    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(model_file), "")))
    with qtbot.waitSignal(session.model_changed, timeout=30_000):
        window.open_model_action.trigger()
    qtbot.waitUntil(lambda: not window.is_opening_model, timeout=30_000)
    assert session.model_path == str(model_file)
    assert session.model is not reloaded  # loaded anew by the app, not our copy
    assert gui_thread_tensor_ops == []  # the app opened it in a worker
    assert TextGenerator(session.model, session.model_tokenizer).generate(
        "To be", 60, 1.2, seed=11) == expected_text
    # The reopened model's history is back on the Train tab's plot.
    assert train.loss_plot.steps.count == steps
