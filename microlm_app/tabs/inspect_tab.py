"""The Inspect tab: look inside the model. Each page is a widget of its own (tabs/inspect/);
the tab shows them, tells them which model to show and stops the work they started."""

from __future__ import annotations

from typing import Any, TypeVar

from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from microlm.data import train_characters

from ..session import Session
from .inspect.activation_page import ActivationPage
from .inspect.embedding_page import EmbeddingPage
from .inspect.model_page import ModelPage
from .inspect.next_char_page import NextCharPage
from .inspect.page import Computations, InspectedModel, InspectPage
from .inspect.parameter_page import ParameterPage
from .inspect.surprise_page import SurprisePage

# The pages in the order of their tabs; a new page is a module in tabs/inspect/ and a line here.
PAGES: tuple[type[InspectPage], ...] = (
    ModelPage,
    ParameterPage,
    ActivationPage,
    EmbeddingPage,
    NextCharPage,
    SurprisePage,
)
VALIDATION_CHARS = 50_000  # characters of the validation text the pages may read

PageT = TypeVar("PageT", bound=InspectPage)


class _OnPage:
    """An attribute of one page, read and written through the tab, where the screenshot
    tour, the app's workflow and the tests look for it."""

    def __init__(self, page_class: type[InspectPage]) -> None:
        self.page_class = page_class
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, tab: InspectTab | None, owner: type | None = None) -> Any:
        if tab is None:
            return self
        return getattr(tab.page(self.page_class), self.name)

    def __set__(self, tab: InspectTab, value: Any) -> None:
        setattr(tab.page(self.page_class), self.name, value)


class InspectTab(QWidget):
    """Six pages: the model, its parameters, activations, embeddings, next character and
    surprise."""

    model_summary = _OnPage(ModelPage)
    gradient_status = _OnPage(ModelPage)
    gradient_plot = _OnPage(ModelPage)
    _gradient_curves = _OnPage(ModelPage)
    parameter_status = _OnPage(ParameterPage)
    parameter_combo = _OnPage(ParameterPage)
    parameter_stats = _OnPage(ParameterPage)
    parameter_plot = _OnPage(ParameterPage)
    _histogram = _OnPage(ParameterPage)
    activation_status = _OnPage(ActivationPage)
    activation_input = _OnPage(ActivationPage)
    activation_kind_combo = _OnPage(ActivationPage)
    layer_spin = _OnPage(ActivationPage)
    neuron_spin = _OnPage(ActivationPage)
    activation_legend = _OnPage(ActivationPage)
    activation_view = _OnPage(ActivationPage)
    _trace = _OnPage(ActivationPage)
    _activation_timer = _OnPage(ActivationPage)
    _draw_activations = _OnPage(ActivationPage)
    embedding_status = _OnPage(EmbeddingPage)
    embedding_plot = _OnPage(EmbeddingPage)
    _embedding_labels = _OnPage(EmbeddingPage)
    _embedding_points = _OnPage(EmbeddingPage)
    _on_embedding_computed = _OnPage(EmbeddingPage)
    next_char_status = _OnPage(NextCharPage)
    next_char_prompt = _OnPage(NextCharPage)
    next_char_plot = _OnPage(NextCharPage)
    _next_char_bars = _OnPage(NextCharPage)
    _next_char_distribution = _OnPage(NextCharPage)
    _next_char_timer = _OnPage(NextCharPage)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectTab")
        self.session = session
        self.computations = Computations()  # the work of every page, stopped together
        self.inspected = InspectedModel()  # the model the pages show
        self._pages = tuple(page_class(self.computations) for page_class in PAGES)
        self.pages = QTabWidget()
        self.pages.setObjectName("inspectPages")
        for page in self._pages:
            self.pages.addTab(page, page.title)
        QVBoxLayout(self).addWidget(self.pages)
        # Pages not in view wait for the person to look: a page's drawing runs on the GUI
        # thread, and redrawing every page when a run ends would freeze the window.
        self._stale: set[InspectPage] = set()
        self.pages.currentChanged.connect(self._show_current_page)
        session.model_changed.connect(self._on_model_changed)
        session.corpus_changed.connect(self._on_model_changed)  # a new validation text
        self._on_model_changed()

    def page(self, page_class: type[PageT]) -> PageT:
        """The page of that class."""
        return next(page for page in self._pages if isinstance(page, page_class))

    def stop_workers(self, timeout_ms: int = 10_000) -> bool:
        for page in self._pages:  # a pending typing pause would start new work
            page.stop_timers()
        return self.computations.stop(timeout_ms)

    @property
    def is_busy(self) -> bool:
        """True while a computation this tab asked for is running."""
        return self.computations.is_busy

    @property
    def _latest(self) -> dict[str, int]:
        return self.computations.latest

    def _on_model_changed(self) -> None:
        self.computations.forget()  # results for the previous model are no longer wanted
        metadata = self.session.model_metadata or {}
        self.inspected = InspectedModel(self.session.model, self.session.model_tokenizer,
                                        metadata, *self._validation_text(metadata))
        if not self.inspected.ready:  # cheap: every page says what to do
            for page in self._pages:
                page.show_model(self.inspected)
            self._stale = set()
            return
        self._stale = set(self._pages)
        self._show_current_page()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._show_current_page()

    def _show_current_page(self, _index: int = -1) -> None:
        """Give the page in view the current model, if it has not seen it yet."""
        page = self.pages.currentWidget()
        if page in self._stale and page.isVisibleTo(self.window()):
            self._stale.discard(page)
            page.show_model(self.inspected)

    def _validation_text(self, metadata: dict) -> tuple[str, str]:
        """The start of the loaded text's validation part, as the model's training split
        it, and where the text comes from; empty without a loaded text."""
        corpus = self.session.corpus
        if corpus is None:
            return "", ""
        fraction = metadata.get("training_config", {}).get("val_fraction",
                                                            self.session.val_fraction)
        start = train_characters(len(corpus.text), fraction)
        return corpus.text[start:start + VALIDATION_CHARS], corpus.source
