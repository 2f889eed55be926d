"""MicroLM Studio: the desktop application over the microlm library."""

from .main_window import MainWindow

__all__ = ["MainWindow"]
