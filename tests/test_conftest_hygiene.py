"""The shared test set-up (conftest.py) as tests see it, checked on a small test run of its
own: each test remembers calibrations in its own folder and nothing is left behind, Python's
garbage collector is on again after an app test, and the thread watch is stubbed in app
tests only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

# Run in this order: an app test, a test without Qt, an app test again. Each records what
# it saw in seen.jsonl.
INNER_TESTS = '''
import gc
import json
import os
from pathlib import Path

import torch

from microlm_app import workers

SEEN = Path(__file__).with_name("seen.jsonl")


def record(name, **seen):
    folder = Path(os.environ["MICROLM_CACHE_DIR"])
    (folder / "calibrations.json").write_text("{}")  # as a calibration would
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a watch is made for CPU runs on more than one thread
    try:
        watch = workers.SlowdownWatch.for_run("cpu")
    finally:
        torch.set_num_threads(threads)
    with SEEN.open("a") as out:
        out.write(json.dumps(dict(name=name, cache=str(folder), watch=watch is not None,
                                  **seen)) + "\\n")


def start_a_worker(qtbot):
    enabled_before = gc.isenabled()
    worker = workers.TaskWorker(lambda: 1)
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        workers.start_worker(worker)
    qtbot.waitUntil(lambda: not workers.running_threads(), timeout=10_000)
    return dict(gc_before_worker=enabled_before, gc_after_worker=gc.isenabled())


def test_1_app(qtbot):
    record("app", **start_a_worker(qtbot))


def test_2_plain():
    record("plain", gc_before_worker=gc.isenabled())


def test_3_app_again(qtbot):
    record("app again", **start_a_worker(qtbot))
'''


@pytest.fixture(scope="module")
def inner_run(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("inner_run")
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "conftest.py").write_text(CONFTEST.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "test_inner.py").write_text(INNER_TESTS, encoding="utf-8")
    temp = folder / "temp"  # the run's temporary folder: nothing else writes there
    temp.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={folder / 'basetemp'}", "test_inner.py"],
        cwd=folder, env={**os.environ, "TMPDIR": str(temp)}, capture_output=True, text=True,
        timeout=300)
    seen = [json.loads(line) for line in (folder / "seen.jsonl").read_text().splitlines()]
    return {"result": result, "seen": {entry["name"]: entry for entry in seen}, "temp": temp}


def test_the_run_passes_its_three_tests(inner_run):
    result = inner_run["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(inner_run["seen"]) == ["app", "plain", "app again"]


def test_each_test_remembers_calibrations_in_a_folder_of_its_own(inner_run):
    folders = [Path(entry["cache"]) for entry in inner_run["seen"].values()]
    assert len(set(folders)) == 3
    assert all(folder.parent == inner_run["temp"] for folder in folders)  # not ~/.cache


def test_no_calibration_folder_is_left_after_the_run(inner_run):
    assert not [p.name for p in inner_run["temp"].iterdir()
                if p.name.startswith("microlm-test-cache-")]


def test_the_garbage_collector_is_on_again_after_an_app_test(inner_run):
    seen = inner_run["seen"]
    assert seen["app"]["gc_before_worker"] and not seen["app"]["gc_after_worker"]
    assert seen["plain"]["gc_before_worker"]
    # the next app test starts the app's collector again, as a fresh app would
    assert seen["app again"]["gc_before_worker"] and not seen["app again"]["gc_after_worker"]


def test_the_thread_watch_is_stubbed_in_app_tests_only(inner_run):
    seen = inner_run["seen"]
    assert not seen["app"]["watch"] and not seen["app again"]["watch"]
    assert seen["plain"]["watch"]
