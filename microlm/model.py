"""The language model: character embedding -> LSTM -> dropout -> output layer, and its config.

The output layer is one linear map from the LSTM's hidden units to the next-character
scores, or, with output_hidden_dim > 0, a small two-layer network (linear, GELU, linear).
That second form adds capacity where a CPU computes it fastest: it reads every position of
a batch at once, while the LSTM must walk the window one character at a time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (num_layers, B, hidden_dim)


@dataclass
class ModelConfig:
    vocab_size: int = 65  # number of distinct characters (tokenizer.vocab_size())
    embedding_dim: int = 128  # size of the vector each character is mapped to
    hidden_dim: int = 256  # size of the LSTM hidden and cell state, per layer
    num_layers: int = 2  # stacked LSTM layers
    dropout: float = 0.2  # dropout between LSTM layers and before the output layer
    output_hidden_dim: int = 0  # hidden units in the output layer; 0: a single linear map

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("Invalid model configuration: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Everything wrong with this config, in words (empty when valid)."""
        out = []
        for name in ("vocab_size", "embedding_dim", "hidden_dim", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                out.append(f"{name} must be a whole number >= 1 (got {value!r})")
        value = self.output_hidden_dim
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            out.append(f"output_hidden_dim must be a whole number >= 0 (got {value!r}); "
                       f"0 means a single linear output layer")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            out.append(f"dropout must be in [0, 1) (got {self.dropout!r})")
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def num_parameters(self) -> int:
        """Exact parameter count of MicroLM(config), computed without building it."""
        return count_parameters(self.vocab_size, self.embedding_dim, self.hidden_dim,
                                self.num_layers, self.output_hidden_dim)

    def lstm_parameters(self) -> int:
        """Parameters of the LSTM layers alone."""
        return lstm_parameters(self.embedding_dim, self.hidden_dim, self.num_layers)


def lstm_parameters(embedding_dim: int, hidden_dim: int, num_layers: int) -> int:
    """4 gates, each with input and recurrent weights and two bias vectors (as in PyTorch)."""
    total = 0
    for layer in range(num_layers):
        layer_input = embedding_dim if layer == 0 else hidden_dim
        total += 4 * hidden_dim * (layer_input + hidden_dim + 2)
    return total


def count_parameters(vocab_size: int, embedding_dim: int, hidden_dim: int, num_layers: int,
                     output_hidden_dim: int = 0) -> int:
    """Embedding + LSTM (4 gates, two bias vectors as in PyTorch) + output layer."""
    embedding = vocab_size * embedding_dim
    lstm = lstm_parameters(embedding_dim, hidden_dim, num_layers)
    if output_hidden_dim:
        head = (hidden_dim + 1) * output_hidden_dim + (output_hidden_dim + 1) * vocab_size
    else:
        head = (hidden_dim + 1) * vocab_size
    return embedding + lstm + head


class Dropout(nn.Module):
    """nn.Dropout with a cheaper mask on the CPU.

    torch draws one random number per element for its mask, which can cost a fifth of a
    training step on a CPU. Here each 64-bit draw gives four 16-bit uniform numbers, one per
    element: a quarter of the draws, and several times faster (RESULTS.md, "Speed").
    The rate is rounded to 1/65,536 and the kept values are scaled by 1 / (1 - that rate),
    so the expected output equals the input. Elsewhere (CUDA, MPS) this is F.dropout."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        dropped = min(round(self.p * 65536), 65535)  # of every 65,536 values
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2**63, None)
        uniform = words.view(torch.int16)[:n].view(x.shape)  # -32,768 ... 32,767
        keep = (uniform >= dropped - 32768).to(x.dtype)
        return (x * keep) * (65536 / (65536 - dropped))

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


class MicroLM(nn.Module):
    """A character-level LSTM language model.

    model(x) maps ids (B, T) to next-character logits (B, T, vocab_size).
    model(x, state) or model(x, return_state=True) also returns the final (h, c),
    which generation carries from one character to the next.
    """

    def __init__(self, vocab_size: int | None = None, embedding_dim: int = 128,
                 hidden_dim: int = 256, num_layers: int = 2, dropout: float = 0.2,
                 output_hidden_dim: int = 0, *, config: ModelConfig | None = None):
        super().__init__()
        if config is None:
            if vocab_size is None:
                raise ValueError("MicroLM needs vocab_size (tokenizer.vocab_size()) or config=.")
            config = ModelConfig(vocab_size, embedding_dim, hidden_dim, num_layers, dropout,
                                 output_hidden_dim)
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        # PyTorch applies LSTM dropout only between layers; a 1-layer LSTM gets none here.
        self.lstm = nn.LSTM(config.embedding_dim, config.hidden_dim, config.num_layers,
                            batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = Dropout(config.dropout)
        self.head = output_layer(config)
        self._init_forget_gate_bias()

    @classmethod
    def from_config(cls, config: ModelConfig) -> MicroLM:
        return cls(config=config)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The weights' number type (float32 unless converted)."""
        return self.embedding.weight.dtype

    def _init_forget_gate_bias(self) -> None:
        # Gates are stored (input, forget, cell, output). A forget bias of 1 makes the
        # cell remember by default early in training (Jozefowicz et al., 2015).
        hidden = self.config.hidden_dim
        with torch.no_grad():
            for name, bias in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    bias[hidden:2 * hidden].fill_(1.0)
                elif name.startswith("bias_hh"):
                    bias[hidden:2 * hidden].fill_(0.0)

    def forward(self, x: torch.Tensor, state: LSTMState | None = None,
                return_state: bool = False):
        emb = self.embedding(x)  # (B, T, embedding_dim)
        out, new_state = self.lstm(emb, state)  # (B, T, hidden_dim)
        logits = self.head(self.dropout(out))  # (B, T, vocab_size)
        if return_state or state is not None:
            return logits, new_state
        return logits

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        """Zero (h, c) for a batch: what the LSTM starts from when given no state."""
        device = device or self.device
        shape = (self.config.num_layers, batch_size, self.config.hidden_dim)
        return (torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    def get_model_info(self) -> dict:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        size_bytes = sum(p.numel() * p.element_size() for p in self.parameters())
        size_bytes += sum(b.numel() * b.element_size() for b in self.buffers())
        return {
            **self.config.to_dict(),
            "total_parameters": total,
            "trainable_parameters": trainable,
            "model_size_mb": size_bytes / 2**20,
            "embedding_parameters": self.embedding.weight.numel(),
            "lstm_parameters": sum(p.numel() for p in self.lstm.parameters()),
            "output_parameters": sum(p.numel() for p in self.head.parameters()),
        }


def output_layer(config: ModelConfig) -> nn.Module:
    """hidden -> scores: one linear map, or linear -> GELU -> linear with
    config.output_hidden_dim units between (in a fixed time such units lower the validation
    loss, though each step takes longer: RESULTS.md)."""
    if not config.output_hidden_dim:
        return nn.Linear(config.hidden_dim, config.vocab_size)
    return nn.Sequential(nn.Linear(config.hidden_dim, config.output_hidden_dim), nn.GELU(),
                         nn.Linear(config.output_hidden_dim, config.vocab_size))


def layer_name(parameter_name: str) -> str:
    """Group a parameter under the layer a person would name: embedding, lstm.0, head."""
    if parameter_name.startswith("lstm."):
        return "lstm." + parameter_name.rsplit("_l", 1)[1].split("_")[0]
    return parameter_name.split(".")[0]


def gradient_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of the gradient of each layer (empty when no gradients exist)."""
    squares: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if param.grad is not None:
            square = param.grad.detach().float().pow(2).sum()
            key = layer_name(name)
            squares[key] = squares[key] + square if key in squares else square
    return {key: float(value.sqrt()) for key, value in squares.items()}
