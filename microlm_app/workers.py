"""Work off the GUI thread: QObject workers moved to QThreads, reporting through signals.

Every worker follows one pattern (superqt / Orange): a QObject without parent is moved
to a QThread; thread.started -> worker.run; worker.finished -> thread.quit; both are
deleted later. Signals are past tense and carry plain values; `finished` is always the
last signal, after a failure too. stop() is a plain method that sets a threading.Event
the loop polls, because a queued slot would never run while run() is busy.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
from pyqtgraph.util.garbage_collector import GarbageCollector
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from microlm import (
    CheckpointError,
    CheckpointSaved,
    CorpusError,
    Evaluated,
    ModelTrainer,
    SampleGenerated,
    StepCompleted,
    TextGenerator,
    TrainingControl,
    TrainingFinished,
    TrainingStarted,
    UnknownCharacterError,
)
from microlm.hardware import keep_freed_memory
from microlm.thread_watch import SlowdownWatch

STEP_BATCH_SECONDS = 0.5  # step events are sent in batches at most this often
GC_INTERVAL_SECONDS = 0.2  # how often the GUI thread collects cyclic garbage
CHUNK_SECONDS = 0.03  # generated characters are sent in chunks at most this often

# Every thread start_worker made, held until it has ended. Python must never be the one
# to destroy a QThread that is still finishing: ~QThread then waits for the thread while
# the garbage collector holds the GIL, which the finishing thread may need (a deadlock,
# seen as a hang), or aborts if the thread is still running (seen as a crash).
_live_threads: set[_ThreadKeeper] = set()


class _ThreadKeeper(QObject):
    """Holds a worker thread until it has ended. Made on the GUI thread, so the thread's
    finished signal reaches release() there, queued (a plain function would be called
    inside the finishing thread, which would then wait for itself)."""

    def __init__(self, thread: QThread) -> None:
        super().__init__()
        self.thread_ = thread
        thread.finished.connect(self.release)

    @Slot()
    def release(self) -> None:
        self.thread_.wait()  # PySide releases the GIL while waiting; run() has returned
        _live_threads.discard(self)


_gui_thread_collector: GarbageCollector | None = None


def collect_garbage_on_gui_thread() -> None:
    """Let Python's cyclic garbage collector run only on the GUI thread, from a timer.

    Left automatic, it runs in whichever thread happens to allocate: a worker busy in
    PyTorch would then destroy unreachable Qt objects of the GUI thread (old plot items,
    finished workers), deleting them under the GUI thread's feet. That showed as rare
    hangs with both threads stuck, one in the worker's tensor code, one in pyqtgraph.
    pyqtgraph's GarbageCollector disables the automatic collector and collects each
    generation on a GUI-thread timer as the thresholds say. Called before the first
    worker starts; idempotent."""
    global _gui_thread_collector
    if _gui_thread_collector is None:
        _gui_thread_collector = GarbageCollector(interval=GC_INTERVAL_SECONDS)


def running_threads() -> list[QThread]:
    """Worker threads started by start_worker that have not finished yet."""
    return [keeper.thread_ for keeper in list(_live_threads) if keeper.thread_.isRunning()]


def start_worker(worker: BaseWorker) -> QThread:
    """Move `worker` to a new QThread, wire the standard signals and start it."""
    collect_garbage_on_gui_thread()
    # Training in a worker thread allocates from another malloc arena, which glibc trims
    # after every step unless told to keep freed memory (one setting for the library and
    # the app: hardware.keep_freed_memory).
    keep_freed_memory()
    thread = QThread()
    thread.setObjectName(f"{type(worker).__name__}Thread")
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and a queued call would wait for the GUI thread,
    # which may be the one blocked in thread.wait() (stop_and_wait, closing the window).
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    # No worker.deleteLater: deleting the worker inside its own thread runs ~QObject
    # there, which holds one of Qt's pooled signal-slot mutexes while PySide waits for the
    # GIL; a GUI thread that holds the GIL and needs the same mutex (setPlainText, an emit)
    # then waits forever. Python deletes the worker on the GUI thread once it is dropped
    # (see collect_garbage_on_gui_thread), after its thread has ended.
    worker._thread = thread  # keep both alive until the thread ends
    thread._worker = worker
    _live_threads.add(_ThreadKeeper(thread))
    thread.start()
    return thread


def stop_and_wait(worker: BaseWorker | None, timeout_ms: int = 10_000) -> bool:
    """Ask a worker to stop, then wait for its thread. True when it is no longer running."""
    if worker is None:
        return True
    worker.stop()
    if not worker.is_running:
        return True
    try:
        return worker._thread.wait(timeout_ms)
    except RuntimeError:  # deleted meanwhile: it finished
        return True


def wait_for_thread_end(thread: QThread | None, timeout_ms: int = 5_000) -> None:
    """Wait out the last moments of a thread whose worker has already finished, so that
    "not busy" also means "no thread left" (finished is emitted just before run returns)."""
    try:
        if thread is not None:
            thread.wait(timeout_ms)
    except RuntimeError:  # already deleted: it has ended
        pass


class BaseWorker(QObject):
    failed = Signal(str)  # a message a person can read
    finished = Signal()  # always last

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread: QThread | None = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def is_running(self) -> bool:
        """True from start_worker until the worker's thread has ended."""
        try:
            return self._thread is not None and self._thread.isRunning()
        except RuntimeError:  # the thread object is already deleted: it has ended
            return False

    @Slot()
    def run(self) -> None:
        try:
            self.work()
        except Exception as err:  # noqa: BLE001 - every error must reach the user as a message
            self.failed.emit(describe_error(err))
        finally:
            self.finished.emit()

    def work(self) -> None:  # pragma: no cover - subclasses implement
        raise NotImplementedError


