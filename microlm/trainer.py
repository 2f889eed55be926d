"""ModelTrainer: the training loop, with validation, early stopping, checkpoints and control.

Its parts live beside it: the events and TrainingControl (events), the optimizer and its
schedule (schedule), a run's books (run), the weights kept (kept_weights), the precision
(precision) and the validation loss (evaluation). __all__ names what is imported from here."""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import distributed
from .checkpoint import load_model, save_model
from .config import TrainingConfig
from .data import TextDataLoader, encode_tokens, split_text
from .evaluation import evaluate_loss
from .events import (
    CheckpointSaved,
    Evaluated,
    SampleGenerated,
    StepCompleted,
    TrainingControl,
    TrainingEvent,
    TrainingFinished,
    TrainingStarted,
)
from .generator import TextGenerator
from .hardware import keep_freed_memory, select_device
from .kept_weights import KeptWeights
from .model import MicroLM, gradient_norms
from .precision import autocast, run_precision, runs_in_bf16
from .run import SAMPLE_PROMPT, SAMPLE_TEMPERATURE, Run, new_history
from .schedule import learning_rate_at, load_optimizer_state, make_optimizer
from .tokenizer import CharacterTokenizer

__all__ = [
    "CheckpointSaved", "Evaluated", "ModelTrainer", "SampleGenerated", "StepCompleted",
    "TrainingConfig", "TrainingControl", "TrainingEvent", "TrainingFinished", "TrainingStarted",
    "evaluate_loss", "learning_rate_at", "load_optimizer_state", "make_optimizer",
    "new_history", "set_seed",
]


def set_seed(seed: int) -> None:
    """Seed every random source the library uses, so a run reproduces on the same machine."""
    random.seed(seed)
    torch.manual_seed(seed)


