"""microlm: a character-level LSTM language model to learn how language models work."""

from .calibration import calibrate
from .checkpoint import CheckpointError, load_model, save_model
from .config import TrainingConfig
from .data import (
    SAMPLE_CORPORA,
    Corpus,
    CorpusError,
    CorpusStats,
    TextDataLoader,
    corpus_stats,
    read_corpus,
    sample_corpus,
    split_text,
)
from .generator import GeneratedChar, TextGenerator
from .hardware import HardwareInfo, probe, select_device
from .inspection import (
    ActivationTrace,
    EmbeddingProjection,
    LayerActivations,
    activations,
    analyze_parameters,
    embedding_projection,
    gate_extremes,
    gate_saturation,
    inspect_model,
    next_char_distribution,
    parameter_values,
    top_neurons,
)
from .model import MicroLM, ModelConfig
from .neurons import Feature, NeuronName, NeuronNames, name_neurons
from .presets import PRESETS, Estimate, Preset, estimate, preset_parameters
from .recommendation import Recommendation, recommend
from .speed import MachineSpeed
from .stepwise import CharacterStep, step_by_step
from .surprise import SurpriseMap, surprise_map
from .tokenizer import CharacterTokenizer, UnknownCharacterError
from .trainer import (
    CheckpointSaved,
    Evaluated,
    ModelTrainer,
    SampleGenerated,
    StepCompleted,
    TrainingControl,
    TrainingEvent,
    TrainingFinished,
    TrainingStarted,
    set_seed,
)

__version__ = "0.1.0"

__all__ = [
    "SAMPLE_CORPORA", "CharacterTokenizer", "CheckpointError", "CheckpointSaved", "Corpus",
    "CorpusError", "CorpusStats", "Evaluated", "GeneratedChar", "MicroLM", "ModelConfig",
    "ModelTrainer", "SampleGenerated", "StepCompleted", "TextDataLoader", "TextGenerator",
    "TrainingConfig", "TrainingControl", "TrainingEvent", "TrainingFinished", "TrainingStarted",
    "UnknownCharacterError", "corpus_stats", "load_model", "read_corpus", "sample_corpus",
    "save_model", "select_device", "set_seed", "split_text",
    "PRESETS", "Estimate", "HardwareInfo", "MachineSpeed", "Preset", "Recommendation",
    "calibrate", "estimate", "preset_parameters", "probe", "recommend",
    "ActivationTrace", "EmbeddingProjection", "LayerActivations", "activations",
    "analyze_parameters", "embedding_projection", "gate_saturation", "inspect_model",
    "next_char_distribution", "parameter_values", "top_neurons",
    "CharacterStep", "Feature", "NeuronName", "NeuronNames", "SurpriseMap", "gate_extremes",
    "name_neurons", "step_by_step", "surprise_map",
]
