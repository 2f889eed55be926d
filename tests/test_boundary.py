"""The core library never loads Qt: importing microlm in a fresh interpreter must not."""

import pkgutil
import subprocess
import sys

import microlm

QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph")

# Imports each named module in turn and prints which Qt modules were loaded after it.
PROBE = """
import importlib, sys
qt = {qt!r}
for name in {modules!r}:
    importlib.import_module(name)
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in qt)
    print(name, ' '.join(loaded) or '-')
"""


def loaded_qt_modules(modules: list[str]) -> dict[str, str]:
    code = PROBE.format(qt=QT_MODULES, modules=modules)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def test_import_microlm_loads_no_qt():
    assert loaded_qt_modules(["microlm"]) == {"microlm": "-"}


def test_no_microlm_module_loads_qt():
    submodules = sorted(f"microlm.{m.name}" for m in pkgutil.iter_modules(microlm.__path__)
                        if m.name != "__main__")  # __main__ runs the command line
    assert {"microlm.model", "microlm.trainer", "microlm.checkpoint"} <= set(submodules)
    report = loaded_qt_modules(["microlm", *submodules])
    assert report == dict.fromkeys(["microlm", *submodules], "-")


def test_the_probe_would_notice_qt():
    # Guard against a probe that can never fail: importing PySide6 itself is seen.
    report = loaded_qt_modules(["pyqtgraph"])
    assert "pyqtgraph" in report["pyqtgraph"].split()
