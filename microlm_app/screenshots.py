"""A guided tour: drive the app as a person would, briefly, and save a picture of each tab.

`python -m microlm_app --screenshots DIR` loads the built-in sample text, waits for the
Configure tab to measure the computer, applies the recommendation for a short time budget,
trains twice for real (the recommended model, then one with half its hidden size) and
compares the two runs, moves the temperature slider for a live preview, generates at
several temperatures and opens every Inspect page, saving a PNG after each step. It uses
only what a person can click.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QWidget

from .main_window import MainWindow
from .tabs.inspect.activation_page import ActivationPage

TOUR_PROMPT = "The "


class TourError(RuntimeError):
    """A step of the tour did not finish in time."""


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Run the event loop until predicate() is true. The loop sleeps between 50 ms
    checks, so workers are not starved by a busy processEvents() spin."""
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(50)

    def check() -> None:
        if predicate() or time.monotonic() > deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    if not predicate():
        loop.exec()
    timer.stop()
    if not predicate():
        raise TourError(f"Timed out after {timeout_s:.0f} s waiting for {what}.")


def settle(seconds: float = 0.4) -> None:
    """Let pending signals and the plots' redraw timers run before a picture is taken."""
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def take_tour(window: MainWindow, out_dir: str | Path, train_seconds: int = 30,
              log: Callable[[str], None] = print) -> list[Path]:
    """Drive `window` through load -> configure -> train -> generate -> inspect; return the
    PNG files written to out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def shoot(tab: QWidget, name: str) -> None:
        window.tabs.setCurrentWidget(tab)
        settle()
        path = out / f"{name}.png"
        if not window.grab().save(str(path)):
            raise TourError(f"Could not write {path}.")
        saved.append(path)
        log(f"saved {path}")

    session = window.session
    if session.corpus is None and not window.data_tab.is_loading:
        window.data_tab.load_sample("Python documentation")
    wait_until(lambda: session.corpus is not None and not window.data_tab.is_loading, 120,
               "the sample text to load")
    shoot(window.data_tab, "1-data")

    configure = window.configure_tab
    wait_until(lambda: not configure.is_busy, 120, "the Configure tab to measure this computer")
    configure.budget_unit.setCurrentText("seconds")
    configure.budget_spin.setValue(train_seconds)
    configure.stop_at_budget.setChecked(True)
    configure.apply_recommended()
    wait_until(lambda: not configure.is_busy, 120, "the recommendation")
    shoot(configure, "2-configure")

    train = window.train_tab
    window.tabs.setCurrentWidget(train)
    hidden = configure.spins["hidden_dim"]
    recommended_hidden = hidden.value()
    for run, hidden_size in enumerate((recommended_hidden // 2, recommended_hidden)):
        # the smaller model first, so the one the rest of the tour uses is the recommended
        hidden.setValue(hidden_size)  # a new size: Train starts a new model
        train.start_training()
        wait_until(lambda: train.is_training, 30, "training to start")
        log(f"run {run + 1}: hidden size {hidden_size}, about {train_seconds} s ...")
        wait_until(lambda: not train.is_training, train_seconds * 4 + 120, "training to finish")
        if session.model is None:
            raise TourError("Training ended without a model; see the Train tab's message.")
    train.runs_panel.set_ticked([run.label for run in session.runs])
    shoot(train, "3-train")

    generate = window.generate_tab
    generate.prompt_edit.setPlainText(TOUR_PROMPT)
    generate.length_spin.setValue(600)
    generate.seed_spin.setValue(7)
    generate.colour_check.setChecked(True)
    window.tabs.setCurrentWidget(generate)
    for steps in range(10, 17):  # dragging the slider from 0.50 to 0.80: a live preview
        generate.temperature_slider.setValue(steps)
        settle(0.05)
    settle(0.3)
    wait_until(lambda: not generate.is_generating, 120, "the live preview")
    shoot(generate, "4-generate")
    generate.compare_button.click()
    wait_until(lambda: not generate.is_generating, 300, "the temperature comparison")
    generate.output_tabs.setCurrentIndex(generate.output_tabs.count() - 1)
    shoot(generate, "5-generate-compare")

    inspect = window.inspect_tab
    window.tabs.setCurrentWidget(inspect)
    for page in range(inspect.pages.count()):
        inspect.pages.setCurrentIndex(page)
        settle(0.3)
        wait_until(lambda: not inspect.is_busy, 120, "the Inspect tab's computations")
        title = inspect.pages.tabText(page).lower().replace(" ", "-")
        shoot(inspect, f"{6 + page}-inspect-{title}")
    activations = inspect.page(ActivationPage)
    inspect.pages.setCurrentWidget(activations)
    activations.activation_view.char_clicked.emit(40)  # as a click on the 41st character
    wait_until(lambda: not inspect.is_busy, 120, "the step-by-step computation")
    shoot(inspect, f"{6 + inspect.pages.count()}-inspect-step-by-step")
    return saved


def run_tour(out_dir: str | Path, train_seconds: int = 30) -> int:
    """Build the window, take the tour, close without asking; 0 on success."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    # Settings in a throw-away file: the tour neither reads nor changes the person's own.
    settings_dir = tempfile.TemporaryDirectory()
    settings = QSettings(str(Path(settings_dir.name) / "tour.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1280, 900)
    window.show()
    result = {"code": 1}

    def go() -> None:
        try:
            take_tour(window, out_dir, train_seconds)
            result["code"] = 0
        except Exception as err:  # noqa: BLE001 - report, then close cleanly
            print(f"error: the screenshot tour failed: {err}")
        finally:
            window.stop_workers()
            settle(0.5)  # let the stopped workers' last signals arrive
            window.session.model_unsaved = False  # a tour's model is not worth a prompt
            window.close()
            app.quit()

    QTimer.singleShot(0, go)
    app.exec()
    return result["code"]
