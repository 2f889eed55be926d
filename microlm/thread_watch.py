"""Choosing the CPU thread count while training runs: one thread while other programs
keep the cores busy, all of them again once that passes."""

from __future__ import annotations

import statistics

import torch


class SlowdownWatch:
    """Chooses the CPU thread count while training runs, from the times of StepCompleted
    events. Threads that wait on each other at every character make a step many times
    slower once another program takes a core: when steps become `factor` times slower than
    they were at first, training goes on with one thread. Such a load often passes (a
    build, a short job, the start of another program), and one thread is then ~half the
    speed: after `retry_s` seconds on one thread, `recent` steps are tried with all the
    threads again, and training keeps whichever ran them faster (a lost trial waits twice
    as long before the next one, up to `max_retry_s`)."""

    def __init__(self, threads: int, factor: float = 3.0, settle: int = 3,
                 reference: int = 10, recent: int = 5, retry_s: float = 10.0,
                 max_retry_s: float = 160.0):
        self.many, self.threads = threads, threads
        self.factor, self.settle, self.reference, self.recent = factor, settle, reference, recent
        self.first_retry_s, self.retry_s, self.max_retry_s = retry_s, retry_s, max_retry_s
        self.durations: list[float] = []  # since the last change of thread count
        self.usual: float | None = None  # a step's usual time with all the threads
        self.one_thread: float | None = None  # ... and with one, measured before a trial
        self._last: float | None = None
        self._since = 0.0  # elapsed time of the last change
        self._trial = False
        self.message: str | None = None  # what the last change means to a person (None: a
        #                                  trial, or its loss, which change nothing lasting)

    @classmethod
    def for_run(cls, device: torch.device | str) -> SlowdownWatch | None:
        """A watch for a run on `device` with this thread's torch thread count, or None
        where there is nothing to choose (a GPU run, or one thread already)."""
        threads = torch.get_num_threads()
        return cls(threads) if torch.device(device).type == "cpu" and threads > 1 else None

    def observe(self, elapsed_s: float, step: int = 0) -> int | None:
        """The thread count to switch to after step `step`, which ended at `elapsed_s`
        seconds of training, or None to keep the current one."""
        if self._last is not None:
            self.durations.append(elapsed_s - self._last)
        self._last = elapsed_s
        # medians: a validation between two steps is one long gap, not a slowdown
        if self.threads == self.many and not self._trial:
            if self.usual is None:
                first = self.durations[self.settle:self.settle + self.reference]
                if len(first) < self.reference:
                    return None
                self.usual = statistics.median_high(first)
            if len(self.durations) >= self.recent and statistics.median_high(
                    self.durations[-self.recent:]) > self.factor * self.usual:
                return self._switch(1, elapsed_s, message=(
                    f"Steps became several times slower at step {step:,} (the machine is "
                    f"busy): continuing on 1 CPU thread."))
            return None
        # the first step after a change still pays for it: not counted
        timed = self.durations[1:]
        if self._trial:
            if len(timed) < self.recent:
                return None
            self._trial = False
            if statistics.median_high(timed) < self.one_thread:
                # the new usual: a slowdown is measured from here
                self.usual = statistics.median_high(timed)
                self.retry_s = self.first_retry_s  # a later load is a new one
                return self._switch(self.many, elapsed_s, message=(
                    f"Steps are fast again at step {step:,}: back to {self.many} CPU "
                    f"threads."))
            self.retry_s = min(2 * self.retry_s, self.max_retry_s)
            return self._switch(1, elapsed_s)
        if elapsed_s - self._since >= self.retry_s and len(timed) >= self.recent:
            self.one_thread = statistics.median_high(timed[-self.recent:])
            return self._switch(self.many, elapsed_s, trial=True)
        return None

    def apply(self, elapsed_s: float, step: int = 0) -> str | None:
        """observe(), then set this thread's torch thread count to what it asks for; what
        to tell a person about it (None: nothing)."""
        threads = self.observe(elapsed_s, step)
        if threads is None:
            return None
        torch.set_num_threads(threads)
        return self.message

    def _switch(self, threads: int, elapsed_s: float, trial: bool = False,
                message: str | None = None) -> int:
        self.threads, self._since, self._trial, self.message = threads, elapsed_s, trial, message
        self.durations = []
        return threads
