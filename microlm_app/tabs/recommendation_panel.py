"""The Configure tab's recommendation box: the time budget, Apply recommended, whether the
fields hold the recommendation, and why each setting was chosen."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from microlm.recommendation_reasons import Reason

DEFAULT_BUDGET_MINUTES = 3  # a first run: long enough to learn words, short enough to wait
NOTE_STYLE = "QLabel { color: #555555; }"


class RecommendationPanel(QGroupBox):
    """The time budget and the recommendation for it, with a reason per setting."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Recommendation for a time budget", parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Time budget:"))
        self.budget_spin = QSpinBox(objectName="timeBudgetSpin")
        self.budget_spin.setAccessibleName("Time budget")
        self.budget_spin.setRange(1, 9999)
        self.budget_spin.setValue(DEFAULT_BUDGET_MINUTES)
        self.budget_spin.setToolTip(
            "How long you are willing to train, from pressing Train to the model ready. The "
            "recommendation picks the largest model that still learns well in this time on "
            "this computer.")
        row.addWidget(self.budget_spin)
        self.budget_unit = QComboBox(objectName="timeBudgetUnit")
        self.budget_unit.setAccessibleName("Time budget unit")
        self.budget_unit.addItems(["minutes", "seconds"])
        self.budget_unit.setToolTip("Unit of the time budget.")
        row.addWidget(self.budget_unit)
        self.stop_at_budget = QCheckBox("Stop training when it runs out",
                                        objectName="stopAtBudgetCheck")
        self.stop_at_budget.setAccessibleName("Stop training when the time budget runs out")
        self.stop_at_budget.setToolTip(
            "When ticked, training ends (keeping the best model so far) once the budget is "
            "spent, even if epochs remain. The recommendation ticks it.")
        row.addWidget(self.stop_at_budget)
        row.addStretch(1)
        layout.addLayout(row)
        self.apply_button = QPushButton("Apply recommended", objectName="applyRecommendedButton")
        self.apply_button.setAccessibleName("Apply recommended settings")
        self.apply_button.setToolTip(
            "Fill every field with the settings expected to reach the lowest validation "
            "loss on your text within the time budget on this computer. Until you change a "
            "field, this happens by itself whenever the text or the budget changes.")
        layout.addWidget(self.apply_button, 0, Qt.AlignLeft)
        self.status_label = QLabel(objectName="recommendationStatus")
        self.status_label.setAccessibleName("Whether the fields hold the recommendation")
        self.status_label.setToolTip("Your own changes to the fields are never overwritten.")
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet(NOTE_STYLE)
        layout.addWidget(self.status_label)
        self.reasons_list = QListWidget(objectName="recommendationReasons")
        self.reasons_list.setAccessibleName("Why these settings")
        self.reasons_list.setToolTip("Why each recommended value was chosen; hover over a "
                                     "reason to see the measurements behind it.")
        self.reasons_list.setWordWrap(True)
        self.reasons_list.setAlternatingRowColors(True)  # tells one reason from the next
        self.reasons_list.setSpacing(2)
        self.reasons_list.setMinimumHeight(140)
        layout.addWidget(self.reasons_list, 1)
        self.show_hint("The settings that train the best model in the time budget appear in "
                       "the fields once this computer is measured and a text is loaded, with "
                       "the reason for each one listed here.")

    @property
    def time_budget_s(self) -> float:
        scale = 60 if self.budget_unit.currentText() == "minutes" else 1
        return float(self.budget_spin.value() * scale)

    def set_time_budget(self, seconds: float) -> None:
        in_minutes = seconds >= 60 and seconds % 60 == 0
        self.budget_unit.setCurrentText("minutes" if in_minutes else "seconds")
        self.budget_spin.setValue(round(seconds / 60 if in_minutes else seconds))

    def show_hint(self, text: str) -> None:
        """An explanation in place of the reasons (an empty box reads as broken)."""
        self.reasons_list.clear()
        hint = QListWidgetItem(text)
        hint.setFlags(Qt.ItemFlag.NoItemFlags)
        self.reasons_list.addItem(hint)

    def show_reasons(self, reasons: tuple[Reason, ...]) -> None:
        """One plain sentence per setting; the measurements behind it in its tooltip."""
        self.reasons_list.clear()
        for reason in reasons:
            item = QListWidgetItem(reason.sentence)
            item.setToolTip(reason.details)
            self.reasons_list.addItem(item)
