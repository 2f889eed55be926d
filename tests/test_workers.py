"""Worker plumbing: where Python's garbage collector runs while workers are busy."""

from __future__ import annotations

import gc
import threading

import torch

from microlm import StepCompleted
from microlm_app.workers import TaskWorker, TrainingWorker, start_worker


class _Cycle:
    """Garbage only the cyclic collector can free; records the thread that freed it."""

    freed_on: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        _Cycle.freed_on.append(threading.current_thread().name)


def _make_garbage_then_allocate() -> list:
    _Cycle()  # unreachable at once, but in a cycle: waits for the collector
    # Enough young objects that an automatic collection would start in this thread.
    return [[i] for i in range(200_000)]


def test_cyclic_garbage_is_collected_on_the_gui_thread_not_in_a_worker(qtbot):
    _Cycle.freed_on.clear()
    worker = TaskWorker(_make_garbage_then_allocate)
    results = []
    worker.succeeded.connect(results.append)
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        start_worker(worker)
    assert len(results) == 1 and len(results[0]) == 200_000
    assert not gc.isenabled()  # automatic collection is off once workers exist
    qtbot.waitUntil(lambda: bool(_Cycle.freed_on), timeout=10_000)  # the GUI-thread timer
    assert _Cycle.freed_on == [threading.main_thread().name]


def test_a_worker_keeps_freed_memory_for_reuse_as_the_library_does(qtbot, monkeypatch):
    """One owner of the allocator's settings: the app's workers ask microlm.hardware, as
    ModelTrainer.fit and the calibration do, before the worker's thread allocates."""
    from microlm_app import workers

    calls = []
    monkeypatch.setattr(workers, "keep_freed_memory", lambda: calls.append("kept") or True)
    worker = TaskWorker(lambda: calls.append("work"))
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        thread = start_worker(worker)
    assert thread.wait(10_000)  # its thread ends just after the worker's last signal
    assert calls == ["kept", "work"]


class _StepsOnly:
    """A trainer stand-in whose run is a list of step durations: steady, then 5x slower
    (another program took the cores), then on one thread, then free again."""

    device = torch.device("cpu")

    def __init__(self, durations: list[float]) -> None:
        self.durations = durations

    def fit(self, control=None, **options):
        elapsed = 0.0
        for step, duration in enumerate(self.durations, 1):
            elapsed += duration
            yield StepCompleted(step, 1, 2.0, 1e-3, 1000.0, elapsed, step / len(self.durations),
                                0.0)


def test_a_training_worker_goes_to_one_thread_while_busy_and_back_after(monkeypatch):
    threads = [2]
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads[-1])
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    # 3 settling steps, 10 usual ones, 3 five times slower; 10 s on one thread; a trial of
    # all threads as fast as at first (a changeover step and 5 timed); then, once more, a
    # slowdown that lasts to the end
    durations = ([0.1] * 13 + [0.5] * 3 + [0.25] * 40 + [0.1] * 6 + [0.1] * 5 + [0.5] * 3)
    worker = TrainingWorker(_StepsOnly(durations))
    changes = []
    worker.threads_changed.connect(lambda count, message: changes.append((count, message)))
    worker.work()
    assert [count for count, _ in changes] == [1, 2, 1]
    assert "slower at step 16" in changes[0][1] and "fast again at step 62" in changes[1][1]
    assert "slower at step 70" in changes[2][1]
    # 1 (busy), 2 (the trial), 2 (kept), 1 (busy again), then back to 2 as the run ends
    assert threads == [2, 1, 2, 2, 1, 2]