class ModelTrainer:
    """Trains a MicroLM on text.

    trainer.train(...) runs to the end and returns statistics (the seed's API);
    trainer.fit(...) is the same loop as a generator of progress events, for a GUI
    worker or a progress bar. Both can be paused and stopped with a TrainingControl.
    """

    def __init__(self, model: MicroLM, tokenizer: CharacterTokenizer,
                 device: str | torch.device | None = None, config: TrainingConfig | None = None):
        if model.vocab_size < tokenizer.vocab_size():
            raise ValueError(f"The model predicts {model.vocab_size} characters but the "
                             f"tokenizer has {tokenizer.vocab_size()}; build the model with "
                             f"vocab_size=tokenizer.vocab_size().")
        self.config = config or TrainingConfig()
        self.device = select_device(device or self.config.device)
        self.model = model.to(self.device)
        self._ddp_model: torch.nn.Module | None = None  # DDP around model under torchrun
        self.tokenizer = tokenizer
        self.val_tokens: torch.Tensor | None = None
        self.train_loader: TextDataLoader | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.step = 0
        self.history: dict[str, list] = new_history()
        self._kept = KeptWeights()  # the best-validated weights, their moving average
        self._carried_state = None  # (h, c) carried across batches in sequential batching
        self._resume_rng: torch.Tensor | None = None
        self._run: dict | None = None  # the run in progress: start step, seconds used
        self._interrupted_run: dict | None = None  # the last run, if stopped before its end

    # ---- data ----

    def prepare_data(self, text: str, sequence_length: int | None = None,
                     batch_size: int | None = None, val_fraction: float | None = None,
                     batching: str | None = None) -> TextDataLoader:
        """Split `text` into training and validation parts and return the training batches.

        The last val_fraction of the text is kept for validation (used by train/evaluate).
        A text shorter than one window shrinks the window, with a warning.
        """
        overrides = {k: v for k, v in dict(sequence_length=sequence_length,
                                          batch_size=batch_size, val_fraction=val_fraction,
                                          batching=batching).items() if v is not None}
        self.config = replace(self.config, **overrides)
        train_text, val_text = split_text(text, self.config.val_fraction)
        if len(train_text) < 2:
            raise ValueError("The text is too short to train on; it needs at least 2 characters.")
        if len(train_text) < self.config.sequence_length + 1:
            warnings.warn(f"The training text has only {len(train_text)} characters, less than "
                          f"one window of {self.config.sequence_length}; using windows of "
                          f"{len(train_text) - 1}.", stacklevel=2)
            self.config = replace(self.config, sequence_length=len(train_text) - 1)
        self.val_tokens = encode_tokens(val_text, self.tokenizer) if len(val_text) >= 2 else None
        # Under torchrun each rank trains on its own shard, with its own random windows.
        self.train_loader = TextDataLoader(distributed.shard(encode_tokens(train_text,
                                                                           self.tokenizer)),
                                           self.config.sequence_length, self.config.batch_size,
                                           self.config.batching,
                                           seed=distributed.rank_seed(self.config.seed))
        return self.train_loader

    # ---- the seed's API ----

    def train(self, data_loader: TextDataLoader | None = None, epochs: int | None = None,
              learning_rate: float | None = None, batch_size: int | None = None,
              save_every: int | None = None, model_path: str | None = None,
              callback: Callable[[TrainingEvent], None] | None = None,
              control: TrainingControl | None = None, **options: Any) -> dict:
        """Train to the end and return statistics: losses (mean per epoch), step_losses,
        val_losses [(step, loss)], best_val_loss, training_time (s), steps, stopped_reason."""
        finished = None
        for event in self.fit(data_loader, control=control, epochs=epochs,
                              learning_rate=learning_rate, batch_size=batch_size,
                              checkpoint_every=save_every, checkpoint_path=model_path, **options):
            if callback is not None:
                callback(event)
            if isinstance(event, TrainingFinished):
                finished = event
        return self.statistics(finished)

    @property
    def best_val_loss(self) -> float | None:
        """The best validation loss so far (nats per character); None before a validation."""
        return self._kept.best_val_loss

    @best_val_loss.setter
    def best_val_loss(self, value: float | None) -> None:
        self._kept.best_val_loss = value

    @property
    def continues_a_run(self) -> bool:
        """True when the next fit() continues a run stopped part-way (restored from a
        checkpoint), with its own schedule and time budget, instead of starting a new one."""
        return self._run is not None

    def statistics(self, finished: TrainingFinished | None = None) -> dict:
        h = self.history
        return {
            "losses": list(h["epoch_losses"]),
            "step_losses": list(h["step_losses"]),
            "val_losses": [tuple(v) for v in h["val_losses"]],
            "learning_rates": list(h["learning_rates"]),
            "best_val_loss": self.best_val_loss,
            "training_time": float(h["training_time"]),
            "steps": self.step,
            "stopped_reason": finished.reason if finished else None,
            "message": finished.message if finished else "",
        }

    # ---- the loop ----

    def fit(self, data_loader: TextDataLoader | None = None,
            control: TrainingControl | None = None, **overrides: Any) -> Iterator[TrainingEvent]:
        """Run training as a generator of events; the last event is TrainingFinished.

        Each call is a run of `epochs` epochs from the current weights, with its own
        warm-up and decay. A trainer made by from_checkpoint() after a stop or a spent
        time budget continues that run where it stopped instead of starting a new one.
        """
        try:
            setup_started = time.perf_counter()  # the set-up is paid from a time budget
            loader, notes = self._start_run(data_loader, overrides)
            loop = _TrainingLoop(self, loader, control or TrainingControl())
            yield from loop.events(notes, setup_started)
        finally:
            # Under torchrun the DDP wrapper holds the process group, and with it gloo's
            # threads: a run lets it go on every path, so that shutting down the group
            # leaves no thread behind (distributed.shutdown).
            self._ddp_model = None

    def _start_run(self, data_loader: TextDataLoader | None,
                   overrides: dict[str, Any]) -> tuple[TextDataLoader, tuple[str, ...]]:
        """Set up a run: its settings, precision, data, random state, optimizer, moving
        average and DDP wrapper. Returns the batches and the changes made to the settings
        asked for, in words (each also given as a warning)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        self.config = replace(self.config, **overrides)
        precision, notes = run_precision(self.config.precision, self.device)
        for note in notes:
            warnings.warn(note, stacklevel=2)
        if precision != self.config.precision:  # "auto", or what this CPU cannot run
            self.config = replace(self.config, precision=precision)
        loader = self._loader_for(data_loader, overrides.get("batch_size"))
        cfg = self.config
        keep_freed_memory()  # steps reuse freed memory instead of faulting it in again
        if self._resume_rng is not None:
            torch.set_rng_state(self._resume_rng)
            self._resume_rng = None
            if distributed.rank():  # the saved state is rank 0's: other ranks draw their own
                set_seed(distributed.rank_seed(cfg.seed) + self.step)
        elif self.step == 0:
            set_seed(distributed.rank_seed(cfg.seed))  # per-rank dropout masks under torchrun
        if self.optimizer is None:
            self.optimizer = make_optimizer(self.model, cfg)
        self._kept.start_run(self.model, cfg.ema_decay, continues=self._run is not None)
        if self._ddp_model is None:
            self._ddp_model = distributed.wrap_model(self.model, self.device)
        self._interrupted_run = None
        if self._run is None:
            self._run = {"start_step": self.step, "time_used": 0.0}
        return loader, notes

    def _loader_for(self, data_loader: TextDataLoader | None,
                    batch_size: int | None) -> TextDataLoader:
        loader = data_loader or self.train_loader
        if loader is None:
            raise ValueError("No training data: call prepare_data(text) first or pass a "
                             "data_loader.")
        if batch_size is not None:  # the seed's train(..., batch_size=16) re-batches
            loader.batch_size = batch_size
        self.train_loader = loader
        self.config = replace(self.config, batch_size=loader.batch_size,
                              sequence_length=loader.sequence_length)
        return loader

    def _train_step(self, inputs: torch.Tensor, targets: torch.Tensor,
                    cfg: TrainingConfig) -> torch.Tensor:
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        state = self._carried_state
        if state is not None and state[0].size(1) != inputs.size(0):
            state = None
        with autocast(self.device, cfg.precision):
            logits, new_state = (self._ddp_model or self.model)(inputs, state,
                                                                return_state=True)  # (B, T, V)
        # The loss (a log-sum-exp over the vocabulary) in float32 whatever the precision.
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        if self._kept.average is not None:
            self._kept.average.update_parameters(self.model)
        if self.train_loader is not None and self.train_loader.mode == "sequential":
            self._carried_state = tuple(s.detach().float() for s in new_state)
        return loss.detach()

    def _validated_model(self) -> MicroLM:
        """The weights a run in progress validates and samples: their moving average, if
        there is one. Between runs, the model (which then holds the weights kept)."""
        if self._kept.average is not None and self._run is not None:
            return self._kept.average.module
        return self.model

    # ---- evaluation ----

    @torch.no_grad()
    def evaluate(self, tokens: torch.Tensor | None = None, window: int | None = None,
                 max_chars: int | None = None, model: MicroLM | None = None) -> float:
        """Mean cross-entropy (nats per character) over non-overlapping windows of the
        validation text, each window starting from a fresh LSTM state. model None: the
        trainer's model (after a run, the weights it kept)."""
        tokens = self.val_tokens if tokens is None else tokens
        if tokens is None or len(tokens) < 2:
            raise ValueError("No validation text: prepare_data with val_fraction > 0 first.")
        with autocast(self.device, self.config.precision):
            return distributed.evaluate_loss_shared(
                evaluate_loss, model or self.model, tokens,
                window or self.config.sequence_length, max_chars or self.config.eval_chars,
                self.device)

    def sample(self, length: int = 120, temperature: float = 0.8, seed: int = 0,
               prompt: str | None = None) -> str:
        """A short generated text, to see what the model has learned so far."""

        model = self._validated_model()
        was_training = model.training
        generator = TextGenerator(model, self.tokenizer, self.device)
        text = generator.generate(prompt or "", length, temperature, seed=seed)
        model.train(was_training)
        return text

    # ---- checkpoints and resume ----

    def save_checkpoint(self, path: str | Path, **metadata: Any) -> Path:
        """Save the best model for generation plus everything needed to resume exactly.

        Under torchrun only rank 0 writes (the weights are the same on every rank)."""
        if not distributed.is_main_process():
            return Path(path)
        model, latest = self._kept.to_save(self.model)  # the best; the latest, to resume
        training_state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "model_state": latest,
            "torch_rng": torch.get_rng_state(),
            "loader": self.train_loader.state_dict() if self.train_loader else None,
            "carried_state": list(self._carried_state) if self._carried_state else None,
            # the moving average, for a run to continue (a finished run has kept it already)
            "average": (self._kept.average.state_dict() if self._kept.average is not None
                        and (self._run or self._interrupted_run) else None),
            "evals_without_improvement": self._kept.evals_without_improvement,
            "best_state_is_model": self._kept.best_state is not None,
            # set: a run to continue (in progress, or stopped before its end)
            "run": dict(self._run or self._interrupted_run or {}) or None,
        }
        return save_model(path, model, self.tokenizer, history=self.history,
                          training_config=self.config.to_dict(), step=self.step,
                          best_val_loss=self.best_val_loss, training_state=training_state,
                          **metadata)

    @classmethod
    def from_checkpoint(cls, path: str | Path, text: str | None = None,
                        device: str | torch.device | None = None) -> ModelTrainer:
        """A trainer that continues exactly where the checkpointed run stopped.

        Give the same `text` to restore the same train/validation split and batch order;
        then train()/fit() with the same settings continues the same run."""
        model, tokenizer, metadata = load_model(path)
        config = TrainingConfig.from_dict(metadata.get("training_config") or {})
        trainer = cls(model, tokenizer, device=device, config=config)
        trainer.history = {**new_history(), **(metadata.get("history") or {})}
        state = metadata.get("training_state") or {}
        trainer._kept.restore(trainer.model, state, metadata.get("best_val_loss"),
                              config.ema_decay)
        if state.get("optimizer") is not None:
            trainer.optimizer = make_optimizer(trainer.model, config)
            load_optimizer_state(trainer.optimizer, state["optimizer"])
        trainer.step = int(state.get("step", metadata.get("step", 0)))
        trainer._resume_rng = state.get("torch_rng")
        trainer._run = state.get("run")
        if state.get("carried_state"):
            trainer._carried_state = tuple(t.to(trainer.device) for t in state["carried_state"])
        if text is not None:
            loader = trainer.prepare_data(text)
            if state.get("loader"):
                loader.load_state_dict(state["loader"])
        return trainer


