"""Worker plumbing: where Python's garbage collector runs while workers are busy."""

from __future__ import annotations

import gc
import threading

from microlm_app.workers import TaskWorker, start_worker


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


def test_freed_memory_is_kept_for_reuse_on_glibc():
    import platform
    import sys

    import pytest

    from microlm_app.workers import keep_freed_memory_for_reuse

    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("mallopt tuning applies to Linux with glibc only")
    assert keep_freed_memory_for_reuse() is True
    assert keep_freed_memory_for_reuse() is True  # once is enough; calling again is harmless
