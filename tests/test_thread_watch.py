"""Tests for microlm.thread_watch: when a run gets a SlowdownWatch."""

import torch

from microlm.thread_watch import SlowdownWatch


def test_a_thread_watch_is_made_only_where_there_are_threads_to_choose():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        watch = SlowdownWatch.for_run("cpu")
        assert watch is not None and watch.threads == watch.many == 2
        assert SlowdownWatch.for_run("cuda") is None  # a GPU run: CPU threads don't matter
        torch.set_num_threads(1)
        assert SlowdownWatch.for_run("cpu") is None
    finally:
        torch.set_num_threads(before)