class _TrainingLoop:
    """The loop of one fit(): step until the run ends (its steps done, a stop, its time
    budget spent, early stopping or divergence), validating, sampling and saving on the
    way; then leave the weights worth keeping in the model. The trainer holds the model and
    takes each step; the Run keeps the books."""

    def __init__(self, trainer: ModelTrainer, loader: TextDataLoader, control: TrainingControl):
        self.trainer = trainer
        self.cfg = trainer.config
        self.loader = loader
        self.control = control
        self.run = Run(self.cfg, trainer._run["start_step"], len(loader), trainer.history)
        self.chars_per_step = loader.batch_size * loader.sequence_length
        self.reason: str | None = None  # why the run ended (TrainingFinished), once it has
        self.message = ""
        self.last_loss: float | None = None

    def events(self, notes: tuple[str, ...], setup_started: float) -> Iterator[TrainingEvent]:
        """The run's events, from TrainingStarted to TrainingFinished."""
        trainer, run, loader = self.trainer, self.run, self.loader
        val_chars = 0 if trainer.val_tokens is None else len(trainer.val_tokens)
        yield TrainingStarted(run.steps, run.steps_per_epoch, trainer.step - run.start_step,
                              sum(p.numel() for p in trainer.model.parameters()),
                              loader.num_chars, val_chars, str(trainer.device),
                              "bfloat16" if runs_in_bf16(self.cfg.precision, trainer.device)
                              else "float32", notes)

        # The time a budget counts starts with fit(): building the optimizer, the average
        # and the DDP wrapper is part of it (the first optimizer a process builds imports
        # torch._dynamo, which can take seconds).
        run.start_clock(trainer._run["time_used"], setup_started)
        run.continue_epoch(trainer.step)
        trainer.model.train()
        while trainer.step < run.end_step:
            if self.control.is_paused:
                with run.clock.paused():
                    self.control.wait_while_paused()
                continue
            yield from self._step()
            if self.reason is not None:
                break
        if self.reason is None:
            self.reason, self.message = "completed", "Training finished."
        yield from self._end()

    def _step(self) -> Iterator[TrainingEvent]:
        """One step and what is due after it, unless the run ends before it or with it."""
        trainer, run, cfg = self.trainer, self.run, self.cfg
        # Under torchrun every rank must stop at the same step and follow the same
        # schedule: the ranks agree on both (one tiny all-reduce; a no-op alone).
        stop, budget_spent, elapsed = distributed.agree(self.control.stop_requested,
                                                        run.budget_spent(), run.clock.elapsed())
        if stop:
            self.reason, self.message = ("stopped",
                                         "Training stopped; the best model so far is kept.")
            return
        if budget_spent:
            self.reason = "time_budget"
            self.message = f"Time budget of {cfg.time_budget_s:g} s used."
            return
        run_step = trainer.step - run.start_step
        lr = run.learning_rate(run_step, elapsed)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr

        step_start = time.perf_counter()
        if self.loader.mode == "sequential" and run_step % run.steps_per_epoch == 0:
            trainer._carried_state = None  # a new pass over the streams starts fresh
        inputs, targets = self.loader.next_batch()
        loss = trainer._train_step(inputs, targets, cfg)
        # host sync: one per step, needed for the NaN check (mean over ranks: all agree)
        self.last_loss = last_loss = distributed.mean_over_ranks(loss).item()
        trainer.step += 1
        run_step += 1
        run.step_seconds.append(time.perf_counter() - step_start)
        if not math.isfinite(last_loss):
            self.reason = "diverged"
            self.message = (f"The loss became {last_loss} at step {trainer.step}: training "
                            f"diverged. Lower the learning rate (it was {lr:.2g}), keep "
                            f"gradient clipping on, or use a smaller model. "
                            + ("The best model before this point is kept."
                               if trainer._kept.best_state is not None else
                               "No model was validated before this point, so the weights "
                               "are unusable: start again from a fresh model."))
            return
        run.record_step(last_loss, lr)
        if cfg.grad_norm_interval and trainer.step % cfg.grad_norm_interval == 0:
            trainer.history["grad_norms"].append([trainer.step, gradient_norms(trainer.model)])
        yield run.step_completed(trainer.step, run_step, last_loss, lr, self.chars_per_step)
        yield from self._after_step(run_step)

    def _after_step(self, run_step: int) -> Iterator[TrainingEvent]:
        """Validate, sample and save where due after a step; stop early without progress."""
        trainer, run, cfg = self.trainer, self.run, self.cfg
        end_of_epoch = run.end_epoch(run_step)
        if run.validation_due(run_step) and trainer.val_tokens is not None:
            eval_start = time.perf_counter()
            event = self._validate(run.epoch(run_step))
            run.last_eval_cost = time.perf_counter() - eval_start
            yield event
            if cfg.patience and trainer._kept.evals_without_improvement >= cfg.patience:
                self.reason = "early_stopping"
                self.message = (f"Validation loss did not improve for {cfg.patience} "
                                f"evaluations; stopped early with the best model kept.")
                return
        if cfg.sample_interval and run_step % cfg.sample_interval == 0:
            text = trainer.sample(cfg.sample_length, SAMPLE_TEMPERATURE, cfg.seed, SAMPLE_PROMPT)
            elapsed, val_loss = run.record_sample(trainer.step, text)
            yield SampleGenerated(trainer.step, text, elapsed, val_loss, SAMPLE_TEMPERATURE,
                                  cfg.seed, SAMPLE_PROMPT)
        if run.checkpoint_due(run_step, end_of_epoch):
            trainer._run["time_used"] = run.clock.elapsed()
            yield CheckpointSaved(trainer.step,
                                  str(trainer.save_checkpoint(cfg.checkpoint_path)))
            run.saved_at = run.clock.elapsed()

    def _validate(self, epoch: int) -> Evaluated:
        """Validate the weights a run validates, keep them if the best, and record it."""
        trainer = self.trainer
        model = trainer._validated_model()
        val_loss = trainer.evaluate(model=model)
        improved = trainer._kept.track(val_loss, model)
        trainer.history["val_losses"].append([trainer.step, val_loss])
        return Evaluated(trainer.step, epoch, val_loss, trainer.best_val_loss or val_loss,
                         improved, self.run.train_loss_since_eval())

    def _end(self) -> Iterator[TrainingEvent]:
        """Validate the weights a run stopped early leaves, keep the best, save, report."""
        trainer, run, cfg, reason = self.trainer, self.run, self.cfg, self.reason
        if reason != "diverged":
            run.record_epoch()
        val_losses = trainer.history["val_losses"]
        if trainer.val_tokens is not None and reason in ("stopped", "time_budget") and (
                not val_losses or val_losses[-1][0] != trainer.step):
            yield self._validate(run.epoch(trainer.step - run.start_step))
        run.record_time()
        run.record_run(trainer.step, reason, trainer.model.config.to_dict())
        trainer._run["time_used"] = run.clock.elapsed()
        if reason not in ("stopped", "time_budget"):
            trainer._run = None  # finished: the next fit() is a new run
        last_step, last_val = val_losses[-1] if val_losses else (None, None)
        trainer._kept.keep_best(trainer.model, validated_now=last_val == trainer.best_val_loss
                                and last_step == trainer.step, use_average=reason != "diverged")
        if cfg.checkpoint_path:
            yield CheckpointSaved(trainer.step, str(trainer.save_checkpoint(cfg.checkpoint_path)))
        distributed.wait_for_all()  # under torchrun: no rank leaves while rank 0 still saves
        # A stopped run also continues from a checkpoint saved after fit() returned (a spent
        # time budget does not: continued as it was, it would end at once). This trainer's
        # own next fit() is a new run either way.
        trainer._interrupted_run = dict(trainer._run) if reason == "stopped" else None
        trainer._run = None
        yield TrainingFinished(reason, trainer.step, trainer.best_val_loss, self.last_loss,
                               float(trainer.history["training_time"]), self.message)

