"""Look inside a trained model with the microlm API.

It prints, in order: the model's layers and size (inspect_model), statistics of its weights
and a health score (analyze_parameters), what it expects after a prompt
(next_char_distribution), which LSTM neurons move most while it reads and how open its gates
are (activations, top_neurons, gate_saturation), which neurons follow a feature of the
text such as "inside a word" (name_neurons), and which characters of a sentence surprise it
(surprise_map).

    python -m microlm.examples.model_inspection_demo training_demo.pt
    python -m microlm.examples.model_inspection_demo            # trains a tiny model first
    python -m microlm.examples.model_inspection_demo --prompt "import "
"""

from __future__ import annotations

import argparse
import math

from microlm import (
    activations,
    analyze_parameters,
    gate_saturation,
    inspect_model,
    name_neurons,
    next_char_distribution,
    sample_corpus,
    surprise_map,
    top_neurons,
)
from microlm.examples.quick_model import CORPUS, load_or_train

SENTENCE = "The function returns a list of the names in the module."


def heading(title: str) -> None:
    print(f"\n{title}\n{'-' * len(title)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m microlm.examples.model_inspection_demo",
        description="Print a model's structure, weight statistics, predictions, neurons "
                    "and surprise.")
    parser.add_argument("checkpoint", nargs="?",
                        help="a trained model (from training_demo or `microlm train`); "
                             "without one a tiny model is trained first")
    parser.add_argument("--prompt", default="The functio",
                        help='the text after which to show the next-character probabilities '
                             '(default "The functio")')
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="training time when no checkpoint is given (default 10)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be more than 0")
    model, tokenizer = load_or_train(args.checkpoint, args.seconds)
    unknown = tokenizer.unknown_characters(args.prompt)
    if unknown:
        parser.error(f"the model never saw {', '.join(map(repr, unknown))}: use characters "
                     f"of its text in the prompt")

    # 1. Structure: each layer, what goes in and out, and its parameters.
    heading("The model")
    summary = inspect_model(model)
    print(summary["architecture"])
    print(f"{summary['parameter_count']:,} parameters, {summary['memory_mb']:.2f} MiB of "
          f"weights in float32")

    # 2. Weight statistics. A healthy trained model has weights of modest size, centred
    #    near 0, none NaN. health_score starts at 1 and loses points for dead, exploding
    #    or saturated tensors; health_notes says why.
    heading("Weights")
    analysis = analyze_parameters(model)
    print(f"{'tensor':<22} {'shape':>11} {'mean':>8} {'std':>7} {'min':>7} {'max':>7}")
    for name, stats in analysis["tensors"].items():
        shape = " x ".join(str(size) for size in stats["shape"])
        print(f"{name:<22} {shape:>11} {stats['mean']:8.4f} {stats['std']:7.4f} "
              f"{stats['min']:7.3f} {stats['max']:7.3f}")
    print(f"health score {analysis['health_score']:.2f} of 1")
    for note in analysis["health_notes"]:
        print(f"  {note}")

    # 3. Predictions: the probability of each possible next character after the prompt.
    #    A trained model is sure where the text is predictable (the "n" after "functio").
    heading(f"After {args.prompt!r} the model expects")
    for char, probability in next_char_distribution(model, tokenizer, args.prompt, top_k=8):
        bar = "#" * round(40 * probability)
        print(f"  {char!r:>6} {probability:6.1%} {bar}")

    # 4. Activations: the LSTM's gates, memory (cell) and output (hidden) after each
    #    character of a sentence. top_neurons finds the memory cells that change most; a
    #    gate that is nearly always shut or open (saturated) passes little gradient.
    heading("While reading a sentence")
    trace = activations(model, tokenizer, SENTENCE, on_unknown="drop")
    for layer in range(len(trace.layers)):
        neurons = top_neurons(trace, layer=layer, kind="cell", k=3)
        moving = ", ".join(f"cell {index} (varies by {variation:.2f})"
                           for index, variation in neurons)
        print(f"  layer {layer + 1}: the memory cells that move most: {moving}")
    for layer, shares in enumerate(gate_saturation(trace), start=1):
        print(f"  layer {layer}: gates saturated (below 0.1 or above 0.9): "
              + ", ".join(f"{gate} {share:.0%}" for gate, share in shares.items()))

    # 5. Neurons that name themselves: each neuron's value is compared with simple features
    #    of the text (inside a word, position in the line, inside quotes, ...) over a few
    #    thousand characters the model did not train on (the end of the text is held out).
    #    r near 1 or -1: the neuron follows the feature closely.
    heading("Neurons that follow a feature of the text")
    held_out = sample_corpus(CORPUS).text[-4000:]
    names = name_neurons(model, tokenizer, held_out)
    for name in names.names[:5]:
        print(f"  layer {name.layer + 1} {name.state:<6} {name.neuron:>4}: {name.phrase}")

    # 6. Surprise: -log2 of the probability the model gave each character that came.
    #    0 bits: it was certain; 1 bit: a coin flip. The mean is its loss on the sentence.
    heading("Surprise while reading a sentence")
    surprise = surprise_map(model, tokenizer, SENTENCE)
    nats = surprise.mean_bits * math.log(2)
    print(f"  {SENTENCE!r}\n  mean {surprise.mean_bits:.2f} bits per character: as unsure as "
          f"choosing among {math.exp(nats):.1f} characters")
    most = sorted(range(len(surprise.bits)), key=lambda i: -surprise.bits[i])[:3]
    for position in sorted(most):
        expected = ", ".join(f"{char!r} {p:.0%}" for char, p in surprise.expectations(position)[:3])
        print(f"  {surprise.text[position]!r} at {position + 1}: {surprise.bits[position]:.1f} "
              f"bits (it expected {expected})")


if __name__ == "__main__":
    main()
