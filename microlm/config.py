"""TrainingConfig: what a training run is asked to do (ModelTrainer does it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass
class TrainingConfig:
    epochs: int = 10  # passes over the training text (an epoch ~ one pass, see TextDataLoader)
    learning_rate: float = 2e-3  # peak AdamW learning rate, reached after warm-up
    batch_size: int = 32  # windows per step
    sequence_length: int = 100  # characters per window = how far back gradients flow
    weight_decay: float = 0.01  # AdamW decoupled weight decay (not applied to biases)
    # Validate and keep an exponential moving average of the weights (each step moves it
    # 1 - ema_decay of the way to the weights just trained); 0 = the weights as trained.
    ema_decay: float = 0.98
    warmup_steps: int = 100  # linear warm-up, capped at 5 % of the run's steps
    min_lr_fraction: float = 0.1  # cosine decay ends at this fraction of learning_rate
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    eval_interval: int = 0  # steps between validation runs; 0 = once per epoch
    eval_chars: int = 100_000  # validation characters scored per evaluation (cost cap)
    patience: int = 0  # evaluations without improvement before stopping early; 0 = never
    sample_interval: int = 0  # steps between short generated samples; 0 = none
    sample_length: int = 120  # characters per sample
    time_budget_s: float | None = None  # stop (and finish the schedule) when this runs out
    val_fraction: float = 0.1  # share of the text held out for validation (prepare_data)
    batching: str = "random"  # "random" windows, or "sequential" with state carried (TBPTT)
    # What the model computes in: "bfloat16" (autocast; the weights stay float32) where the
    # device runs the LSTM in it, "float32", or "auto": the device's fastest of the two
    # (hardware.default_precision), decided when training starts.
    precision: str = "auto"
    seed: int = 1337
    device: str | None = None  # None: CUDA, then MPS, then CPU
    checkpoint_every: int = 0  # epochs between checkpoints to checkpoint_path; 0 = end only
    # Minutes of training between checkpoints to checkpoint_path (saved after the step at
    # which one is due), so a kill loses at most that much; None = by epochs only.
    checkpoint_minutes: float | None = None
    checkpoint_path: str | None = None
    grad_norm_interval: int = 50  # steps between per-layer gradient-norm records

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("Invalid training configuration: " + "; ".join(problems))

    def problems(self) -> list[str]:
        out = []
        for name in ("epochs", "batch_size", "sequence_length"):
            if int(getattr(self, name)) < 1:
                out.append(f"{name} must be >= 1")
        if not self.learning_rate > 0:
            out.append("learning_rate must be > 0")
        if not self.weight_decay >= 0:
            out.append("weight_decay must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            out.append("ema_decay must be in [0, 1)")
        if self.batching not in ("random", "sequential"):
            out.append("batching must be 'random' or 'sequential'")
        if self.precision not in PRECISIONS:
            out.append("precision must be 'auto', 'float32' or 'bfloat16'")
        if not 0.0 <= self.val_fraction < 1.0:
            out.append("val_fraction must be in [0, 1)")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            out.append("time_budget_s must be > 0")
        if self.checkpoint_minutes is not None and not self.checkpoint_minutes > 0:
            out.append("checkpoint_minutes must be > 0")
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
