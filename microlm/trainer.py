"""ModelTrainer: the training loop, evaluation, schedule, early stopping, checkpoints, control."""

from __future__ import annotations

import copy
import math
import random
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import distributed
from .checkpoint import load_model, save_model
from .config import TrainingConfig
from .data import TextDataLoader, encode_tokens, split_text
from .generator import TextGenerator
from .hardware import (
    cpu_runs_bf16_lstm,
    default_precision,
    keep_freed_memory,
    mixed_precision,
    select_device,
    uses_bf16,
)
from .model import MicroLM, gradient_norms
from .tokenizer import CharacterTokenizer


def set_seed(seed: int) -> None:
    """Seed every random source the library uses, so a run reproduces on the same machine."""
    random.seed(seed)
    torch.manual_seed(seed)


# ---- progress events: small, frozen, plain values (safe to hand to another thread) ----

@dataclass(frozen=True)
class TrainingStarted:
    total_steps: int
    steps_per_epoch: int
    start_step: int
    num_parameters: int
    train_chars: int
    val_chars: int
    device: str
    precision: str = "float32"  # what the LSTM runs in: float32, or bfloat16 (autocast)
    # Settings the trainer had to change, in words (each also given as a warning): e.g. a
    # bfloat16 run on a CPU whose LSTM kernel cannot run it trains in float32.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepCompleted:
    step: int  # 1-based count of optimizer steps taken so far
    epoch: int  # 1-based epoch this step belongs to
    loss: float  # training loss of this batch, nats per character
    learning_rate: float
    chars_per_second: float  # over the last few steps, excluding evaluation
    elapsed_s: float
    progress: float  # fraction of the run done, in [0, 1]
    eta_s: float


@dataclass(frozen=True)
class Evaluated:
    step: int
    epoch: int
    val_loss: float
    best_val_loss: float
    improved: bool
    train_loss: float  # mean training loss since the previous evaluation


@dataclass(frozen=True)
class SampleGenerated:
    step: int
    text: str


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True)
class TrainingFinished:
    reason: str  # completed | stopped | early_stopping | time_budget | diverged
    step: int
    best_val_loss: float | None
    final_loss: float | None
    elapsed_s: float
    message: str


TrainingEvent = (TrainingStarted | StepCompleted | Evaluated | SampleGenerated | CheckpointSaved
                 | TrainingFinished)


