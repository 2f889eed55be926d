"""MicroLM Studio with zero settings: from launch to a trained model, touching nothing.

    python tests/benchmarks/zero_settings.py [CORPUS] [--budget-minutes 3]

Starts the app as a first launch would find it (nothing remembered: an empty calibration
folder and fresh window settings), does what `microlm-app` does at start (load the
built-in text, show the window), waits until the Configure tab has measured this computer
and filled in its recommendation, presses Train and waits for the model. Prints the
seconds from the process's start to each of those moments, the model it trained, its best
validation loss and the last sample of its timeline.

The window is offscreen unless QT_QPA_PLATFORM says otherwise. Without CORPUS it trains on
the built-in text, as a person who touches nothing does; with one, as `microlm-app CORPUS`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import psutil
from common import add_corpus_argument


def main() -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/zero_settings.py",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_argument(parser)
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="change the Configure tab's time budget first (default: leave "
                             "the app's default of 3 minutes untouched)")
    args = parser.parse_args()

    started = psutil.Process().create_time()  # the process's start, before any import

    def since_launch() -> float:
        return time.time() - started

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    cache = tempfile.TemporaryDirectory()
    os.environ["MICROLM_CACHE_DIR"] = cache.name  # a first launch: nothing measured yet

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from microlm_app.__main__ import DEFAULT_SAMPLE
    from microlm_app.main_window import MainWindow
    from microlm_app.screenshots import wait_until

    app = QApplication(sys.argv[:1])
    settings = QSettings(os.path.join(cache.name, "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    if args.corpus is None:
        window.data_tab.load_sample(DEFAULT_SAMPLE)  # as microlm-app does at start
    else:
        window.data_tab.load_path(args.corpus)  # as microlm-app CORPUS does
    window.show()
    shown = since_launch()
    session, configure, train = window.session, window.configure_tab, window.train_tab
    wait_until(lambda: session.corpus is not None and not window.data_tab.is_loading
               and not configure.is_busy, 300, "the text and the measurement")
    if args.budget_minutes is not None:
        configure.budget_unit.setCurrentText("minutes")
        configure.budget_spin.setValue(args.budget_minutes)
    ready = since_launch()
    window.tabs.setCurrentWidget(train)
    train.train_button.click()
    pressed = since_launch()
    wait_until(lambda: train.is_training, 60, "training to start")
    budget = session.training_config.time_budget_s or 0
    wait_until(lambda: not train.is_training, budget * 3 + 300, "training to finish")
    done = since_launch()
    app.processEvents()

    model, metadata = session.model, session.model_metadata or {}
    samples = (metadata.get("history") or {}).get("samples") or []
    config = session.model_config
    print(f"window shown           {shown:6.1f} s after launch")
    print(f"measured, fields set   {ready:6.1f} s")
    print(f"Train pressed          {pressed:6.1f} s")
    print(f"model ready            {done:6.1f} s  (training: {done - pressed:.1f} s of a "
          f"{budget:.0f} s budget)")
    if model is None:
        print("no model: " + train.status_label.text())
        return 1
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: hidden size {config.hidden_dim}, {config.num_layers} layer(s), output "
          f"layer {config.output_hidden_dim} units, embedding {config.embedding_dim}, "
          f"{parameters:,} parameters; batch {session.training_config.batch_size} x "
          f"{session.training_config.sequence_length}")
    print(f"best validation loss {metadata.get('best_val_loss')}")
    if samples:
        step, seconds, val_loss, text = samples[-1]
        print(f"last sample (step {step}, {seconds:.0f} s of training, validation loss "
              f"{val_loss}):\n{text}")
    window.stop_workers()
    session.model_unsaved = False
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
