"""Look inside a model: structure, parameter health, LSTM activations, predictions, embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .generator import TextGenerator
from .model import MicroLM, gradient_norms, layer_name
from .tokenizer import CharacterTokenizer

# ---- structure ----


def inspect_model(model: MicroLM) -> dict:
    """The model's structure: architecture text, parameter counts, weight memory and a
    table with one row per parameter tensor."""
    layers = [{"name": name, "layer": layer_name(name), "type": _module_type(name),
               "shape": _shape_text(param.shape), "parameters": param.numel()}
              for name, param in model.named_parameters()]
    config = model.config
    lines = [str(model), "", "Layers:"]
    lines.append(f"  embedding: {config.vocab_size} characters -> vectors of "
                 f"{config.embedding_dim} numbers ({_layer_parameters(layers, 'embedding'):,} "
                 f"parameters)")
    for index in range(config.num_layers):
        inputs = config.embedding_dim if index == 0 else config.hidden_dim
        lines.append(f"  lstm.{index}: LSTM layer {index + 1}, {inputs} inputs -> "
                     f"{config.hidden_dim} hidden and cell units "
                     f"({_layer_parameters(layers, f'lstm.{index}'):,} parameters)")
    lines.append(f"  dropout: p={config.dropout:g} while training (no parameters)")
    between = (f"{config.output_hidden_dim} units (GELU) -> " if config.output_hidden_dim
               else "")
    lines.append(f"  head: {config.hidden_dim} hidden units -> {between}{config.vocab_size} "
                 f"next-character scores ({_layer_parameters(layers, 'head'):,} parameters)")
    total = sum(p.numel() for p in model.parameters())
    return {
        "architecture": "\n".join(lines),
        "parameter_count": total,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "memory_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20,
        "layers": layers,
        "config": config.to_dict(),
    }


def _module_type(parameter_name: str) -> str:
    module = parameter_name.split(".")[0]
    return {"embedding": "Embedding", "lstm": "LSTM", "head": "Linear"}.get(module, module)


def _shape_text(shape: torch.Size) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ")"


def _layer_parameters(layers: list[dict], layer: str) -> int:
    return sum(row["parameters"] for row in layers if row["layer"] == layer)


# ---- parameter health ----

EXPLODING = 100.0  # a weight this large in a model of this kind means training went wrong
LARGE = 20.0
SATURATED_BIAS = 5.0  # sigmoid(5) = 0.993: a gate with this bias is stuck open or shut


def analyze_parameters(model: MicroLM) -> dict:
    """Statistics of every parameter tensor, an overall health score and gradient norms.

    health_score is the mean over tensors of a per-tensor score in [0, 1]. A tensor
    starts at 1 and is multiplied by:
      0     if it holds NaN or infinity (nothing else matters then);
      0.5   if all its values are equal (std < 1e-8): it is dead and its units learn alike;
      0.5   if more than 90 % of its values are exactly 0;
      0.25  if some |value| > 100 (exploding), or 0.75 if some |value| > 20 (very large);
      1 - s/2 for an LSTM bias, where s is the fraction of gate units whose total bias
            (bias_ih + bias_hh) exceeds 5 in size, which pins the gate open or shut.
    health_notes says, in words, why any tensor lost points. gradient_flow is the L2
    norm of each layer's gradient from the last backward pass (empty without one).
    """
    tensors, scores, notes = {}, [], []
    parameters = dict(model.named_parameters())
    for name, param in parameters.items():
        values = param.detach().float().cpu().reshape(-1)
        stats = _tensor_stats(param.shape, values)
        tensors[name] = stats
        score, reasons = _tensor_score(stats)
        if name.startswith("lstm.bias_ih"):
            partner = parameters.get(name.replace("bias_ih", "bias_hh"))
            if partner is not None and stats["finite"]:
                total = values + partner.detach().float().cpu().reshape(-1)
                saturated = float((total.abs() > SATURATED_BIAS).float().mean())
                if saturated > 0:
                    score *= 1 - saturated / 2
                    reasons.append(f"{saturated:.0%} of its gate biases are beyond "
                                   f"±{SATURATED_BIAS:g}, so those gates are stuck open or shut")
        scores.append(score)
        notes.extend(f"{name}: {reason}." for reason in reasons)
    return {
        "tensors": tensors,
        "health_score": float(np.mean(scores)) if scores else 1.0,
        "health_notes": notes,
        "gradient_flow": gradient_norms(model),
    }


def _tensor_stats(shape: torch.Size, values: torch.Tensor) -> dict:
    finite = bool(torch.isfinite(values).all())
    if values.numel() == 0:
        return {"shape": tuple(shape), "mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0,
                "abs_mean": 0.0, "zero_fraction": 0.0, "finite": True}
    return {
        "shape": tuple(shape),
        "mean": float(values.mean()),
        "std": float(values.std(unbiased=False)),
        "min": float(values.min()),
        "max": float(values.max()),
        "abs_mean": float(values.abs().mean()),
        "zero_fraction": float((values == 0).float().mean()),
        "finite": finite,
    }


def _tensor_score(stats: dict) -> tuple[float, list[str]]:
    if not stats["finite"]:
        return 0.0, ["it contains NaN or infinite values; training diverged (lower the "
                     "learning rate)"]
    score, reasons = 1.0, []
    size = int(np.prod(stats["shape"])) if stats["shape"] else 1
    if size > 1 and stats["std"] < 1e-8:
        score *= 0.5
        reasons.append(f"all its values equal {stats['mean']:.3g}, so its units cannot "
                       f"learn different things")
    if stats["zero_fraction"] > 0.9:
        score *= 0.5
        reasons.append(f"{stats['zero_fraction']:.0%} of its values are exactly zero")
    largest = max(abs(stats["min"]), abs(stats["max"]))
    if largest > EXPLODING:
        score *= 0.25
        reasons.append(f"a value of size {largest:.3g} is exploding (healthy weights stay "
                       f"within a few units)")
    elif largest > LARGE:
        score *= 0.75
        reasons.append(f"a value of size {largest:.3g} is very large")
    return score, reasons


def parameter_values(model: MicroLM, name: str) -> np.ndarray:
    """All values of one parameter tensor, flattened, as a float32 copy (for a histogram)."""
    parameters = dict(model.named_parameters())
    if name not in parameters:
        raise KeyError(f"No parameter named {name!r}; the model has: "
                       f"{', '.join(parameters)}.")
    return parameters[name].detach().float().cpu().reshape(-1).numpy().copy()


# ---- activations ----

@dataclass(frozen=True)
class LayerActivations:
    """One LSTM layer's values at each character of a text, each (T, hidden_dim)."""

    hidden: np.ndarray  # h: what the layer outputs
    cell: np.ndarray  # c: the layer's memory
    input_gate: np.ndarray  # i in (0, 1): how much new content enters the memory
    forget_gate: np.ndarray  # f in (0, 1): how much of the memory is kept
    cell_candidate: np.ndarray  # g in (-1, 1): the new content offered to the memory
    output_gate: np.ndarray  # o in (0, 1): how much of the memory is shown as h


