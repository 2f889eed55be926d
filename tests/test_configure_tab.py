"""Tests of the Configure tab: the first-run measurement and the recommendation it fills in,
plain words with details, presets, live parameter count, validation."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDoubleSpinBox, QLabel, QMessageBox, QPushButton, QSpinBox

from microlm import (
    CharacterTokenizer,
    ModelConfig,
    calibration,
    corpus_stats,
    hardware,
    machine_profile,
    presets,
    recommendation,
    sample_corpus,
    speed,
)
from microlm import budget as budgets
from microlm.data import Corpus
from microlm.units import format_bytes
from microlm_app import MainWindow
from microlm_app.session import Session
from microlm_app.tabs.configure_tab import ConfigureTab

FIXED_SPEED = speed.MachineSpeed(device="cpu", step_overhead_s=0.002,
                                    flops_per_second=2e9)
SPIN_NAMES = ("embeddingDimSpin", "hiddenDimSpin", "numLayersSpin", "sequenceLengthSpin",
              "batchSizeSpin", "epochsSpin")
TEXT = "the quick brown fox jumps over the lazy dog.\n" * 400


@pytest.fixture(autouse=True)
def fixed_speed(monkeypatch):
    """Nothing is timed in tests: calibration returns a fixed, plausible machine."""
    monkeypatch.setattr(calibration, "calibrate", lambda *args, **kwargs: FIXED_SPEED)


def set_text(session: Session, text: str) -> None:
    tokenizer = CharacterTokenizer(text)
    corpus = Corpus(text=text, source="test.txt", encoding="utf-8", size_bytes=len(text))
    session.set_corpus(corpus, corpus_stats(text, tokenizer), tokenizer)


@pytest.fixture
def tab(qtbot, fast_machine_measurement):
    """A tab on a loaded text, on a machine measured before (the fake of conftest.py)."""
    session = Session()
    set_text(session, TEXT)
    tab = ConfigureTab(session)
    qtbot.addWidget(tab)
    return tab


def expected_recommendation(tab: ConfigureTab, budget_s: float) -> recommendation.Recommendation:
    """What the tab should recommend: planned for the budget less the finishing reserve."""
    return recommendation.recommend(tab.corpus_chars, budgets.planning_seconds(budget_s, 0.0),
                                    tab.session.tokenizer.vocab_size(), tab.speed,
                                    tab.hardware_info.available_ram_bytes)


def spin_values(tab: ConfigureTab) -> dict:
    return {name: spin.value() for name, spin in tab.spins.items()}


def recommended_values(found: recommendation.Recommendation, tab: ConfigureTab) -> dict:
    values = {**found.model_config.to_dict(), **found.training_config.to_dict()}
    return {name: pytest.approx(values[name]) for name in tab.spins}


def test_widgets_carry_the_design_object_names(tab):
    for name in SPIN_NAMES:
        spin = tab.findChild(QSpinBox, name)
        assert spin is not None and spin.toolTip() and spin.accessibleName(), name
    for name in ("dropoutSpin", "learningRateSpin"):
        spin = tab.findChild(QDoubleSpinBox, name)
        assert spin is not None and spin.toolTip() and spin.accessibleName(), name
    for name in ("probeButton", "applyRecommendedButton", "hardwareDetailsToggle"):
        button = tab.findChild(QPushButton, name)
        assert button.toolTip() and button.accessibleName(), name
    assert tab.probe_button.text() == "Measure again"
    for name in ("hardwareSummary", "hardwareDetails", "recommendationStatus"):
        label = tab.findChild(QLabel, name)
        assert label is not None and label.toolTip() and label.accessibleName(), name
    assert tab.preset_combo.objectName() == "presetCombo"
    learning_rate = tab.spins["learning_rate"]
    assert learning_rate.decimals() >= 4 and learning_rate.singleStep() == pytest.approx(0.0001)


def test_preset_fills_the_fields_and_the_session(tab):
    tab.preset_combo.activated.emit(tab.preset_combo.findData("medium"))
    preset = presets.PRESETS["medium"]
    assert tab.spins["embedding_dim"].value() == preset.embedding_dim
    assert tab.spins["hidden_dim"].value() == preset.hidden_dim
    assert tab.spins["num_layers"].value() == preset.num_layers
    assert tab.spins["dropout"].value() == pytest.approx(preset.dropout)
    assert tab.spins["sequence_length"].value() == preset.sequence_length
    assert tab.spins["batch_size"].value() == preset.batch_size
    assert tab.spins["learning_rate"].value() == pytest.approx(preset.learning_rate)
    config = tab.session.model_config
    assert (config.hidden_dim, config.num_layers) == (preset.hidden_dim, preset.num_layers)
    assert config.vocab_size == tab.session.tokenizer.vocab_size()
    assert tab.session.training_config.sequence_length == preset.sequence_length


def test_weight_averaging_reaches_the_training_config(tab):
    spin = tab.findChild(QDoubleSpinBox, "emaDecaySpin")
    assert spin is not None and "averaged weights" in spin.toolTip()
    assert "moving average" not in spin.toolTip()
    assert spin.value() == pytest.approx(tab.recommendation.training_config.ema_decay)
    spin.setValue(0.0)
    assert tab.session.training_config.ema_decay == 0.0
    spin.setValue(0.99)
    assert tab.session.training_config.ema_decay == pytest.approx(0.99)


def test_preset_entries_show_true_parameter_counts_and_time_here(tab):
    vocab = tab.session.tokenizer.vocab_size()
    for name in presets.PRESETS:
        text = tab.preset_combo.itemText(tab.preset_combo.findData(name))
        assert f"{presets.preset_parameters(name, vocab):,} parameters" in text
        assert "per epoch" in text  # the machine is measured


def test_parameter_count_updates_live_and_equals_the_model_config(tab):
    tab.spins["hidden_dim"].setValue(96)
    tab.spins["num_layers"].setValue(2)
    expected = ModelConfig(tab.session.tokenizer.vocab_size(), tab.spins["embedding_dim"].value(),
                           96, 2, tab.spins["dropout"].value(),
                           tab.spins["output_hidden_dim"].value()).num_parameters()
    assert f"Parameters: {expected:,}" in tab.parameter_label.text()
    assert tab.session.model_config.num_parameters() == expected
    assert tab.preset_combo.currentText() == "Custom"


def test_output_layer_units_reach_the_model_config_and_the_parameter_split(tab):
    spin = tab.findChild(QSpinBox, "outputHiddenSpin")
    assert spin is not None and spin.toolTip()
    vocab = tab.session.tokenizer.vocab_size()
    spin.setValue(0)
    linear = tab.session.model_config
    assert linear.output_hidden_dim == 0
    spin.setValue(512)
    deep = tab.session.model_config
    assert deep.output_hidden_dim == 512
    # the extra parameters are all in the output layer: (hidden + 1) x 512 + 513 x vocab
    added = (deep.hidden_dim + 1) * 512 + 513 * vocab - (deep.hidden_dim + 1) * vocab
    assert deep.num_parameters() - linear.num_parameters() == added
    head = deep.num_parameters() - vocab * deep.embedding_dim - deep.lstm_parameters()
    assert f"output layer {head:,})" in tab.parameter_label.text()
    assert f"Parameters: {deep.num_parameters():,}" in tab.parameter_label.text()


def test_sequence_longer_than_the_text_is_a_problem_shown_inline(tab):
    assert tab.session.config_valid
    tab.spins["sequence_length"].setValue(50_000)
    assert tab.problems and not tab.session.config_valid
    assert "longer than the training text" in tab.session.config_problems[0]
    assert not tab.problems_label.isHidden()
    assert "longer than the training text" in tab.problems_label.text()
    tab.spins["sequence_length"].setValue(64)
    assert tab.session.config_valid and tab.problems_label.isHidden()


def test_a_model_too_large_for_memory_is_a_problem(tab, monkeypatch):
    monkeypatch.setattr(tab, "_available_memory", lambda: (10_000_000, "memory"))
    tab.spins["hidden_dim"].setValue(2048)
    assert any("more than the" in problem for problem in tab.session.config_problems)


def test_dropout_with_one_layer_is_explained_but_valid(tab):
    tab.spins["num_layers"].setValue(1)
    tab.spins["dropout"].setValue(0.3)
    assert tab.session.config_valid
    assert "only before the output layer" in tab.notes_label.text()
    assert not tab.notes_label.isHidden()


def test_validation_share_from_the_data_tab_reaches_the_training_config(tab):
    tab.session.val_fraction = 0.25
    tab.session.set_configs()  # what the Data tab does after changing the split
    assert tab.session.training_config.val_fraction == pytest.approx(0.25)


def test_measure_again_measures_and_shows_the_speed_in_words_with_details(
        qtbot, tab, fast_machine_measurement, monkeypatch):
    faster = replace(fast_machine_measurement, speed=replace(FIXED_SPEED,
                                                             flops_per_second=8e9))
    calls = []
    monkeypatch.setattr(machine_profile, "measure",
                        lambda *a, **k: calls.append(1) or faster)
    tab.probe_button.click()
    assert tab.is_busy and tab.probe_button.text() == "Measuring…"
    qtbot.waitUntil(lambda: not tab.is_busy, timeout=30_000)
    assert calls == [1] and tab.speed == faster.speed
    assert tab.probe_button.text() == "Measure again"
    found = expected_recommendation(tab, 180)
    summary = tab.hardware_label.text()
    assert summary == found.in_words(180, tab.corpus_chars)
    assert summary.startswith("This computer trains about ") and "in 3 minutes" in summary
    # the engineering figures wait behind Details
    details = tab.findChild(QLabel, "hardwareDetails")
    assert "CPU: Fake CPU" in details.text() and "Fitted costs" in details.text()
    assert "Fitted costs" not in summary and not details.isVisibleTo(tab)
    tab.findChild(QPushButton, "hardwareDetailsToggle").click()
    assert details.isVisibleTo(tab)
    assert "per epoch" in tab.estimate_label.text()


def test_apply_recommended_fills_every_field_and_shows_plain_reasons(qtbot, tab):
    tab.spins["hidden_dim"].setValue(96)  # a person's change, replaced on request only
    tab.budget_unit.setCurrentText("seconds")
    tab.budget_spin.setValue(90)
    assert tab.spins["hidden_dim"].value() == 96
    tab.recommend_button.click()
    assert not tab.is_busy  # measured already: applied at once
    expected = expected_recommendation(tab, 90)
    assert tab.session.model_config == expected.model_config
    training = tab.session.training_config
    assert training.time_budget_s == 90 > budgets.planning_seconds(90, 0.0)
    for name in ("sequence_length", "batch_size", "learning_rate", "epochs", "eval_interval",
                 "grad_clip", "weight_decay", "ema_decay"):
        assert getattr(training, name) == pytest.approx(getattr(expected.training_config, name))
    # not the default
    assert training.weight_decay == pytest.approx(recommendation.WEIGHT_DECAY) != 0.01
    assert tab.findChild(QDoubleSpinBox, "weightDecaySpin").value() == pytest.approx(
        recommendation.WEIGHT_DECAY)
    assert expected.training_config.ema_decay > 0
    assert tab.findChild(QDoubleSpinBox, "emaDecaySpin").value() == pytest.approx(
        expected.training_config.ema_decay)
    # one plain sentence per reason; the measurements behind it in its tooltip
    assert tab.reasons_list.count() == len(expected.explained) > 0
    for row, reason in enumerate(expected.explained):
        assert tab.reasons_list.item(row).text() == reason.sentence
        assert tab.reasons_list.item(row).toolTip() == reason.details
    assert "chars/s" not in tab.reasons_list.item(0).text()
    assert "chars/s" in tab.reasons_list.item(0).toolTip()


def test_apply_recommended_without_text_explains_instead(qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "warning",
                        staticmethod(lambda parent, title, text, *a: shown.append(text)))
    tab = ConfigureTab(Session())
    qtbot.addWidget(tab)
    tab.apply_recommended()
    assert shown and "Load a text" in shown[0] and not tab.is_busy


def test_apply_configs_restores_saved_dicts(tab):
    model = {"vocab_size": 3, "embedding_dim": 24, "hidden_dim": 40, "num_layers": 2,
             "dropout": 0.15}
    training = {"epochs": 7, "learning_rate": 0.0007, "batch_size": 12, "sequence_length": 33,
                "patience": 4, "eval_interval": 250, "time_budget_s": 120.0}
    tab.apply_configs(model, training)
    assert tab.session.model_config.hidden_dim == 40
    assert tab.session.model_config.vocab_size == tab.session.tokenizer.vocab_size()
    assert tab.session.training_config.learning_rate == pytest.approx(0.0007)
    assert tab.session.training_config.patience == 4
    assert tab.session.training_config.time_budget_s == 120
    assert tab.budget_unit.currentText() == "minutes" and tab.budget_spin.value() == 2


def test_sample_corpus_vocabulary_changes_the_parameter_count(qtbot, tab):
    corpus = sample_corpus("Python documentation")
    tokenizer = CharacterTokenizer(corpus.text)
    tab.session.set_corpus(corpus, corpus_stats(corpus.text, tokenizer), tokenizer)
    assert tab.session.model_config.vocab_size == tokenizer.vocab_size()
    assert f"{tab.session.model_config.num_parameters():,}" in tab.parameter_label.text()


def test_advanced_settings_show_only_when_asked(tab):
    clip = tab.findChild(QDoubleSpinBox, "gradClipSpin")
    assert not clip.isVisibleTo(tab)
    tab.advanced_toggle.setChecked(True)
    assert clip.isVisibleTo(tab)
    tab.advanced_toggle.setChecked(False)
    assert not clip.isVisibleTo(tab)


def test_the_training_config_asks_for_the_precision_the_machine_was_measured_in(
        qtbot, fast_machine_measurement):
    """The precision the calibration timed (bfloat16 where the CPU's LSTM kernel runs it),
    which also prices the memory estimate."""
    machine_profile.remember(replace(fast_machine_measurement,
                                     speed=replace(FIXED_SPEED, precision="bfloat16")))
    session = Session()
    set_text(session, TEXT)
    tab = ConfigureTab(session)
    qtbot.addWidget(tab)
    tab.preset_combo.setCurrentIndex(tab.preset_combo.findData("medium"))
    assert session.training_config.precision == "bfloat16"
    model_config, training_config, _ = tab.current_configs()
    memory = {precision: format_bytes(presets.training_memory_bytes(
        model_config, training_config.batch_size, training_config.sequence_length,
        tab.corpus_chars, precision)) for precision in ("bfloat16", "float32")}
    assert memory["bfloat16"] != memory["float32"]
    assert f"Training memory ≈ {memory['bfloat16']}" in tab.estimate_label.text()


# ---- the first run: measured by itself, remembered, filled in ----

FAKE_INFO = hardware.HardwareInfo(cpu_model="Test CPU", physical_cores=2, logical_cores=2,
                                  total_ram_bytes=16 * 2**30, available_ram_bytes=8 * 2**30,
                                  torch_version="2.x", cuda_devices=(), mps_available=False,
                                  device="cpu")


@pytest.mark.measures_machine
def test_first_launch_measures_by_itself_then_the_next_launch_reuses_it(qtbot, tmp_path,
                                                                         monkeypatch):
    """A person who launches the app and presses Train gets the recommended model for 3
    minutes: the window measures the machine by itself (in a worker), remembers it, and
    fills the fields once a text is loaded; the next launch measures nothing."""
    probed, calibrated = [], []
    monkeypatch.setattr(hardware, "probe", lambda: probed.append(1) or FAKE_INFO)
    monkeypatch.setattr(calibration, "calibrate",
                        lambda *a, **k: calibrated.append(k) or FIXED_SPEED)
    assert machine_profile.remembered() is None
    first = MainWindow(settings=QSettings(str(tmp_path / "a.ini"), QSettings.IniFormat))
    qtbot.addWidget(first)
    configure = first.configure_tab
    assert configure.is_busy  # construction started it; the window is usable meanwhile
    assert not configure.hardware_panel.progress.isHidden()
    assert configure.probe_button.text() == "Measuring…"
    set_text(first.session, TEXT)
    qtbot.waitUntil(lambda: not configure.is_busy, timeout=30_000)
    assert (len(probed), len(calibrated)) == (1, 1) and configure.speed == FIXED_SPEED
    assert configure.hardware_panel.progress.isHidden()
    assert configure.time_budget_s == 180 and configure.stop_at_budget.isChecked()
    expected = expected_recommendation(configure, 180)
    assert spin_values(configure) == recommended_values(expected, configure)
    assert first.session.model_config == expected.model_config
    assert first.session.training_config.time_budget_s == 180
    assert "in 3 minutes" in configure.hardware_label.text()
    assert machine_profile.profile_file().exists()

    second = MainWindow(settings=QSettings(str(tmp_path / "b.ini"), QSettings.IniFormat))
    qtbot.addWidget(second)
    assert not second.configure_tab.is_busy  # read back at once, nothing measured
    assert (len(probed), len(calibrated)) == (1, 1)
    assert second.configure_tab.speed == FIXED_SPEED
    assert second.configure_tab.hardware_info.cpu_model == "Test CPU"
    assert "remembered" in second.findChild(QLabel, "hardwareDetails").text()


@pytest.mark.measures_machine
def test_train_waits_while_the_first_launch_chooses_the_settings(qtbot, tmp_path, monkeypatch):
    release = threading.Event()

    def slow_calibration(*_args, **_kwargs):
        release.wait(30)
        return FIXED_SPEED

    monkeypatch.setattr(hardware, "probe", lambda: FAKE_INFO)
    monkeypatch.setattr(calibration, "calibrate", slow_calibration)
    window = MainWindow(settings=QSettings(str(tmp_path / "a.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    set_text(window.session, TEXT)
    train = window.train_tab
    assert window.configure_tab.is_busy
    assert "measuring this computer" in train.train_blocked_reason()
    assert not train.train_button.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: not window.configure_tab.is_busy, timeout=30_000)
    assert train.train_blocked_reason() == ""
    assert train.train_button.isEnabled()
    assert window.session.model_config == expected_recommendation(
        window.configure_tab, 180).model_config


@pytest.mark.measures_machine
def test_apply_recommended_while_measuring_applies_once_measured(qtbot, monkeypatch):
    monkeypatch.setattr(hardware, "probe", lambda: FAKE_INFO)
    session = Session()
    set_text(session, TEXT)
    tab = ConfigureTab(session)
    qtbot.addWidget(tab)
    tab.spins["hidden_dim"].setValue(40)  # a person's change
    tab.recommend_button.click()
    qtbot.waitUntil(lambda: not tab.is_busy, timeout=30_000)
    assert spin_values(tab) == recommended_values(expected_recommendation(tab, 180), tab)


def test_the_fields_follow_the_text_and_budget_until_a_person_changes_one(tab):
    assert tab.fields_follow_recommendation
    assert "The fields hold the recommendation for 3 minutes" in \
        tab.findChild(QLabel, "recommendationStatus").text()
    tab.budget_unit.setCurrentText("seconds")
    tab.budget_spin.setValue(40)
    assert spin_values(tab) == recommended_values(expected_recommendation(tab, 40), tab)
    set_text(tab.session, "A much longer text, with other letters: XYZ 0123456789!\n" * 3000)
    assert spin_values(tab) == recommended_values(expected_recommendation(tab, 40), tab)
    # a person's change is never overwritten; the recommendation is offered instead
    tab.spins["hidden_dim"].setValue(96)
    assert not tab.fields_follow_recommendation
    set_text(tab.session, TEXT)
    tab.budget_spin.setValue(50)
    assert tab.spins["hidden_dim"].value() == 96
    status = tab.findChild(QLabel, "recommendationStatus").text()
    assert "Your own settings are kept" in status and "Apply recommended" in status
    expected = expected_recommendation(tab, 50)
    assert tab.reasons_list.item(0).text() == expected.explained[0].sentence
    tab.recommend_button.click()
    assert spin_values(tab) == recommended_values(expected, tab)
    assert tab.fields_follow_recommendation


def test_restored_settings_are_kept_unless_they_are_the_recommendation(tab):
    found = tab.recommendation
    tab.apply_configs(found.model_config.to_dict(), found.training_config.to_dict())
    assert tab.fields_follow_recommendation  # the last launch's recommendation: follow on
    own = {**found.model_config.to_dict(), "hidden_dim": 72}
    tab.apply_configs(own, found.training_config.to_dict())
    set_text(tab.session, "A different text for the same settings.\n" * 500)
    assert tab.spins["hidden_dim"].value() == 72 and not tab.fields_follow_recommendation


# ---- the texts tell the truth ----

def test_the_hidden_size_tooltip_computes_what_doubling_does(tab):
    tab.spins["embedding_dim"].setValue(128)
    tab.spins["num_layers"].setValue(1)
    tab.spins["output_hidden_dim"].setValue(1024)
    tab.spins["hidden_dim"].setValue(256)
    model = tab.session.model_config
    doubled = replace(model, hidden_dim=512)
    growth = doubled.num_parameters() / model.num_parameters()
    assert 2.3 < growth < 2.8  # far from "quadruples" for this model
    tip = tab.spins["hidden_dim"].toolTip()
    assert "quadruple" not in tip
    assert f"from 256 to 512 multiplies the parameters by {growth:.1f}" in tip
    assert "time per step by about" in tip  # the machine is measured


def test_weight_decay_says_what_it_leaves_alone(tab):
    tip = tab.findChild(QDoubleSpinBox, "weightDecaySpin").toolTip()
    assert "pulls every weight" not in tip
    assert "biases and the character vectors (embedding) are exempt" in tip


def test_on_a_cuda_gpu_the_precision_is_bfloat16_and_the_reason_says_why(
        qtbot, fast_machine_measurement):
    gpu = hardware.CudaDevice("Fake GPU", 24 * 2**30)
    machine_profile.remember(replace(
        fast_machine_measurement,
        hardware=replace(fast_machine_measurement.hardware, cuda_devices=(gpu,),
                         device="cuda"),
        speed=speed.MachineSpeed("cuda", 0.004, 20e12, timestep_overhead_s=5e-5,
                                 precision="bfloat16")))
    session = Session()
    set_text(session, TEXT)
    tab = ConfigureTab(session)
    qtbot.addWidget(tab)
    assert session.training_config.precision == "bfloat16"
    reason = next(tab.reasons_list.item(row) for row in range(tab.reasons_list.count())
                  if tab.reasons_list.item(row).text().startswith("Precision"))
    assert reason.text().startswith("Precision bfloat16: this GPU computes in bfloat16")
    assert "no bfloat16 unit" not in reason.text() + reason.toolTip()
    assert "GPU: Fake GPU (24.0 GiB)" in tab.findChild(QLabel, "hardwareDetails").text()
