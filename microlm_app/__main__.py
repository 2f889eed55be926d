"""Start MicroLM Studio: `microlm-app [FILE]` or `python -m microlm_app [FILE]`."""

from __future__ import annotations

import argparse
import sys

from .launch_checks import display_message, hidden_microlm_message

DEFAULT_SAMPLE = "Python documentation"


def build_parser() -> argparse.ArgumentParser:
    from microlm import SAMPLE_CORPORA

    parser = argparse.ArgumentParser(
        prog="microlm-app",
        description="MicroLM Studio: learn how language models work by training one.")
    parser.add_argument("file", nargs="?", metavar="FILE",
                        help="a text file to load at start")
    parser.add_argument("--sample", choices=SAMPLE_CORPORA, metavar="NAME", default=None,
                        help=f"a built-in sample text to load at start: "
                             f"{' or '.join(repr(name) for name in SAMPLE_CORPORA)} "
                             f"(default when no FILE is given: {DEFAULT_SAMPLE!r})")
    parser.add_argument("--screenshots", metavar="DIR", default=None,
                        help="take a guided tour instead of opening normally: load the "
                             "sample text, train for real, generate, inspect, and save a PNG "
                             "of every tab into DIR, then quit")
    parser.add_argument("--train-seconds", type=int, default=30, metavar="N",
                        help="with --screenshots: how long the tour trains (default 30)")
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before anything imports microlm: a folder that hides it would end in an ImportError.
    problem = hidden_microlm_message()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)

    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        # Qt aborts (exit 134) without a display or a library of its display plugin.
        problem = display_message()
        if problem:
            print(problem, file=sys.stderr)
            return 1

    from .main_window import APPLICATION, ORGANIZATION, MainWindow, app_icon

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANIZATION)
    app.setWindowIcon(app_icon())
    if args.screenshots:
        from .screenshots import run_tour

        return run_tour(args.screenshots, args.train_seconds)
    window = MainWindow()
    if args.file:
        window.data_tab.load_path(args.file)
    else:
        # Something to train on straight away, so the app is useful at first launch.
        window.data_tab.load_sample(args.sample or DEFAULT_SAMPLE)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
