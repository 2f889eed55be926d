"""Golden values: a checkpoint saved by an earlier microlm keeps loading, generating the same
text and resuming; a seeded run keeps its losses, schedule and generated text.

The checkpoint and the pinned values in tests/data/ were made by tests/data/make_golden.py
from the recipe below, in float32 on one CPU thread. A failure here means a behaviour
changed: a deliberate change re-pins the values with that script (never the checkpoint,
which stands for the files users already have)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from microlm import (
    CharacterTokenizer,
    MicroLM,
    ModelTrainer,
    StepCompleted,
    TextGenerator,
    TrainingConfig,
    TrainingControl,
    TrainingFinished,
    load_model,
    set_seed,
)

DATA = Path(__file__).parent / "data"
GOLDEN_CHECKPOINT = DATA / "golden_model.pt"
GOLDEN_VALUES = DATA / "golden_values.json"

TEXT = ("the quick brown fox jumps over the lazy dog. a stitch in time saves nine. "
        "all that glitters is not gold. where there is smoke there is fire.\n") * 5 + (
        "a penny saved is a penny earned.\n")  # 738 characters: 10 steps of 4 x 16 an epoch
MODEL = dict(embedding_dim=8, hidden_dim=12, num_layers=2, dropout=0.1)
MODEL_SEED = 5
TRAINING = dict(batch_size=4, sequence_length=16, learning_rate=2e-2, warmup_steps=3,
                eval_interval=5, eval_chars=200, grad_norm_interval=5, seed=11,
                precision="float32", device="cpu")
GOLDEN_EPOCHS, GOLDEN_STOP_STEP = 3, 20  # the golden run is stopped 20 steps into 30
SAMPLED = dict(prompt="the ", length=60, temperature=0.8, seed=1)

# Relative. The recipe's float32 losses and probabilities are the same on 1 and 2 threads
# and differ by at most 2.4e-7 between CPU kernels (its runs with ATEN_CPU_CAPABILITY=avx2 or
# default and ONEDNN_MAX_CPU_ISA=AVX2 or SSE41, against AVX-512); a learning rate 1 % lower
# moves the losses by 1.2e-3 (test below).
LOSS_TOLERANCE = 1e-4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def new_trainer(epochs: int) -> ModelTrainer:
    """A fresh model and trainer from the recipe, ready to train on TEXT."""
    tokenizer = CharacterTokenizer(TEXT)
    set_seed(MODEL_SEED)
    model = MicroLM(tokenizer.vocab_size(), **MODEL)
    trainer = ModelTrainer(model, tokenizer, config=TrainingConfig(epochs=epochs, **TRAINING))
    trainer.prepare_data(TEXT)
    return trainer


def train_stopped_run(trainer: ModelTrainer, stop_step: int) -> TrainingFinished:
    """Train, stopping through a TrainingControl once `stop_step` steps are done."""
    control = TrainingControl()
    finished = None
    for event in trainer.fit(control=control):
        if isinstance(event, StepCompleted) and event.step == stop_step:
            control.stop()
        if isinstance(event, TrainingFinished):
            finished = event
    return finished


def generated(model: MicroLM, tokenizer: CharacterTokenizer) -> dict:
    """A seeded sample, and the probabilities the model gave its first 10 characters."""
    generator = TextGenerator(model, tokenizer)
    chars = list(generator.stream(**SAMPLED))[:10]
    return {"text": generator.generate(**SAMPLED),
            "probabilities": [char.probability for char in chars]}


def same_generation(actual: dict, expected: dict) -> bool:
    return actual["text"] == expected["text"] and actual["probabilities"] == pytest.approx(
        expected["probabilities"], rel=LOSS_TOLERANCE)


def trajectory() -> dict:
    """One seeded epoch from a fresh model: what it records and what it then writes."""
    trainer = new_trainer(epochs=1)
    stats = trainer.train()
    return {"step_losses": stats["step_losses"], "learning_rates": stats["learning_rates"],
            "val_losses": [loss for _, loss in stats["val_losses"]],
            "generated": generated(trainer.model, trainer.tokenizer)}


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN_VALUES.read_text(encoding="utf-8"))


def losses_match(actual: list[float], expected: list[float]) -> bool:
    return len(actual) == len(expected) and all(
        math.isclose(a, e, rel_tol=LOSS_TOLERANCE) for a, e in zip(actual, expected, strict=True))


# ---- the golden checkpoint ----

def test_the_golden_checkpoint_is_small_and_loads_as_saved(golden):
    saved = golden["checkpoint"]
    assert GOLDEN_CHECKPOINT.stat().st_size < 150_000
    model, tokenizer, metadata = load_model(GOLDEN_CHECKPOINT)
    assert {name: getattr(model.config, name) for name in saved["model_config"]} == (
        saved["model_config"])
    assert tokenizer.chars == saved["vocabulary"]
    assert sum(p.numel() for p in model.parameters()) == saved["parameters"]
    assert not model.training  # ready to generate
    assert metadata["format_version"] == 1
    assert metadata["step"] == GOLDEN_STOP_STEP
    assert metadata["best_val_loss"] == saved["best_val_loss"]
    assert metadata["note"] == "golden checkpoint"  # metadata given to save_checkpoint


def test_the_golden_checkpoint_generates_the_same_text(golden):
    model, tokenizer, _ = load_model(GOLDEN_CHECKPOINT)
    assert same_generation(generated(model, tokenizer), golden["checkpoint"]["generated"])


def test_the_golden_checkpoint_keeps_its_history_and_training_config(golden):
    saved = golden["checkpoint"]
    _, _, metadata = load_model(GOLDEN_CHECKPOINT)
    history = metadata["history"]
    assert history["step_losses"] == saved["step_losses"]  # stored values: exact
    assert len(history["step_losses"]) == len(history["learning_rates"]) == GOLDEN_STOP_STEP
    assert [step for step, _ in history["val_losses"]] == [5, 10, 15, 20]
    assert [step for step, _ in history["grad_norms"]] == [5, 10, 15, 20]
    assert set(history["grad_norms"][0][1]) == set(saved["grad_norm_layers"])
    assert len(history["epoch_losses"]) == 2  # two whole epochs before the stop
    assert history["training_time"] > 0
    stored = metadata["training_config"]
    assert {name: stored[name] for name in TRAINING} == TRAINING
    config = TrainingConfig.from_dict(stored)
    assert (config.epochs, config.precision, config.seed) == (GOLDEN_EPOCHS, "float32", 11)


def test_a_trainer_resumes_the_golden_run_where_it_stopped(golden):
    resumed = ModelTrainer.from_checkpoint(GOLDEN_CHECKPOINT, TEXT)
    assert resumed.step == GOLDEN_STOP_STEP
    assert resumed.best_val_loss == golden["checkpoint"]["best_val_loss"]
    stats = resumed.train()
    assert stats["stopped_reason"] == "completed"
    assert stats["steps"] == GOLDEN_EPOCHS * 10  # the stopped run's remaining 10 steps
    losses = stats["step_losses"]
    assert losses[:GOLDEN_STOP_STEP] == golden["checkpoint"]["step_losses"]
    assert losses_match(losses[GOLDEN_STOP_STEP:], golden["checkpoint"]["resumed_step_losses"])


# ---- a seeded run from a fresh model ----

def test_a_seeded_run_keeps_its_losses_schedule_and_text(golden):
    pinned = golden["trajectory"]
    run = trajectory()
    assert len(run["step_losses"]) == 10
    assert losses_match(run["step_losses"], pinned["step_losses"]), run["step_losses"]
    assert run["learning_rates"] == pytest.approx(pinned["learning_rates"], rel=1e-12)
    assert losses_match(run["val_losses"], pinned["val_losses"]), run["val_losses"]
    assert same_generation(run["generated"], pinned["generated"]), run["generated"]


def test_the_loss_tolerance_would_see_a_small_change_of_behaviour(golden):
    """A learning rate 1 % lower moves the trajectory by more than the tolerance: the pinned
    losses are not so loose that a real change passes."""
    trainer = new_trainer(epochs=1)
    trainer.config = TrainingConfig(**{**trainer.config.to_dict(), "learning_rate": 0.99e-2})
    losses = trainer.train()["step_losses"]
    assert not losses_match(losses, golden["trajectory"]["step_losses"])


def test_the_trajectory_is_the_same_on_two_threads(golden):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = trajectory()
    finally:
        torch.set_num_threads(threads)
    assert losses_match(run["step_losses"], golden["trajectory"]["step_losses"])
    assert same_generation(run["generated"], golden["trajectory"]["generated"])
