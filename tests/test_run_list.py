"""Tests for the runs to compare: the run list, curves overlaid on the plot, the table of
differing settings, generation side by side, and runs kept through a checkpoint."""

from dataclasses import replace

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from text_sessions import session_with_text

from microlm import CharacterTokenizer, MicroLM, TrainingConfig, load_model
from microlm_app.session import RunRecord, Session, history_runs
from microlm_app.tabs.run_list import setting_rows
from microlm_app.tabs.train_tab import TrainTab

pg.setConfigOption("background", "w")
pg.setConfigOption("foreground", "k")

TEXT = ("The quick brown fox jumps over the lazy dog. A wizard's job is to vex chumps "
        "quickly in fog.\n") * 40
WAIT_MS = 30_000  # generous: the CPU is shared


def make_session(hidden_dim: int = 16) -> Session:
    return session_with_text(
        TEXT, dict(embedding_dim=8, hidden_dim=hidden_dim, num_layers=1, dropout=0.0),
        TrainingConfig(epochs=1, batch_size=4, sequence_length=16, eval_interval=10,
                       sample_interval=0, eval_chars=500, device="cpu"))


@pytest.fixture
def make_tab(make_tab):
    return lambda session: make_tab(session, (1200, 800))


def train(qtbot, tab: TrainTab, hidden_dim: int) -> None:
    session = tab.session
    session.set_configs(model_config=replace(session.model_config, hidden_dim=hidden_dim))
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS):
        tab.start_training()


@pytest.fixture
def two_runs(qtbot, make_tab):
    """A Train tab after two real runs, of hidden size 16 and then 24."""
    tab = make_tab(make_session())
    train(qtbot, tab, 16)
    train(qtbot, tab, 24)
    return tab


def test_two_runs_are_listed_and_ticking_overlays_their_curves(qtbot, two_runs):
    tab = two_runs
    panel = tab.runs_panel
    assert tab.findChild(object, "runList") is panel.run_list
    assert [run.label for run in tab.session.runs] == ["Run 1 · hidden 16", "Run 2 · hidden 24"]
    assert panel.run_list.count() == 2
    assert panel.run_list.item(0).text().startswith("Run 1 · hidden 16 (")
    first = tab.session.runs[0]
    assert first.steps[0] == 1 and len(first.steps) == len(first.losses) == first.end_step
    assert first.model is not None and first.model.config.hidden_dim == 16
    assert tab.loss_plot.compared_curves == []

    for row in range(2):
        panel.run_list.item(row).setCheckState(Qt.CheckState.Checked)
    assert len(tab.loss_plot.compared_curves) == 2
    names = tab.loss_plot.legend_names()
    assert "Run 1 · hidden 16" in names and "Run 2 · hidden 24" in names
    x, _ = tab.loss_plot.compared_curves[1].getOriginalDataset()
    assert x[-1] == tab.session.runs[1].end_step

    panel.run_list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert len(tab.loss_plot.compared_curves) == 1


def test_the_table_shows_only_the_settings_that_differ_and_the_results(qtbot, two_runs):
    panel = two_runs.runs_panel
    assert two_runs.findChild(object, "runCompareTable") is panel.compare_table
    panel.set_ticked(["Run 1 · hidden 16", "Run 2 · hidden 24"])
    table = panel.compare_table
    assert panel.table_rows() == ["hidden size", "best validation loss", "training time",
                                  "steps"]
    assert [table.horizontalHeaderItem(c).text() for c in range(2)] == ["Run 1", "Run 2"]
    assert [table.horizontalHeaderItem(c).toolTip() for c in range(2)] == [
        "Run 1 · hidden 16", "Run 2 · hidden 24"]
    assert [table.item(0, c).text() for c in range(2)] == ["16", "24"]
    runs = two_runs.session.runs
    assert table.item(1, 1).text() == f"{runs[1].best_val_loss:.3f}"
    assert table.item(3, 0).text() == f"{runs[0].end_step:,}"

    panel.set_ticked(["Run 2 · hidden 24"])  # one run: nothing to differ, only its results
    assert panel.table_rows() == ["best validation loss", "training time", "steps"]


def test_setting_rows_name_each_difference_in_words():
    def run(label, model, training):
        return RunRecord(label, model, training, 1.0, None, "completed", 0, 10)

    a = run("A", {"hidden_dim": 16, "num_layers": 1}, {"learning_rate": 2e-3, "device": "cpu",
                                                       "time_budget_s": None})
    b = run("B", {"hidden_dim": 16, "num_layers": 2}, {"learning_rate": 1e-3, "device": "cuda",
                                                       "time_budget_s": 90.0})
    assert setting_rows([a, b]) == [("layers", ["1", "2"]),
                                    ("learning rate", ["0.002", "0.001"]),
                                    ("time budget", ["none", "1:30"])]


