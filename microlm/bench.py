"""`microlm bench`: how fast this machine trains and generates with the presets, and how much
memory training takes, on the built-in Python documentation sample in under a minute."""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil
import torch

from .data import sample_corpus
from .generator import TextGenerator
from .hardware import cpu_model, give_back_freed_memory, select_device
from .model import MicroLM
from .presets import PRESETS
from .tokenizer import CharacterTokenizer
from .trainer import ModelTrainer, StepCompleted, TrainingControl, TrainingStarted, set_seed
from .units import format_bytes

CORPUS = "Python documentation"  # built in: the bench needs no file and runs anywhere
PRESET_NAMES = ("small", "medium", "large")  # what a learner picks from on a CPU
# Training seconds per preset, after its first step: the large preset takes ~0.5 s a step on
# an idle 2-core CPU, so 5 s times ~10 steps, and the whole bench takes ~25 s there.
TRAIN_SECONDS = 5.0
GENERATE_CHARS = 1000
GENERATE_SECONDS = 1.5  # ... or this long, whichever ends first (large: ~300 chars/s there)
BUSY_PERCENT = 25.0  # other programs' CPU use before the bench above which the report warns
QUICK_SECONDS = 1.0  # --quick, for training and for generating: proves the bench runs
QUICK_GENERATE_CHARS = 40
WARMUP_STEPS = 1  # left out of the training speed: the first step sets up kernels and caches
MIN_TIMED_STEPS = 2  # after the warm-up; fewer leave the training speed unknown (NaN)
MEMORY_POLL_S = 0.005


@dataclass(frozen=True)
class PresetSpeed:
    preset: str
    device: str
    precision: str  # what training ran in, as the trainer reported: float32 or bfloat16
    parameters: int
    steps: int
    train_chars_per_second: float  # from the warm-up's end to the last step; NaN: too few
    generate_chars_per_second: float  # one prompt, one LSTM step per character
    memory_bytes: int  # what training added: resident memory on a CPU, allocated on a GPU
    peak_resident_bytes: int  # the whole process while training, PyTorch included

    @property
    def bf16(self) -> bool:
        return self.precision == "bfloat16"


@dataclass(frozen=True)
class BenchResult:
    device: str
    device_name: str  # the CPU model or the GPU's name
    threads: int  # torch CPU threads
    corpus_chars: int
    train_seconds: float  # asked for, per preset
    presets: tuple[PresetSpeed, ...]
    busy_percent: float = 0.0  # the machine's CPU use in the half second before the bench

    @property
    def peak_resident_bytes(self) -> int:
        return max((row.peak_resident_bytes for row in self.presets), default=0)

    def problems(self) -> list[str]:
        """What kept a figure from being measured, in words (empty when nothing did)."""
        return [f"the {row.preset} preset took only {row.steps} steps in "
                f"{self.train_seconds:g} s, too few to time: give it more time (--seconds), "
                f"or one thread (--threads 1) on a busy machine"
                for row in self.presets if math.isnan(row.train_chars_per_second)]


def run_bench(presets: Sequence[str] = PRESET_NAMES, device: str | None = None,
              quick: bool = False, train_seconds: float | None = None,
              log: Callable[[str], None] = lambda message: None) -> BenchResult:
    """Train each preset for a few seconds on the built-in sample, then generate with it.
    Raises ValueError for an unknown preset or a device this machine lacks."""
    unknown = [name for name in presets if name not in PRESETS]
    if unknown:
        raise ValueError(f"No preset named {', '.join(unknown)}; choose from "
                         f"{', '.join(PRESETS)}.")
    chosen = select_device(device)
    seconds = train_seconds or (QUICK_SECONDS if quick else TRAIN_SECONDS)
    length = QUICK_GENERATE_CHARS if quick else GENERATE_CHARS
    generate_seconds = QUICK_SECONDS if quick else GENERATE_SECONDS
    text = sample_corpus(CORPUS).text
    busy = psutil.cpu_percent(interval=0.5)  # other programs: the bench has not started yet
    rows = []
    for name in presets:
        log(f"Training the {name} preset on {chosen} for {seconds:g} s, then generating ...")
        rows.append(time_preset(name, str(chosen), text, train_seconds=seconds,
                                generate_chars=length, generate_seconds=generate_seconds))
    name = (torch.cuda.get_device_name(chosen) if chosen.type == "cuda"
            else cpu_model() if chosen.type == "cpu" else chosen.type)
    return BenchResult(str(chosen), name, torch.get_num_threads(), len(text), seconds,
                       tuple(rows), busy)


