"""What the measurement scripts beside this file share: the corpus argument, the environment
of the fresh processes they start, and their tables."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import microlm
from microlm import Corpus, CorpusError, read_corpus, sample_corpus

SAMPLE = "Python documentation"  # the built-in text used when no corpus is given


def add_corpus_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", nargs="?", type=Path, metavar="CORPUS",
                        help="the text file to measure on (the project's figures use "
                             "tinyshakespeare.txt); default: the built-in Python "
                             "documentation sample")


def load_corpus(path: Path | None) -> Corpus:
    """The text of `path`, or the built-in sample for None. A file that cannot be read ends
    the script with a one-line message and status 1."""
    if path is None:
        return sample_corpus(SAMPLE)
    try:
        return read_corpus(path)
    except (CorpusError, OSError) as err:
        sys.exit(f"error: cannot use the corpus {path}: {err}")


def corpus_name(path: Path | None) -> str:
    return "python-docs (built in)" if path is None else path.name


def train_arguments(path: Path | None) -> list[str]:
    """How `microlm train` is told about this corpus."""
    return ["--sample", "python-documentation"] if path is None else [str(path)]


def corpus_arguments(path: Path | None) -> list[str]:
    """How a script's own fresh process is told about this corpus."""
    return [] if path is None else [str(path)]


def child_env() -> dict[str, str]:
    """The environment of a fresh process: it imports the same microlm as this script,
    installed or not."""
    root = str(Path(microlm.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def last_line(text: str) -> str:
    return (text.strip().splitlines() or ["?"])[-1]


def format_table(rows: Sequence[Sequence[str]], left_columns: int = 1) -> str:
    """Words left-aligned (the first `left_columns`), numbers right-aligned, a rule under
    the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [cell.ljust(width) if i < left_columns else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        return "  " + "  ".join(cells).rstrip()

    rule = "  " + "  ".join("-" * width for width in widths)
    return "\n".join([line(rows[0]), rule] + [line(row) for row in rows[1:]])


def app_window(width: int, height: int):
    """(QApplication, MainWindow) for a benchmark: offscreen unless QT_QPA_PLATFORM says
    otherwise, its geometry and settings kept out of the user's own, shown at this size."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      tempfile.mkdtemp(prefix="microlm-bench-"))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from microlm_app.main_window import MainWindow

    window = MainWindow()
    window.resize(width, height)
    window.show()
    return app, window
