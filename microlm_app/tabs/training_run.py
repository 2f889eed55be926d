"""What the Train tab starts: the worker that builds its trainer off the GUI thread, and
the factories for a new model or one that continues the current model."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import fields, replace

import torch
from PySide6.QtCore import Signal

from microlm import (
    CharacterTokenizer,
    MicroLM,
    ModelConfig,
    ModelTrainer,
    TrainingConfig,
    set_seed,
)
from microlm import budget as budgets

from ..session import Session
from ..workers import TrainingWorker

# Settings of a new run that apply to a continued checkpoint; the others (window length,
# validation split, batching, seed) fix the data split and stay as the checkpoint had them.
CONTINUE_OVERRIDES = ("epochs", "learning_rate", "batch_size", "weight_decay", "ema_decay",
                      "warmup_steps", "min_lr_fraction", "grad_clip", "eval_interval",
                      "eval_chars", "patience", "sample_interval", "sample_length",
                      "time_budget_s", "grad_norm_interval")


class TrainingRun(TrainingWorker):
    """A TrainingWorker that first builds its trainer (reading a checkpoint, encoding the
    corpus) in the worker thread, so a large text never freezes the window."""

    trainer_ready = Signal(object, int)  # ModelTrainer and its step count before this run

    def __init__(self, make_trainer: Callable[[], tuple[ModelTrainer, dict]],
                 started: float) -> None:
        super().__init__(trainer=None)
        self._make_trainer = make_trainer
        self._started = started  # time.monotonic() when Train was pressed

    def work(self) -> None:
        self.trainer, self._fit_options = self._make_trainer()
        self._fit_to_budget()
        self.trainer_ready.emit(self.trainer, self.trainer.step)
        super().work()

    def _fit_to_budget(self) -> None:
        """A time budget counts from the press of Train to the model ready, as on the
        command line (microlm.budget): the trainer's clock gets what is left once the
        set-up so far and a reserve for finishing are taken off. A run continued part-way
        keeps its own clock."""
        trainer = self.trainer
        known = {field.name for field in fields(TrainingConfig)}
        config = replace(trainer.config, **{name: value for name, value
                                             in self._fit_options.items() if name in known})
        if config.time_budget_s is None or trainer.continues_a_run:
            return
        val_chars = 0 if trainer.val_tokens is None else len(trainer.val_tokens)
        speed = budgets.calibrate_for(config.time_budget_s, str(trainer.device))
        reserve = budgets.finishing_reserve(speed, trainer.model.config, config, val_chars,
                                            config.time_budget_s)
        self._fit_options["time_budget_s"] = budgets.training_seconds(
            config.time_budget_s, time.monotonic() - self._started, reserve)


def continue_trainer_factory(session: Session, text: str, config: TrainingConfig
                             ) -> Callable[[], tuple[ModelTrainer, dict]]:
    """A factory, called in the worker, for a trainer that continues the session's model:
    from its checkpoint when it has a run to resume, else from the model in memory."""
    metadata = session.model_metadata or {}
    if session.model_path and "training_state" in metadata:
        path = session.model_path
        overrides = {name: getattr(config, name) for name in CONTINUE_OVERRIDES}

        def from_checkpoint() -> tuple[ModelTrainer, dict]:
            # reads the file and encodes the text: worker-thread work
            trainer = ModelTrainer.from_checkpoint(path, text)
            unfinished_run = (metadata["training_state"] or {}).get("run")
            # an unfinished run continues exactly as it was; a finished one starts a
            # new run from these weights with the settings now on the Configure tab
            return trainer, ({} if unfinished_run else overrides)

        return from_checkpoint
    model, tokenizer = session.model, session.model_tokenizer
    history = metadata.get("history") or {}

    def from_current_model() -> tuple[ModelTrainer, dict]:
        set_seed(config.seed)
        # A copy: the Generate tab keeps using the current model while this one trains.
        trainer = ModelTrainer(copy.deepcopy(model), tokenizer, config=config)
        if history:
            trainer.history = {**trainer.history, **copy.deepcopy(history)}
            trainer.step = int(metadata.get("step") or len(history.get("step_losses", [])))
            trainer.best_val_loss = metadata.get("best_val_loss")
        trainer.prepare_data(text)
        return trainer, {}

    return from_current_model


def new_trainer_factory(model_config: ModelConfig, tokenizer: CharacterTokenizer,
                 config: TrainingConfig, text: str) -> Callable[[], tuple[ModelTrainer, dict]]:
    """A factory for a fresh model and its trainer, called in the worker: seeding (torch
    formats a stack trace there), building the model and encoding the text took ~80 ms
    of GUI-thread time before, the longest stall of a whole run."""

    def make() -> tuple[ModelTrainer, dict]:
        set_seed(config.seed)
        trainer = ModelTrainer(MicroLM(config=model_config), tokenizer, config=config)
        trainer.prepare_data(text)
        return trainer, {}

    return make


def warm_up_optimizer() -> None:
    """Build one throwaway AdamW, once per process, before the window is shown.

    PyTorch imports torch._dynamo (about 2 s of Python) the first time an optimizer is
    built. Done by the training thread, that import holds the GIL in slices of up to
    ~250 ms and the window stutters for the first seconds of the first run; done here
    it only lengthens start-up a little (measured with python tests/benchmarks/app_speed.py).
    """
    global _optimizer_warm
    if not _optimizer_warm:
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
        _optimizer_warm = True


_optimizer_warm = False