class TrainingControl:
    """Pause, resume and stop a running training loop from another thread.

    The loop polls these flags between steps, so a stop takes effect within one step.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    @property
    def is_paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait_while_paused(self) -> None:
        while not self._running.wait(timeout=0.1):
            pass


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
        self.best_val_loss: float | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._last_state: dict[str, torch.Tensor] | None = None
        # The moving average of the weights (ema_decay > 0): validated, sampled and kept.
        self._average: AveragedModel | None = None
        self._evals_without_improvement = 0
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
            yield from self._fit(data_loader, control, **overrides)
        finally:
            # Under torchrun the DDP wrapper holds the process group, and with it gloo's
            # threads: a run lets it go on every path, so that shutting down the group
            # leaves no thread behind (distributed.shutdown).
            self._ddp_model = None

    def _fit(self, data_loader: TextDataLoader | None, control: TrainingControl | None,
             **overrides: Any) -> Iterator[TrainingEvent]:
        setup_started = time.perf_counter()  # the set-up below is paid from a time budget
        overrides = {k: v for k, v in overrides.items() if v is not None}
        self.config = replace(self.config, **overrides)
        if self.config.precision == "auto":  # the device's fastest, decided once per run
            self.config = replace(self.config, precision=default_precision(self.device))
        notes = []
        if self._asks_cpu_bf16(self.config) and not cpu_runs_bf16_lstm():
            notes.append("This CPU cannot run the LSTM in bfloat16 (that needs AVX-512 or "
                         "AMX); training in float32 instead.")
            warnings.warn(notes[-1], stacklevel=2)
            self.config = replace(self.config, precision="float32")
        loader = self._loader_for(data_loader, overrides.get("batch_size"))
        cfg = self.config
        control = control or TrainingControl()
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
        if not cfg.ema_decay:
            self._average = None
        elif self._average is None:  # a copy of the bare model (made before DDP wraps it)
            self._average = AveragedModel(self.model, multi_avg_fn=self._update_average)
        elif self._run is None:  # a new run averages its own weights from its first step
            self._average.n_averaged.zero_()
        if self._ddp_model is None:
            self._ddp_model = distributed.wrap_model(self.model, self.device)
        self._interrupted_run = None
        if self._run is None:
            self._run = {"start_step": self.step, "time_used": 0.0}
        run_start = self._run["start_step"]
        steps_per_epoch = len(loader)
        run_steps = steps_per_epoch * cfg.epochs
        end_step = run_start + run_steps
        eval_interval = cfg.eval_interval or steps_per_epoch
        chars_per_step = loader.batch_size * loader.sequence_length
        val_chars = 0 if self.val_tokens is None else len(self.val_tokens)
        yield TrainingStarted(run_steps, steps_per_epoch, self.step - run_start,
                              sum(p.numel() for p in self.model.parameters()),
                              loader.num_chars, val_chars, str(self.device),
                              "bfloat16" if self._runs_in_bf16(cfg) else "float32", tuple(notes))

        # The time a budget counts starts with fit(): building the optimizer, the average
        # and the DDP wrapper is part of it (the first optimizer a process builds imports
        # torch._dynamo, which can take seconds).
        clock = _RunClock(self._run["time_used"] + time.perf_counter() - setup_started)
        time_used_at_start = self._run["time_used"]
        history_time_at_start = float(self.history["training_time"])
        step_times: deque[float] = deque(maxlen=20)
        losses_since_eval: list[float] = []
        epoch_losses: list[float] = []
        into_epoch = (self.step - run_start) % steps_per_epoch
        if into_epoch and self.history["epoch_losses"]:
            # Continuing a run stopped mid-epoch: replace the partial mean recorded at the
            # stop by the whole epoch's mean when it ends, as an uninterrupted run would.
            self.history["epoch_losses"].pop()
            epoch_losses = list(self.history["step_losses"][-into_epoch:])
        last_eval_cost = 0.0
        saved_at = clock.elapsed()  # for checkpoint_minutes
        reason, message, last_loss = "completed", "Training finished.", None
        self.model.train()
        while self.step < end_step:
            if control.is_paused:
                with clock.paused():
                    control.wait_while_paused()
                continue
            budget_spent = cfg.time_budget_s is not None and (
                clock.elapsed() + 1.2 * last_eval_cost >= cfg.time_budget_s)
            # Under torchrun every rank must stop at the same step and follow the same
            # schedule: the ranks agree on both (one tiny all-reduce; a no-op alone).
            stop, budget_spent, elapsed = distributed.agree(control.stop_requested,
                                                            budget_spent, clock.elapsed())
            if stop:
                reason, message = "stopped", "Training stopped; the best model so far is kept."
                break
            if budget_spent:
                reason, message = "time_budget", f"Time budget of {cfg.time_budget_s:g} s used."
                break
            run_step = self.step - run_start
            lr = learning_rate_at(run_step, run_steps,
                                  self._progress(run_step, run_steps, elapsed), cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr

            step_start = time.perf_counter()
            if loader.mode == "sequential" and run_step % steps_per_epoch == 0:
                self._carried_state = None  # a new pass over the streams starts fresh
            inputs, targets = loader.next_batch()
            loss = self._train_step(inputs, targets, cfg)
            # host sync: one per step, needed for the NaN check (mean over ranks: all agree)
            last_loss = distributed.mean_over_ranks(loss).item()
            self.step += 1
            run_step += 1
            step_times.append(time.perf_counter() - step_start)
            if not math.isfinite(last_loss):
                reason = "diverged"
                message = (f"The loss became {last_loss} at step {self.step}: training "
                           f"diverged. Lower the learning rate (it was {lr:.2g}), keep "
                           f"gradient clipping on, or use a smaller model. "
                           + ("The best model before this point is kept."
                              if self._best_state is not None else
                              "No model was validated before this point, so the weights "
                              "are unusable: start again from a fresh model."))
                break
            losses_since_eval.append(last_loss)
            epoch_losses.append(last_loss)
            self.history["step_losses"].append(last_loss)
            self.history["learning_rates"].append(lr)
            self.history["training_time"] = (history_time_at_start + clock.elapsed()
                                             - time_used_at_start)
            if cfg.grad_norm_interval and self.step % cfg.grad_norm_interval == 0:
                self.history["grad_norms"].append([self.step, gradient_norms(self.model)])
            epoch = (run_step - 1) // steps_per_epoch + 1
            elapsed = clock.elapsed()
            average_step = sum(step_times) / len(step_times)
            eta = (run_steps - run_step) * average_step
            if cfg.time_budget_s:
                eta = min(eta, max(0.0, cfg.time_budget_s - elapsed))
            yield StepCompleted(self.step, epoch, last_loss, lr, chars_per_step / average_step,
                                elapsed, self._progress(run_step, run_steps, elapsed), eta)

            end_of_epoch = run_step % steps_per_epoch == 0
            if end_of_epoch:
                self.history["epoch_losses"].append(sum(epoch_losses) / len(epoch_losses))
                epoch_losses = []
            # With a time budget, a periodic validation that would not end in time is left
            # to the final one (the loop stops at the top while that one still fits).
            out_of_time = cfg.time_budget_s is not None and (
                clock.elapsed() + 2.2 * last_eval_cost >= cfg.time_budget_s)
            if self.val_tokens is not None and not out_of_time and (
                    run_step % eval_interval == 0 or run_step == run_steps):
                eval_start = time.perf_counter()
                event = self._evaluate_and_track(epoch, losses_since_eval)
                last_eval_cost = time.perf_counter() - eval_start
                losses_since_eval = []
                yield event
                if cfg.patience and self._evals_without_improvement >= cfg.patience:
                    reason = "early_stopping"
                    message = (f"Validation loss did not improve for {cfg.patience} "
                               f"evaluations; stopped early with the best model kept.")
                    break
            if cfg.sample_interval and run_step % cfg.sample_interval == 0:
                yield SampleGenerated(self.step, self.sample(cfg.sample_length, seed=self.step))
            by_epochs = (end_of_epoch and cfg.checkpoint_every
                         and epoch % cfg.checkpoint_every == 0)
            by_time = (cfg.checkpoint_minutes is not None
                       and clock.elapsed() - saved_at >= 60 * cfg.checkpoint_minutes)
            if cfg.checkpoint_path and (by_epochs or by_time) and run_step < run_steps:
                self._run["time_used"] = clock.elapsed()
                yield CheckpointSaved(self.step, str(self.save_checkpoint(cfg.checkpoint_path)))
                saved_at = clock.elapsed()

        if epoch_losses and reason != "diverged":
            self.history["epoch_losses"].append(sum(epoch_losses) / len(epoch_losses))
        if self.val_tokens is not None and reason in ("stopped", "time_budget") and (
                not self.history["val_losses"] or self.history["val_losses"][-1][0] != self.step):
            yield self._evaluate_and_track((self.step - run_start - 1) // steps_per_epoch + 1,
                                           losses_since_eval)
        self.history["training_time"] = (history_time_at_start + clock.elapsed()
                                         - time_used_at_start)
        self._run["time_used"] = clock.elapsed()
        if reason not in ("stopped", "time_budget"):
            self._run = None  # finished: the next fit() is a new run
        self._keep_best_weights(use_average=reason != "diverged")
        if cfg.checkpoint_path:
            yield CheckpointSaved(self.step, str(self.save_checkpoint(cfg.checkpoint_path)))
        distributed.wait_for_all()  # under torchrun: no rank leaves while rank 0 still saves
        # A stopped run also continues from a checkpoint saved after fit() returned (a spent
        # time budget does not: continued as it was, it would end at once). This trainer's
        # own next fit() is a new run either way.
        self._interrupted_run = dict(self._run) if reason == "stopped" else None
        self._run = None
        yield TrainingFinished(reason, self.step, self.best_val_loss, last_loss,
                               float(self.history["training_time"]), message)

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

    @contextmanager
    def _autocast(self, cfg: TrainingConfig):
        """bf16 autocast for training and validation alike when the precision is bfloat16: on
        CUDA where the GPU supports it, on the CPU where its LSTM kernel runs it (fast on AMX /
        AVX-512 bf16 units). Weights stay float32. Validation in float32 on such a CPU runs
        oneDNN's reference LSTM, several times slower than in bf16."""
        with mixed_precision(self.device, cfg.precision == "bfloat16"), torch.autocast(
                "cpu", dtype=torch.bfloat16,
                enabled=self._cpu_bf16(cfg)):
            yield

    def _runs_in_bf16(self, cfg: TrainingConfig) -> bool:
        """The LSTM runs under bfloat16 autocast (on the CPU or a CUDA GPU)."""
        return uses_bf16(self.device, cfg.precision == "bfloat16") or self._cpu_bf16(cfg)

    def _cpu_bf16(self, cfg: TrainingConfig) -> bool:
        """bfloat16 autocast on the CPU: asked for, and this CPU's LSTM kernel runs it."""
        return self._asks_cpu_bf16(cfg) and cpu_runs_bf16_lstm()

    def _asks_cpu_bf16(self, cfg: TrainingConfig) -> bool:
        """bfloat16 asked for on a CPU (where the LSTM kernel may not run it)."""
        return cfg.precision == "bfloat16" and self.device.type == "cpu"

    def _train_step(self, inputs: torch.Tensor, targets: torch.Tensor,
                    cfg: TrainingConfig) -> torch.Tensor:
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        state = self._carried_state
        if state is not None and state[0].size(1) != inputs.size(0):
            state = None
        with self._autocast(cfg):
            logits, new_state = (self._ddp_model or self.model)(inputs, state,
                                                                return_state=True)  # (B, T, V)
        # The loss (a log-sum-exp over the vocabulary) in float32 whatever the precision.
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        if self._average is not None:
            self._average.update_parameters(self.model)
        if self.train_loader is not None and self.train_loader.mode == "sequential":
            self._carried_state = tuple(s.detach().float() for s in new_state)
        return loss.detach()

    def _update_average(self, averages: list[torch.Tensor], weights: list[torch.Tensor],
                        count: torch.Tensor) -> None:
        """AveragedModel's update: an exponential moving average whose decay starts low
        (count 1: 0.18, count 90: 0.9) and grows to ema_decay, so that early in a run the
        average follows the fast-changing weights closely instead of the random start
        (what it gains over the last weights: RESULTS.md)."""
        n = float(count)
        decay = min(self.config.ema_decay, (1 + n) / (10 + n))
        get_ema_multi_avg_fn(decay)(averages, weights, count)

    def _validated_model(self) -> MicroLM:
        """The weights a run in progress validates and samples: their moving average, if
        there is one. Between runs, the model (which then holds the weights kept)."""
        if self._average is not None and self._run is not None:
            return self._average.module
        return self.model

    def _progress(self, run_step: int, run_steps: int, elapsed: float) -> float:
        """Fraction of the run done: by steps, or by time when a budget is set."""
        fraction = run_step / max(1, run_steps)
        if self.config.time_budget_s:
            fraction = max(fraction, elapsed / self.config.time_budget_s)
        return min(1.0, fraction)

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
        with self._autocast(self.config):
            return distributed.evaluate_loss_shared(
                evaluate_loss, model or self.model, tokens,
                window or self.config.sequence_length, max_chars or self.config.eval_chars,
                self.device)

    def _evaluate_and_track(self, epoch: int, recent_losses: list[float]) -> Evaluated:
        model = self._validated_model()
        val_loss = self.evaluate(model=model)
        improved = math.isfinite(val_loss) and (self.best_val_loss is None
                                                or val_loss < self.best_val_loss)
        if improved:
            self.best_val_loss = val_loss
            self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self._evals_without_improvement = 0
        else:
            self._evals_without_improvement += 1
        self.history["val_losses"].append([self.step, val_loss])
        train_loss = sum(recent_losses) / len(recent_losses) if recent_losses else float("nan")
        return Evaluated(self.step, epoch, val_loss, self.best_val_loss or val_loss, improved,
                         train_loss)

    def _keep_best_weights(self, use_average: bool = True) -> None:
        """Leave the best-validated weights in the model (without validation, the moving
        average of the weights unless the run diverged, which spoils it); remember the
        last weights for resuming."""
        keep = self._best_state
        if keep is None and use_average and self._average is not None:
            keep = self._average.module.state_dict()
        if keep is None:
            self._last_state = None
            return
        last_step, last_val = (self.history["val_losses"][-1] if self.history["val_losses"]
                               else (None, None))
        # The model is the best one only if it was validated as it is now (not, say, after a
        # step that diverged since that evaluation, or as the average of its weights).
        if (self._average is None and last_val == self.best_val_loss
                and last_step == self.step):
            self._last_state = None
            return
        self._last_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(keep)

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
        model, latest = self.model, self._last_state  # None: the model's are the latest
        if latest is None and self._best_state is not None and not _same_weights(
                self.model.state_dict(), self._best_state):
            # During a run the model holds the latest weights, which need not be the best:
            # save the best for generation (in a copy: the model itself is left alone, it
            # may be training; deepcopy, unlike a new MicroLM, draws no random numbers) and
            # the latest to resume from.
            latest = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            model = copy.deepcopy(self.model)
            model.load_state_dict(self._best_state)
        training_state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "model_state": latest,
            "torch_rng": torch.get_rng_state(),
            "loader": self.train_loader.state_dict() if self.train_loader else None,
            "carried_state": list(self._carried_state) if self._carried_state else None,
            # the moving average, for a run to continue (a finished run has kept it already)
            "average": (self._average.state_dict() if self._average is not None
                        and (self._run or self._interrupted_run) else None),
            "evals_without_improvement": self._evals_without_improvement,
            "best_state_is_model": self._best_state is not None,
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
        trainer.best_val_loss = metadata.get("best_val_loss")
        state = metadata.get("training_state") or {}
        if state.get("best_state_is_model"):
            trainer._best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if state.get("model_state") is not None:
            model.load_state_dict(state["model_state"])
        if state.get("optimizer") is not None:
            trainer.optimizer = make_optimizer(trainer.model, config)
            load_optimizer_state(trainer.optimizer, state["optimizer"])
        if state.get("average") is not None and config.ema_decay:
            trainer._average = AveragedModel(trainer.model,
                                             multi_avg_fn=trainer._update_average)
            trainer._average.load_state_dict(state["average"])
        trainer.step = int(state.get("step", metadata.get("step", 0)))
        trainer._evals_without_improvement = int(state.get("evals_without_improvement", 0))
        trainer._resume_rng = state.get("torch_rng")
        trainer._run = state.get("run")
        if state.get("carried_state"):
            trainer._carried_state = tuple(t.to(trainer.device) for t in state["carried_state"])
        if text is not None:
            loader = trainer.prepare_data(text)
            if state.get("loader"):
                loader.load_state_dict(state["loader"])
        return trainer


