"""Tests of the Configure tab: presets, live parameter count, validation, probe, recommend."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QDoubleSpinBox, QLabel, QMessageBox, QPushButton, QSpinBox

from microlm import (
    CharacterTokenizer,
    ModelConfig,
    calibration,
    corpus_stats,
    hardware,
    presets,
    recommendation,
    sample_corpus,
    speed,
)
from microlm import budget as budgets
from microlm.data import Corpus
from microlm.units import format_bytes
from microlm_app.session import Session
from microlm_app.tabs.configure_tab import ConfigureTab

FIXED_SPEED = speed.MachineSpeed(device="cpu", step_overhead_s=0.002,
                                    flops_per_second=2e9)
SPIN_NAMES = ("embeddingDimSpin", "hiddenDimSpin", "numLayersSpin", "sequenceLengthSpin",
              "batchSizeSpin", "epochsSpin")


@pytest.fixture(autouse=True)
def fixed_speed(monkeypatch):
    """Nothing is timed in tests: calibration returns a fixed, plausible machine."""
    monkeypatch.setattr(calibration, "calibrate", lambda *args, **kwargs: FIXED_SPEED)


def set_text(session: Session, text: str) -> None:
    tokenizer = CharacterTokenizer(text)
    corpus = Corpus(text=text, source="test.txt", encoding="utf-8", size_bytes=len(text))
    session.set_corpus(corpus, corpus_stats(text, tokenizer), tokenizer)


@pytest.fixture
def tab(qtbot):
    session = Session()
    set_text(session, "the quick brown fox jumps over the lazy dog.\n" * 400)
    tab = ConfigureTab(session)
    qtbot.addWidget(tab)
    return tab


def test_widgets_carry_the_design_object_names(tab):
    for name in SPIN_NAMES:
        spin = tab.findChild(QSpinBox, name)
        assert spin is not None and spin.toolTip() and spin.accessibleName(), name
    for name in ("dropoutSpin", "learningRateSpin"):
        spin = tab.findChild(QDoubleSpinBox, name)
        assert spin is not None and spin.toolTip() and spin.accessibleName(), name
    for name in ("probeButton", "applyRecommendedButton"):
        assert tab.findChild(QPushButton, name).toolTip()
    assert tab.findChild(QLabel, "hardwareSummary") is not None
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
    assert spin is not None and "moving average" in spin.toolTip()
    assert spin.value() == pytest.approx(0.98)  # the library's default
    spin.setValue(0.0)
    assert tab.session.training_config.ema_decay == 0.0
    spin.setValue(0.99)
    assert tab.session.training_config.ema_decay == pytest.approx(0.99)


def test_preset_entries_show_true_parameter_counts(tab):
    vocab = tab.session.tokenizer.vocab_size()
    for name in presets.PRESETS:
        text = tab.preset_combo.itemText(tab.preset_combo.findData(name))
        assert f"{presets.preset_parameters(name, vocab):,} parameters" in text
        assert "probe to estimate" in text


def test_parameter_count_updates_live_and_equals_the_model_config(tab):
    tab.spins["hidden_dim"].setValue(96)
    tab.spins["num_layers"].setValue(2)
    expected = ModelConfig(tab.session.tokenizer.vocab_size(), tab.spins["embedding_dim"].value(),
                           96, 2, tab.spins["dropout"].value()).num_parameters()
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


def test_probe_shows_the_summary_and_turns_on_estimates(qtbot, tab):
    tab.probe_button.click()
    qtbot.waitUntil(lambda: not tab.is_busy, timeout=30_000)
    summary = tab.hardware_label.text()
    assert "CPU:" in summary and "Memory:" in summary and "GPU:" in summary
    assert tab.speed == FIXED_SPEED
    assert "per epoch" in tab.estimate_label.text()
    assert "probe to estimate" not in tab.preset_combo.itemText(1)


def test_apply_recommended_fills_every_field_and_shows_reasons(qtbot, tab):
    tab.budget_unit.setCurrentText("seconds")
    tab.budget_spin.setValue(90)
    tab.recommend_button.click()
    qtbot.waitUntil(lambda: not tab.is_busy, timeout=30_000)
    chars = tab.session.corpus_stats.characters
    # planned for the budget less the finishing reserve; the run keeps the person's 90 s
    expected = recommendation.recommend(chars, budgets.planning_seconds(90, 0.0),
                                        tab.session.tokenizer.vocab_size(), FIXED_SPEED,
                                        tab.hardware_info.available_ram_bytes)
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
    assert training.time_budget_s == 90
    assert tab.reasons_list.count() == len(expected.reasons) > 0
    assert tab.reasons_list.item(0).text() == expected.reasons[0]


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


def test_the_training_config_asks_for_the_precision_this_cpu_trains_fastest_in(qtbot,
                                                                             monkeypatch):
    """Before a probe: this CPU's default (bfloat16 where its LSTM kernel runs it), which
    also prices the memory estimate; after one: what the probe timed."""
    monkeypatch.setattr(hardware, "default_precision", lambda device: "bfloat16")
    monkeypatch.setattr(hardware, "cpu_runs_bf16_lstm", lambda: True)
    session = Session()
    set_text(session, "the quick brown fox jumps over the lazy dog.\n" * 400)
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
    tab.probe_button.click()
    qtbot.waitUntil(lambda: not tab.is_busy, timeout=30_000)
    assert FIXED_SPEED.precision == "float32"
    assert session.training_config.precision == "float32"
