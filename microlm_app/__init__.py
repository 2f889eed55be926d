"""MicroLM Studio: the desktop application over the microlm library."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["MainWindow"]


def __getattr__(name: str) -> object:
    # The window (and with it Qt and microlm) loads on first use, so that the launch checks
    # of `python -m microlm_app` run before anything imports microlm.
    if name == "MainWindow":
        from .main_window import MainWindow

        return MainWindow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
