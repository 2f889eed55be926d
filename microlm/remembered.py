"""What the library remembers between runs (calibrations, this machine's profile): small
JSON files in one cache folder, read forgivingly and written whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def cache_folder() -> Path | None:
    """$MICROLM_CACHE_DIR (empty: remember nothing), else the user's cache folder
    ($XDG_CACHE_HOME or ~/.cache, then microlm/)."""
    folder = os.environ.get("MICROLM_CACHE_DIR")
    if folder is None:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "microlm"
    return Path(folder) if folder else None


def read_json(path: Path) -> dict:
    """The object a file holds; empty when it is missing, unreadable or not an object."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def write_json(path: Path, data: dict) -> None:
    """Write `data` to `path` through a temporary file renamed over it, so that another
    process never reads half a file. A folder that cannot be written is not an error:
    the library then measures again next time."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(data), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