@dataclass(frozen=True)
class ActivationTrace:
    text: str  # the text as fed (unknown characters dropped/replaced if asked)
    chars: tuple[str, ...]  # one per time step
    layers: tuple[LayerActivations, ...]  # one per LSTM layer, bottom first


def activations(model: MicroLM, tokenizer: CharacterTokenizer, text: str,
                on_unknown: str = "error") -> ActivationTrace:
    """Run the LSTM over `text` one character at a time, from a zero state, and record
    every layer's gates, cell and hidden state.

    The step is recomputed from model.lstm's weights (PyTorch's gate order: input, forget,
    cell candidate, output), so each gate can be shown; dropout is not applied, as at
    generation time. The model itself is not run, so its train/eval mode is untouched.
    """
    text = tokenizer.clean(text, on_unknown)
    ids = tokenizer.encode(text)
    lstm = model.lstm
    hidden_dim = lstm.hidden_size
    device = model.embedding.weight.device
    layers = []
    with torch.no_grad():
        inputs = model.embedding(torch.tensor(ids, dtype=torch.long, device=device)).float()
        for index in range(lstm.num_layers):
            weight_ih = getattr(lstm, f"weight_ih_l{index}").float()  # (4H, input)
            weight_hh = getattr(lstm, f"weight_hh_l{index}").float()  # (4H, H)
            bias = torch.zeros(4 * hidden_dim, device=device)
            if lstm.bias:
                bias = (getattr(lstm, f"bias_ih_l{index}").float()
                        + getattr(lstm, f"bias_hh_l{index}").float())
            from_input = inputs @ weight_ih.T + bias  # (T, 4H), all steps at once
            h = torch.zeros(hidden_dim, device=device)
            c = torch.zeros(hidden_dim, device=device)
            records: dict[str, list[torch.Tensor]] = {k: [] for k in "hcifgo"}
            for step in range(len(ids)):
                gates = from_input[step] + weight_hh @ h  # (4H,)
                i, f, g, o = gates.chunk(4)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                c = f * c + i * g
                h = o * c.tanh()
                for key, value in zip("hcifgo", (h, c, i, f, g, o), strict=True):
                    records[key].append(value)
            arrays = {key: _stack(values, hidden_dim) for key, values in records.items()}
            layers.append(LayerActivations(arrays["h"], arrays["c"], arrays["i"], arrays["f"],
                                           arrays["g"], arrays["o"]))
            inputs = torch.from_numpy(arrays["h"]).to(device)  # (T, H): the next layer's input
    return ActivationTrace(text, tuple(text), tuple(layers))


