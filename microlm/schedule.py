"""The optimizer and its learning-rate schedule: AdamW with weight decay on weight matrices,
a linear warm-up, then a cosine decay over the run."""

from __future__ import annotations

import math

import torch

from .config import TrainingConfig
from .model import MicroLM


def make_optimizer(model: MicroLM, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on weight matrices only (biases and embeddings are exempt).

    Fused (one kernel for all parameters) where this torch has it for the weights' device:
    the same update in fewer passes over memory, several times faster on a CPU (RESULTS.md,
    "Speed"). Elsewhere (torch < 2.4 on a CPU, say) the usual implementation."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if param.dim() >= 2 and not name.startswith("embedding") else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.99), fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device here
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.99))


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a saved AdamW state, keeping this optimizer's implementation (fused or not): a
    checkpoint saved before the fused kernel was used would otherwise turn it off."""
    groups = [{**saved, **{key: current.get(key) for key in ("fused", "foreach")}}
              for saved, current in zip(state["param_groups"], optimizer.param_groups,
                                        strict=False)]  # a count that differs: torch says so
    optimizer.load_state_dict({**state, "param_groups": groups})


def learning_rate_at(step: int, total_steps: int, progress: float, cfg: TrainingConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_fraction * learning_rate at progress 1."""
    warmup = min(cfg.warmup_steps, max(1, int(0.05 * total_steps)))
    if step < warmup:
        return cfg.learning_rate * (step + 1) / warmup
    floor = cfg.learning_rate * cfg.min_lr_fraction
    progress = min(1.0, max(progress, 0.0))
    return floor + 0.5 * (cfg.learning_rate - floor) * (1.0 + math.cos(math.pi * progress))

