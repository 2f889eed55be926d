"""Checks made before the app starts, so that a failed first launch says what to do.

Two failures would otherwise show only Python's or Qt's own words:

- a folder named ``microlm`` (a checkout, an unrelated project) found before the installed
  library: ``ImportError: cannot import name ... from 'microlm' (unknown location)``;
- a Linux machine without a display, or without the system libraries Qt's xcb display
  plugin links: Qt aborts (exit 134), and its message names ``xcb-cursor0`` whichever
  library is missing.

Each check returns the message to show, or None when the launch can go on.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# The libraries Qt's xcb plugin (libqxcb.so and the libQt6XcbQpa.so.6 it links) needs from
# the system, with the Debian/Ubuntu package that holds each. The list of what is needed is
# read from the plugin itself (missing_xcb_libraries); this table only names the packages.
# `objdump -p libQt6XcbQpa.so.6 | grep NEEDED` lists them; `dpkg -S '*/SONAME'` names a package.
DEBIAN_PACKAGES = {
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
}

# The two ways to run the app where no display is at hand.
WITHOUT_DISPLAY_HINT = (
    "  QT_QPA_PLATFORM=offscreen microlm-app --screenshots DIR   saves a picture of every "
    "tab into DIR, with no window\n"
    "  xvfb-run microlm-app                                      runs it on a virtual X "
    "display (Debian/Ubuntu package xvfb)"
)

_LDD_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.MULTILINE)


def hidden_microlm_message(cwd: Path | None = None) -> str | None:
    """Why `import microlm` would not give the library next to this app, or None when it would.

    Looks the package up without importing it: a folder named microlm with no __init__.py
    (a checkout, say) found first on the module search path becomes a namespace package
    with no origin, and a regular package elsewhere than beside microlm_app is another one.
    """
    spec = importlib.util.find_spec("microlm")
    if spec is None:
        return ("microlm-app: the microlm library is not installed; "
                "install it with pip install -e . in the project folder.")
    if spec.origin not in (None, "namespace") and spec.origin.endswith("__init__.py"):
        found = Path(spec.origin).parent
        ours = Path(__file__).resolve().parents[1] / "microlm"
        if not (ours / "__init__.py").is_file() or found.resolve() == ours.resolve():
            return None
    elif spec.submodule_search_locations:
        found = Path(list(spec.submodule_search_locations)[0])
    else:  # a single file microlm.py
        found = Path(spec.origin)
    folder = found.parent.resolve()
    if folder == (cwd or Path.cwd()).resolve():
        where = f"the current folder ({folder})"
        reason = "it looks in the current folder before the installed packages"
        remedy = "run microlm-app from another folder"
    else:
        where = str(folder)
        reason = f"{folder} comes before the installed packages on its module search path"
        remedy = f"take {folder} off PYTHONPATH"
    kind = "folder" if found.is_dir() else "file"
    return (f"microlm-app: a {kind} named {found.name} in {where} hides the installed "
            f"microlm package (Python finds it first because {reason}); "
            f"{remedy}, or install with pip install -e . in the project folder.")


def missing_libraries(library: Path) -> list[str]:
    """The shared libraries (sonames) `library` needs that the dynamic loader cannot find.

    Asks `ldd`, which resolves them as the loader will (LD_LIBRARY_PATH, the plugin's own
    RUNPATH, the system cache) and follows them down; an empty list when ldd is absent.
    """
    try:
        result = subprocess.run(["ldd", str(library)], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ldd_missing(result.stdout)


def parse_ldd_missing(ldd_output: str) -> list[str]:
    """The names ldd reported as "not found", each once, in the order it listed them."""
    return list(dict.fromkeys(_LDD_NOT_FOUND.findall(ldd_output)))


def missing_xcb_libraries() -> list[str]:
    """The system libraries Qt's xcb platform plugin needs and cannot find (sonames)."""
    from PySide6.QtCore import QLibraryInfo

    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    plugin = plugins / "platforms" / "libqxcb.so"
    return missing_libraries(plugin) if plugin.is_file() else []


def install_command(sonames: list[str]) -> str | None:
    """`sudo apt-get install ...` for the known packages of `sonames`, or None if none known."""
    packages = dict.fromkeys(DEBIAN_PACKAGES[name] for name in sonames
                             if name in DEBIAN_PACKAGES)
    return f"sudo apt-get install {' '.join(packages)}" if packages else None


def _library_lines(sonames: list[str]) -> str:
    width = max(len(name) for name in sonames)
    lines = []
    for name in sonames:
        package = DEBIAN_PACKAGES.get(name)
        where = (f"Debian/Ubuntu package {package}" if package
                 else f"package unknown: `apt-file search {name}` names it")
        lines.append(f"  {name:<{width}}  ({where})")
    return "\n".join(lines)


def qt_platform(environ: Mapping[str, str]) -> str | None:
    """The platform Qt will try first: 'xcb', 'wayland', another name, or None for Qt's default.

    QT_QPA_PLATFORM may list fallbacks ("wayland;xcb") and options ("xcb:foo=1").
    """
    requested = environ.get("QT_QPA_PLATFORM", "").strip()
    if not requested:
        return None
    return requested.split(";")[0].split(":")[0].strip().lower() or None


def display_message(environ: Mapping[str, str] | None = None,
                    missing: Callable[[], list[str]] | None = None,
                    system: str = sys.platform) -> str | None:
    """Why Qt could not open a window on this Linux machine, or None when it can try.

    Only for Qt's xcb platform: the one Qt uses when QT_QPA_PLATFORM is unset or 'xcb' and no
    Wayland session is running (Qt 6 tries wayland first when WAYLAND_DISPLAY is set or
    XDG_SESSION_TYPE is wayland). `missing` lists the libraries the plugin lacks.
    """
    environ = os.environ if environ is None else environ
    missing = missing or missing_xcb_libraries
    if not system.startswith("linux"):
        return None
    platform = qt_platform(environ)
    wayland_session = bool(environ.get("WAYLAND_DISPLAY")) or \
        environ.get("XDG_SESSION_TYPE", "").lower() == "wayland"
    if platform not in (None, "xcb") or (platform is None and wayland_session):
        return None
    if not environ.get("DISPLAY"):
        unset = ("DISPLAY is not set" if platform == "xcb"
                 else "neither DISPLAY nor WAYLAND_DISPLAY is set")
        message = (f"microlm-app cannot open its window: there is no display ({unset}).\n"
                   f"Start it from a desktop session, or:\n{WITHOUT_DISPLAY_HINT}")
        command = install_command(missing())
        if command:
            message += ("\nA window, on a desktop or under xvfb-run, also needs the libraries "
                        f"Qt's xcb display plugin links:\n  {command}")
        return message
    sonames = missing()
    if not sonames:
        return None
    message = ("microlm-app cannot open its window: Qt's xcb display plugin needs system "
               f"libraries that are not installed:\n{_library_lines(sonames)}")
    command = install_command(sonames)
    if command:
        message += f"\nInstall them with:\n  {command}\nthen start microlm-app again."
    return message + ("\nWithout a window, QT_QPA_PLATFORM=offscreen microlm-app "
                      "--screenshots DIR saves a picture of every tab into DIR.")
