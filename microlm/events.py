"""What a training run reports and how it is steered: the progress events ModelTrainer.fit()
yields, and the TrainingControl that pauses, resumes and stops it from another thread.

The events are small, frozen and hold plain values, so they are safe to hand to another
thread: the app's training worker emits them as they are."""

from __future__ import annotations

import threading
from dataclasses import dataclass


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
    text: str  # the generated characters (after the prompt)
    elapsed_s: float = 0.0  # seconds the model has trained so far, all its runs together
    val_loss: float | None = None  # the latest validation loss, None before the first
    # Every sample of a run is drawn alike (same prompt, seed and temperature), so two
    # samples differ only by what the model learned between them.
    temperature: float = 0.8
    seed: int = 0
    prompt: str = ""  # empty: the sample starts after a newline (TextGenerator.start_char)


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
