"""Session: the one object the tabs share (corpus, configuration, trained model, runs)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from microlm import CharacterTokenizer, Corpus, CorpusStats, MicroLM, ModelConfig, TrainingConfig
from microlm.run import recorded_runs


@dataclass
class RunRecord:
    """One training run the app knows: trained in this window, or recorded in the history
    of a model that was loaded. Its curve is its slice of that model's history."""

    label: str  # "Run 2 · hidden 512"
    model_config: dict  # ModelConfig.to_dict() of the model it trained
    training_config: dict  # TrainingConfig.to_dict() it ran with
    seconds: float  # training seconds
    best_val_loss: float | None  # its best validation loss, nats per character
    reason: str  # why it ended: completed, stopped, time_budget, ... ("" when unknown)
    start_step: int
    end_step: int
    steps: list[int] = field(default_factory=list)  # one per training loss
    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    source: str = "trained in this window"  # or "from <file name>"
    # the model as the run left it, on the CPU; None for a run known only from a history
    model: MicroLM | None = None
    tokenizer: CharacterTokenizer | None = None
    history_record: dict | None = None  # the history's own record, to know the run again


def history_runs(history: dict, model_config: dict, training_config: dict) -> list[dict]:
    """The run records of a history (microlm.run.run_record). A history saved before runs
    were recorded gets one run for all its steps; steps after the last record (a run
    whose checkpoint was saved part-way) get one more."""
    records = recorded_runs(history)
    steps = len(history.get("step_losses") or [])
    last = records[-1]["end_step"] if records else 0
    if steps > last:
        val_losses = [loss for step, loss in history.get("val_losses") or [] if step > last]
        seconds = float(history.get("training_time") or 0.0) - sum(r["seconds"] for r in records)
        records.append({"start_step": last, "end_step": steps, "seconds": max(0.0, seconds),
                        "best_val_loss": min(val_losses) if val_losses else None,
                        "reason": "", "model_config": dict(model_config),
                        "training_config": dict(training_config)})
    return records


def curve_of(history: dict, start_step: int, end_step: int
             ) -> tuple[list[int], list[float], list[int], list[float]]:
    """A run's slice of a history: (steps, training losses, validation steps, losses);
    step_losses[i] belongs to step i + 1."""
    losses = list((history.get("step_losses") or [])[start_step:end_step])
    validated = [(int(step), float(loss)) for step, loss in history.get("val_losses") or []
                 if start_step < step <= end_step]
    return (list(range(start_step + 1, start_step + 1 + len(losses))), losses,
            [step for step, _ in validated], [loss for _, loss in validated])


class Session(QObject):
    """What the user has loaded and chosen; tabs read it and listen to its signals.

    The Data tab sets the corpus, the Configure tab the configs, the Train tab (or
    File > Open Model) the model. Slots that react are named _on_<what>_changed.
    """

    corpus_changed = Signal()
    config_changed = Signal()
    model_changed = Signal()
    training_state_changed = Signal(bool)  # True while a training run is active
    runs_changed = Signal()  # a run was added to `runs`

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
        # True while the Configure tab measures this computer to fill in the fields it
        # recommends: Train waits, so it never trains settings about to change
        self.choosing_settings: bool = False
        self.runs: list[RunRecord] = []  # every run trained here or loaded, oldest first

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

    def set_choosing_settings(self, choosing: bool) -> None:
        self.choosing_settings = choosing
        self.config_changed.emit()

    @property
    def config_valid(self) -> bool:
        return not self.config_problems

    def set_model(self, model: MicroLM, tokenizer: CharacterTokenizer, metadata: dict,
                  unsaved: bool, path: str | None = None) -> None:
        self.model, self.model_tokenizer, self.model_metadata = model, tokenizer, metadata
        self.model_unsaved, self.model_path = unsaved, path
        if path and not unsaved:  # loaded: its history's runs join the runs to compare
            self.add_history_runs(metadata, model, tokenizer, f"from {Path(path).name}")
        self.model_changed.emit()

    def add_run(self, history: dict, record: dict, model: MicroLM | None = None,
                tokenizer: CharacterTokenizer | None = None,
                source: str = "trained in this window", training_config: dict | None = None
                ) -> RunRecord:
        """Keep a run of `history` (`record`, one of its history's runs) in `runs`, named
        "Run N · hidden H"; a run already kept (saved, then loaded again) is not added
        twice, but gains `model` if it had none. `training_config`: the settings to show
        for it, when they differ from those the trainer recorded."""
        for known in self.runs:
            if known.history_record == record:
                if known.model is None and model is not None:
                    known.model, known.tokenizer = model, tokenizer
                return known
        config = record.get("model_config") or {}
        steps, losses, val_steps, val_losses = curve_of(history, record["start_step"],
                                                        record["end_step"])
        run = RunRecord(
            f"Run {len(self.runs) + 1} · hidden {config.get('hidden_dim', '?')}",
            dict(config), dict(training_config or record.get("training_config") or {}),
            float(record["seconds"]),
            record.get("best_val_loss"), record.get("reason") or "", record["start_step"],
            record["end_step"], steps, losses, val_steps, val_losses, source, model,
            tokenizer, record)
        self.runs.append(run)
        self.runs_changed.emit()
        return run

    def add_history_runs(self, metadata: dict, model: MicroLM | None,
                         tokenizer: CharacterTokenizer | None, source: str) -> None:
        """Keep every run a loaded model's history records; the last one is that model."""
        history = metadata.get("history") or {}
        model_config = model.config.to_dict() if model is not None else {}
        records = history_runs(history, model_config, metadata.get("training_config") or {})
        for index, record in enumerate(records):
            last = index == len(records) - 1
            self.add_run(history, record, model if last else None,
                         tokenizer if last else None, source)

    def set_training_active(self, active: bool) -> None:
        self.training_active = active
        self.training_state_changed.emit(active)
