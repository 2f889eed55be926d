"""The weights training keeps besides the ones it trains: the best validated so far, a
moving average of the weights, and the latest weights once the best replace them."""

from __future__ import annotations

import copy
import math

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .model import MicroLM

StateDict = dict[str, torch.Tensor]


class KeptWeights:
    """What ModelTrainer keeps of its model's weights, from run to run and in checkpoints.

    best_val_loss and best_state: the best validation loss so far and a copy of the weights
    that scored it; evals_without_improvement counts the validations since (for patience).
    average: the exponential moving average of the weights (ema_decay > 0), which a run
    validates, samples and keeps instead of the weights as trained.
    last_state: the latest trained weights once the model holds the kept ones instead (to
    resume from); None while the model holds the latest.
    """

    def __init__(self) -> None:
        self.best_val_loss: float | None = None
        self.best_state: StateDict | None = None
        self.last_state: StateDict | None = None
        self.average: AveragedModel | None = None
        self.evals_without_improvement = 0
        self.ema_decay = 0.0  # the moving average's decay once warmed up (TrainingConfig's)

    def start_run(self, model: MicroLM, ema_decay: float, continues: bool) -> None:
        """Set up the moving average for a run (`continues`: one stopped part-way)."""
        self.ema_decay = ema_decay
        if not ema_decay:
            self.average = None
        elif self.average is None:  # a copy of the bare model (made before DDP wraps it)
            self.average = AveragedModel(model, multi_avg_fn=self._update_average)
        elif not continues:  # a new run averages its own weights from its first step
            self.average.n_averaged.zero_()

    def _update_average(self, averages: list[torch.Tensor], weights: list[torch.Tensor],
                        count: torch.Tensor) -> None:
        """AveragedModel's update: an exponential moving average whose decay starts low
        (count 1: 0.18, count 90: 0.9) and grows to ema_decay, so that early in a run the
        average follows the fast-changing weights closely instead of the random start
        (what it gains over the last weights: RESULTS.md)."""
        n = float(count)
        decay = min(self.ema_decay, (1 + n) / (10 + n))
        get_ema_multi_avg_fn(decay)(averages, weights, count)

    def track(self, val_loss: float, validated: MicroLM) -> bool:
        """Count a validation of the `validated` weights; whether it is the best so far (then
        a copy of those weights is kept)."""
        improved = math.isfinite(val_loss) and (self.best_val_loss is None
                                                or val_loss < self.best_val_loss)
        if improved:
            self.best_val_loss = val_loss
            self.best_state = {k: v.detach().clone() for k, v in validated.state_dict().items()}
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1
        return improved

    def keep_best(self, model: MicroLM, validated_now: bool, use_average: bool = True) -> None:
        """Leave the best-validated weights in the model (without validation, the moving
        average of the weights unless the run diverged, which spoils it); remember the
        latest weights for resuming. `validated_now`: the last validation scored the model
        as it is now, at the best loss so far."""
        keep = self.best_state
        if keep is None and use_average and self.average is not None:
            keep = self.average.module.state_dict()
        if keep is None:
            self.last_state = None
            return
        # The model is the best one only if it was validated as it is now (not, say, after a
        # step that diverged since that evaluation, or as the average of its weights).
        if self.average is None and validated_now:
            self.last_state = None
            return
        self.last_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(keep)

    def to_save(self, model: MicroLM) -> tuple[MicroLM, StateDict | None]:
        """The model to save for generation (the best) and the latest weights to resume from
        (None: the model's own)."""
        latest = self.last_state
        if latest is None and self.best_state is not None and not _same_weights(
                model.state_dict(), self.best_state):
            # During a run the model holds the latest weights, which need not be the best:
            # save the best for generation (in a copy: the model itself is left alone, it
            # may be training; deepcopy, unlike a new MicroLM, draws no random numbers) and
            # the latest to resume from.
            latest = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model = copy.deepcopy(model)
            model.load_state_dict(self.best_state)
        return model, latest

    def restore(self, model: MicroLM, state: dict, best_val_loss: float | None,
                ema_decay: float) -> None:
        """Take back what a checkpoint's training state kept, into the `model` loaded from
        it (the best weights): the model then holds the latest weights again."""
        self.best_val_loss = best_val_loss
        self.ema_decay = ema_decay
        if state.get("best_state_is_model"):
            self.best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if state.get("model_state") is not None:
            model.load_state_dict(state["model_state"])
        if state.get("average") is not None and ema_decay:
            self.average = AveragedModel(model, multi_avg_fn=self._update_average)
            self.average.load_state_dict(state["average"])
        self.evals_without_improvement = int(state.get("evals_without_improvement", 0))


def _same_weights(a: StateDict, b: StateDict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