class _RunClock:
    """Seconds spent training in this run, not counting pauses."""

    def __init__(self, already_used: float = 0.0):
        self._start = time.perf_counter() - already_used

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    @contextmanager
    def paused(self):
        paused_at = time.perf_counter()
        try:
            yield
        finally:
            self._start += time.perf_counter() - paused_at


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def new_history() -> dict:
    return {"step_losses": [], "learning_rates": [], "val_losses": [], "epoch_losses": [],
            "grad_norms": [], "training_time": 0.0}


def make_optimizer(model: MicroLM, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on weight matrices only (biases and embeddings are exempt).

    Fused (one kernel for all parameters) where this torch has it for the weights' device:
    the same update in fewer passes over memory, several times faster on a CPU (RESULTS.md,
    "Speed"). Elsewhere (torch < 2.4 on a CPU, say) the usual implementation."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if param.dim() >= 2 and not name.startswith("embedding") else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.99), fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device here
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.99))


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a saved AdamW state, keeping this optimizer's implementation (fused or not): a
    checkpoint saved before the fused kernel was used would otherwise turn it off."""
    groups = [{**saved, **{key: current.get(key) for key in ("fused", "foreach")}}
              for saved, current in zip(state["param_groups"], optimizer.param_groups,
                                        strict=False)]  # a count that differs: torch says so
    optimizer.load_state_dict({**state, "param_groups": groups})


def learning_rate_at(step: int, total_steps: int, progress: float, cfg: TrainingConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_fraction * learning_rate at progress 1."""
    warmup = min(cfg.warmup_steps, max(1, int(0.05 * total_steps)))
    if step < warmup:
        return cfg.learning_rate * (step + 1) / warmup
    floor = cfg.learning_rate * cfg.min_lr_fraction
    progress = min(1.0, max(progress, 0.0))
    return floor + 0.5 * (cfg.learning_rate - floor) * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate_loss(model: MicroLM, tokens: torch.Tensor, window: int, max_chars: int | None,
                  device: torch.device | str = "cpu", batch_windows: int = 64) -> float:
    """Mean cross-entropy in nats/char over non-overlapping windows from a fresh state."""
    if max_chars is not None:
        tokens = tokens[:max_chars + 1]
    window = max(1, min(window, len(tokens) - 1))
    n_windows = (len(tokens) - 1) // window
    was_training = model.training
    model.eval()
    total, count = torch.zeros((), dtype=torch.float64), 0
    full = tokens[:n_windows * window + 1]
    inputs_all = full[:-1].view(n_windows, window)
    targets_all = full[1:].view(n_windows, window)
    for start in range(0, n_windows, batch_windows):
        inputs = inputs_all[start:start + batch_windows].long().to(device)
        targets = targets_all[start:start + batch_windows].long().to(device)
        logits = model(inputs).float()  # (B, window, vocab); the loss in float32
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                 reduction="sum").double().cpu()
        count += targets.numel()
    rest = len(tokens) - 1 - n_windows * window  # a last, shorter window
    if rest > 0:
        inputs = tokens[n_windows * window:-1].long().view(1, -1).to(device)
        targets = tokens[n_windows * window + 1:].long().view(1, -1).to(device)
        logits = model(inputs).float()
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                 reduction="sum").double().cpu()
        count += targets.numel()
    model.train(was_training)
    return float(total / count)
