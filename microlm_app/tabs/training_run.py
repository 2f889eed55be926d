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
        # the model the run leaves, on the CPU (the run list keeps it to generate with)
        self.model_on_cpu: MicroLM | None = None

    def work(self) -> None:
        self.trainer, self._fit_options = self._make_trainer()
        self._fit_to_budget()
        self.trainer_ready.emit(self.trainer, self.trainer.step)
        super().work()
        if self.weights_finite:
            self.model_on_cpu = on_cpu(self.trainer.model)

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


def on_cpu(model: MicroLM) -> MicroLM:
    """`model` itself when it is on the CPU, else a copy there (worker-thread work)."""
    if model.device.type == "cpu":
        return model
    copy_on_cpu = MicroLM(config=model.config)
    copy_on_cpu.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return copy_on_cpu.eval()


# The model settings a continued model keeps, in the order a person reads them.
MODEL_SETTINGS = ("hidden_dim", "num_layers", "embedding_dim", "output_hidden_dim", "dropout")


def setting_words(name: str, value: float) -> str:
    """One model setting as a person reads it: "hidden size 320", "2 layers"."""
    if name == "num_layers":
        return f"{value} layer{'' if value == 1 else 's'}"
    if name == "output_hidden_dim":
        return f"{value:,} output layer units"
    words = {"hidden_dim": "hidden size", "embedding_dim": "embedding size",
             "dropout": "dropout"}[name]
    return f"{words} {value:,}" if isinstance(value, int) else f"{words} {value:g}"


def describe_model(config: ModelConfig) -> str:
    """"hidden size 320, 2 layers, embedding size 64, 1.2 million parameters"."""
    parts = [setting_words(name, getattr(config, name)) for name in MODEL_SETTINGS[:3]]
    if config.output_hidden_dim:
        parts.append(setting_words("output_hidden_dim", config.output_hidden_dim))
    count = config.num_parameters()
    parts.append(f"{count / 1e6:.1f} million parameters" if count >= 1e6
                 else f"{count:,} parameters")
    return ", ".join(parts)


def settings_differ(current: ModelConfig, wanted: ModelConfig) -> str:
    """Why the Configure tab's model settings (`wanted`) cannot continue the current
    model, in words; empty when they describe it."""
    names = [name for name in MODEL_SETTINGS if getattr(current, name) != getattr(wanted, name)]
    if not names:
        return ""
    have = " and ".join(setting_words(name, getattr(current, name)) for name in names)
    want = " and ".join(setting_words(name, getattr(wanted, name)) for name in names)
    return f"The current model has {have}; your settings say {want}: Train starts a new model."


def continue_option(session: Session) -> tuple[bool, str, str]:
    """Whether Train may continue the current model; the option's tooltip; and, when it
    may not though there is a model, the reason to show beside it."""
    if session.model is None or session.model_tokenizer is None:
        return False, "There is no trained or loaded model yet; Train starts a new one.", ""
    differ = settings_differ(session.model.config, session.model_config)
    if differ:
        return False, differ, differ
    if session.corpus_stats is not None:
        known = set(session.model_tokenizer.chars)
        missing = [c for c, _ in session.corpus_stats.frequencies if c not in known]
        if missing:
            shown = "".join(missing[:10]).encode("unicode_escape").decode()
            why = (f"The current model never saw {len(missing)} character(s) of this text "
                   f"({shown}…), so it cannot continue on it; Train starts a new model "
                   f"with the Configure tab's settings.")
            return False, why, why
        return True, CONTINUE_TOOLTIP, ""
    return True, "Continue training the current model on the text you load.", ""


CONTINUE_TOOLTIP = (
    "Checked: Train continues from the current model's weights (the Configure tab's "
    "training settings apply, except that a saved run stopped part-way resumes exactly as "
    "it was) and the step count and loss history carry on. Unchecked: Train starts a new "
    "model from the Configure tab's settings.")


def train_plan(session: Session, continuing: bool) -> str:
    """Which model Train trains, in words."""
    if continuing and session.model is not None:
        metadata = session.model_metadata or {}
        history = metadata.get("history") or {}
        step = int(metadata.get("step") or len(history.get("step_losses") or []))
        return (f"Train continues the current model ({describe_model(session.model.config)}, "
                f"step {step:,}).")
    config = session.model_config
    if session.tokenizer is not None:
        config = replace(config, vocab_size=session.tokenizer.vocab_size())
    return f"Train starts a new model: {describe_model(config)}."


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