def test_side_by_side_generates_from_each_ticked_model_alike(qtbot, two_runs):
    panel = two_runs.runs_panel
    assert not panel.side_by_side_button.isEnabled()  # nothing ticked
    panel.set_ticked(["Run 1 · hidden 16", "Run 2 · hidden 24"])
    assert panel.side_by_side_button.isEnabled()
    panel.prompt_edit.setText("The ")
    with qtbot.waitSignal(panel.side_by_side_finished, timeout=WAIT_MS):
        qtbot.mouseClick(panel.side_by_side_button, Qt.MouseButton.LeftButton)
    assert panel.currentWidget() is panel.side_page
    texts = panel.side_by_side_texts()
    assert [label for label, _ in texts] == ["Run 1 · hidden 16", "Run 2 · hidden 24"]
    assert all(text.startswith("The ") and len(text) == 4 + 200 for _, text in texts)
    assert texts[0][1] != texts[1][1]  # two different models
    with qtbot.waitSignal(panel.side_by_side_finished, timeout=WAIT_MS):
        panel.generate_side_by_side()
    assert panel.side_by_side_texts() == texts  # the same prompt and seed: the same texts


def test_runs_come_back_from_a_checkpoint_once(qtbot, two_runs, make_tab, tmp_path):
    session = two_runs.session
    path = tmp_path / "model.pt"
    session.trainer.save_checkpoint(path)  # the second model: its history has one run
    model, tokenizer, metadata = load_model(path)
    assert len(metadata["history"]["runs"]) == 1

    session.set_model(model, tokenizer, metadata, unsaved=False, path=str(path))
    assert len(session.runs) == 2  # the same run, known again: not listed twice

    other = make_session()
    other_tab = make_tab(other)
    other.set_model(model, tokenizer, metadata, unsaved=False, path=str(path))
    assert [run.label for run in other.runs] == ["Run 1 · hidden 24"]
    loaded = other.runs[0]
    assert loaded.source == "from model.pt" and loaded.model is model
    assert loaded.losses == session.runs[1].losses
    assert loaded.val_steps == session.runs[1].val_steps
    assert loaded.best_val_loss == session.runs[1].best_val_loss
    assert other_tab.runs_panel.run_list.count() == 1


def test_a_run_known_only_from_a_history_has_no_model_and_says_so(qtbot, make_tab):
    session = make_session()
    tab = make_tab(session)
    history = {"step_losses": [3.0, 2.0, 1.5, 1.2], "val_losses": [[2, 2.5], [4, 1.9]],
               "training_time": 3.0}
    records = history_runs(history, {"hidden_dim": 16}, {"epochs": 1})  # saved before runs
    assert [(r["start_step"], r["end_step"], r["best_val_loss"]) for r in records] == [
        (0, 4, 1.9)]
    session.add_run(history, records[0], source="from old.pt")
    tab.runs_panel.set_ticked(["Run 1 · hidden 16"])
    assert not tab.runs_panel.side_by_side_button.isEnabled()
    note = tab.runs_panel.note.text()
    assert "Run 1 · hidden 16" in note and "no model in memory" in note


def test_runs_and_samples_a_file_holds_in_another_shape_are_left_out(qtbot, make_tab):
    """A history edited by hand (or by another program) loads: what does not read as a run
    or a sample is left out, the rest is shown."""
    session = make_session()
    tab = make_tab(session)
    good_run = {"start_step": 0, "end_step": 3, "seconds": 2.0, "best_val_loss": 1.9,
                "reason": "completed", "model_config": {"hidden_dim": 16},
                "training_config": {}}
    history = {"step_losses": [3.0, 2.0, 1.5], "val_losses": [[3, 1.9]], "training_time": 2.0,
               "runs": [good_run, "a run", {"start_step": "0", "end_step": 3, "seconds": 1},
                        {"start_step": 5, "end_step": 2, "seconds": 1.0}],
               "samples": [[3, 2.0, 1.9, "the cat"], [4, "soon", None, "x"], "text", [5]]}
    model, tokenizer = MicroLM(tokenizer_vocab(), embedding_dim=8, hidden_dim=16,
                               num_layers=1, dropout=0.0), CharacterTokenizer(TEXT)
    session.set_model(model, tokenizer, {"history": history}, unsaved=False, path="hand.pt")
    assert [(run.start_step, run.end_step, run.best_val_loss) for run in session.runs] == [
        (0, 3, 1.9)]
    assert tab.timeline.samples() == [[3, 2.0, 1.9, "the cat"]]


def tokenizer_vocab() -> int:
    return CharacterTokenizer(TEXT).vocab_size()
