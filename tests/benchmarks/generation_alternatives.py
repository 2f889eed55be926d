"""What keeping the 5 likeliest characters with each generated one costs (GeneratedChar's
`alternatives`, which the Generate tab's tooltips show).

    python tests/benchmarks/generation_alternatives.py [CORPUS] [--repeats N]

For the 'nano' and 'small' presets on the CPU (one thread, as a batch of one runs best):
the generator's chars/s over 1,000 characters, and the time of the top-5 step alone (the
same torch.topk and lists, on one row of probabilities), as a share of a character's time.
Target: under 10 %. Figures are medians of the repeats; the exit status is 0 when every
share meets the target.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import timeit

import torch
from common import add_corpus_argument, corpus_name, load_corpus

from microlm import CharacterTokenizer, MicroLM, TextGenerator
from microlm.generator import ALTERNATIVES
from microlm.presets import PRESETS

LENGTH = 1_000
TARGET_SHARE = 0.10


def top_seconds(vocab_size: int, chars: list[str]) -> float:
    """Seconds the top-ALTERNATIVES step takes for one character."""
    probs = torch.softmax(torch.randn(1, vocab_size), dim=-1)

    def top() -> tuple:
        best = torch.topk(probs[0], ALTERNATIVES)
        return tuple(zip([chars[i] for i in best.indices.tolist()], best.values.tolist(),
                         strict=True))

    with torch.inference_mode():
        return min(timeit.repeat(top, number=2_000, repeat=5)) / 2_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     prog="python tests/benchmarks/generation_alternatives.py")
    add_corpus_argument(parser)
    parser.add_argument("--repeats", type=int, default=9, help="runs per preset (default 9)")
    args = parser.parse_args(argv)
    tokenizer = CharacterTokenizer(load_corpus(args.corpus).text)
    torch.set_num_threads(1)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{corpus_name(args.corpus)}: {tokenizer.vocab_size()} characters in the vocabulary")
    top = top_seconds(tokenizer.vocab_size(), tokenizer.chars)
    met = True
    for preset in ("nano", "small"):
        torch.manual_seed(0)
        model = MicroLM(config=PRESETS[preset].model_config(tokenizer.vocab_size()))
        generator = TextGenerator(model, tokenizer, device="cpu")
        generator.generate("The ", 50, 0.8, seed=0)  # warm-up
        rates = []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            generator.generate("The ", LENGTH, 0.8, seed=repeat)
            rates.append(LENGTH / (time.perf_counter() - start))
        rate = statistics.median(rates)
        share = top * rate
        met = met and share < TARGET_SHARE
        print(f"{preset}: {rate:,.0f} chars/s with the top {ALTERNATIVES}; finding them takes "
              f"{top * 1e6:.1f} µs a character, {share:.1%} of its time "
              f"(target < {TARGET_SHARE:.0%})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
