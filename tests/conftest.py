"""Shared test set-up: Qt runs headless; no test may leave a worker thread running."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
