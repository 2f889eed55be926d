"""Tests of the thread count chosen for work done one small step at a time."""

from microlm.thread_choice import ThreadChoice

TRIAL, CHUNK = 16, 256


def test_both_counts_are_timed_then_the_faster_runs_on_and_the_other_is_retried():
    choice = ThreadChoice(4, TRIAL, CHUNK, retry_every=8)
    assert choice.next() == (4, TRIAL)
    choice.timed(4, TRIAL, TRIAL * 0.01)  # 10 ms a step: a busy machine
    assert choice.next() == (1, TRIAL)
    choice.timed(1, TRIAL, TRIAL * 0.0001)  # 0.1 ms
    assert choice.faster == 1
    plan = [choice.next() for _ in range(6)]
    assert plan[:5] == [(1, CHUNK)] * 5
    assert plan[5] == (4, TRIAL)  # the 8th run tries 4 threads again
    choice.timed(4, TRIAL, TRIAL * 0.00005)  # the load has passed: 4 threads are faster now
    assert choice.next() == (4, CHUNK)


def test_one_thread_has_nothing_to_choose():
    choice = ThreadChoice(1, TRIAL, CHUNK)
    assert [choice.next() for _ in range(3)] == [(1, CHUNK)] * 3
    assert choice.faster == 1


def test_untimed_means_all_the_threads():
    assert ThreadChoice(2, TRIAL, CHUNK).faster == 2
