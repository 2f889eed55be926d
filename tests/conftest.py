"""Shared test set-up: Qt runs headless; no test may leave a worker thread running."""

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Calibrations are remembered in a folder of the tests' own (never the user's cache), shared
# with the microlm processes that tests start.
os.environ["MICROLM_CACHE_DIR"] = tempfile.mkdtemp(prefix="microlm-test-cache-")

import pytest  # noqa: E402

torch = pytest.importorskip("torch")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def no_worker_thread_left_running(request):
    """Fail any test that leaves a QThread started by microlm_app running."""
    yield
    import sys

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
