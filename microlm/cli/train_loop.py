"""Running training from `microlm train`: the progress line, stop signals that end the run
with a save (Ctrl-C, SIGTERM, SIGHUP), and the report when it ends."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..checkpoint import CheckpointError, CheckpointSaveError, fallback_path
from ..thread_watch import SlowdownWatch
from ..trainer import (
    Evaluated,
    ModelTrainer,
    SampleGenerated,
    StepCompleted,
    TrainingControl,
    TrainingFinished,
    TrainingStarted,
)
from .progress import ProgressLine

INTERRUPTED = 130  # the shell's exit status for a program stopped by Ctrl-C
# Stop training and save, like Ctrl-C: `timeout`, job schedulers and systemd send SIGTERM,
# a closed terminal SIGHUP.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


def train_with_progress(trainer: ModelTrainer, overrides: dict, output: Path,
                         args: argparse.Namespace) -> int:
    control = TrainingControl()
    # A resumed run keeps the time budget it was saved with unless --time-budget changes it.
    time_budget_s = overrides.get("time_budget_s", trainer.config.time_budget_s)
    progress = ProgressLine(sys.stderr, run_epochs=None if time_budget_s
                            else overrides.get("epochs", trainer.config.epochs),
                            time_budget_s=time_budget_s)
    interrupted = False
    first_step = trainer.step

    def on_stop_signal(signum, frame) -> None:
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C gives up at once; other signals wait for the save
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        interrupted = True
        if signum == getattr(signal, "SIGHUP", None):
            _leave_closed_terminal(terminals, progress)
        received = "" if signum == signal.SIGINT else f"{signal.Signals(signum).name} received. "
        progress.message(f"{received}Stopping after this step and saving (Ctrl-C again to "
                         f"abort) ...")
        control.stop()

    # Asked now: once hung up, a terminal may no longer say that it is one.
    terminals = [name for name in ("stdout", "stderr") if getattr(sys, name).isatty()]
    previous_handlers = _install_stop_handler(on_stop_signal)
    finished: TrainingFinished | None = None
    # (threads given with --threads stay as given)
    watch = SlowdownWatch.for_run(trainer.device) if args.threads is None else None
    try:
        for event in trainer.fit(control=control, **overrides):
            if isinstance(event, TrainingStarted):
                progress.started(event, first_step)
            elif isinstance(event, StepCompleted):
                progress.step(event)
                # Threads that wait on each other at every character are what makes a busy
                # machine many times slower; one thread keeps going until the load passes.
                note = watch.apply(event.elapsed_s, event.step) if watch else None
                if note:
                    progress.message(note)
            elif isinstance(event, Evaluated):
                progress.evaluated(event)
            elif isinstance(event, SampleGenerated):
                progress.message(f"sample at step {event.step}: {event.text!r}")
            elif isinstance(event, TrainingFinished):
                finished = event
    except CheckpointSaveError as err:  # at the end or a periodic save: keep the model
        raise CheckpointSaveError(err.errno, f"{err} {_keep_elsewhere(trainer, output)}"
                                  ) from None
    finally:
        progress.close()
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)

    if finished.best_val_loss is not None:
        print(f"Best validation loss: {finished.best_val_loss:.4f} nats/char "
              f"({finished.best_val_loss / math.log(2):.3f} bits/char).")
    if finished.reason == "time_budget":
        message = f"Time budget of {args.time_budget:g} s reached (everything included)."
    else:
        message = finished.message
    print(f"{message} Step {finished.step:,} after {finished.elapsed_s:.1f} s of training; "
          f"this command took {time.monotonic() - args.started:.1f} s.")
    print(f"Checkpoint saved to {output}")
    if finished.reason == "diverged":
        return 1
    return INTERRUPTED if interrupted else 0


def _install_stop_handler(handler: Callable) -> dict:
    """Handle every stop signal with `handler`; returns the handlers it replaced. Only the
    main thread receives signals (elsewhere, e.g. a worker, nothing changes), and a signal
    ignored on purpose (nohup ignores SIGHUP) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current not in (signal.SIG_IGN, None):  # None: set outside Python, keep it
            previous[signum] = signal.signal(signum, handler)
    return previous


def _leave_closed_terminal(terminals: list[str], progress: ProgressLine) -> None:
    """After a hang-up, writing to the terminal fails, which would end the run before its
    save: what was meant for it (sys.stdout, sys.stderr named in `terminals`) goes
    nowhere; a log file still gets what was meant for it."""
    for name in terminals:
        setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives to the exit
    if progress.is_terminal:
        progress.stream = sys.stderr


def _keep_elsewhere(trainer: ModelTrainer, output: Path) -> str:
    """Save the model that could not be saved to `output` in the temporary folder; say where."""
    fallback = fallback_path(output)
    try:
        trainer.save_checkpoint(fallback)
    except (CheckpointSaveError, CheckpointError) as err:
        return f"Keeping it in {fallback} failed too: {err}"
    return (f"The model was kept in {fallback} instead: move it where you want it (it also "
            f"resumes with --resume).")
