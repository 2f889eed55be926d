"""The table of named neurons: each neuron with the text feature its value follows best and
Pearson's r, sorted by |r|, filterable by feature."""

from __future__ import annotations

import re

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from microlm.naming import lstm_layer_label
from microlm.neurons import FEATURES, NeuronName, NeuronNames

COLUMNS = ("Neuron", "LSTM layer", "State", "Best feature", "r")
R_COLUMN, FEATURE_COLUMN = 4, 3
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # what a column sorts by (|r| for the r column)
NAME_ROLE = Qt.ItemDataRole.UserRole + 2  # the row's NeuronName, on its first cell
FEATURE_ROLE = Qt.ItemDataRole.UserRole + 3  # the feature's key, which the filter matches
ALL_FEATURES = ""
STATE_WORDS = {"cell": "cell (memory)", "hidden": "hidden (output)"}


def r_text(r: float) -> str:
    """r with two decimals and a true minus sign."""
    return f"{r:.2f}".replace("-", "−")


class NeuronTable(QWidget):
    """neuron_chosen(NeuronName) when a row becomes the current one."""

    neuron_chosen = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        filter_row = QHBoxLayout()
        filter_row.addWidget(QLabel("Feature"))
        self.feature_filter = QComboBox()
        self.feature_filter.setObjectName("neuronFeatureFilter")
        self.feature_filter.setAccessibleName("Show the neurons of one feature")
        self.feature_filter.setToolTip("Show only the neurons whose best feature is this one.")
        self.feature_filter.addItem("all features", ALL_FEATURES)
        for feature in FEATURES:
            self.feature_filter.addItem(feature.phrase, feature.name)
        self.feature_filter.currentIndexChanged.connect(self._on_filter_changed)
        filter_row.addWidget(self.feature_filter, 1)
        column.addLayout(filter_row)

        self._model = QStandardItemModel(0, len(COLUMNS), self)
        self._model.setHorizontalHeaderLabels(list(COLUMNS))
        self._proxy = QSortFilterProxyModel(self)
        self._proxy.setSourceModel(self._model)
        self._proxy.setSortRole(SORT_ROLE)
        self._proxy.setFilterRole(FEATURE_ROLE)
        self._proxy.setFilterKeyColumn(FEATURE_COLUMN)
        self.table = QTableView()
        self.table.setObjectName("neuronTable")
        self.table.setAccessibleName("Neurons named by the feature they follow")
        self.table.setToolTip(
            "Every neuron of every layer, with the feature of the text its value follows "
            "best and how closely: Pearson's r is +1 when the neuron rises and falls exactly "
            "with the feature, −1 when exactly against it, 0 when it ignores it. Click a row "
            "to colour the text by that neuron, with the feature drawn beneath each line.")
        self.table.setModel(self._proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(FEATURE_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        column.addWidget(self.table, 1)
        self._names: NeuronNames | None = None

    def show_names(self, names: NeuronNames | None) -> None:
        """Fill the table, strongest |r| first (emits nothing)."""
        self._names = names
        self.table.selectionModel().blockSignals(True)
        self._model.removeRows(0, self._model.rowCount())
        for name in names.names if names is not None else ():
            self._model.appendRow(_row(name))
        self.table.sortByColumn(R_COLUMN, Qt.SortOrder.DescendingOrder)
        self.table.selectionModel().blockSignals(False)

    def rows(self) -> list[NeuronName]:
        """The neurons in the order shown (filtered and sorted as the table is)."""
        return [self._proxy.index(row, 0).data(NAME_ROLE)
                for row in range(self._proxy.rowCount())]

    def current(self) -> NeuronName | None:
        index = self.table.currentIndex()
        return index.siblingAtColumn(0).data(NAME_ROLE) if index.isValid() else None

    def select(self, layer: int, state: str, neuron: int) -> None:
        """Make that neuron's row the current one if it is shown (no signal); else none."""
        self.table.selectionModel().blockSignals(True)
        self.table.clearSelection()
        self.table.setCurrentIndex(QModelIndex())
        for row, name in enumerate(self.rows()):
            if (name.layer, name.state, name.neuron) == (layer, state, neuron):
                index = self._proxy.index(row, 0)
                self.table.selectionModel().setCurrentIndex(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows)
                self.table.scrollTo(index)
                break
        self.table.selectionModel().blockSignals(False)

    def choose_row(self, row: int) -> None:
        """Make a shown row the current one, as a click does."""
        self.table.selectRow(row)

    def _on_filter_changed(self, _index: int) -> None:
        feature = self.feature_filter.currentData()
        pattern = f"^{re.escape(feature)}$" if feature else ""
        self._proxy.setFilterRegularExpression(pattern)
        if feature and self._proxy.rowCount():
            self.choose_row(0)  # the neuron that follows this feature best

    def _on_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.neuron_chosen.emit(current.siblingAtColumn(0).data(NAME_ROLE))


def _row(name: NeuronName) -> list[QStandardItem]:
    cells = [(str(name.neuron), name.neuron), (str(name.layer + 1), name.layer),
             (STATE_WORDS[name.state], name.state), (name.feature.phrase, name.feature.phrase),
             (r_text(name.r), abs(name.r))]
    items = []
    for text, sort_key in cells:
        item = QStandardItem(text)
        item.setData(sort_key, SORT_ROLE)
        item.setData(name.feature.name, FEATURE_ROLE)
        item.setToolTip(f"{lstm_layer_label(name.layer)}, {name.state} state, neuron "
                        f"{name.neuron}: {name.phrase}")
        items.append(item)
    items[0].setData(name, NAME_ROLE)
    for item in (items[0], items[1], items[R_COLUMN]):
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return items
