"""`microlm generate`: continue a prompt with a trained model, printing each character as it
is produced."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import hardware
from ..checkpoint import load_model
from ..generator import TextGenerator
from .arguments import (
    UserError,
    add_threads_option,
    count_int,
    non_negative_float,
    positive_int,
    top_p_float,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser(
        "generate", help="write text with a trained model",
        description="Continue a prompt with a trained model; the text is printed as it is "
                    "produced.")
    generate.add_argument("checkpoint", type=Path, help="a .pt file saved by 'microlm train'")
    generate.add_argument("--prompt", default="",
                          help="text to continue (default: start from a new line)")
    generate.add_argument("--length", type=count_int, default=500,
                          help="how many new characters to write (default 500)")
    generate.add_argument("--temperature", type=non_negative_float, default=0.8,
                          help="randomness: 0 always picks the most likely character, 1 samples "
                               "the model as is, above 1 is wilder (default 0.8)")
    generate.add_argument("--top-k", type=positive_int,
                          help="pick only among the k most likely next characters")
    generate.add_argument("--top-p", type=top_p_float,
                          help="pick only among the most likely characters whose probabilities "
                               "add up to p (nucleus sampling)")
    generate.add_argument("--seed", type=int,
                          help="random seed: the same seed and settings give the same text")
    generate.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best "
                          "available)")
    generate.add_argument("--no-bf16", dest="bf16", action="store_false",
                          help="compute in float32 on a CUDA GPU too (default: bfloat16 "
                               "where the GPU supports it)")
    add_threads_option(generate)
    generate.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    model, tokenizer, _ = load_model(args.checkpoint, hardware.select_device(args.device))
    unknown = tokenizer.unknown_characters(args.prompt)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10])
        raise UserError(f"the prompt contains {len(unknown)} character(s) this model never saw "
                        f"in training: {shown}. Remove them from --prompt.")
    generator = TextGenerator(model, tokenizer, bf16=args.bf16)
    out = sys.stdout
    out.write(args.prompt)
    out.flush()
    last = args.prompt[-1:]
    for generated in generator.stream(args.prompt, args.length, args.temperature, args.top_k,
                                      args.top_p, args.seed):
        out.write(generated.char)
        out.flush()  # show each character as it is produced
        last = generated.char
    if last != "\n":
        out.write("\n")
    out.flush()
    return 0
