"""A first launch that cannot work says why and what to do, instead of Qt's abort or a traceback."""

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from microlm_app import launch_checks
from microlm_app.launch_checks import display_message, hidden_microlm_message

PROJECT = Path(__file__).resolve().parents[1]

# What `ldd libQt6XcbQpa.so.6` prints on a Debian 12 machine without libxcb-icccm4.
LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007feb43529000)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007feb43451000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007feb43449000)
\tlibxcb-keysyms.so.1 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007feb4181e000)
\tlibxcb-icccm.so.4 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007feb4352b000)
"""


def never_asked() -> list[str]:
    raise AssertionError("the display libraries were looked up for a platform that needs none")


@pytest.fixture
def icccm_missing(monkeypatch):
    """The dynamic loader finds every library of the xcb plugin but libxcb-icccm.so.4."""
    asked = []

    def missing_libraries(library: Path) -> list[str]:
        asked.append(library.name)
        return ["libxcb-icccm.so.4"]

    monkeypatch.setattr(launch_checks, "missing_libraries", missing_libraries)
    return asked


def test_missing_icccm_names_it_and_the_command_that_installs_it(icccm_missing):
    message = display_message({"DISPLAY": ":0"}, system="linux")

    assert icccm_missing == ["libqxcb.so"]  # the plugin's own dependencies were read
    assert "libxcb-icccm.so.4" in message
    assert "Debian/Ubuntu package libxcb-icccm4" in message
    assert "sudo apt-get install libxcb-icccm4\n" in message
    assert "cursor" not in message  # Qt's own message would blame xcb-cursor0


def test_every_missing_library_goes_into_one_install_command():
    message = display_message({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"},
                              missing=lambda: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1",
                                               "libglib-2.0.so.0", "libgthread-2.0.so.0"],
                              system="linux")

    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libglib2.0-0\n" in message


def test_a_library_with_no_known_package_is_named_with_a_way_to_find_it():
    message = display_message({"DISPLAY": ":0"}, missing=lambda: ["libxcb-future.so.9"],
                              system="linux")

    assert "libxcb-future.so.9" in message
    assert "apt-file search libxcb-future.so.9" in message
    assert "apt-get install" not in message


def test_no_display_says_so_and_how_to_run_without_one():
    message = display_message({}, missing=lambda: [], system="linux")

    assert "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)" in message
    assert "QT_QPA_PLATFORM=offscreen microlm-app --screenshots DIR" in message
    assert "xvfb-run microlm-app" in message
    assert "apt-get" not in message


def test_no_display_also_names_the_libraries_a_window_would_need():
    message = display_message({}, missing=lambda: ["libxcb-icccm.so.4"], system="linux")

    assert "there is no display" in message
    assert "sudo apt-get install libxcb-icccm4" in message


def test_xcb_asked_for_by_name_needs_display_even_in_a_wayland_session():
    message = display_message({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"},
                              missing=lambda: [], system="linux")

    assert "there is no display (DISPLAY is not set)" in message


def test_everything_present_lets_the_launch_go_on(icccm_missing, monkeypatch):
    monkeypatch.setattr(launch_checks, "missing_libraries", lambda library: [])

    assert display_message({"DISPLAY": ":0"}, system="linux") is None
    assert display_message({"QT_QPA_PLATFORM": "xcb:nomitshm", "DISPLAY": ":1"},
                           system="linux") is None


@pytest.mark.parametrize("environ", [
    {"QT_QPA_PLATFORM": "offscreen"},
    {"QT_QPA_PLATFORM": "minimal", "DISPLAY": ":0"},
    {"QT_QPA_PLATFORM": "wayland;xcb", "WAYLAND_DISPLAY": "wayland-0"},
    {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"},  # Qt 6 tries wayland first
    {"XDG_SESSION_TYPE": "wayland"},
])
def test_platforms_that_do_not_use_xcb_are_not_checked(environ):
    assert display_message(environ, missing=never_asked, system="linux") is None


def test_other_systems_are_not_checked():
    assert display_message({}, missing=never_asked, system="darwin") is None
    assert display_message({}, missing=never_asked, system="win32") is None


def test_ldd_output_gives_each_missing_library_once_in_order():
    assert launch_checks.parse_ldd_missing(LDD_OUTPUT) == ["libxcb-icccm.so.4",
                                                           "libxcb-keysyms.so.1"]
    assert launch_checks.parse_ldd_missing(LDD_OUTPUT.replace("not found", "/x/y.so")) == []


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd")
def test_a_library_whose_dependencies_are_all_found_misses_nothing(tmp_path):
    import _ctypes  # a compiled module of Python itself: its dependencies are present

    assert launch_checks.missing_libraries(Path(_ctypes.__file__)) == []
    assert launch_checks.missing_libraries(tmp_path / "absent.so") == []


def test_the_installed_microlm_beside_the_app_is_not_reported():
    assert hidden_microlm_message() is None


def test_a_namespace_folder_named_microlm_is_reported_where_it_is(tmp_path, monkeypatch):
    folder = tmp_path / "microlm"
    folder.mkdir()
    spec = importlib.machinery.ModuleSpec("microlm", None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    monkeypatch.setattr(launch_checks.importlib.util, "find_spec", lambda name: spec)

    in_cwd = hidden_microlm_message(cwd=tmp_path)
    elsewhere = hidden_microlm_message(cwd=PROJECT)

    assert f"a folder named microlm in the current folder ({tmp_path.resolve()})" in in_cwd
    assert "it looks in the current folder before the installed packages" in in_cwd
    assert "run microlm-app from another folder, or install with pip install -e ." in in_cwd
    assert f"{tmp_path.resolve()} comes before the installed packages" in elsewhere
    assert f"take {tmp_path.resolve()} off PYTHONPATH, or install with pip install -e ." \
        in elsewhere
    for message in (in_cwd, elsewhere):
        assert "hides the installed microlm package" in message


def run_app(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def app_only_path(tmp_path: Path) -> Path:
    """A folder on PYTHONPATH that holds microlm_app and not the microlm library."""
    folder = tmp_path / "app_only"
    folder.mkdir()
    (folder / "microlm_app").symlink_to(PROJECT / "microlm_app")
    return folder


def test_an_empty_microlm_folder_in_the_current_folder_is_explained(tmp_path):
    cwd = tmp_path / "home"
    (cwd / "microlm").mkdir(parents=True)  # a checkout: no __init__.py at its top
    env = {**os.environ, "PYTHONPATH": str(app_only_path(tmp_path))}

    # -S: no site-packages, so the library is found nowhere but in the folder, whichever
    # way it was installed; `python -m` puts the current folder first.
    result = run_app(["-S", "-m", "microlm_app"], cwd, env)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (f"a folder named microlm in the current folder ({cwd.resolve()}) hides the "
            "installed microlm package") in result.stderr
    assert "pip install -e ." in result.stderr


def test_another_package_named_microlm_in_the_current_folder_is_explained(tmp_path):
    cwd = tmp_path / "home"
    (cwd / "microlm").mkdir(parents=True)
    (cwd / "microlm" / "__init__.py").write_text('"""Some other project."""\n')
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}

    result = run_app(["-m", "microlm_app", "--help"], cwd, env)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"a folder named microlm in the current folder ({cwd.resolve()})" in result.stderr
    assert result.stdout == ""


def test_help_works_from_any_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}

    result = run_app(["-m", "microlm_app", "--help"], tmp_path, env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: microlm-app")
    assert result.stderr == ""


def display_env(**values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if name not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    return {**env, "PYTHONPATH": str(PROJECT), **values}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check is for Linux")
def test_the_app_without_a_display_exits_with_the_message_not_an_abort(tmp_path):
    result = run_app(["-m", "microlm_app"], tmp_path, display_env())

    assert result.returncode == 1  # Qt's abort is 134
    assert "there is no display" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check is for Linux")
def test_the_app_missing_a_library_exits_with_the_message_not_an_abort(tmp_path):
    code = ("import sys\n"
            "from microlm_app import __main__ as app, launch_checks\n"
            "launch_checks.missing_libraries = lambda library: ['libxcb-icccm.so.4']\n"
            "sys.exit(app.main([]))\n")

    result = run_app(["-c", code], tmp_path, display_env(DISPLAY=":0"))

    assert result.returncode == 1
    assert "sudo apt-get install libxcb-icccm4" in result.stderr
    assert "Traceback" not in result.stderr
