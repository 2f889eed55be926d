"""Choosing the CPU thread count for work done one small step at a time: generating text,
or reading a text with a batch of one.

Such a step is too small to share well between threads: with two, each step waits for
both, and when another program keeps a core busy one of them is often not running, so a
step can take many times longer than on one thread. On an idle machine a wide model still
gains from all the threads. Neither holds on every CPU, so the work times short trials
with all the threads and with one, goes on with the faster, and tries the other again now
and then.
"""

from __future__ import annotations


class ThreadChoice:
    """Which thread count the next run of steps uses, from the time per step each count
    took in its latest run: a trial of `trial_steps` with each count first, then the
    faster for `chunk_steps`, with a trial of the other every `retry_every` runs."""

    def __init__(self, many: int, trial_steps: int, chunk_steps: int,
                 retry_every: int = 8) -> None:
        self.many = many  # the thread count to come back to: the caller's
        self.trial_steps, self.chunk_steps, self.retry_every = (trial_steps, chunk_steps,
                                                                retry_every)
        self.per_step: dict[int, float] = {}  # thread count -> seconds per step
        self.runs = 0

    def next(self) -> tuple[int, int]:
        """(threads, steps) for the next run of steps."""
        self.runs += 1
        if self.many == 1:
            return 1, self.chunk_steps
        for threads in (self.many, 1):
            if threads not in self.per_step:
                return threads, self.trial_steps
        faster = self.faster
        if self.runs % self.retry_every == 0:
            return (1 if faster == self.many else self.many), self.trial_steps
        return faster, self.chunk_steps

    def timed(self, threads: int, steps: int, seconds: float) -> None:
        """Record that `steps` steps on `threads` threads took `seconds`."""
        self.per_step[threads] = seconds / max(steps, 1)

    @property
    def faster(self) -> int:
        """The thread count with the shorter latest time per step (all of them, untimed)."""
        if not self.per_step:
            return self.many
        return min(self.per_step, key=self.per_step.__getitem__)
