"""Make the golden files of tests/test_golden.py from the recipe in that module.

    python tests/data/make_golden.py                    # re-pin golden_values.json
    python tests/data/make_golden.py --new-checkpoint   # also replace golden_model.pt

golden_model.pt stands for the checkpoints users already have: replace it only when the
checkpoint format changes on purpose (and keep a copy of the old one as a test of loading
it). The values are pinned from it as it is on disk, in float32 on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import test_golden as recipe  # noqa: E402

from microlm import ModelTrainer, __version__, load_model  # noqa: E402


def save_golden_checkpoint(path: Path) -> None:
    trainer = recipe.new_trainer(epochs=recipe.GOLDEN_EPOCHS)
    finished = recipe.train_stopped_run(trainer, recipe.GOLDEN_STOP_STEP)
    assert finished.reason == "stopped" and finished.step == recipe.GOLDEN_STOP_STEP
    trainer.save_checkpoint(path, note="golden checkpoint")
    resumed = ModelTrainer.from_checkpoint(path, recipe.TEXT).train()["step_losses"]
    straight = recipe.new_trainer(epochs=recipe.GOLDEN_EPOCHS).train()["step_losses"]
    assert resumed == straight, "stopped, saved and resumed, the run must equal a straight one"


def checkpoint_values(path: Path) -> dict:
    model, tokenizer, metadata = load_model(path)
    history = metadata["history"]
    resumed = ModelTrainer.from_checkpoint(path, recipe.TEXT).train()["step_losses"]
    return {
        "model_config": model.config.to_dict(),
        "vocabulary": tokenizer.chars,
        "parameters": sum(p.numel() for p in model.parameters()),
        "best_val_loss": metadata["best_val_loss"],
        "step_losses": history["step_losses"],
        "grad_norm_layers": sorted(history["grad_norms"][0][1]),
        "generated": recipe.generated(model, tokenizer),
        "resumed_step_losses": resumed[recipe.GOLDEN_STOP_STEP:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-checkpoint", action="store_true",
                        help="replace golden_model.pt (only for a deliberate format change)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.new_checkpoint or not recipe.GOLDEN_CHECKPOINT.exists():
        save_golden_checkpoint(recipe.GOLDEN_CHECKPOINT)
    values = {
        "made_with": {"microlm": __version__, "torch": torch.__version__.split("+")[0]},
        "checkpoint": checkpoint_values(recipe.GOLDEN_CHECKPOINT),
        "trajectory": recipe.trajectory(),
    }
    recipe.GOLDEN_VALUES.write_text(json.dumps(values, indent=1, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    print(f"wrote {recipe.GOLDEN_VALUES} ({recipe.GOLDEN_CHECKPOINT.stat().st_size:,} bytes "
          f"of checkpoint)")


if __name__ == "__main__":
    main()
