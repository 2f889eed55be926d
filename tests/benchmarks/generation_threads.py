"""Generation speed with the thread count chosen as it goes, against always all threads.

    python tests/benchmarks/generation_threads.py [CORPUS] [--busy] [--hidden 256 1024]

For each hidden size (one LSTM layer with 1,024 output layer units, untrained: the speed
does not depend on the weights), generates from one prompt with the generator as it is
(microlm.thread_choice picks all threads or one, run by run) and with a generator held to
all of this process's threads, interleaved, and prints the median characters per second
of each. --busy starts a process that keeps one core busy meanwhile, as another program
would: that is where one thread wins.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch
from common import add_corpus_argument, corpus_name, load_corpus

from microlm import CharacterTokenizer, MicroLM, TextGenerator
from microlm import generator as generator_module

REPEATS = 5


class AllThreads(generator_module.ThreadChoice):
    """The choice before there was one: every character on all the threads."""

    def next(self) -> tuple[int, int]:
        return self.many, self.chunk_steps


def chars_per_second(generator: TextGenerator, length: int, all_threads: bool) -> float:
    chosen = generator_module.ThreadChoice
    if all_threads:
        generator_module.ThreadChoice = AllThreads
    try:
        began = time.perf_counter()
        generator.generate("The ", length, temperature=0.8, seed=1)
        return length / (time.perf_counter() - began)
    finally:
        generator_module.ThreadChoice = chosen


def main() -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/generation_threads.py",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_argument(parser)
    parser.add_argument("--busy", action="store_true",
                        help="keep one core busy with another process while measuring")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 1024],
                        help="hidden sizes to measure (default 256 1024)")
    parser.add_argument("--length", type=int, default=400,
                        help="characters per generation (default 400)")
    args = parser.parse_args()

    tokenizer = CharacterTokenizer(load_corpus(args.corpus).text[:200_000])
    busy = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy
            else None)
    try:
        print(f"Generation on {corpus_name(args.corpus)}'s vocabulary "
              f"({tokenizer.vocab_size()} characters), {torch.get_num_threads()} threads, "
              f"{'one core kept busy' if busy else 'idle'}; median of {REPEATS}:")
        for hidden in args.hidden:
            torch.manual_seed(0)
            model = MicroLM(tokenizer.vocab_size(), embedding_dim=128, hidden_dim=hidden,
                            num_layers=1, dropout=0.0, output_hidden_dim=1024)
            generator = TextGenerator(model, tokenizer, "cpu")
            chars_per_second(generator, 50, all_threads=False)  # warm up
            chosen, all_threads = [], []
            for _ in range(REPEATS):
                chosen.append(chars_per_second(generator, args.length, all_threads=False))
                all_threads.append(chars_per_second(generator, args.length, all_threads=True))
            print(f"  hidden size {hidden:5}: chosen {statistics.median(chosen):8,.0f} "
                  f"chars/s   all threads {statistics.median(all_threads):8,.0f} chars/s   "
                  f"ratio {statistics.median(chosen) / statistics.median(all_threads):.2f}")
    finally:
        if busy is not None:
            busy.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
