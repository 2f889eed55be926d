"""Session: the one object the tabs share (corpus, configuration, trained model)."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject, Signal

from microlm import CharacterTokenizer, Corpus, CorpusStats, MicroLM, ModelConfig, TrainingConfig


class Session(QObject):
    """What the user has loaded and chosen; tabs read it and listen to its signals.

    The Data tab sets the corpus, the Configure tab the configs, the Train tab (or
    File > Open Model) the model. Slots that react are named _on_<what>_changed.
    """

    corpus_changed = Signal()
    config_changed = Signal()
    model_changed = Signal()
    training_state_changed = Signal(bool)  # True while a training run is active

    def __init__(self) -> None:
        super().__init__()
        self.corpus: Corpus | None = None
        self.corpus_stats: CorpusStats | None = None
        self.tokenizer: CharacterTokenizer | None = None  # built from the loaded corpus
        self.val_fraction: float = 0.1
        self.model_config = ModelConfig(vocab_size=65, embedding_dim=64, hidden_dim=256,
                                        num_layers=1, dropout=0.0)
        self.training_config = TrainingConfig(epochs=3, sample_interval=100, eval_interval=100)
        self.config_problems: list[str] = []  # what is wrong with the configs; empty = valid
        self.model: MicroLM | None = None
        self.model_tokenizer: CharacterTokenizer | None = None
        self.model_metadata: dict = {}  # history, training config, best val loss
        self.model_unsaved: bool = False
        self.model_path: str | None = None
        self.trainer = None  # ModelTrainer of the last run, kept to train further
        self.training_active: bool = False

    def set_corpus(self, corpus: Corpus, stats: CorpusStats,
                   tokenizer: CharacterTokenizer) -> None:
        self.corpus, self.corpus_stats, self.tokenizer = corpus, stats, tokenizer
        self.model_config = replace(self.model_config, vocab_size=tokenizer.vocab_size())
        self.corpus_changed.emit()

    def set_configs(self, model_config: ModelConfig | None = None,
                    training_config: TrainingConfig | None = None,
                    problems: list[str] | None = None) -> None:
        """Store the configs the Train tab will use. `problems` (from the Configure tab's
        inline validation) non-empty means the fields do not form a valid run."""
        if model_config is not None:
            self.model_config = model_config
        if training_config is not None:
            self.training_config = training_config
        if problems is not None:
            self.config_problems = list(problems)
        self.config_changed.emit()

    @property
    def config_valid(self) -> bool:
        return not self.config_problems

    def set_model(self, model: MicroLM, tokenizer: CharacterTokenizer, metadata: dict,
                  unsaved: bool, path: str | None = None) -> None:
        self.model, self.model_tokenizer, self.model_metadata = model, tokenizer, metadata
        self.model_unsaved, self.model_path = unsaved, path
        self.model_changed.emit()

    def set_training_active(self, active: bool) -> None:
        self.training_active = active
        self.training_state_changed.emit(active)
