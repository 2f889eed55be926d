"""How fast the Inspect tab's explanations are computed: every neuron named against every
text feature, one character step by step, and a surprise map.

    python tests/benchmarks/explain_speed.py [CORPUS] [--model CHECKPOINT] [--repeats N]

Targets (on 2 CPU cores): all neurons of a 1-million-parameter model against all features
over 20,000 characters in under 2 s; a surprise map of 50,000 characters in under 2 s.
Without --model the model is a fresh one of ~1 M parameters (embedding 64, one LSTM layer
of 448 units; its weights do not change the cost). Each figure is the median of the
repeats, after one warm-up run. The exit status is 0 when both targets are met.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import add_corpus_argument, corpus_name, load_corpus

from microlm import CharacterTokenizer, MicroLM, load_model, split_text
from microlm.inspection import activations
from microlm.neurons import feature_values, name_neurons, neuron_names
from microlm.stepwise import step_by_step
from microlm.surprise import surprise_map

NAMING_CHARS = 20_000
SURPRISE_CHARS = 50_000
TARGET_S = 2.0


def timed(fn: Callable[[], object], repeats: int) -> float:
    """The median wall time of fn() over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/explain_speed.py",
                                     description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--model", type=Path, metavar="CHECKPOINT",
                        help="a saved model to measure (default: a fresh ~1 M-parameter one)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure")
    args = parser.parse_args(argv)

    corpus = load_corpus(args.corpus)
    if args.model is not None:
        model, tokenizer, _ = load_model(args.model)
    else:
        torch.manual_seed(0)
        tokenizer = CharacterTokenizer(corpus.text)
        model = MicroLM(tokenizer.vocab_size(), embedding_dim=64, hidden_dim=448,
                        num_layers=1, dropout=0.0)
    text = tokenizer.clean(corpus.text, "drop")
    validation = split_text(text, 0.1)[1]
    naming_text = (validation if len(validation) >= NAMING_CHARS else text)[-NAMING_CHARS:]
    surprise_text = text[-SURPRISE_CHARS:]
    parameters = sum(p.numel() for p in model.parameters())
    config = model.config
    print(f"CPU: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"corpus: {corpus_name(args.corpus)}; model: "
          f"{'fresh' if args.model is None else args.model.name}, {parameters:,} parameters "
          f"(embedding {config.embedding_dim}, hidden {config.hidden_dim} x "
          f"{config.num_layers}, output units {config.output_hidden_dim})")

    trace = activations(model, tokenizer, naming_text)
    figures = {
        "activations (20,000 chars)": timed(
            lambda: activations(model, tokenizer, naming_text), args.repeats),
        "text features (20,000 chars)": timed(lambda: feature_values(naming_text),
                                              args.repeats),
        "names from the activations": timed(lambda: neuron_names(trace), args.repeats),
        "name_neurons, all of it": timed(
            lambda: name_neurons(model, tokenizer, naming_text), args.repeats),
        "step_by_step (trace given)": timed(
            lambda: step_by_step(model, tokenizer, naming_text, NAMING_CHARS // 2, trace),
            args.repeats),
        "step_by_step (10,000 chars before)": timed(
            lambda: step_by_step(model, tokenizer, naming_text, NAMING_CHARS // 2),
            args.repeats),
        "surprise_map (50,000 chars)": timed(
            lambda: surprise_map(model, tokenizer, surprise_text), args.repeats),
    }
    width = max(len(name) for name in figures)
    for name, seconds in figures.items():
        print(f"  {name:<{width}}  {seconds:8.3f} s")
    naming, surprise = figures["name_neurons, all of it"], figures["surprise_map (50,000 chars)"]
    neurons = 2 * config.num_layers * config.hidden_dim
    print(f"naming {neurons:,} neurons against {len(feature_values('a')[0])} features: "
          f"{naming:.2f} s (target < {TARGET_S:g} s); surprise map: {surprise:.2f} s "
          f"(target < {TARGET_S:g} s)")
    return 0 if naming < TARGET_S and surprise < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
