"""Tests for ModelTrainer: learning, determinism, exact resume, control, divergence, schedule."""

import math
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from microlm import (
    CharacterTokenizer,
    CheckpointSaved,
    Evaluated,
    MicroLM,
    ModelTrainer,
    StepCompleted,
    TrainingConfig,
    TrainingControl,
    TrainingFinished,
    TrainingStarted,
    hardware,
    load_model,
)
from microlm import precision as precision_module
from microlm import run as run_module

TEXT = "the quick brown fox jumps over the lazy dog. " * 30  # 1,350 characters
WAIT = 60  # seconds an event may take before the test gives up (a guard, not a timing)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_trainer(text: str = TEXT, seed: int = 0, **config) -> ModelTrainer:
    tokenizer = CharacterTokenizer(text)
    torch.manual_seed(seed)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=2,
                    dropout=0.1)
    settings = dict(epochs=1, batch_size=4, sequence_length=16, warmup_steps=3,
                    eval_chars=300, learning_rate=1e-2)
    settings.update(config)
    trainer = ModelTrainer(model, tokenizer, device="cpu", config=TrainingConfig(**settings))
    trainer.prepare_data(text)
    return trainer


def weights(trainer: ModelTrainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_falls_on_a_repetitive_text():
    trainer = make_trainer(epochs=4)
    stats = trainer.train()
    losses = stats["step_losses"]
    assert len(losses) == stats["steps"] == 4 * len(trainer.train_loader)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3  # nats per character
    assert stats["losses"][-1] < stats["losses"][0]  # per-epoch means fall too
    assert stats["best_val_loss"] < math.log(trainer.tokenizer.vocab_size())  # beats uniform
    assert trainer.evaluate() == stats["best_val_loss"]  # the model left is the best one


def test_learning_rate_warms_up_then_decays():
    # 1-character batches of 8: over 80 cheap steps, so the 5 % cap leaves 4 warm-up steps
    trainer = make_trainer(batch_size=1, sequence_length=8, warmup_steps=4,
                           min_lr_fraction=0.1)
    rates = trainer.train()["learning_rates"]
    assert len(rates) > 80
    assert rates[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert all(a >= b for a, b in zip(rates[4:], rates[5:], strict=False))
    assert rates[-1] == pytest.approx(1e-3, rel=0.05)


def test_same_seed_same_losses():
    first = make_trainer(epochs=2).train()["step_losses"]
    second = make_trainer(epochs=2).train()["step_losses"]
    assert first == second
    assert make_trainer(epochs=2, seed=0, batching="random").train(seed=99)[
        "step_losses"] != first


def test_samples_and_evaluations_do_not_change_the_losses():
    # Generating samples and validating draw no numbers from the training's random stream.
    plain = make_trainer(epochs=2).train()["step_losses"]
    watched = make_trainer(epochs=2, sample_interval=5, sample_length=20, eval_interval=3)
    events = []
    assert watched.train(callback=events.append)["step_losses"] == plain
    assert any(type(e).__name__ == "SampleGenerated" and len(e.text) == 20 for e in events)


def test_train_returns_the_seed_statistics():
    stats = make_trainer().train()
    for key in ("losses", "step_losses", "val_losses", "learning_rates", "best_val_loss",
                "training_time", "steps", "stopped_reason", "message"):
        assert key in stats
    assert stats["stopped_reason"] == "completed"
    assert stats["training_time"] > 0
    assert len(stats["losses"]) == 1


@pytest.mark.parametrize("batching, stop_after", [("random", 18), ("sequential", 18),
                                                  ("random", 10), ("sequential", 25)])
def test_resume_continues_exactly(tmp_path, batching, stop_after):
    straight = make_trainer(epochs=2, batching=batching, eval_interval=5)
    straight_stats = straight.train()
    total = straight_stats["steps"]
    assert total == 36  # 2 epochs of 18: stops at an epoch's end and in the middle of one
    half = stop_after

    first = make_trainer(epochs=2, batching=batching, eval_interval=5)
    control = TrainingControl()

    def stop_at_half(event):
        if isinstance(event, StepCompleted) and event.step == half:
            control.stop()

    stopped = first.train(callback=stop_at_half, control=control)
    assert stopped["stopped_reason"] == "stopped" and stopped["steps"] == half
    path = first.save_checkpoint(tmp_path / "half.pt")
    assert load_model(path)[2]["training_state"]["run"]["start_step"] == 0  # a run to go on

    resumed = ModelTrainer.from_checkpoint(path, TEXT, device="cpu")
    resumed_stats = resumed.train()
    assert resumed_stats["steps"] == total
    assert resumed_stats["step_losses"] == straight_stats["step_losses"]
    assert resumed_stats["losses"] == pytest.approx(straight_stats["losses"], abs=1e-12)
    assert resumed_stats["learning_rates"] == straight_stats["learning_rates"]
    assert resumed_stats["best_val_loss"] == straight_stats["best_val_loss"]
    assert same_weights(weights(resumed), weights(straight))


def test_pause_resume_and_stop_from_another_thread():
    class ObservedControl(TrainingControl):
        """Tells the test when the loop actually sits in its pause."""

        def __init__(self):
            super().__init__()
            self.loop_paused = threading.Event()

        def wait_while_paused(self):
            self.loop_paused.set()
            super().wait_while_paused()

    control = ObservedControl()
    at_step_3, at_step_6 = threading.Event(), threading.Event()
    pause_sent, stop_sent = threading.Event(), threading.Event()
    steps: list[int] = []
    problems: list[str] = []

    def controller():
        if not at_step_3.wait(WAIT):
            problems.append("step 3 never came")
            return
        control.pause()
        pause_sent.set()
        if not control.loop_paused.wait(WAIT):
            problems.append("the loop never paused")
        if steps != [1, 2, 3]:
            problems.append(f"steps ran while paused: {steps}")
        control.resume()
        if not at_step_6.wait(WAIT):
            problems.append("step 6 never came")
        control.stop()
        stop_sent.set()

    def on_event(event):
        if isinstance(event, StepCompleted):
            steps.append(event.step)
            if event.step == 3:
                at_step_3.set()
                pause_sent.wait(WAIT)  # hold the loop until the pause has been sent
            if event.step == 6:
                at_step_6.set()
                stop_sent.wait(WAIT)  # hold the loop until the stop has been sent

    trainer = make_trainer(epochs=50)
    thread = threading.Thread(target=controller)
    thread.start()
    stats = trainer.train(callback=on_event, control=control)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert problems == []
    assert stats["stopped_reason"] == "stopped"
    assert steps == [1, 2, 3, 4, 5, 6]
    assert "best model" in stats["message"]


def test_stop_keeps_the_best_model():
    trainer = make_trainer(epochs=50, eval_interval=4)
    control = TrainingControl()

    def stop_at_10(event):
        if isinstance(event, StepCompleted) and event.step == 10:
            control.stop()

    stats = trainer.train(callback=stop_at_10, control=control)
    assert stats["steps"] == 10
    assert [s for s, _ in stats["val_losses"]] == [4, 8, 10]  # a last evaluation at the stop
    assert trainer.evaluate() == stats["best_val_loss"]


def test_stop_before_the_first_step():
    trainer = make_trainer(epochs=5)
    control = TrainingControl()
    control.stop()
    events = list(trainer.fit(control=control))
    finished = events[-1]
    assert isinstance(finished, TrainingFinished)
    assert (finished.reason, finished.step, finished.final_loss) == ("stopped", 0, None)
    assert not any(isinstance(e, StepCompleted) for e in events)


@pytest.mark.parametrize("ema_decay", [0.0, 0.98])
def test_nan_loss_ends_as_diverged_with_the_best_weights_kept(ema_decay):
    """With the moving average, the weights validated are the average's, not the model's:
    those are kept (the average itself is spoilt by the NaN step)."""
    trainer = make_trainer(epochs=50, eval_interval=3, ema_decay=ema_decay)
    best = {}

    def poison_after_first_evaluation(event):
        if isinstance(event, Evaluated) and not best:
            best.update({k: v.clone() for k, v in trainer._validated_model().state_dict().items()})
            with torch.no_grad():
                trainer.model.head.weight[0, 0] = float("nan")

    stats = trainer.train(callback=poison_after_first_evaluation)
    assert stats["stopped_reason"] == "diverged"
    assert stats["steps"] == 4  # the first step after the poisoned weight
    assert "nan" in stats["message"].lower() and "learning rate" in stats["message"]
    assert "best model before this point is kept" in stats["message"]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert same_weights(weights(trainer), best)
    assert all(math.isfinite(loss) for loss in stats["step_losses"])


def test_huge_learning_rate_diverges_with_advice():
    trainer = make_trainer(epochs=20, learning_rate=1e6, warmup_steps=1)
    stats = trainer.train()
    assert stats["stopped_reason"] == "diverged"
    assert "Lower the learning rate (it was 1e+06)" in stats["message"]
    # No validation happened before it diverged: the message must not promise a kept model.
    assert stats["val_losses"] == []
    assert "fresh model" in stats["message"] and "is kept" not in stats["message"]


def test_early_stopping_with_patience_restores_the_best_weights(monkeypatch):
    trainer = make_trainer(epochs=50, eval_interval=2, patience=2)
    scripted = iter([3.0, 2.5, 2.6, 2.7, 2.0, 1.0])
    monkeypatch.setattr(trainer, "evaluate", lambda *args, **kwargs: next(scripted))
    snapshots = {}
    events = []

    def record(event):
        events.append(event)
        if isinstance(event, Evaluated) and event.improved:  # the average's weights
            snapshots["best"] = {k: v.clone()
                                 for k, v in trainer._validated_model().state_dict().items()}

    stats = trainer.train(callback=record)
    evaluations = [e for e in events if isinstance(e, Evaluated)]
    assert stats["stopped_reason"] == "early_stopping"
    assert [e.val_loss for e in evaluations] == [3.0, 2.5, 2.6, 2.7]
    assert [e.improved for e in evaluations] == [True, True, False, False]
    assert stats["steps"] == 8 and stats["best_val_loss"] == 2.5
    assert same_weights(weights(trainer), snapshots["best"])
    assert isinstance(events[-1], TrainingFinished)


def test_time_budget_ends_the_run(tmp_path):
    trainer = make_trainer(epochs=10_000, time_budget_s=0.5)
    events = list(trainer.fit())
    finished = events[-1]
    assert isinstance(finished, TrainingFinished)
    assert finished.reason == "time_budget"
    assert 0 < trainer.step < 10_000 * len(trainer.train_loader)
    assert finished.elapsed_s <= 0.5 + 2.0  # one step and one evaluation past the budget
    assert any(isinstance(e, Evaluated) for e in events)  # the final model was validated
    # A spent budget is the end of that run: a checkpoint saved now starts a new one.
    path = trainer.save_checkpoint(tmp_path / "budget.pt")
    assert load_model(path)[2]["training_state"]["run"] is None


def test_a_time_budget_counts_the_set_up_of_fit(monkeypatch):
    """Building the optimizer is paid from the budget: the first one a process builds
    imports torch._dynamo (~1.5 s on a 2-core CPU). A clock that jumps 0.8 s while the
    optimizer is built leaves a 1 s budget ~0.2 s of steps."""
    import microlm.trainer as trainer_module

    clock = {"now": 100.0}

    def perf_counter() -> float:
        clock["now"] += 0.001  # every reading of the clock takes a millisecond
        return clock["now"]

    build = trainer_module.make_optimizer

    def slow_build(model, cfg):
        clock["now"] += 0.8
        return build(model, cfg)

    monkeypatch.setattr(trainer_module.time, "perf_counter", perf_counter)
    monkeypatch.setattr(trainer_module, "make_optimizer", slow_build)
    trainer = make_trainer(epochs=10_000, time_budget_s=1.0, eval_interval=10_000)
    finished = list(trainer.fit())[-1]
    assert finished.reason == "time_budget"
    assert trainer.history["training_time"] == pytest.approx(1.0, abs=0.05)
    # ~7 clock readings a step: ~30 steps in the 0.2 s left (~140 in a whole second)
    assert 10 < trainer.step < 60


def test_checkpoint_every_writes_files(tmp_path):
    path = tmp_path / "run.pt"
    trainer = make_trainer(epochs=3, checkpoint_every=1, checkpoint_path=str(path))
    events = list(trainer.fit())
    per_epoch = len(trainer.train_loader)
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [e.step for e in saved] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    assert all(e.path == str(path) for e in saved)
    _, tokenizer, metadata = load_model(path)
    assert tokenizer == trainer.tokenizer
    assert metadata["step"] == 3 * per_epoch
    assert len(metadata["history"]["step_losses"]) == 3 * per_epoch


def test_checkpoint_minutes_saves_after_the_step_at_which_one_is_due(tmp_path, monkeypatch):
    """Each step takes 25 s on a patched training clock: with a save every minute, one is
    due after step 3 (75 s), the next a minute after that save (step 6, 150 s), ..."""
    now = [0.0]
    monkeypatch.setattr(run_module.RunClock, "elapsed", lambda self: now[0])
    path = tmp_path / "run.pt"
    trainer = make_trainer(checkpoint_minutes=1.0, checkpoint_path=str(path))
    saved = []
    for event in trainer.fit():
        if isinstance(event, StepCompleted):
            now[0] += 25.0
        elif isinstance(event, CheckpointSaved):
            saved.append((event.step, load_model(path)[2]["step"]))
    steps = len(trainer.train_loader)
    assert steps == 18
    assert saved == [(3, 3), (6, 6), (9, 9), (12, 12), (15, 15), (18, 18)]  # and at the end


def test_checkpoint_minutes_must_be_positive():
    with pytest.raises(ValueError, match="checkpoint_minutes must be > 0"):
        TrainingConfig(checkpoint_minutes=0)


def test_seed_save_every_and_model_path(tmp_path):
    path = tmp_path / "models" / "my_model.pt"
    make_trainer().train(epochs=2, save_every=1, model_path=str(path))
    assert path.is_file()
    assert load_model(path)[2]["step"] > 0


def test_train_with_batch_size_rebatches():
    trainer = make_trainer(batch_size=4, ema_decay=0)  # (no average: a copy of the wrapper)
    steps_with_4 = len(trainer.train_loader)
    shapes = []
    original = trainer.model.forward

    def recording_forward(x, *args, **kwargs):
        if trainer.model.training:
            shapes.append(tuple(x.shape))
        return original(x, *args, **kwargs)

    trainer.model.forward = recording_forward
    events = []
    trainer.train(batch_size=16, callback=events.append)
    started = events[0]
    assert isinstance(started, TrainingStarted)
    assert trainer.train_loader.batch_size == trainer.config.batch_size == 16
    assert started.steps_per_epoch == len(trainer.train_loader) < steps_with_4
    assert set(shapes) == {(16, 16)}


def test_evaluate_equals_hand_computed_cross_entropy():
    tokenizer = CharacterTokenizer("abcab")
    torch.manual_seed(0)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=4, hidden_dim=8, num_layers=1,
                    dropout=0.5)
    trainer = ModelTrainer(model, tokenizer, device="cpu")
    tokens = torch.tensor([0, 1, 2, 0, 1, 1, 2, 0, 0, 2, 1], dtype=torch.uint8)
    # windows of 4 from a fresh state: inputs[0:4], [4:8], then the short rest [8:10]
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start, end in ((0, 4), (4, 8), (8, 10)):
            inputs = tokens[start:end].long().unsqueeze(0)
            targets = tokens[start + 1:end + 1].long()
            logits = model(inputs)[0]
            total += float(F.cross_entropy(logits, targets, reduction="sum"))
            count += len(targets)
    model.train()
    assert trainer.evaluate(tokens, window=4) == pytest.approx(total / count, abs=1e-6)
    assert model.training  # evaluate leaves the mode as it found it


def test_evaluate_without_validation_text_is_explained():
    trainer = make_trainer(val_fraction=0.0)
    with pytest.raises(ValueError, match="validation"):
        trainer.evaluate()


@pytest.mark.parametrize("batching", ["random", "sequential"])
def test_sequential_batching_carries_state_within_an_epoch(batching):
    trainer = make_trainer(epochs=2, batching=batching, ema_decay=0)  # see rebatches
    per_epoch = len(trainer.train_loader)
    assert per_epoch >= 3
    given_state = []
    original = trainer.model.lstm.forward

    def recording_forward(inputs, hx=None):
        if trainer.model.training:
            given_state.append(hx is not None)
        return original(inputs, hx)

    trainer.model.lstm.forward = recording_forward
    trainer.train()
    assert len(given_state) == 2 * per_epoch
    if batching == "sequential":
        first_of_epoch = [False] + [True] * (per_epoch - 1)
        assert given_state == first_of_epoch * 2  # reset at each epoch start
    else:
        assert not any(given_state)


def test_mismatched_model_and_bad_settings_are_refused():
    tokenizer = CharacterTokenizer(TEXT)
    small = MicroLM(vocab_size=3, embedding_dim=4, hidden_dim=4, num_layers=1)
    with pytest.raises(ValueError, match="vocab_size=tokenizer.vocab_size()"):
        ModelTrainer(small, tokenizer)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        TrainingConfig(learning_rate=0)
    with pytest.raises(ValueError, match="batching"):
        TrainingConfig(batching="shuffled")
    with pytest.raises(ValueError, match="prepare_data"):
        ModelTrainer(MicroLM(tokenizer.vocab_size(), 4, 4, 1), tokenizer, device="cpu").train()


def test_resume_from_a_checkpoint_saved_during_the_run(tmp_path, monkeypatch):
    # The validation loss is best at step 12, before the epoch-1 checkpoint (step 18):
    # the file must carry the best weights as well as the current ones.
    def scripted_evaluate(trainer):
        return lambda *args, **kwargs: 1.0 if trainer.step == 12 else 5.0 - trainer.step / 100

    straight = make_trainer(epochs=3, eval_interval=4)
    monkeypatch.setattr(straight, "evaluate", scripted_evaluate(straight))
    straight_stats = straight.train()
    per_epoch = len(straight.train_loader)
    assert per_epoch == 18

    path = tmp_path / "run.pt"
    first = make_trainer(epochs=3, eval_interval=4, checkpoint_every=1,
                         checkpoint_path=str(path))
    monkeypatch.setattr(first, "evaluate", scripted_evaluate(first))
    kept = {}

    def copy_first_checkpoint(event):
        if isinstance(event, CheckpointSaved) and event.step == per_epoch:
            kept["weights"] = weights(first)  # the weights training continues from
            kept["file"] = Path(event.path).read_bytes()

    first_stats = first.train(callback=copy_first_checkpoint)
    # Saving checkpoints along the way does not change the run (no random numbers drawn).
    assert first_stats["step_losses"] == straight_stats["step_losses"]
    path.write_bytes(kept["file"])
    model, _, _ = load_model(path)
    best_at_12 = weights(straight)
    assert same_weights(model.state_dict(), best_at_12)  # the file's model is the best one

    resumed = ModelTrainer.from_checkpoint(path, TEXT, device="cpu")
    assert same_weights(weights(resumed), kept["weights"])
    monkeypatch.setattr(resumed, "evaluate", scripted_evaluate(resumed))
    resumed_stats = resumed.train()
    assert resumed_stats["step_losses"] == straight_stats["step_losses"]
    assert resumed_stats["best_val_loss"] == straight_stats["best_val_loss"] == 1.0
    assert same_weights(weights(resumed), best_at_12)


def test_carried_state_is_the_previous_batchs_final_state_reset_each_epoch():
    trainer = make_trainer(epochs=2, batching="sequential", ema_decay=0)  # see rebatches
    per_epoch = len(trainer.train_loader)
    given, returned = [], []
    original = trainer.model.lstm.forward

    def recording_forward(inputs, hx=None):
        out, state = original(inputs, hx)
        if trainer.model.training:
            given.append(None if hx is None else tuple(s.clone() for s in hx))
            returned.append(tuple(s.detach().clone() for s in state))
        return out, state

    trainer.model.lstm.forward = recording_forward
    trainer.train()
    assert len(given) == 2 * per_epoch
    for step, state in enumerate(given):
        if step % per_epoch == 0:
            assert state is None  # each epoch starts the streams from a fresh state
        else:  # (h, c) going into batch k+1 is exactly what batch k ended with
            assert all(torch.equal(a, b) for a, b in zip(state, returned[step - 1],
                                                         strict=True))


def test_sequential_rows_pick_up_exactly_where_they_stopped():
    trainer = make_trainer(batching="sequential")
    loader = trainer.train_loader
    batches = [loader.next_batch() for _ in range(len(loader))]
    for (_, targets), (next_inputs, _) in zip(batches, batches[1:], strict=False):
        # row r of batch k+1 starts with the character row r of batch k was predicting last
        assert torch.equal(next_inputs[:, 0], targets[:, -1])
    # ... and row r as a whole is stream r of the text read in order, batch after batch
    stream = loader.stream_length()
    for row in range(loader.batch_size):
        read = torch.cat([inputs[row] for inputs, _ in batches])
        start = row * stream
        assert torch.equal(read, loader.tokens[start:start + len(read)].long())


def record_lstm_dtypes(trainer, training_only: bool = False) -> list:
    """The dtypes of the LSTM's outputs from now on (training steps only, if asked)."""
    dtypes = []
    original = trainer.model.lstm.forward

    def recording_forward(inputs, hx=None):
        out, state = original(inputs, hx)
        if trainer.model.training or not training_only:
            dtypes.append(out.dtype)
        return out, state

    trainer.model.lstm.forward = recording_forward
    return dtypes


needs_bf16_lstm = pytest.mark.skipif(
    not hardware.cpu_runs_bf16_lstm(),
    reason="this CPU's LSTM kernel cannot run in bfloat16 (needs AVX-512 or AMX)")


@needs_bf16_lstm
def test_bfloat16_runs_the_lstm_in_bfloat16_and_still_learns():
    trainer = make_trainer(epochs=4, precision="bfloat16", batching="sequential")
    started = next(trainer.fit(epochs=1))
    assert (started.precision, started.notes) == ("bfloat16", ())
    assert next(make_trainer(epochs=1, precision="float32").fit()).precision == "float32"
    # "auto", the default, is this CPU's fastest: bfloat16 where its LSTM kernel runs it
    assert next(make_trainer(epochs=1).fit()).precision == "bfloat16"
    trainer = make_trainer(epochs=4, precision="bfloat16", batching="sequential")
    dtypes = record_lstm_dtypes(trainer, training_only=True)
    stats = trainer.train()
    assert set(dtypes) == {torch.bfloat16}
    assert all(math.isfinite(loss) for loss in stats["step_losses"])
    assert stats["losses"][-1] < stats["losses"][0]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay fp32


@needs_bf16_lstm
def test_bfloat16_validates_in_bfloat16_too_and_scores_like_float32():
    trainer = make_trainer(epochs=1, precision="bfloat16")
    trainer.train()
    dtypes = record_lstm_dtypes(trainer)
    in_bf16 = trainer.evaluate()
    assert set(dtypes) == {torch.bfloat16}  # a float32 LSTM here ran 2-3x slower
    dtypes.clear()
    trainer.config = replace(trainer.config, precision="float32")
    in_fp32 = trainer.evaluate()
    assert set(dtypes) == {torch.float32}
    assert in_bf16 == pytest.approx(in_fp32, rel=0.02)
    assert in_bf16 != in_fp32  # really computed in the other precision


def test_bfloat16_on_a_cpu_that_cannot_run_it_trains_in_float32_with_a_warning(monkeypatch):
    """On an AVX2-only CPU oneDNN's bfloat16 LSTM fails outright: a run asked for bfloat16
    (or resumed from a checkpoint trained on a CPU with AMX) falls back instead."""
    monkeypatch.setattr(precision_module, "cpu_runs_bf16_lstm", lambda: False)
    trainer = make_trainer(epochs=2, precision="bfloat16", batching="sequential")
    dtypes = record_lstm_dtypes(trainer)
    with pytest.warns(UserWarning, match="cannot run the LSTM in bfloat16"):
        stats = trainer.train()
    assert set(dtypes) == {torch.float32}
    assert trainer.config.precision == "float32"  # what the checkpoint records
    assert stats["losses"][-1] < stats["losses"][0]
    # the run's first event says so too, for an app that shows no warnings
    trainer.config = replace(trainer.config, precision="bfloat16")
    with pytest.warns(UserWarning, match="cannot run the LSTM in bfloat16"):
        started = next(trainer.fit(epochs=1))
    assert started.precision == "float32"
    assert started.notes == ("This CPU cannot run the LSTM in bfloat16 (that needs AVX-512 or "
                             "AMX); training in float32 instead.",)
    dtypes.clear()
    trainer.config = replace(trainer.config, precision="bfloat16")  # evaluate() too
    assert math.isfinite(trainer.evaluate())
    assert set(dtypes) == {torch.float32}


def _adamw_pair(fused_optimizer):
    """The same groups in torch's unfused AdamW, for comparison."""
    groups = [{k: v for k, v in group.items() if k not in ("fused", "foreach")}
              for group in fused_optimizer.param_groups]
    return torch.optim.AdamW(groups, foreach=False)


def _fused_cpu_adamw() -> bool:
    try:
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


@pytest.mark.skipif(not _fused_cpu_adamw(), reason="this torch has no fused AdamW on a CPU")
def test_fused_adamw_makes_the_same_update_as_the_usual_one():
    from microlm.trainer import make_optimizer

    torch.manual_seed(0)
    model = MicroLM(20, embedding_dim=8, hidden_dim=16, num_layers=1, dropout=0.0,
                    output_hidden_dim=12)
    twin = MicroLM(config=model.config)
    twin.load_state_dict(model.state_dict())
    start = model.head[0].weight.detach().clone()
    fused = make_optimizer(model, TrainingConfig(learning_rate=1e-2))
    assert all(group["fused"] for group in fused.param_groups)
    usual = _adamw_pair(make_optimizer(twin, TrainingConfig(learning_rate=1e-2)))
    assert not any(group.get("fused") for group in usual.param_groups)
    for _ in range(3):
        x = torch.randint(0, 20, (2, 5))
        for net, optimizer in ((model, fused), (twin, usual)):
            optimizer.zero_grad()
            net(x).square().mean().backward()
            optimizer.step()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(),
                            strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    assert (model.head[0].weight - start).abs().max() > 1e-3  # the steps did move it


@pytest.mark.skipif(not _fused_cpu_adamw(), reason="this torch has no fused AdamW on a CPU")
def test_a_state_saved_by_the_usual_adamw_resumes_in_the_fused_one():
    from microlm.trainer import load_optimizer_state, make_optimizer

    torch.manual_seed(0)
    model = MicroLM(20, embedding_dim=8, hidden_dim=16, num_layers=1, dropout=0.0)
    old = _adamw_pair(make_optimizer(model, TrainingConfig()))
    model(torch.randint(0, 20, (2, 5))).sum().backward()
    old.step()
    saved = old.state_dict()  # as a checkpoint from before the fused kernel holds it
    fresh = make_optimizer(model, TrainingConfig())
    load_optimizer_state(fresh, saved)
    assert all(group["fused"] for group in fresh.param_groups)
    param = model.lstm.weight_hh_l0
    assert torch.equal(fresh.state[param]["exp_avg"], old.state[param]["exp_avg"])
    assert float(fresh.state[param]["step"]) == 1.0
    before = param.detach().clone()
    fresh.step()  # runs with the loaded moments
    assert not torch.equal(param, before)


def _moving_average(snapshots: list[dict], decay: float) -> dict:
    """The average the trainer documents: the first weights, then each step's moved in by
    1 - min(decay, (1 + n) / (10 + n)), n = the weights averaged so far."""
    average = {k: v.clone() for k, v in snapshots[0].items()}
    for n, snapshot in enumerate(snapshots[1:], start=1):
        rate = 1 - min(decay, (1 + n) / (10 + n))
        for key, value in snapshot.items():
            average[key] += rate * (value - average[key])
    return average


@pytest.mark.parametrize("val_fraction", [0.1, 0.0])
def test_a_run_keeps_the_moving_average_of_its_weights(val_fraction):
    """Validated once at the end (or not at all), a run keeps the average of the weights
    after each step, not the last weights; those are remembered for resuming."""
    trainer = make_trainer(epochs=1, ema_decay=0.9, val_fraction=val_fraction)
    after_each_step = []
    trainer.train(callback=lambda event: isinstance(event, StepCompleted)
                  and after_each_step.append(weights(trainer)))
    assert len(after_each_step) == len(trainer.train_loader) > 12  # past the warm-up's 0.9
    expected = _moving_average(after_each_step, 0.9)
    kept = weights(trainer)
    assert all(torch.allclose(kept[k], expected[k], atol=1e-6) for k in expected)
    assert not same_weights(kept, after_each_step[-1])
    assert same_weights(trainer._kept.last_state, after_each_step[-1])
    if val_fraction:
        assert trainer.evaluate() == trainer.best_val_loss  # the average was what was validated


def test_a_new_run_starts_its_own_average_and_a_finished_one_saves_none(tmp_path):
    trainer = make_trainer(epochs=1, ema_decay=0.9)
    trainer.train()
    first_run_kept = weights(trainer)
    path = trainer.save_checkpoint(tmp_path / "done.pt")
    assert load_model(path)[2]["training_state"]["average"] is None  # nothing to continue
    after_each_step = []
    trainer.train(callback=lambda event: isinstance(event, StepCompleted)
                  and after_each_step.append(weights(trainer)))
    # the second run's average holds its own steps only, from the weights it started with
    assert len(after_each_step) == len(trainer.train_loader)
    expected = _moving_average(after_each_step, 0.9)
    assert all(torch.allclose(trainer._kept.average.module.state_dict()[k], expected[k], atol=1e-6)
               for k in expected)
    assert not same_weights(expected, first_run_kept)


def test_ema_decay_0_validates_and_keeps_the_weights_as_trained():
    trainer = make_trainer(epochs=1, ema_decay=0.0)  # validated once, at the end
    after_each_step = []
    trainer.train(callback=lambda event: isinstance(event, StepCompleted)
                  and after_each_step.append(weights(trainer)))
    assert same_weights(weights(trainer), after_each_step[-1])
    assert trainer._kept.last_state is None  # the model holds the last weights: nothing to keep


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_ema_decay_outside_0_to_1_is_refused(decay):
    with pytest.raises(ValueError, match="ema_decay must be in"):
        TrainingConfig(ema_decay=decay)


# ---- the samples timeline and the runs a history keeps ----

def test_samples_are_drawn_alike_and_kept_in_the_history():
    trainer = make_trainer(epochs=2, sample_interval=5, sample_length=20, eval_interval=7)
    trainer.config = replace(trainer.config, seed=3)
    samples = [e for e in trainer.fit() if type(e).__name__ == "SampleGenerated"]
    assert [s.step for s in samples] == list(range(5, trainer.step + 1, 5))
    assert {(s.prompt, s.seed, s.temperature) for s in samples} == {("", 3, 0.8)}
    assert samples[0].val_loss is None  # step 5 comes before the first validation (step 7)
    assert samples[1].val_loss == trainer.history["val_losses"][0][1]  # step 10: step 7's
    times = [s.elapsed_s for s in samples]
    assert times == sorted(times) and times[0] > 0
    assert trainer.history["samples"] == [[s.step, s.elapsed_s, s.val_loss, s.text]
                                          for s in samples]
    # the same seed and prompt: a model that did not change writes the same sample again
    assert trainer.sample(20, 0.8, 3, "") == trainer.sample(20, 0.8, 3, "")


def test_thinning_keeps_the_first_the_last_and_evenly_spread_samples():
    samples = [[step, 0.0, None, f"text {step}"] for step in range(10, 10_010, 10)]
    thinned = run_module.thin_samples(samples, limit=11)
    assert thinned[0] is samples[0] and thinned[-1] is samples[-1]
    assert [s[0] for s in thinned] == [10, 1010, 2010, 3010, 4010, 5010, 6000, 7000, 8000,
                                       9000, 10_000]  # nearest to 10 + 999 k
    assert run_module.thin_samples(samples[:5], limit=11) == samples[:5]


def test_a_long_run_keeps_at_most_max_samples(monkeypatch):
    monkeypatch.setattr(run_module, "MAX_SAMPLES", 6)
    trainer = make_trainer(epochs=3, sample_interval=1, sample_length=2)
    trainer.train()
    steps = [s[0] for s in trainer.history["samples"]]
    assert len(steps) <= 6 and steps[0] == 1 and steps[-1] == trainer.step
    assert steps == sorted(steps)


def test_each_run_is_recorded_with_its_steps_settings_and_result():
    trainer = make_trainer(epochs=1, eval_interval=4)
    first = trainer.train()
    trainer.config = replace(trainer.config, learning_rate=5e-3)
    second = trainer.train(epochs=2)
    runs = trainer.history["runs"]
    assert [(r["start_step"], r["end_step"]) for r in runs] == [
        (0, first["steps"]), (first["steps"], second["steps"])]
    assert [r["reason"] for r in runs] == ["completed", "completed"]
    assert [r["training_config"]["learning_rate"] for r in runs] == [1e-2, 5e-3]
    assert runs[1]["training_config"]["epochs"] == 2
    assert runs[0]["model_config"]["hidden_dim"] == 16
    own = [loss for step, loss in second["val_losses"] if step > first["steps"]]
    assert runs[1]["best_val_loss"] == min(own)
    assert runs[0]["best_val_loss"] == first["best_val_loss"]
    assert 0 < runs[0]["seconds"] <= first["training_time"]


def test_a_run_continued_from_its_checkpoint_keeps_one_record(tmp_path):
    trainer = make_trainer(epochs=2)
    control = TrainingControl()
    for event in trainer.fit(control=control):
        if isinstance(event, StepCompleted) and event.step == 5:
            control.stop()
    assert [r["reason"] for r in trainer.history["runs"]] == ["stopped"]
    path = trainer.save_checkpoint(tmp_path / "stopped.pt")
    resumed = ModelTrainer.from_checkpoint(path, TEXT)
    resumed.train()
    runs = resumed.history["runs"]
    assert [(r["start_step"], r["end_step"], r["reason"]) for r in runs] == [
        (0, resumed.step, "completed")]
