"""The settings `microlm train` trains with: the explicit flags, then --preset, then the
recommendation for --time-budget, then the default preset."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from .. import budget as budgets
from .. import presets, recommendation
from ..model import ModelConfig
from ..trainer import ModelTrainer, TrainingConfig

DEFAULT_PRESET = "small"  # used when neither --preset nor --time-budget is given
MODEL_FLAGS = ("embedding_dim", "hidden_dim", "num_layers", "dropout", "output_hidden_dim")
TRAINING_FLAGS = ("sequence_length", "batch_size", "learning_rate", "weight_decay", "ema_decay",
                  "epochs", "val_fraction", "eval_interval", "patience", "batching", "precision",
                  "checkpoint_every", "checkpoint_minutes")
# What a resumed run may still change: how long it goes on, how it is watched and saved.
RESUME_FLAGS = ("epochs", "eval_interval", "patience", "checkpoint_every", "checkpoint_minutes")


def choose_config(args: argparse.Namespace, corpus_chars: int, vocab_size: int, device: str,
                   given: dict) -> tuple[ModelConfig, TrainingConfig]:
    """Explicit flags > --preset > recommendation for --time-budget > the default preset."""
    budget = args.time_budget
    if args.preset is None and budget is not None:
        speed = budgets.calibrate_for(budget, device)  # paid from the budget
        recommended = recommendation.recommend(
            corpus_chars, budgets.planning_seconds(budget, time.monotonic() - args.started),
            vocab_size, speed)
        print(recommended.headline(budget), file=sys.stderr)
        for reason in recommended.explained if getattr(args, "explain", False) else ():
            print(f"  - {reason.sentence}", file=sys.stderr)
        model_config = recommended.model_config
        training_config = recommended.training_config
    else:
        preset = presets.PRESETS[args.preset or DEFAULT_PRESET]
        if args.preset is None:
            print(f"Using the '{preset.name}' preset (choose with --preset, or let "
                  f"--time-budget pick).", file=sys.stderr)
        model_config = preset.model_config(vocab_size)
        training_config = preset.training_config()  # precision auto: the device's fastest
        if budget is not None and "epochs" not in given:
            # With a budget, time ends the run; the schedule then follows the clock.
            training_config = replace(training_config, epochs=1_000_000)
    model_config = replace(model_config, vocab_size=vocab_size,
                           **{n: given[n] for n in MODEL_FLAGS if n in given})
    settings = {n: given[n] for n in TRAINING_FLAGS if n in given}
    if args.seed is not None:
        settings["seed"] = args.seed
    training_config = replace(training_config, device=device, **settings)
    if args.preset is None and budget is not None and (
            set(given) - {"epochs", "eval_interval"}):
        # Flags changed the recommended model or batches: plan epochs and validation for
        # the model that will actually train (the flags themselves still win).
        planned = recommendation.budget_plan(model_config, training_config, corpus_chars,
                                             recommended.training_config.time_budget_s, speed)
        training_config = replace(planned, **{n: given[n] for n in ("epochs", "eval_interval")
                                              if n in given})
    return model_config, training_config


def describe(trainer: ModelTrainer, corpus_chars: int) -> str:
    m, t = trainer.model.config, trainer.config
    parameters = sum(p.numel() for p in trainer.model.parameters())
    output = f", output layer {m.output_hidden_dim:,} units" if m.output_hidden_dim else ""
    layers = f"{m.num_layers} LSTM layer" + ("s" if m.num_layers != 1 else "")
    return (f"Model: {parameters:,} parameters (embedding size {m.embedding_dim}, hidden size "
            f"{m.hidden_dim}, {layers}{output}, dropout {m.dropout:g}), "
            f"{m.vocab_size} characters in the vocabulary. Training on {corpus_chars:,} "
            f"characters with batches of "
            f"{t.batch_size} x {t.sequence_length}, learning rate {t.learning_rate:g}, "
            f"on {trainer.device}.")