def _stack(values: list[torch.Tensor], hidden_dim: int) -> np.ndarray:
    if not values:
        return np.zeros((0, hidden_dim), dtype=np.float32)
    return torch.stack(values).cpu().numpy()  # (T, H)


ACTIVATION_KINDS = {"hidden": "hidden", "cell": "cell", "input": "input_gate",
                    "input_gate": "input_gate", "forget": "forget_gate",
                    "forget_gate": "forget_gate", "candidate": "cell_candidate",
                    "cell_candidate": "cell_candidate", "output": "output_gate",
                    "output_gate": "output_gate"}


def top_neurons(trace: ActivationTrace, layer: int = 0, kind: str = "cell",
                k: int = 10) -> list[tuple[int, float]]:
    """The k neurons whose value varies most over the text, as (index, variation), largest
    first. Variation is the mean absolute deviation of the neuron's value from its own
    mean over the text: a neuron that reacts to particular characters scores high, one
    that stays put (however large) scores zero."""
    if kind not in ACTIVATION_KINDS:
        raise ValueError(f"kind must be one of {', '.join(ACTIVATION_KINDS)}, not {kind!r}")
    if not 0 <= layer < len(trace.layers):
        raise IndexError(f"layer must be in 0..{len(trace.layers) - 1}, got {layer}")
    values = getattr(trace.layers[layer], ACTIVATION_KINDS[kind])  # (T, H)
    if len(values) == 0:
        variation = np.zeros(values.shape[1])
    else:
        variation = np.abs(values - values.mean(axis=0)).mean(axis=0)
    order = np.argsort(-variation, kind="stable")[:max(0, k)]
    return [(int(index), float(variation[index])) for index in order]


def gate_saturation(trace: ActivationTrace, low: float = 0.1,
                    high: float = 0.9) -> list[dict[str, float]]:
    """Per layer, the fraction of gate values below `low` or above `high`: a saturated
    gate is fully shut or open, and passes almost no gradient."""
    result = []
    for layer in trace.layers:
        fractions = {}
        for key, values in (("input", layer.input_gate), ("forget", layer.forget_gate),
                            ("output", layer.output_gate)):
            fractions[key] = (float(((values < low) | (values > high)).mean())
                              if values.size else 0.0)
        result.append(fractions)
    return result


# ---- predictions ----

def next_char_distribution(model: MicroLM, tokenizer: CharacterTokenizer, prompt: str,
                           top_k: int | None = None) -> list[tuple[str, float]]:
    """The model's probability for each possible next character after `prompt`, highest
    first (the top_k most likely only, if given). An empty prompt starts from the same
    character as TextGenerator; characters the model never saw raise
    UnknownCharacterError.

    The LSTM is run through activations(), as at generation time (no dropout), without
    switching the model to eval mode: a model that is training in another thread keeps
    its mode."""

    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    trace = activations(model, tokenizer, prompt or TextGenerator(model, tokenizer).start_char())
    with torch.no_grad():
        last_hidden = torch.from_numpy(trace.layers[-1].hidden[-1]).to(model.device)
        logits = model.head(last_hidden.to(model.dtype))  # (vocab_size,)
        probabilities = F.softmax(logits.float(), dim=-1).cpu().numpy()
    vocab = tokenizer.vocab_size()
    # Rows beyond the tokenizer's characters (a model built larger) cannot be shown as text.
    order = np.argsort(-probabilities[:vocab], kind="stable")
    if top_k is not None:
        order = order[:top_k]
    return [(tokenizer.chars[index], float(probabilities[index])) for index in order]


# ---- embeddings ----

@dataclass(frozen=True)
class EmbeddingProjection:
    chars: tuple[str, ...]
    coords: np.ndarray  # (V, 2): each character's position on the two main axes
    explained_variance: tuple[float, float]  # share of the spread each axis shows


def embedding_projection(model: MicroLM, tokenizer: CharacterTokenizer) -> EmbeddingProjection:
    """Project the character embeddings to 2-D with PCA (principal component analysis):
    characters the model treats alike land close together. Each axis is signed so that
    its largest loading is positive, which makes the picture reproducible."""
    chars = tuple(tokenizer.chars)
    vectors = model.embedding.weight.detach().double().cpu().numpy()[:len(chars)]  # (V, E)
    centred = vectors - vectors.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)  # axes: (k, E)
    for row in axes:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    coords = np.zeros((len(chars), 2))
    shown = min(2, axes.shape[0])
    coords[:, :shown] = centred @ axes[:shown].T
    variance = singular**2
    total = variance.sum()
    fractions = [float(v / total) if total > 0 else 0.0 for v in variance[:2]]
    fractions += [0.0] * (2 - len(fractions))
    return EmbeddingProjection(chars, coords.astype(np.float32), (fractions[0], fractions[1]))
