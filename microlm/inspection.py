"""Look inside a model: structure, parameter health, LSTM activations, predictions, embeddings."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .generator import TextGenerator
from .model import LSTMState, MicroLM, gradient_norms, layer_name
from .thread_choice import ThreadChoice
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
    lines.append(f"  head: output layer, {config.hidden_dim} hidden units -> {between}"
                 f"{config.vocab_size} "
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
    """Run the LSTM over `text` from a zero state and record every layer's gates, cell and
    hidden state after each character.

    The layers run as PyTorch's own LSTM (stateful_pass), which gives each layer's hidden
    state h at every step. The gates then follow for all steps at once from the weights
    (PyTorch's gate order: input, forget, cell candidate, output), each step reading the
    h of the step before, and the cell c from the gates: c_t = f_t * c_(t-1) + i_t * g_t.
    Dropout is not applied, as at generation time, and the model's train/eval mode is
    untouched. Cost: one pass of the LSTM plus one matrix product per layer (measured by
    tests/benchmarks/explain_speed.py).
    """
    text = tokenizer.clean(text, on_unknown)
    ids = tokenizer.encode(text)
    hidden_dim, count = model.lstm.hidden_size, model.lstm.num_layers
    device = model.embedding.weight.device
    chunks: list[list[torch.Tensor]] = [[] for _ in range(count)]
    for _, outputs, _ in stateful_pass(model, ids):
        for index, output in enumerate(outputs):
            chunks[index].append(output)
    layers = []
    with torch.no_grad():
        inputs = model.embedding(torch.tensor(ids, dtype=torch.long, device=device)).float()
        for index in range(count):
            weight_ih, weight_hh, bias = _layer_weights(model.lstm, index)
            hidden = (torch.cat(chunks[index]) if ids  # (T, H)
                      else torch.zeros(0, hidden_dim, device=device))
            previous = torch.cat([torch.zeros(1, hidden_dim, device=device), hidden[:-1]])
            gates = inputs @ weight_ih.T + previous @ weight_hh.T + bias  # (T, 4H)
            i, f, g, o = gates.chunk(4, dim=1)
            i, f, g, o = (x.cpu().numpy() for x in (i.sigmoid(), f.sigmoid(), g.tanh(),
                                                     o.sigmoid()))
            layers.append(LayerActivations(hidden.cpu().numpy(), running_cell(f, i * g),
                                           i, f, g, o))
            inputs = hidden  # (T, H): the next layer's input
    return ActivationTrace(text, tuple(text), tuple(layers))


def _layer_weights(lstm: nn.LSTM, index: int) -> tuple[torch.Tensor, ...]:
    """Layer `index`'s weight_ih (4H, input), weight_hh (4H, H) and bias_ih + bias_hh (4H,),
    in float32."""
    weight_ih = getattr(lstm, f"weight_ih_l{index}").detach().float()
    weight_hh = getattr(lstm, f"weight_hh_l{index}").detach().float()
    bias = torch.zeros(weight_ih.shape[0], device=weight_ih.device)
    if lstm.bias:
        bias = (getattr(lstm, f"bias_ih_l{index}").detach().float()
                + getattr(lstm, f"bias_hh_l{index}").detach().float())
    return weight_ih, weight_hh, bias


# ---- one pass over a long text ----

CHUNK_STEPS = 4096  # characters run at once; the LSTM's state is carried between chunks
TRIAL_STEPS = 256  # characters run to time a thread count
RETRY_EVERY = 8  # chunks between two trials of the thread count not in use


def stateful_pass(model: MicroLM, ids: Sequence[int]
                  ) -> Iterator[tuple[int, list[torch.Tensor], list[LSTMState]]]:
    """Read `ids` with the model's LSTM in one stateful pass from a zero state, a chunk of
    characters at a time, each layer's (h, c) carried from chunk to chunk. Yields, per
    chunk: its first position, each layer's output at each of its characters (n, H), and
    each layer's (h, c) after it. No dropout; the model's mode is left alone.

    A batch of one walks the text one character at a time, and a step is too small to
    share well between threads (a 20,000-character pass took 47 s on 2 threads instead
    of 0.6 s, and 0.9 s on one, while another program kept a core busy): the pass chooses
    its thread count chunk by chunk (microlm.thread_choice) and restores it at the end."""
    layers = [lstm_layer(model, index) for index in range(model.lstm.num_layers)]
    states: list[LSTMState | None] = [None] * len(layers)
    choice = ThreadChoice(torch.get_num_threads(), TRIAL_STEPS, CHUNK_STEPS, RETRY_EVERY)
    start = 0
    try:
        while start < len(ids):
            threads, steps = choice.next()
            torch.set_num_threads(threads)
            began = time.perf_counter()
            chunk = torch.tensor([ids[start:start + steps]], device=model.device)
            outputs = []
            with torch.no_grad():
                x = model.embedding(chunk).float()  # (1, n, E)
                for index, layer in enumerate(layers):
                    x, states[index] = layer(x, states[index])
                    outputs.append(x[0])  # (n, H)
            choice.timed(threads, chunk.shape[1], time.perf_counter() - began)
            yield start, outputs, list(states)
            start += chunk.shape[1]
    finally:
        torch.set_num_threads(choice.many)


def lstm_layer(model: MicroLM, index: int) -> nn.LSTM:
    """LSTM layer `index` of the model as a one-layer nn.LSTM of its own, holding a float32
    copy of its weights, in eval mode. Running it gives that layer's output at every step
    from PyTorch's fused loop, without dropout, whatever mode the model is in (a model
    training in another thread keeps its mode)."""
    lstm = model.lstm
    inputs = lstm.input_size if index == 0 else lstm.hidden_size
    # Built on the meta device: no random initial weights, so inspecting never draws from
    # the seeded random number generator.
    single = nn.LSTM(inputs, lstm.hidden_size, batch_first=True, bias=lstm.bias,
                     device="meta").to_empty(device=model.device)
    with torch.no_grad():
        for kind in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if lstm.bias else ()):
            getattr(single, f"{kind}_l0").copy_(getattr(lstm, f"{kind}_l{index}"))
    return single.eval()


def running_cell(forget: np.ndarray, written: np.ndarray) -> np.ndarray:
    """The cell state at every step from zero: c_t = forget_t * c_(t-1) + written_t, where
    written = i * g is what the input gate lets in. Arrays (T, H)."""
    cell = np.empty_like(written)
    if len(written):
        cell[0] = written[0]
    for step in range(1, len(written)):
        np.multiply(forget[step], cell[step - 1], out=cell[step])
        cell[step] += written[step]
    return cell


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


def gate_extremes(trace: ActivationTrace, low: float = 0.1,
                  high: float = 0.9) -> list[dict[str, tuple[float, float]]]:
    """Per layer and gate (input, forget, output), the share of its values near 0 (below
    `low`: the gate is shut) and near 1 (above `high`: it is open), as (near 0, near 1).
    The two add up to gate_saturation's fraction."""
    result = []
    for layer in trace.layers:
        shares = {}
        for key, values in (("input", layer.input_gate), ("forget", layer.forget_gate),
                            ("output", layer.output_gate)):
            shares[key] = ((float((values < low).mean()), float((values > high).mean()))
                           if values.size else (0.0, 0.0))
        result.append(shares)
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
