"""Generate text with a trained model and compare the ways of choosing each next character.

A language model gives, after each character, a probability for every character that could
come next. A sampler turns those probabilities into one choice. This demo writes from one
prompt with several samplers side by side: greedy, three temperatures, top-k and top-p; then
shows that a seed makes a sample repeat, and streams characters one at a time.

    python -m microlm.examples.text_generation_demo training_demo.pt
    python -m microlm.examples.text_generation_demo            # trains a tiny model first
    python -m microlm.examples.text_generation_demo --prompt "def " --length 200
"""

from __future__ import annotations

import argparse

import torch

from microlm import TextGenerator
from microlm.examples.quick_model import load_or_train


def show(name: str, text: str) -> None:
    """Print one sample under its name, each of its lines indented."""
    print(f"\n{name}:")
    print("\n".join("    " + line for line in text.split("\n")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m microlm.examples.text_generation_demo",
        description="Generate from one prompt with several samplers side by side.")
    parser.add_argument("checkpoint", nargs="?",
                        help="a trained model (from training_demo or `microlm train`); "
                             "without one a tiny model is trained first")
    parser.add_argument("--prompt", default="The ", help='the text to continue (default "The ")')
    parser.add_argument("--length", type=int, default=120,
                        help="new characters per sample (default 120)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="training time when no checkpoint is given (default 10)")
    args = parser.parse_args(argv)
    if args.length < 1 or args.seconds <= 0:
        parser.error("--length must be at least 1 and --seconds more than 0")

    model, tokenizer = load_or_train(args.checkpoint, args.seconds)
    prompt, length = args.prompt, args.length
    unknown = tokenizer.unknown_characters(prompt)
    if unknown:
        parser.error(f"the model never saw {', '.join(map(repr, unknown))}: use characters "
                     f"of its text in the prompt")
    # Generation feeds one character at a time, a step too small to share well between CPU
    # threads: a second thread gains little for a small model, and while other programs
    # keep the cores busy two threads can be many times slower than one.
    torch.set_num_threads(1)
    generator = TextGenerator(model, tokenizer)
    print(f"Prompt: {prompt!r}, {length} new characters per sample.")

    # Greedy (temperature 0): always the single most likely character. It is the model's
    # "best guess", and it soon repeats itself: look for a phrase that comes back in a loop.
    show("greedy (temperature 0)", generator.generate(prompt, length, temperature=0))

    # Temperature divides the model's scores before they become probabilities. Below 1 it
    # sharpens them (safer, more repetitive text); at 1 it samples the model's own
    # probabilities; above 1 it flattens them, so unlikely characters come up: look for
    # made-up words and stray symbols at 1.5.
    for temperature in (0.5, 1.0, 1.5):
        show(f"temperature {temperature}",
             generator.generate(prompt, length, temperature=temperature, seed=1))

    # top-k keeps only the k most likely characters and samples among them: the long tail of
    # unlikely characters is cut off, so even at temperature 1 there is little gibberish.
    show("top-k 5 (temperature 1.0)",
         generator.generate(prompt, length, temperature=1.0, top_k=5, seed=1))

    # top-p (nucleus) keeps the smallest set of most likely characters whose probabilities
    # add up to p. Unlike top-k the set adapts: after "Pytho" only "n" is needed, after a
    # space many characters are.
    show("top-p 0.9 (temperature 1.0)",
         generator.generate(prompt, length, temperature=1.0, top_p=0.9, seed=1))

    # A seed fixes the random choices: the same seed gives the same text, every time.
    first = generator.generate(prompt, length, temperature=1.0, seed=7)
    again = generator.generate(prompt, length, temperature=1.0, seed=7)
    other = generator.generate(prompt, length, temperature=1.0, seed=8)
    show("seed 7 (temperature 1.0)", first)
    print(f"    seed 7 again gives the same text: {again == first}; "
          f"seed 8 gives a different one: {other != first}")

    # Streaming: stream() yields each new character as soon as it is chosen, with the
    # probability the model gave it, as a chat window shows text while it is written. Each
    # character costs one LSTM step, because the LSTM's state is carried from one to the next.
    print("\nstreaming (temperature 0.8), one character at a time:")
    print("    " + prompt, end="", flush=True)
    least = None
    for generated in generator.stream(prompt, length, temperature=0.8, seed=3):
        print(generated.char.replace("\n", "\n    "), end="", flush=True)
        if least is None or generated.probability < least.probability:
            least = generated
    print(f"\n    the least expected character was {least.char!r} (new character "
          f"{least.index + 1}): the model gave it a probability of {least.probability:.1%}")


if __name__ == "__main__":
    main()
