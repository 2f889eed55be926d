"""The validation loss: mean cross-entropy over a text, each window from a fresh LSTM state."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import MicroLM


@torch.no_grad()
def evaluate_loss(model: MicroLM, tokens: torch.Tensor, window: int, max_chars: int | None,
                  device: torch.device | str = "cpu", batch_windows: int = 64) -> float:
    """Mean cross-entropy in nats/char over non-overlapping windows from a fresh state."""
    if max_chars is not None:
        tokens = tokens[:max_chars + 1]
    window = max(1, min(window, len(tokens) - 1))
    n_windows = (len(tokens) - 1) // window
    was_training = model.training
    model.eval()
    total, count = torch.zeros((), dtype=torch.float64), 0
    full = tokens[:n_windows * window + 1]
    inputs_all = full[:-1].view(n_windows, window)
    targets_all = full[1:].view(n_windows, window)
    for start in range(0, n_windows, batch_windows):
        inputs = inputs_all[start:start + batch_windows].long().to(device)
        targets = targets_all[start:start + batch_windows].long().to(device)
        logits = model(inputs).float()  # (B, window, vocab); the loss in float32
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                 reduction="sum").double().cpu()
        count += targets.numel()
    rest = len(tokens) - 1 - n_windows * window  # a last, shorter window
    if rest > 0:
        inputs = tokens[n_windows * window:-1].long().view(1, -1).to(device)
        targets = tokens[n_windows * window + 1:].long().view(1, -1).to(device)
        logits = model(inputs).float()
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                 reduction="sum").double().cpu()
        count += targets.numel()
    model.train(was_training)
    return float(total / count)
