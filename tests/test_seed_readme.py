"""Every Python snippet of the seed README runs against microlm (the API it promises)."""

import contextlib
import io
import os
import re
import warnings
from pathlib import Path

import pytest
import torch

README = Path(__file__).parent / "data" / "seed_readme.md"  # our project's original README

# A text with every character the README's prompts use ("The quick", "Once upon", ...),
# including its placeholder "Your training text here...", and fewer than 50 distinct
# characters, so the README's MicroLM(vocab_size=50) can learn it.
SAMPLE_TEXT = ("Once upon a time, the cat sat in the sun. The quick brown fox jumps over the "
               "lazy dog. Hello, world! In the beginning was the prompt.\n"
               "Your training text here...\n") * 3


def readme_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    # The seed's package was micro_lm; the seed's epoch counts take minutes, one will do.
    return [re.sub(r"epochs=\d+", "epochs=1", b.replace("micro_lm", "microlm")) for b in blocks]


BLOCKS = readme_blocks()
FIRST_LINES = [block.splitlines()[0] for block in BLOCKS]

# What the README implies exists before some snippets (the reader's own text, model,
# data), keyed by the snippet's first line. Each is set just before that snippet runs.
PRELUDES = {
    # "Your training text here..." stands for a text the tokenizer was built from.
    "from microlm import ModelTrainer": "tokenizer = CharacterTokenizer(SAMPLE_TEXT)",
    "import torch": "vocab_size = tokenizer.vocab_size()",  # the Custom Training Loop
    "# Process multiple texts": "trained_model = trainer.model",
    "# Enable mixed precision training (if supported)":
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "dataset = TensorDataset(inputs, targets)",
}


def test_the_readme_has_the_snippets_this_test_expects():
    assert len(BLOCKS) == 18
    assert set(PRELUDES) <= set(FIRST_LINES)
    assert "micro_lm" not in "".join(BLOCKS)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Run every snippet in order in one namespace; record each one's error and output."""
    from microlm import CharacterTokenizer

    namespace = {
        "SAMPLE_TEXT": SAMPLE_TEXT,
        "CharacterTokenizer": CharacterTokenizer,
        "epochs": 1,
        "temperature": 0.8,
        "probabilities": torch.softmax(torch.randn(12, generator=torch.Generator()
                                                   .manual_seed(0)), dim=-1),
    }
    results = {"errors": {}, "output": {}, "snapshots": {}}
    cwd, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(tmp_path_factory.mktemp("seed_readme"))
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a busy machine
    torch.manual_seed(0)
    try:
        for index, block in enumerate(BLOCKS):
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out), warnings.catch_warnings():
                    # Expected here: short-text window warnings, CUDA-only AMP on a CPU.
                    warnings.simplefilter("ignore")
                    prelude = PRELUDES.get(FIRST_LINES[index])
                    if prelude:
                        exec(prelude, namespace)
                    exec(compile(block, f"<seed README snippet {index}>", "exec"), namespace)
            except Exception as err:  # recorded, then reported by the test of this snippet
                results["errors"][index] = f"{type(err).__name__}: {err}"
            results["output"][index] = out.getvalue()
            results["snapshots"][index] = {
                name: namespace[name] for name in ("info", "training_stats", "analysis")
                if isinstance(namespace.get(name), dict)}
        results["files"] = sorted(str(p) for p in Path.cwd().rglob("*") if p.is_file())
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return results


@pytest.mark.parametrize("index", range(len(BLOCKS)),
                         ids=[f"{i}-{line[:40]}" for i, line in enumerate(FIRST_LINES)])
def test_snippet_runs(run, index):
    assert index not in run["errors"], f"snippet {index} failed: {run['errors'][index]}"


def test_basic_usage_generates_and_reports(run):
    output = run["output"][0]
    assert re.search(r"Vocabulary size: \d+", output)
    assert output.count("Generated: Hello") == 1
    assert {"losses", "training_time"} <= set(run["snapshots"][0]["training_stats"])


def test_tokenizer_snippet_prints_the_true_ids(run):
    # The seed README claimed [7, 4, 11, 11, 14]; the sorted vocabulary gives these.
    assert run["output"][1].splitlines()[:2] == ["[2, 4, 5, 5, 6]", "Hello"]


def test_model_snippet_reads_true_model_info(run):
    info = run["snapshots"][2]["info"]
    assert info["total_parameters"] == 50 * 128 + 4 * 256 * (128 + 256 + 2) + 4 * 256 * (
        256 + 256 + 2) + 257 * 50
    assert info["model_size_mb"] == pytest.approx(info["total_parameters"] * 4 / 2**20)
    assert f"Parameters: {info['total_parameters']:,}" in run["output"][2]


def test_trainer_snippet_saves_its_model(run):
    stats = run["snapshots"][3]["training_stats"]
    assert len(stats["losses"]) == 1 and stats["training_time"] > 0
    assert any(path.endswith(os.path.join("models", "my_model.pt")) for path in run["files"])


def test_inspection_snippet_reads_its_keys(run):
    info = run["snapshots"][8]["info"]
    analysis = run["snapshots"][8]["analysis"]
    assert {"architecture", "parameter_count", "memory_mb"} <= set(info)
    assert {"health_score", "gradient_flow"} <= set(analysis)
    assert 0.0 <= analysis["health_score"] <= 1.0
    assert f"Parameters: {info['parameter_count']:,}" in run["output"][8]
