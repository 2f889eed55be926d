"""README.md: every Python example runs as written, its preset table is true, and it stays a
short guide for users."""

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, flags=re.DOTALL | re.MULTILINE)


def first_code_line(block: str) -> str:
    return next(line for line in block.splitlines() if line.strip())


@pytest.fixture
def in_a_temp_folder(tmp_path, monkeypatch):
    """Each example runs in an empty folder, with the calibration cache kept there too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROLM_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a busy machine
    yield tmp_path
    torch.set_num_threads(threads)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 5
    assert all("micro_lm" not in block for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS,
                         ids=[f"{i}-{first_code_line(b)[:40]}" for i, b in enumerate(BLOCKS)])
def test_python_example_runs(block, in_a_temp_folder):
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(block, "<README example>", "exec"), {"__name__": "__readme__"})
    assert output.getvalue().strip(), "every example shows the reader something"


def test_preset_table_holds_true_parameter_counts():
    from microlm import PRESETS, preset_parameters

    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) x (\d+) \| ([\d,]+) \|$", TEXT, re.MULTILINE)
    assert {row[0] for row in rows} == set(PRESETS)
    for name, embedding, hidden, layers, parameters in rows:
        preset = PRESETS[name]
        assert (preset.embedding_dim, preset.hidden_dim, preset.num_layers) == (
            int(embedding), int(hidden), int(layers))
        assert preset_parameters(name, vocab_size=65) == int(parameters.replace(",", ""))


def test_the_readme_is_a_short_guide():
    assert len(TEXT.splitlines()) <= 350


def test_the_readme_names_no_development_machine_path():
    assert "/work/" not in TEXT


def test_the_readme_keeps_the_two_commands():
    assert "pip install . && microlm-app" in TEXT
    assert 'pip install -e ".[test]" && pytest' in TEXT
    # The CPU build of torch is named before the first install command.
    assert TEXT.index("download.pytorch.org/whl/cpu") < TEXT.index("pip install . &&")


def test_the_readme_links_existing_files():
    links = re.findall(r"\]\(([^)#]+)\)", TEXT)
    assert links
    missing = [link for link in links if not (README.parent / link).exists()]
    assert not missing
