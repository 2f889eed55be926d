"""What the Train tab says about a run besides its numbers: the overfitting hint and the
words for how a run ended."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QLabel

from microlm import Evaluated, TrainingFinished

OVERFITTING_RISE = 0.01  # a rise of the validation loss this large at once is not noise
OVERFITTING_HINT = ("The validation loss is rising while the training loss keeps falling: the "
                    "model is starting to memorise the training text (overfitting): consider "
                    "more dropout, a smaller model or stopping here.")
ENDINGS = {"completed": "Training finished", "stopped": "Training stopped",
           "early_stopping": "Stopped early (validation loss stopped improving)",
           "time_budget": "Time budget used", "diverged": "Training diverged"}


def is_overfitting(evaluations: Sequence[Evaluated]) -> bool:
    """The validation loss rose while the training loss fell: by more than
    OVERFITTING_RISE at once, or at two validations in a row. A single smaller rise is
    noise (a final validation a few steps after the last periodic one, say)."""
    if len(evaluations) < 2:
        return False
    *_, previous, latest = evaluations
    if not (latest.val_loss > previous.val_loss and latest.train_loss < previous.train_loss):
        return False
    return (latest.val_loss > previous.val_loss * (1 + OVERFITTING_RISE)
            or (len(evaluations) >= 3 and previous.val_loss > evaluations[-3].val_loss))


def overfitting_hint_label() -> QLabel:
    """The hint shown while the model seems to memorise its text; hidden at first."""
    hint = QLabel(OVERFITTING_HINT)
    hint.setObjectName("overfittingHint")
    hint.setAccessibleName("Overfitting hint")
    hint.setWordWrap(True)
    hint.setStyleSheet("background: #fff4d6; border: 1px solid #e0b84c; padding: 4px;")
    hint.hide()
    return hint


def ending(finished: TrainingFinished) -> str:
    return ENDINGS.get(finished.reason, finished.reason)


def end_message(finished: TrainingFinished, kept_model: bool) -> str:
    """The status bar's line when a run ends."""
    return (f"{ending(finished)} at step {finished.step:,}"
            + (f", best validation loss {finished.best_val_loss:.3f}"
               if finished.best_val_loss is not None else "")
            + (": model ready." if kept_model else "."))
