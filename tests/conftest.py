"""Shared test set-up: Qt runs headless; each test remembers calibrations in a folder of its
own; app tests train without the thread watch; no test may leave a worker thread running or
Python's garbage collector turned off."""

import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Calibrations made outside any test (in module fixtures) are remembered in a folder of the
# run's own, never the user's cache, and removed when the run ends (pytest_unconfigure).
_RUN_CACHE_DIR = tempfile.mkdtemp(prefix="microlm-test-cache-")
_RUN_CACHE_OWNER = os.getpid()  # a forked child that ends must not remove it
os.environ["MICROLM_CACHE_DIR"] = _RUN_CACHE_DIR

import pytest  # noqa: E402

torch = pytest.importorskip("torch")
torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_unconfigure(config):
    if os.getpid() == _RUN_CACHE_OWNER:
        shutil.rmtree(_RUN_CACHE_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def own_calibration_cache(monkeypatch):
    """Each test, and every microlm process it starts (they inherit os.environ), remembers
    calibrations in a folder of its own, removed after the test: a time-budget test must
    not reuse the measurement of an earlier test."""
    with tempfile.TemporaryDirectory(prefix="microlm-test-cache-",
                                     ignore_cleanup_errors=True) as folder:
        monkeypatch.setenv("MICROLM_CACHE_DIR", folder)
        yield Path(folder)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "measures_machine: the test measures this machine the real way (its own "
        "fakes, if any), without the fast fake of fast_machine_measurement")


# The fake machine every test's app finds already measured: a plausible 2-core CPU.
FAKE_SPEED_VALUES = {"device": "cpu", "step_overhead_s": 0.002, "flops_per_second": 2e9}


@pytest.fixture(autouse=True)
def fast_machine_measurement(request, monkeypatch, own_calibration_cache):
    """No app test (one that uses qtbot) measures this machine when a window starts or
    Measure again is pressed: the measurement (probe + calibration) returns a fixed fake
    profile at once, and the window finds it already remembered, so it starts measured, with
    no worker. Tests marked measures_machine opt out; tests without Qt (the command line)
    keep the real measurement. Yields the fake profile (None where not faked)."""
    if "qtbot" not in request.fixturenames or request.node.get_closest_marker(
            "measures_machine"):
        yield None
        return
    from microlm import machine_profile
    from microlm.hardware import HardwareInfo
    from microlm.speed import MachineSpeed

    profile = machine_profile.MachineProfile(
        HardwareInfo(cpu_model="Fake CPU", physical_cores=2, logical_cores=2,
                     total_ram_bytes=16 * 2**30, available_ram_bytes=8 * 2**30,
                     torch_version=torch.__version__, cuda_devices=(), mps_available=False,
                     device="cpu"),
        MachineSpeed(**FAKE_SPEED_VALUES), measured_at=1_800_000_000.0)
    monkeypatch.setattr(machine_profile, "measure", lambda *args, **kwargs: profile)
    machine_profile.remember(profile)
    yield profile


@pytest.fixture(autouse=True)
def garbage_collector_back_on():
    """The app's first worker starts pyqtgraph's GarbageCollector, which turns Python's
    automatic garbage collection off for good (it collects on a GUI-thread timer instead).
    After a test that did so, automatic collection is on again, and the app's collector is
    stopped and forgotten so that the next app test starts it as a fresh app would."""
    was_enabled = gc.isenabled()
    yield
    if was_enabled and not gc.isenabled():
        workers = sys.modules.get("microlm_app.workers")
        if workers is not None and workers._gui_thread_collector is not None:
            workers._gui_thread_collector.timer.stop()
            workers._gui_thread_collector = None
        gc.enable()


@pytest.fixture(autouse=True)
def no_thread_watch_in_app_tests(request, monkeypatch):
    """App tests (those that use qtbot) train without the thread watch. The real watch
    answers the machine's own load: on a busy machine it moves a run to one thread and
    says so, which an app test would then see. Tests without qtbot keep the real watch,
    and test it (test_hardware.py, test_workers.py, test_cli.py)."""
    if "qtbot" in request.fixturenames:
        from microlm_app import workers

        monkeypatch.setattr(workers.SlowdownWatch, "for_run", staticmethod(lambda device: None))


@pytest.fixture(autouse=True)
def no_worker_thread_left_running(request, own_calibration_cache, garbage_collector_back_on):
    """Fail any test that leaves a QThread started by microlm_app running. (It asks for the
    two fixtures so that they are taken down after it: once no worker runs any more.)"""
    yield
    if "microlm_app.workers" not in sys.modules:
        return
    workers = sys.modules["microlm_app.workers"]
    alive = workers.running_threads()
    for thread in alive:  # do not let one leak poison the following tests
        thread.quit()
        thread.wait(5000)
    assert not alive, f"{request.node.name} left worker threads running: {alive}"


@pytest.fixture
def gui_thread_tensor_ops():
    """The names of tensor operations the test's own (GUI) thread runs on tensors of over
    1,000 values. Torch function modes are per thread, so workers are not watched. Tensor
    math on the GUI thread gives it an OpenMP team of its own; with two teams on a
    2-core machine every later training run in the app ran ~3x slower."""
    from torch.overrides import TorchFunctionMode

    recorded: list[str] = []
    metadata = {"__get__", "numel", "dim", "size", "stride", "__len__", "data_ptr"}  # no math

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = getattr(func, "__name__", str(func))
            if name not in metadata and any(isinstance(a, torch.Tensor) and a.numel() > 1000
                                            for a in (*args, *kwargs.values())):
                recorded.append(name)
            return func(*args, **kwargs)

    with Watch():
        yield recorded


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, above all on a busy 2-core machine; the
    module's tests run on one, and the count is restored after them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_tab(qtbot):
    """A Train tab factory (the tab holds `session`, sized as a window would show it); a
    failing test still stops its training thread."""
    from microlm_app.tabs.train_tab import TrainTab

    tabs = []

    def make(session, size: tuple[int, int] = (1000, 700)) -> TrainTab:
        tab = TrainTab(session)
        qtbot.addWidget(tab)
        tab.resize(*size)
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        assert tab.stop_workers(10_000)