def time_preset(name: str, device: str, text: str, *, train_seconds: float,
                generate_chars: int, generate_seconds: float = GENERATE_SECONDS,
                precision: str = "auto") -> PresetSpeed:
    """Train preset `name` on `text` for `train_seconds` after its first step (which sets
    up kernels and caches and is not timed), then generate up to `generate_chars`
    characters with it (for `generate_seconds` at most). `precision`: as TrainingConfig's
    ("auto": the device's fastest, as `microlm train` would)."""
    preset = PRESETS[name]
    tokenizer = CharacterTokenizer(text)
    set_seed(0)
    model = MicroLM(config=preset.model_config(tokenizer.vocab_size()))
    # No validation and no gradient-norm records: only the steps a run is made of.
    config = preset.training_config(epochs=1_000_000, val_fraction=0.0, device=device,
                                    grad_norm_interval=0, precision=precision)
    # A process's first optimizer imports torch._dynamo (~70 MB, ~1.5 s on a 2-core CPU):
    # once, here, and not in the first preset's training memory.
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    with _MemoryWatch(torch.device(device)) as memory:
        trainer = ModelTrainer(model, tokenizer, config=config)
        trainer.prepare_data(text)
        ran_in, steps, control = config.precision, [], TrainingControl()
        for event in trainer.fit(control=control):
            if isinstance(event, TrainingStarted):
                ran_in = event.precision
            elif isinstance(event, StepCompleted):
                steps.append(event)
                # The clock starts after the first step, which sets up kernels and caches.
                if event.elapsed_s - steps[0].elapsed_s >= train_seconds:
                    control.stop()
    train_rate = math.nan
    if len(steps) >= WARMUP_STEPS + MIN_TIMED_STEPS:
        first, last = steps[WARMUP_STEPS - 1], steps[-1]
        chars_per_step = config.batch_size * config.sequence_length
        train_rate = ((last.step - first.step) * chars_per_step
                      / (last.elapsed_s - first.elapsed_s))

    generator = TextGenerator(trainer.model, tokenizer, device, bf16=ran_in == "bfloat16")
    generator.generate("", 5, seed=0)  # warm-up (kernel selection, caches)
    generated, started = 0, time.perf_counter()
    # Each character is read back (a GPU sync point), so the clock sees finished work.
    for _ in generator.stream("", generate_chars, seed=0):
        generated += 1
        if time.perf_counter() - started >= generate_seconds:
            break
    generate_rate = generated / (time.perf_counter() - started)
    return PresetSpeed(name, device, ran_in, model.config.num_parameters(), len(steps),
                       train_rate, generate_rate, memory.rise_bytes, memory.peak_resident_bytes)


class _MemoryWatch:
    """The most memory the block added (rise_bytes): on a GPU the allocator's own peak; on
    a CPU the process's resident memory, polled from a thread, the same way on every OS.
    peak_resident_bytes: the whole process's highest resident memory meanwhile."""

    def __init__(self, device: torch.device):
        self.device = device
        self.rise_bytes = self.peak_resident_bytes = 0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _MemoryWatch:
        gc.collect()
        give_back_freed_memory()  # what earlier runs kept for reuse is not this run's
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._gpu_start = torch.cuda.memory_allocated(self.device)
        self._start = self.peak_resident_bytes = self._process.memory_info().rss
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(MEMORY_POLL_S):
            self._sample()

    def _sample(self) -> None:
        self.peak_resident_bytes = max(self.peak_resident_bytes,
                                       self._process.memory_info().rss)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self.device.type == "cuda":
            self.rise_bytes = torch.cuda.max_memory_allocated(self.device) - self._gpu_start
        else:
            self.rise_bytes = self.peak_resident_bytes - self._start


def format_report(result: BenchResult) -> str:
    """The figures as a table, one row per preset."""
    memory = "GPU memory" if result.device.startswith("cuda") else "memory"
    lines = [f"microlm bench on {result.device} ({result.device_name}), "
             f"{psutil.cpu_count(logical=False) or '?'} CPU cores, {result.threads} torch "
             f"threads, torch {torch.__version__}",
             f"Each preset trained for {result.train_seconds:g} s on the built-in '{CORPUS}' "
             f"sample ({result.corpus_chars:,} characters), then generated.",
             "",
             f"  {'preset':<8}{'parameters':>12}  {'precision':<10}{'steps':>7}"
             f"{'train chars/s':>15}{'generate chars/s':>18}{'training ' + memory:>22}"]
    for row in result.presets:
        train = ("too few steps" if math.isnan(row.train_chars_per_second)
                 else f"{row.train_chars_per_second:,.0f}")
        lines.append(f"  {row.preset:<8}{row.parameters:>12,}  {row.precision:<10}"
                     f"{row.steps:>7,}{train:>15}"
                     f"{row.generate_chars_per_second:>18,.0f}"
                     f"{format_bytes(row.memory_bytes):>22}")
    lines += ["",
              "Training memory is what a run added to the process (model, optimizer, batches, "
              "activations);",
              f"the whole process peaked at {format_bytes(result.peak_resident_bytes)} "
              f"resident, PyTorch included."]
    if result.busy_percent >= BUSY_PERCENT:
        lines.append(f"Note: other programs kept the CPU {result.busy_percent:.0f} % busy as the "
                     f"bench began; threads that wait on each other then make every figure\n"
                     f"low. Run it again when the machine is idle, or with --threads 1.")
    return "\n".join(lines)