class TaskWorker(BaseWorker):
    """Runs fn(*args, **kwargs) once and reports its result (succeeded) or error (failed).

    A function that reports progress can be given `progress=worker.progressed.emit`
    (a thread-safe signal emit) by its caller."""

    progressed = Signal(float)
    succeeded = Signal(object)

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs

    def work(self) -> None:
        result = self._fn(*self._args, **self._kwargs)
        if not self.stop_requested:
            self.succeeded.emit(result)


class TrainingWorker(BaseWorker):
    """Runs ModelTrainer.fit and turns its events into signals.

    Step events are batched (one signal per STEP_BATCH_SECONDS) so a tiny model taking a
    thousand steps a second does not flood the GUI thread's event queue.
    """

    training_started = Signal(object)  # TrainingStarted
    steps_completed = Signal(object)  # tuple[StepCompleted, ...]
    evaluated = Signal(object)  # Evaluated
    sample_generated = Signal(object)  # SampleGenerated
    checkpoint_saved = Signal(object)  # CheckpointSaved
    training_finished = Signal(object)  # TrainingFinished
    # The run changed its CPU thread count by itself: (threads, what it means to a person).
    # One thread while other programs keep the cores busy, all of them once that passes.
    threads_changed = Signal(int, str)
    paused = Signal()
    resumed = Signal()

    def __init__(self, trainer: ModelTrainer, **fit_options: Any) -> None:
        super().__init__()
        self.trainer = trainer
        self.control = TrainingControl()
        self._fit_options = fit_options
        # Set before `finished`: False after a divergence that no validation rescued. It is
        # checked here, not on the GUI thread: tensor math there would give the GUI thread
        # its own OpenMP team, and with two teams on 2 cores every later training run in
        # the app runs ~3x slower (OpenMP stops spinning when teams outnumber cores).
        self.weights_finite = False

    def stop(self) -> None:
        super().stop()
        self.control.stop()

    def pause(self) -> None:
        self.control.pause()
        self.paused.emit()

    def resume(self) -> None:
        self.control.resume()
        self.resumed.emit()

    def work(self) -> None:
        threads = torch.get_num_threads()  # this thread's: training runs here
        watch = SlowdownWatch.for_run(self.trainer.device)
        try:
            self._train(watch)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)  # the next run starts with all of them

    def _train(self, watch: SlowdownWatch | None) -> None:
        pending: list[StepCompleted] = []
        last_sent = time.perf_counter()
        for event in self.trainer.fit(control=self.control, **self._fit_options):
            if isinstance(event, StepCompleted):
                note = watch.apply(event.elapsed_s, event.step) if watch else None
                if note:
                    self.threads_changed.emit(watch.threads, note)
                pending.append(event)
                now = time.perf_counter()
                if now - last_sent >= STEP_BATCH_SECONDS:
                    self.steps_completed.emit(tuple(pending))
                    pending, last_sent = [], now
                continue
            if pending:  # keep the order: steps before the event that followed them
                self.steps_completed.emit(tuple(pending))
                pending = []
            if isinstance(event, TrainingFinished):
                with torch.no_grad():
                    self.weights_finite = all(bool(torch.isfinite(p).all())
                                              for p in self.trainer.model.parameters())
            self._emit_event(event)

    def _emit_event(self, event: object) -> None:
        signal = {TrainingStarted: self.training_started, Evaluated: self.evaluated,
                  SampleGenerated: self.sample_generated, CheckpointSaved: self.checkpoint_saved,
                  TrainingFinished: self.training_finished}[type(event)]
        signal.emit(event)


class GenerationWorker(BaseWorker):
    """Streams generated characters in small batches, with the speed so far.

    Every signal names `request`, the number its caller gave this run, so a view that has
    moved on to a newer request can drop the late signals of an older one."""

    chars_generated = Signal(int, object, float)  # request, tuple[GeneratedChar, ...], chars/s
    generation_finished = Signal(int, float)  # request, characters per second (after a stop too)

    def __init__(self, generator: TextGenerator, prompt: str, length: int,
                 temperature: float, top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None, request: int = 0) -> None:
        super().__init__()
        self.generator = generator
        self.request = request
        self._options = dict(prompt=prompt, length=length, temperature=temperature,
                             top_k=top_k, top_p=top_p, seed=seed)

    def work(self) -> None:
        pending = []
        start = last_sent = time.perf_counter()
        count = 0
        for generated in self.generator.stream(**self._options):
            if self.stop_requested:
                break
            pending.append(generated)
            count += 1
            now = time.perf_counter()
            if now - last_sent >= CHUNK_SECONDS:
                self.chars_generated.emit(self.request, tuple(pending), count / (now - start))
                pending, last_sent = [], now
        elapsed = time.perf_counter() - start
        speed = count / elapsed if elapsed > 0 else 0.0
        if pending:
            self.chars_generated.emit(self.request, tuple(pending), speed)
        self.generation_finished.emit(self.request, speed)


def describe_error(err: BaseException) -> str:
    """One readable message for an exception; library errors already say what to do."""
    if isinstance(err, (CorpusError, CheckpointError, UnknownCharacterError, ValueError)):
        return str(err)
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename else ""
        return (f"{err.strerror}{where}. Check that the folder exists, that you may write "
                f"there and that the disk has room, or choose another place.")
    if isinstance(err, MemoryError):
        return "Out of memory. Choose a smaller model, batch size or sequence length."
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    return f"Something went wrong: {last}"
