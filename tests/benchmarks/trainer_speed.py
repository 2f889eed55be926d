"""ModelTrainer's speed against a plain PyTorch loop, the time per generated character at
several lengths, and the peak memory of reading and preparing a 100 MB text.

    python tests/benchmarks/trainer_speed.py [CORPUS] [--quick]

Targets: ModelTrainer keeps at least 97 % of the plain loop's speed (median of interleaved
pairs of runs), and a 100 MB text trains in under 1.5 GiB of resident memory. The exit
status is 0 when both are met. `microlm bench` is the user's measure of a machine; this is
the library's measure of itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
import torch.nn as nn
from common import (
    add_corpus_argument,
    child_env,
    corpus_arguments,
    format_table,
    last_line,
    load_corpus,
)

from microlm import (
    PRESETS,
    CharacterTokenizer,
    MicroLM,
    ModelTrainer,
    StepCompleted,
    TextDataLoader,
    TextGenerator,
    TrainingConfig,
    TrainingControl,
    read_corpus,
    set_seed,
)
from microlm.data import encode_tokens
from microlm.model import gradient_norms
from microlm.trainer import make_optimizer

MIN_SPEED_RATIO = 0.97  # ModelTrainer must keep at least this share of a plain loop's speed
MAX_MEMORY_BYTES = int(1.5 * 2**30)  # peak memory allowed for a 100 MB corpus
FULL_CORPUS_BYTES = 100 * 10**6
QUICK_CORPUS_BYTES = 2 * 10**6
PRESET = "small"


@dataclass(frozen=True)
class TrainingSpeed:
    batch_size: int
    sequence_length: int
    steps_per_round: int
    trainer_chars_per_second: list[float]  # one figure per round, in the order measured
    plain_chars_per_second: list[float]

    @property
    def trainer_median(self) -> float:
        return statistics.median(self.trainer_chars_per_second)

    @property
    def plain_median(self) -> float:
        return statistics.median(self.plain_chars_per_second)

    @property
    def ratio(self) -> float:
        """Median over rounds of trainer / plain speed: each pair ran back to back, so a
        slow spell of the machine affects both sides of a pair alike."""
        return statistics.median(t / p for t, p in zip(self.trainer_chars_per_second,
                                                       self.plain_chars_per_second, strict=True))


@dataclass(frozen=True)
class StepCosts:
    """Seconds per call of each part of a training step (medians), to show where
    ModelTrainer spends time that the plain loop does not."""
    forward_backward: float  # both loops
    adam_step: float  # the plain loop's optimizer
    adamw_step: float  # ModelTrainer's optimizer (decoupled weight decay on matrices)
    clipping: float  # ModelTrainer: clip_grad_norm_, every step
    gradient_norms: float  # ModelTrainer: per-layer gradient norms for the history
    gradient_norm_interval: int  # ... recorded every this many steps

    @property
    def trainer_extra(self) -> float:
        """What ModelTrainer adds per step on average."""
        return (self.adamw_step - self.adam_step + self.clipping
                + self.gradient_norms / self.gradient_norm_interval)

    @property
    def expected_ratio(self) -> float:
        plain = self.forward_backward + self.adam_step
        return plain / (plain + self.trainer_extra)


@dataclass(frozen=True)
class GenerationSpeed:
    length: int  # new characters generated
    seconds: float  # median over repeats
    threads: int  # torch intra-op threads used

    @property
    def chars_per_second(self) -> float:
        return self.length / self.seconds

    @property
    def microseconds_per_char(self) -> float:
        return 1e6 * self.seconds / self.length


@dataclass(frozen=True)
class MemoryUse:
    corpus_bytes: int
    sampled_peak_bytes: int  # highest RSS seen by polling the process every 10 ms
    max_rss_bytes: int  # the kernel's own peak (ru_maxrss), 0 where unavailable
    seconds: float

    @property
    def peak_bytes(self) -> int:
        return max(self.sampled_peak_bytes, self.max_rss_bytes)


@dataclass(frozen=True)
class BenchResult:
    quick: bool
    threads: int
    training: TrainingSpeed
    step_costs: StepCosts
    generation: list[GenerationSpeed]
    memory: MemoryUse

    def failures(self) -> list[str]:
        """The targets this run missed, in words (empty when all were met)."""
        out = []
        if self.training.ratio < MIN_SPEED_RATIO:
            out.append(f"ModelTrainer reached {self.training.ratio:.3f} of the plain loop's "
                       f"speed (target >= {MIN_SPEED_RATIO}).")
        if self.memory.peak_bytes >= MAX_MEMORY_BYTES:
            out.append(f"Peak memory {self.memory.peak_bytes / 2**30:.2f} GiB (target < "
                       f"{MAX_MEMORY_BYTES / 2**30:.1f} GiB).")
        return out


def run_bench(corpus_path: Path | None = None, quick: bool = False,
              log: Callable[[str], None] | None = None) -> BenchResult:
    """Measure everything; `quick` uses a small part of the text and few steps (figures are
    rough)."""
    log = log or (lambda message: None)
    corpus = load_corpus(corpus_path).text
    if quick:
        corpus = corpus[:100_000]
    tokenizer = CharacterTokenizer(corpus)
    log("Training speed: ModelTrainer against a plain PyTorch loop ...")
    training = measure_training_speed(corpus, tokenizer, rounds=2 if quick else 9,
                                      steps=3 if quick else 20)
    step_costs = measure_step_costs(tokenizer, repeats=3 if quick else 15)
    log("Generation speed ...")
    generation = measure_generation_speed(tokenizer, (20, 50, 100) if quick
                                          else (200, 1000, 4000), repeats=1 if quick else 3)
    corpus_bytes = QUICK_CORPUS_BYTES if quick else FULL_CORPUS_BYTES
    log(f"Peak memory for a {corpus_bytes / 1e6:g} MB corpus, in a fresh process ...")
    memory = measure_memory(corpus_bytes, corpus_path)
    return BenchResult(quick, torch.get_num_threads(), training, step_costs, generation, memory)


# ---- 1. training speed ----

def measure_training_speed(text: str, tokenizer: CharacterTokenizer, rounds: int,
                           steps: int) -> TrainingSpeed:
    """Interleave ModelTrainer and the seed's plain loop (A B, B A, A B ...) on the same
    model, the same batches and the same random windows; each run of `steps` steps is timed
    as a whole, from the call to the last step."""
    preset = PRESETS[PRESET]
    config = preset.model_config(tokenizer.vocab_size())
    batch, length = preset.batch_size, preset.sequence_length
    tokens = encode_tokens(text, tokenizer)
    steps = max(1, min(steps, (len(tokens) - 1) // (batch * length)))
    # Warm up both (memory allocator, kernels) before timing anything.
    _plain_loop_seconds(config, tokens, batch, length, steps=2)
    _trainer_seconds(config, tokenizer, tokens, batch, length, steps=2)
    trainer_rates, plain_rates = [], []
    chars = steps * batch * length
    for round_number in range(rounds):
        # Alternate who goes first, so neither side always follows the other's leftovers.
        for side in (("trainer", "plain") if round_number % 2 == 0 else ("plain", "trainer")):
            if side == "trainer":
                seconds = _trainer_seconds(config, tokenizer, tokens, batch, length, steps)
                trainer_rates.append(chars / seconds)
            else:
                plain_rates.append(chars / _plain_loop_seconds(config, tokens, batch, length,
                                                               steps))
    return TrainingSpeed(batch, length, steps, trainer_rates, plain_rates)


def _batches(tokens: torch.Tensor, batch: int, length: int, steps: int) -> TextDataLoader:
    """A loader of exactly `steps` batches whose random windows depend only on the seed."""
    return TextDataLoader(tokens[:steps * batch * length + 1], length, batch, seed=0)


def _trainer_seconds(config, tokenizer: CharacterTokenizer, tokens: torch.Tensor, batch: int,
                     length: int, steps: int) -> float:
    set_seed(0)
    model = MicroLM(config=config)
    # val_fraction 0: no validation runs (the plain loop has none); everything else default.
    trainer = ModelTrainer(model, tokenizer, device="cpu",
                           config=TrainingConfig(epochs=1, batch_size=batch,
                                                 sequence_length=length, val_fraction=0.0))
    loader = _batches(tokens, batch, length, steps)
    start = time.perf_counter()
    for _ in trainer.fit(loader):
        pass
    return time.perf_counter() - start


def _plain_loop_seconds(config, tokens: torch.Tensor, batch: int, length: int,
                        steps: int) -> float:
    """The seed README's "Custom Training Loop": Adam, CrossEntropyLoss, loss.item() per step."""
    set_seed(0)
    model = MicroLM(config=config)
    vocab_size = config.vocab_size
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()
    loader = _batches(tokens, batch, length, steps)
    start = time.perf_counter()
    model.train()
    total_loss = 0.0
    for inputs, targets in loader:
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs.view(-1, vocab_size), targets.view(-1))
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
    return time.perf_counter() - start


