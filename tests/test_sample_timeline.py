"""Tests for the sample timeline: samples newest on top, one shown whole, kept in a checkpoint."""

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from text_sessions import session_with_text

from microlm import TrainingConfig, load_model
from microlm_app.session import Session
from microlm_app.tabs.sample_timeline import SampleTimeline, first_line

pg.setConfigOption("background", "w")
pg.setConfigOption("foreground", "k")

TEXT = ("The quick brown fox jumps over the lazy dog. A wizard's job is to vex chumps "
        "quickly in fog.\n") * 40
WAIT_MS = 30_000  # generous: the CPU is shared


def make_session() -> Session:
    return session_with_text(
        TEXT, dict(embedding_dim=8, hidden_dim=16, num_layers=1, dropout=0.0),
        TrainingConfig(epochs=1, batch_size=4, sequence_length=16, eval_interval=10,
                       sample_interval=10, sample_length=30, eval_chars=500, device="cpu",
                       seed=7))


@pytest.fixture
def make_tab(make_tab):
    return lambda session: make_tab(session, (1200, 800))


def click_row(qtbot, timeline: SampleTimeline, row: int) -> None:
    tree = timeline.tree
    item = tree.topLevelItem(row)
    tree.scrollToItem(item)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton,
                     pos=tree.visualItemRect(item).center())


def test_newest_on_top_and_a_picked_sample_stays_shown(qtbot):
    timeline = SampleTimeline()
    qtbot.addWidget(timeline)
    timeline.resize(800, 300)
    timeline.show()
    timeline.add_sample(10, 2.0, None, "\nxqz kk\nsecond line")
    timeline.add_sample(20, 4.4, 2.345, "the fox")
    assert timeline.tree.topLevelItem(0).text(0) == "20"
    assert [timeline.tree.topLevelItem(1).text(c) for c in range(4)] == [
        "10", "2 s", "—", "xqz kk"]
    assert timeline.preview.toPlainText() == (
        "Step 20 · trained for 4 s · validation loss 2.345\n\nthe fox")

    click_row(qtbot, timeline, 1)  # an older one: shown whole, every line of it
    assert timeline.preview.toPlainText() == "Step 10 · trained for 2 s\n\n\nxqz kk\nsecond line"
    timeline.add_sample(30, 6.0, 2.1, "the fox jumps")
    assert timeline.tree.topLevelItem(0).text(0) == "30"
    assert timeline.preview.toPlainText().startswith("Step 10 ·")  # still the one picked

    click_row(qtbot, timeline, 0)  # back to the newest: follows new samples again
    timeline.add_sample(40, 8.0, 2.0, "the fox jumps over")
    assert timeline.preview.toPlainText().endswith("the fox jumps over")


def test_samples_of_a_history_fill_the_timeline(qtbot):
    timeline = SampleTimeline()
    qtbot.addWidget(timeline)
    timeline.set_samples([[5, 1.0, None, "aaa"], [10, 2.0, 3.5, "bbb"]])
    assert timeline.samples() == [[10, 2.0, 3.5, "bbb"], [5, 1.0, None, "aaa"]]
    assert timeline.preview.toPlainText().endswith("bbb")
    timeline.set_sample_interval(250)
    assert "every 250 training steps" in timeline.tree.toolTip()
    assert "temperature 0.8" in timeline.tree.toolTip()
    assert first_line("\n\n  \nword\nmore") == "word"


def test_a_real_run_fills_the_timeline_with_comparable_samples(qtbot, make_tab, tmp_path):
    session = make_session()
    tab = make_tab(session)
    assert tab.findChild(object, "sampleTimeline") is tab.timeline.tree
    assert tab.findChild(object, "samplePreview") is tab.sample_preview
    assert "every 10 training steps" in tab.timeline.tree.toolTip()
    events = []
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as finished:
        tab.start_training()
        tab._worker.sample_generated.connect(events.append)
    steps = finished.args[0].step
    assert len(events) == steps // 10 >= 3
    assert {(e.prompt, e.seed, e.temperature) for e in events} == {("", 7, 0.8)}
    assert tab.timeline.count() == len(events)
    newest, *_, oldest = tab.timeline.samples()
    assert (newest[0], oldest[0]) == (events[-1].step, events[0].step)
    assert newest[2] == events[-1].val_loss is not None  # validated at step 10 and on
    assert tab.sample_preview.toPlainText().endswith(events[-1].text)

    click_row(qtbot, tab.timeline, tab.timeline.count() - 1)  # the first sample, whole
    assert tab.sample_preview.toPlainText().endswith(events[0].text)
    assert tab.sample_preview.toPlainText().startswith("Step 10 ·")

    # the timeline comes back with the model from its checkpoint
    path = tmp_path / "model.pt"
    session.trainer.save_checkpoint(path)
    other = make_session()
    other_tab = make_tab(other)
    model, tokenizer, metadata = load_model(path)
    other.set_model(model, tokenizer, metadata, unsaved=False, path=str(path))
    assert other_tab.timeline.samples() == tab.timeline.samples()
