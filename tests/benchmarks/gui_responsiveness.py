"""MicroLM Studio: how long the window's event loop goes without a turn, phase by phase.

    python tests/benchmarks/gui_responsiveness.py [CORPUS] [--seconds 10] [--points 50000]

A 5 ms QTimer in the GUI thread (the heartbeat) records the time between its ticks; a gap
much longer than 5 ms is a moment the window could neither repaint nor answer a click.
For each phase the script prints the longest gap and the 99th percentile:

  idle      the window doing nothing (the machine's noise floor)
  (a)       a training run of --seconds through the Train tab ("small" preset, CORPUS),
            then the 5 s after it ended, while the tabs take the new model
  (b)       the Train tab's plot showing three compared runs of --points points each
            (the time that takes), then panned and zoomed 60 times over 3 s
  (c)       the Generate tab's temperature slider moved 30 times over 3 s with the live
            preview on (skipped when the tab has no livePreviewCheck)

The window is offscreen unless QT_QPA_PLATFORM says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np
from common import add_corpus_argument, app_window, corpus_name, load_corpus

from microlm import PRESETS, CharacterTokenizer, corpus_stats

HEARTBEAT_MS = 5
PHASE_SECONDS = 3  # idle, pan/zoom and slider phases
AFTER_RUN_SECONDS = 5  # the Inspect tab's pages take the new model for a few seconds
PAN_ZOOM_ACTIONS = 60
SLIDER_MOVES = 30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/gui_responsiveness.py",
                                     description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="time budget of the training run in phase (a) (default 10)")
    parser.add_argument("--points", type=int, default=50_000,
                        help="steps in each of the three compared runs of phase (b) "
                             "(default 50000)")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.corpus)

    app, window = app_window(1280, 900)
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QCheckBox

    from microlm_app.loss_plot import ComparedRun
    session, train = window.session, window.train_tab
    tokenizer = CharacterTokenizer(corpus.text)
    session.set_corpus(corpus, corpus_stats(corpus.text, tokenizer), tokenizer)
    preset = PRESETS["small"]
    window.configure_tab.apply_configs(
        preset.model_config(tokenizer.vocab_size()),
        preset.training_config(epochs=1000, time_budget_s=args.seconds, sample_interval=100))
    window.tabs.setCurrentWidget(train)
    app.processEvents()
    print(f"MicroLM Studio event-loop gaps ({HEARTBEAT_MS} ms heartbeat) on "
          f"{corpus_name(args.corpus)}, {os.cpu_count()} CPUs", flush=True)

    def measure(start: Callable[[QEventLoop], None]) -> np.ndarray:
        """Run one phase: `start(loop)` begins it and quits the loop when it is over; the
        gaps (s) between heartbeat ticks meanwhile."""
        ticks = [time.perf_counter()]
        heartbeat = QTimer()
        heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
        heartbeat.setInterval(HEARTBEAT_MS)
        heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
        loop = QEventLoop()
        heartbeat.start()
        QTimer.singleShot(0, lambda: start(loop))
        loop.exec()
        heartbeat.stop()
        return np.diff(np.array(ticks))

    def report(name: str, gaps: np.ndarray) -> None:
        print(f"{name:<44} {len(gaps):>6} ticks   longest {1000 * gaps.max():7.1f} ms   "
              f"99th percentile {1000 * np.percentile(gaps, 99):6.1f} ms", flush=True)

    def every(ms: int, count: int, action: Callable[[int], None], loop: QEventLoop) -> None:
        """Call action(0..count-1) every `ms` ms, then end the phase half a second later."""
        done = {"n": 0}
        timer = QTimer(loop)
        timer.setInterval(ms)

        def tick() -> None:
            action(done["n"])
            done["n"] += 1
            if done["n"] == count:
                timer.stop()
                QTimer.singleShot(500, loop.quit)

        timer.timeout.connect(tick)
        timer.start()

    report("idle (noise floor)",
           measure(lambda loop: QTimer.singleShot(PHASE_SECONDS * 1000, loop.quit)))

    def train_phase(loop: QEventLoop) -> None:
        train.run_finished.connect(loop.quit)
        train.continue_check.setChecked(False)
        train.start_training()
        if not train.is_training:
            print(f"error: the Train tab did not start: {train.train_blocked_reason()}")
            loop.quit()

    report(f"(a) training for {args.seconds:g} s", measure(train_phase))
    # the tabs take the new model (the Inspect tab computes its pages); kept apart so that
    # it neither hides in nor spoils the next phase
    report(f"    the {AFTER_RUN_SECONDS} s after the run ended",
           measure(lambda loop: QTimer.singleShot(AFTER_RUN_SECONDS * 1000, loop.quit)))

    rng = np.random.default_rng(0)
    steps = np.arange(1, args.points + 1)
    runs = [ComparedRun(f"run {i + 1}", steps,
                        3.0 * np.exp(-steps / (0.2 * args.points)) + 1.2 + 0.2 * i
                        + 0.1 * rng.random(args.points),
                        steps[::500], 1.3 + 0.2 * i + 0.05 * rng.random(len(steps[::500])))
            for i in range(3)]
    view = train.loss_plot.getPlotItem().getViewBox()

    started = time.perf_counter()
    train.loss_plot.set_compared_runs(runs)
    view.autoRange()
    train.loss_plot.repaint()
    print(f"(b) showing 3 compared runs x {args.points:,} points took "
          f"{1000 * (time.perf_counter() - started):.1f} ms in the GUI thread", flush=True)

    def pan_and_zoom(loop: QEventLoop) -> None:
        def act(n: int) -> None:  # zoom in, pan right, ..., then zoom back out
            if n % 3 == 0:
                view.scaleBy((0.8, 1.0) if n < PAN_ZOOM_ACTIONS // 2 else (1.25, 1.0))
            else:
                width = view.viewRange()[0][1] - view.viewRange()[0][0]
                view.translateBy(x=0.1 * width * (1 if n < PAN_ZOOM_ACTIONS // 2 else -1))

        every(PHASE_SECONDS * 1000 // PAN_ZOOM_ACTIONS, PAN_ZOOM_ACTIONS, act, loop)

    report(f"    then panned/zoomed {PAN_ZOOM_ACTIONS} times", measure(pan_and_zoom))
    train.loss_plot.set_compared_runs([])

    generate = window.generate_tab
    live = generate.findChild(QCheckBox, "livePreviewCheck")
    name = f"(c) temperature slider x {SLIDER_MOVES}, live preview"
    if live is None:
        print(f"{name:<44} skipped: the Generate tab has no livePreviewCheck")
    elif session.model is None:
        print(f"{name:<44} skipped: the training run left no model")
    else:
        window.tabs.setCurrentWidget(generate)
        live.setChecked(True)
        slider = generate.temperature_slider
        low, high = slider.minimum(), slider.maximum()

        def move(loop: QEventLoop) -> None:
            every(PHASE_SECONDS * 1000 // SLIDER_MOVES, SLIDER_MOVES,
                  lambda n: slider.setValue(low + (n * 7) % (high - low + 1)), loop)

        report(name, measure(move))

    for tab in (window.data_tab, window.configure_tab, train, generate, window.inspect_tab):
        tab.stop_workers()
    window.session.model_unsaved = False  # nothing to ask about on close
    window.hide()
    return 0


if __name__ == "__main__":
    sys.exit(main())
