"""The names and import paths user code relies on: microlm.__all__, the module each public
name is imported from, and every name the READMEs' Python examples import. Modules may
split or move; these paths keep working (as re-exports where needed)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import microlm

ROOT = Path(__file__).resolve().parents[1]
READMES = {"README.md": ROOT / "README.md",
           "original README": ROOT / "tests" / "data" / "seed_readme.md"}

PUBLIC_NAMES = [
    "ActivationTrace", "CharacterStep", "CharacterTokenizer", "CheckpointError",
    "CheckpointSaved", "Corpus", "CorpusError", "CorpusStats", "EmbeddingProjection",
    "Estimate", "Evaluated", "Feature", "GeneratedChar", "HardwareInfo", "LayerActivations",
    "MachineSpeed", "MicroLM", "ModelConfig", "ModelTrainer", "NeuronName", "NeuronNames",
    "PRESETS", "Preset", "Recommendation", "SAMPLE_CORPORA", "SampleGenerated", "StepCompleted",
    "SurpriseMap", "TextDataLoader", "TextGenerator", "TrainingConfig", "TrainingControl",
    "TrainingEvent", "TrainingFinished", "TrainingStarted", "UnknownCharacterError",
    "activations", "analyze_parameters", "calibrate", "corpus_stats", "embedding_projection",
    "estimate", "gate_extremes", "gate_saturation", "inspect_model", "load_model",
    "name_neurons", "next_char_distribution", "parameter_values", "preset_parameters", "probe",
    "read_corpus", "recommend", "sample_corpus", "save_model", "select_device", "set_seed",
    "split_text", "step_by_step", "surprise_map", "top_neurons",
]

# Where each public name can be imported from besides `microlm` (the module that owns it;
# TrainingConfig also from microlm.trainer, where it was first defined).
MODULE_PATHS = {
    "microlm.checkpoint": ["CheckpointError", "load_model", "save_model"],
    "microlm.data": ["SAMPLE_CORPORA", "Corpus", "CorpusError", "CorpusStats", "TextDataLoader",
                     "corpus_stats", "read_corpus", "sample_corpus", "split_text"],
    "microlm.generator": ["GeneratedChar", "TextGenerator"],
    "microlm.hardware": ["HardwareInfo", "probe", "select_device"],
    "microlm.speed": ["MachineSpeed"],
    "microlm.calibration": ["calibrate"],
    "microlm.presets": ["PRESETS", "Estimate", "Preset", "estimate", "preset_parameters"],
    "microlm.recommendation": ["Recommendation", "recommend"],
    "microlm.config": ["TrainingConfig"],
    "microlm.inspection": ["ActivationTrace", "EmbeddingProjection", "LayerActivations",
                           "activations", "analyze_parameters", "embedding_projection",
                           "gate_extremes", "gate_saturation", "inspect_model",
                           "next_char_distribution", "parameter_values", "top_neurons"],
    "microlm.model": ["MicroLM", "ModelConfig"],
    "microlm.neurons": ["Feature", "NeuronName", "NeuronNames", "name_neurons"],
    "microlm.stepwise": ["CharacterStep", "step_by_step"],
    "microlm.surprise": ["SurpriseMap", "surprise_map"],
    "microlm.tokenizer": ["CharacterTokenizer", "UnknownCharacterError"],
    "microlm.trainer": ["CheckpointSaved", "Evaluated", "ModelTrainer", "SampleGenerated",
                        "StepCompleted", "TrainingConfig", "TrainingControl", "TrainingEvent",
                        "TrainingFinished", "TrainingStarted", "set_seed"],
}
MODULE_NAME_PAIRS = [(module, name) for module, names in MODULE_PATHS.items() for name in names]

# The names the examples of each README import at least (the original one does not change).
README_IMPORTS_AT_LEAST = {
    "README.md": {"CharacterTokenizer", "MicroLM", "ModelTrainer", "TextGenerator"},
    "original README": {"CharacterTokenizer", "MicroLM", "ModelTrainer", "TextGenerator",
                        "inspect_model", "analyze_parameters"},
}


def readme_imports(path: Path) -> set[tuple[str, str | None]]:
    """(module, name) for each `from microlm... import name` in the file's Python examples,
    and (module, None) for each `import microlm...`; the original README's package
    `micro_lm` is read as `microlm`."""
    found: set[tuple[str, str | None]] = set()
    for block in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = re.sub(r"^micro_lm\b", "microlm", node.module)
                if module.split(".")[0] == "microlm":
                    found |= {(module, alias.name) for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {(re.sub(r"^micro_lm\b", "microlm", alias.name), None)
                          for alias in node.names
                          if alias.name.split(".")[0] in ("microlm", "micro_lm")}
    return found


def test_all_is_the_pinned_list_of_public_names():
    assert len(microlm.__all__) == len(set(microlm.__all__))  # no name listed twice
    assert sorted(microlm.__all__) == sorted(PUBLIC_NAMES)


def test_every_public_name_comes_with_a_star_import():
    namespace: dict = {}
    exec("from microlm import *", namespace)
    missing = [name for name in PUBLIC_NAMES if namespace.get(name) is None]
    assert not missing


def test_every_public_name_has_a_pinned_module_path():
    assert {name for _, name in MODULE_NAME_PAIRS} == set(PUBLIC_NAMES)


@pytest.mark.parametrize(("module", "name"), MODULE_NAME_PAIRS,
                         ids=[f"{module}.{name}" for module, name in MODULE_NAME_PAIRS])
def test_a_public_name_is_still_importable_from_its_module(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(microlm, name)


@pytest.mark.parametrize("readme", READMES)
def test_every_name_a_readme_example_imports_is_importable(readme):
    imports = readme_imports(READMES[readme])
    assert README_IMPORTS_AT_LEAST[readme] <= {name for module, name in imports
                                               if module == "microlm"}
    for module, name in sorted(imports, key=str):
        imported = importlib.import_module(module)
        assert name is None or hasattr(imported, name), f"from {module} import {name}"
