"""`microlm inspect`: what is inside a checkpoint — its architecture, parameters layer by
layer, memory, the health of its weights and how it was trained."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoint import load_model
from ..inspection import analyze_parameters, inspect_model
from ..naming import in_words, parameter_label
from ..units import format_duration, in_unit, perplexity_words
from .table import format_table


def add_parser(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect", help="show what is inside a checkpoint",
        description="Print a checkpoint's architecture, its parameters layer by layer (LSTM "
                    "layers numbered from 1), its memory, a health check of its weights and "
                    "how it was trained.")
    inspect.add_argument("checkpoint", type=Path, help="a .pt file saved by 'microlm train'")
    inspect.set_defaults(handler=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    model, tokenizer, metadata = load_model(args.checkpoint)
    info = inspect_model(model)
    health = analyze_parameters(model)
    print(f"Checkpoint: {args.checkpoint}")
    print(f"\nArchitecture:\n{info['architecture']}")
    print(f"\nParameters: {info['parameter_count']:,}   weights in memory: "
          f"{info['memory_mb']:.2f} MiB   vocabulary: {tokenizer.vocab_size()} characters\n")
    rows = [("tensor", "name in the code", "type", "shape", "parameters")]
    rows += [(parameter_label(layer["name"]), layer["name"], str(layer["type"]),
              str(layer["shape"]), f"{layer['parameters']:,}") for layer in info["layers"]]
    print(format_table(rows, left_columns=4))
    print(f"\nHealth score: {health['health_score']:.2f} (1 = no sign of dead, exploding or "
          f"saturated weights)")
    for note in health.get("health_notes", []):
        print(f"  - {in_words(note)}")
    print("\nTraining:")
    print(_training_summary(metadata))
    return 0


def _training_summary(metadata: dict) -> str:
    history = metadata.get("history") or {}
    steps = int(metadata.get("step") or len(history.get("step_losses", [])))
    if not steps:
        return "  not trained (no training history in this checkpoint)"
    lines = [f"  steps: {steps:,}   training time: "
             f"{format_duration(float(history.get('training_time', 0.0)))} "
             f"({float(history.get('training_time', 0.0)):.1f} s)"]
    best = metadata.get("best_val_loss")
    if best is not None:
        lines.append(f"  best validation loss: {best:.4f} nats per character "
                     f"({in_unit(best, 'bits'):.3f} bits; {perplexity_words(best)})")
    step_losses = history.get("step_losses") or []
    if step_losses:
        lines.append(f"  training loss: first {step_losses[0]:.4f}, last {step_losses[-1]:.4f} "
                     f"nats per character")
    config = metadata.get("training_config") or {}
    if config:
        lines.append(f"  settings: batch {config.get('batch_size')} x "
                     f"{config.get('sequence_length')} characters, learning rate "
                     f"{config.get('learning_rate'):g}, seed {config.get('seed')}")
    return "\n".join(lines)
