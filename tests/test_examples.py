"""The demos in microlm.examples: each runs as `python -m microlm.examples.<name>`, prints
what it teaches, and ships in the wheel."""

import importlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from microlm import MicroLM, TextGenerator, load_model
from microlm.examples import model_inspection_demo, text_generation_demo, training_demo

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ("training_demo", "text_generation_demo", "model_inspection_demo")


def run_demo(name: str, *args: str, cwd: Path) -> str:
    """Run a demo as a person would, in `cwd`, with the calibration cache in `cwd` too;
    its printed output, after checking that it succeeded."""
    env = {**os.environ, "MICROLM_CACHE_DIR": str(cwd / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                      os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", f"microlm.examples.{name}", *args],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """training_demo run for 2 s: (its output, the checkpoint it saved)."""
    folder = tmp_path_factory.mktemp("training_demo")
    output = run_demo("training_demo", "demo.pt", "--seconds", "2", cwd=folder)
    return output, folder / "demo.pt"


@pytest.mark.slow
def test_training_demo_trains_evaluates_saves_and_samples(trained):
    output, checkpoint = trained
    model, tokenizer, metadata = load_model(checkpoint)
    # (a busy machine may spend 2 s before its first step: no count of steps is asserted)
    assert f"Checkpoint saved to {checkpoint.resolve()}" in output
    assert f"step {metadata['step']:,})" in output  # the step it reports is the saved one
    assert f"{tokenizer.vocab_size()} characters in the vocabulary" in output
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in output
    assert "validation loss" in output and "Time budget of 2 s used" in output
    nats, bits, choices = map(float, re.search(
        r"Validation loss: ([\d.]+) nats per character = ([\d.]+) bits per character; the "
        r"model is as unsure as choosing among ([\d.]+) characters", output).groups())
    assert bits == pytest.approx(nats / math.log(2), abs=0.01)
    assert choices == pytest.approx(math.exp(nats), abs=0.1)
    sample = output.split("Sample (temperature 0.8):\n")[1]
    assert sample.startswith("The ") and len(sample.rstrip("\n")) >= 200


@pytest.mark.slow
def test_text_generation_demo_shows_every_sampler_on_a_checkpoint(trained, tmp_path,
                                                                  one_torch_thread):
    _, checkpoint = trained
    output = run_demo("text_generation_demo", str(checkpoint), "--length", "40",
                      "--prompt", "def ", cwd=tmp_path)
    assert f"Loaded {checkpoint}" in output and "training a tiny model" not in output
    labels = ["greedy (temperature 0)", "temperature 0.5", "temperature 1.0", "temperature 1.5",
              "top-k 5 (temperature 1.0)", "top-p 0.9 (temperature 1.0)",
              "seed 7 (temperature 1.0)",
              "streaming (temperature 0.8), one character at a time"]
    positions = [output.index(f"\n{label}:\n") for label in labels]
    assert positions == sorted(positions)  # all there, in the order the comments explain
    # the greedy sample is exactly what the model's most likely characters spell (on one
    # thread, as the demo generates)
    model, tokenizer, _ = load_model(checkpoint)
    greedy = TextGenerator(model, tokenizer).generate("def ", 40, temperature=0)
    shown = output.split("greedy (temperature 0):\n")[1].split("\n\ntemperature 0.5")[0]
    assert shown == "\n".join("    " + line for line in greedy.split("\n"))
    assert "seed 7 again gives the same text: True" in output
    assert re.search(r"the least expected character was .+ probability of [\d.]+%", output)


@pytest.mark.slow
def test_model_inspection_demo_trains_a_tiny_model_without_a_checkpoint(tmp_path):
    output = run_demo("model_inspection_demo", "--seconds", "2", "--prompt", "impor",
                      cwd=tmp_path)
    assert "No checkpoint given: training a tiny model" in output
    for heading in ("The model", "Weights", "After 'impor' the model expects",
                    "While reading a sentence", "Neurons that follow a feature of the text",
                    "Surprise while reading a sentence"):
        assert f"\n{heading}\n" in output
    count = int(re.search(r"([\d,]+) parameters, [\d.]+ MiB", output).group(1).replace(",", ""))
    vocab = int(re.search(r"Embedding\((\d+), 32\)", output).group(1))
    tiny = MicroLM(vocab_size=vocab, embedding_dim=32, hidden_dim=128, num_layers=1)
    assert count == sum(p.numel() for p in tiny.parameters())
    shares = [float(p) for _, p in re.findall(r"^ +('.*?'|\".*?\") +([\d.]+)% ", output,
                                               re.MULTILINE)]
    assert len(shares) == 8 and shares == sorted(shares, reverse=True) and sum(shares) <= 100.1
    assert re.search(r"health score [01]\.\d\d of 1", output)
    assert re.search(r"layer 1 (cell|hidden) +\d+: .+ \(r = ", output)
    assert "layer 0" not in output  # layers are numbered from 1 for people
    assert re.search(r"mean [\d.]+ bits per character: as unsure as choosing among", output)


@pytest.mark.parametrize("module", [training_demo, text_generation_demo,
                                    model_inspection_demo])
def test_each_demo_explains_its_options(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    assert f"python -m {module.__name__}" in shown
    assert "--seconds SECONDS" in shown  # what a test or a hurried reader runs them short with


@pytest.mark.parametrize("name", DEMOS)
def test_importing_a_demo_runs_nothing(name, capsys):
    module = importlib.reload(importlib.import_module(f"microlm.examples.{name}"))
    assert module.__doc__.count("python -m microlm.examples.") >= 2  # says how to run it
    assert capsys.readouterr() == ("", "")


@pytest.mark.slow
def test_a_prompt_with_characters_the_model_never_saw_is_refused_clearly(trained, capsys):
    _, checkpoint = trained
    with pytest.raises(SystemExit) as exit_info:
        text_generation_demo.main([str(checkpoint), "--prompt", "\u2603 snow"])
    assert exit_info.value.code == 2
    assert "the model never saw '\u2603'" in capsys.readouterr().err


def test_the_wheel_ships_every_package_the_demos_run_from():
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    packages = {".".join(init.parent.relative_to(ROOT).parts)
                for top in ("microlm", "microlm_app")
                for init in (ROOT / top).rglob("__init__.py")}
    assert "microlm.examples" in packages
    assert packages - listed == set()