def measure_step_costs(tokenizer: CharacterTokenizer, repeats: int) -> StepCosts:
    """Time each part of a step of the small preset on its own (median of `repeats`)."""
    preset = PRESETS[PRESET]
    config = preset.model_config(tokenizer.vocab_size())
    set_seed(0)
    model = MicroLM(config=config)
    inputs = torch.randint(0, config.vocab_size, (preset.batch_size, preset.sequence_length))
    targets = torch.randint(0, config.vocab_size, inputs.shape)
    training_config = TrainingConfig()
    adamw = make_optimizer(model, training_config)
    adam = torch.optim.Adam(model.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()

    def forward_backward() -> None:
        model.zero_grad()
        criterion(model(inputs).view(-1, config.vocab_size), targets.view(-1)).backward()

    def median_seconds(action: Callable[[], object]) -> float:
        action()  # warm-up; also leaves gradients in place for the optimizer parts
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return StepCosts(
        forward_backward=median_seconds(forward_backward),
        adam_step=median_seconds(adam.step),
        adamw_step=median_seconds(adamw.step),
        clipping=median_seconds(lambda: torch.nn.utils.clip_grad_norm_(
            model.parameters(), training_config.grad_clip)),
        gradient_norms=median_seconds(lambda: gradient_norms(model)),
        gradient_norm_interval=training_config.grad_norm_interval)


# ---- 2. generation speed ----

def measure_generation_speed(tokenizer: CharacterTokenizer, lengths: Sequence[int],
                             repeats: int) -> list[GenerationSpeed]:
    """Single-prompt generation with the small preset on the CPU at several lengths, with
    torch's default number of threads and, when that is more than one, with one thread:
    a batch of one is too small to share, and on a busy machine the threads wait on
    each other at every character."""
    set_seed(0)
    model = MicroLM(config=PRESETS[PRESET].model_config(tokenizer.vocab_size()))
    generator = TextGenerator(model, tokenizer, device="cpu")
    prompt = tokenizer.clean("The ")
    default_threads = torch.get_num_threads()
    results = []
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        try:
            generator.generate(prompt, 20, temperature=0.8, seed=0)  # warm-up
            times: dict[int, list[float]] = {length: [] for length in lengths}
            for repeat in range(repeats):  # lengths interleaved, so noise hits them alike
                for length in lengths:
                    start = time.perf_counter()
                    generator.generate(prompt, length, temperature=0.8, seed=repeat)
                    times[length].append(time.perf_counter() - start)
        finally:
            torch.set_num_threads(default_threads)
        results += [GenerationSpeed(length, statistics.median(times[length]), threads)
                    for length in lengths]
    return results


# ---- 3. peak memory, in a fresh process ----

def measure_memory(corpus_bytes: int, corpus_path: Path | None = None) -> MemoryUse:
    """Run memory_child in a new interpreter and watch its resident memory from here."""
    with tempfile.TemporaryDirectory(prefix="microlm-bench-") as folder:
        report = Path(folder) / "report.json"
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, __file__, *corpus_arguments(corpus_path),
                                  "--memory-child", str(corpus_bytes), folder],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=child_env())
        sampled_peak = _watch_peak_rss(child)
        error = child.stderr.read()
        child.stderr.close()
        if child.wait() != 0:
            raise RuntimeError(f"The memory benchmark process failed: {last_line(error)}")
        seconds = time.perf_counter() - start
        data = json.loads(report.read_text())
    return MemoryUse(corpus_bytes, sampled_peak, int(data["max_rss_bytes"]), seconds)


