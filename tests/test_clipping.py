"""Gradient clipping: the optimizer never sees a gradient norm above grad_clip; 0 turns it off."""

from __future__ import annotations

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from microlm import CharacterTokenizer, MicroLM, ModelTrainer, TrainingConfig, set_seed

TEXT = "the quick brown fox jumps over the lazy dog. " * 20  # 900 characters: 12 steps
# Output weights 30 times their initial size make every step's gradient norm ~7-10; as
# initialised, this model's gradient norms are ~0.3.
PLANTED_SCALE = 30.0

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(grad_clip: float, planted: bool = True) -> tuple[list[float], list[float]]:
    """Train one epoch; return the global gradient norm each optimizer step was given (what
    the weights are updated with), and the step losses."""
    tokenizer = CharacterTokenizer(TEXT)
    set_seed(0)
    model = MicroLM(tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16, num_layers=1,
                    dropout=0.0)
    if planted:
        with torch.no_grad():
            model.head.weight.mul_(PLANTED_SCALE)
    config = TrainingConfig(epochs=1, batch_size=4, sequence_length=16, grad_clip=grad_clip,
                            precision="float32", device="cpu")
    trainer = ModelTrainer(model, tokenizer, config=config)
    trainer.prepare_data(TEXT)
    norms = []

    def record_gradient_norm(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    hook = register_optimizer_step_pre_hook(record_gradient_norm)
    try:
        losses = trainer.train()["step_losses"]
    finally:
        hook.remove()
    assert len(norms) == len(losses) == len(trainer.train_loader)
    return norms, losses


def test_the_default_clip_is_a_norm_of_one():
    assert TrainingConfig().grad_clip == 1.0


def test_without_clipping_the_planted_gradients_are_large():
    norms, _ = train(grad_clip=0)
    assert min(norms) > 5.0


@pytest.mark.parametrize("grad_clip", [1.0, 2.5])
def test_clipping_scales_each_large_gradient_down_to_the_clip_norm(grad_clip):
    norms, _ = train(grad_clip)
    assert max(norms) <= grad_clip + 1e-6
    # every step's gradient was larger: each is scaled to the bound, not cut below it
    assert norms == pytest.approx([grad_clip] * len(norms), rel=1e-5)


def test_clipping_leaves_a_gradient_below_the_bound_alone():
    unclipped_norms, unclipped_losses = train(grad_clip=0, planted=False)
    assert max(unclipped_norms) < 1.0
    norms, losses = train(grad_clip=1.0, planted=False)
    assert norms == unclipped_norms
    assert losses == unclipped_losses