def _watch_peak_rss(child: subprocess.Popen, interval: float = 0.01) -> int:
    """Poll the child's resident memory from a thread until it exits; return the highest."""
    peak = 0
    process = psutil.Process(child.pid)

    def watch() -> None:
        nonlocal peak
        while child.poll() is None:
            try:
                peak = max(peak, process.memory_info().rss)
            except psutil.Error:  # exited between poll() and memory_info()
                return
            time.sleep(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    watcher.join()
    return peak


def memory_child(text: str, corpus_bytes: int, folder: str) -> None:
    """What a user does with a big text: read it, build the vocabulary, prepare the data
    and train one step of the small preset. Writes ru_maxrss to report.json."""
    path = Path(folder) / "corpus.txt"
    piece = text.encode("utf-8")
    del text
    with open(path, "wb") as f:  # written in pieces, so the file never sits in memory whole
        written = 0
        while written < corpus_bytes:
            chunk = piece[:corpus_bytes - written]
            f.write(chunk)
            written += len(chunk)
    del piece
    corpus = read_corpus(path)
    tokenizer = CharacterTokenizer(corpus.text)
    preset = PRESETS[PRESET]
    trainer = ModelTrainer(MicroLM(config=preset.model_config(tokenizer.vocab_size())),
                           tokenizer, device="cpu", config=preset.training_config())
    trainer.prepare_data(corpus.text)
    control = TrainingControl()
    for event in trainer.fit(control=control):
        if isinstance(event, StepCompleted):
            control.stop()  # one step is enough: the memory is what we measure
    path.unlink()
    (Path(folder) / "report.json").write_text(json.dumps({"max_rss_bytes": _max_rss_bytes()}))


def _max_rss_bytes() -> int:
    try:
        import resource
    except ImportError:  # Windows: only the sampled figure is available
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


# ---- report ----

def format_report(result: BenchResult) -> str:
    t = result.training
    lines = [f"trainer_speed.py{' --quick (rough figures)' if result.quick else ''}: "
             f"{psutil.cpu_count(logical=False) or '?'} cores, {result.threads} torch threads, "
             f"torch {torch.__version__}",
             "",
             f"1. Training speed, '{PRESET}' preset, batch {t.batch_size} x {t.sequence_length}, "
             f"{len(t.trainer_chars_per_second)} interleaved rounds of {t.steps_per_round} steps "
             f"(median chars/s)"]
    rows = [("loop", "chars/s", "min", "max")]
    for name, rates in (("ModelTrainer", t.trainer_chars_per_second),
                        ("plain PyTorch loop", t.plain_chars_per_second)):
        rows.append((name, f"{statistics.median(rates):,.0f}", f"{min(rates):,.0f}",
                     f"{max(rates):,.0f}"))
    lines.append(format_table(rows))
    verdict = "ok" if t.ratio >= MIN_SPEED_RATIO else "BELOW TARGET"
    lines.append(f"  ratio ModelTrainer / plain, median of the {len(t.plain_chars_per_second)} "
                 f"back-to-back pairs: {t.ratio:.3f} (target >= {MIN_SPEED_RATIO}: {verdict})")
    spread = max(max(r) / min(r) for r in (t.trainer_chars_per_second,
                                           t.plain_chars_per_second))
    if spread > 2 and result.threads > 1:
        lines.append(f"  note: rounds of the same loop differed {spread:.0f}-fold: other work "
                     f"keeps this machine's cores busy, and multi-threaded CPU kernels then wait "
                     f"on descheduled threads. Run with --threads 1 for steady figures.")
    c = result.step_costs
    lines.append(
        f"  where ModelTrainer's extra time goes, per step (medians): AdamW instead of Adam "
        f"{1e3 * (c.adamw_step - c.adam_step):+.2f} ms,\n  gradient clipping "
        f"{1e3 * c.clipping:.2f} ms, per-layer gradient norms {1e3 * c.gradient_norms:.2f} ms "
        f"every {c.gradient_norm_interval} steps; against forward + backward "
        f"{1e3 * c.forward_backward:.1f} ms\n  that predicts a ratio of {c.expected_ratio:.3f}")
    lines += ["", f"2. Generation, '{PRESET}' preset, one prompt, CPU"]
    rows = [("threads", "length", "seconds", "chars/s", "us/char")]
    rows += [(str(g.threads), f"{g.length:,}", f"{g.seconds:.3f}", f"{g.chars_per_second:,.0f}",
              f"{g.microseconds_per_char:.0f}") for g in result.generation]
    lines.append(format_table(rows))
    for threads in dict.fromkeys(g.threads for g in result.generation):
        runs = [g for g in result.generation if g.threads == threads]
        growth = runs[-1].microseconds_per_char / runs[0].microseconds_per_char
        lines.append(f"  {threads} thread(s): time per character at {runs[-1].length:,} vs "
                     f"{runs[0].length:,}: {growth:.2f}x "
                     f"(1.0 = constant: each character costs one LSTM step)")
    m = result.memory
    verdict = "ok" if m.peak_bytes < MAX_MEMORY_BYTES else "ABOVE TARGET"
    lines += ["", f"3. Peak memory of a fresh process: write a {m.corpus_bytes / 1e6:g} MB text, "
              f"read_corpus, tokenizer, prepare_data, one '{PRESET}' training step",
              f"  peak resident memory: {m.peak_bytes / 2**20:,.0f} MiB (sampled "
              f"{m.sampled_peak_bytes / 2**20:,.0f} MiB, ru_maxrss "
              f"{m.max_rss_bytes / 2**20:,.0f} MiB; target < {MAX_MEMORY_BYTES / 2**30:.1f} GiB: "
              f"{verdict}), {m.seconds:.0f} s"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/trainer_speed.py",
                                     description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--quick", action="store_true",
                        help="a small part of the text, few steps (the figures are rough)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--memory-child", nargs=2, metavar=("BYTES", "FOLDER"),
                        help=argparse.SUPPRESS)  # the measured process of part 3
    args = parser.parse_args(argv)
    text = load_corpus(args.corpus).text  # a file that cannot be read stops here
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(text, int(args.memory_child[0]), args.memory_child[1])
        return 0
    del text
    result = run_bench(args.corpus, args.quick,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_report(result))
    failures = result.failures()
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
