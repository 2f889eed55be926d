"""The `microlm` command: probe the machine, train, generate, inspect a checkpoint, benchmark."""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import torch

from . import bench as benchmark
from . import budget as budgets
from . import calibration, distributed, hardware, prepared, presets, recommendation
from .checkpoint import (
    CheckpointError,
    CheckpointSaveError,
    check_output,
    check_room,
    fallback_path,
    load_model,
    output_lock,
    resumable_size,
)
from .config import PRECISIONS
from .data import SAMPLE_CORPORA, Corpus, CorpusError, read_corpus, sample_corpus
from .generator import TextGenerator
from .inspection import analyze_parameters, inspect_model
from .model import MicroLM, ModelConfig
from .thread_watch import SlowdownWatch
from .tokenizer import CharacterTokenizer, UnknownCharacterError
from .trainer import (
    Evaluated,
    ModelTrainer,
    SampleGenerated,
    StepCompleted,
    TrainingConfig,
    TrainingControl,
    TrainingFinished,
    TrainingStarted,
    set_seed,
)
from .units import format_duration

TYPICAL_VOCAB = 96  # distinct characters of a typical English text: sizes the preset table
DEFAULT_PRESET = "small"  # used when neither --preset nor --time-budget is given
INTERRUPTED = 130  # the shell's exit status for a program stopped by Ctrl-C
# Stop training and save, like Ctrl-C: `timeout`, job schedulers and systemd send SIGTERM,
# a closed terminal SIGHUP.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))

MODEL_FLAGS = ("embedding_dim", "hidden_dim", "num_layers", "dropout", "output_hidden_dim")
TRAINING_FLAGS = ("sequence_length", "batch_size", "learning_rate", "weight_decay", "ema_decay",
                  "epochs", "val_fraction", "eval_interval", "patience", "batching", "precision",
                  "checkpoint_every", "checkpoint_minutes")
# What a resumed run may still change: how long it goes on, how it is watched and saved.
RESUME_FLAGS = ("epochs", "eval_interval", "patience", "checkpoint_every", "checkpoint_minutes")


class UserError(Exception):
    """A mistake the person running the command can fix; shown as one 'error:' line."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one 'error:' line instead of usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


# ---- argument types: each rejects a bad value with a sentence, not a traceback ----

def _number(kind: type, check: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value
    parse.__name__ = wanted  # argparse names the type in some messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "a whole number >= 1")
count_int = _number(int, lambda v: v >= 0, "a whole number >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
non_negative_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
dropout_float = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
top_p_float = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def sample_name(text: str) -> str:
    """Accept a sample corpus by its name in any case, or as a slug like python-documentation."""
    for name in SAMPLE_CORPORA:
        if _slug(text) in (_slug(name), _slug(name).removeprefix("python-")):
            return name
    choices = ", ".join(f"'{_slug(n)}'" for n in SAMPLE_CORPORA)
    raise argparse.ArgumentTypeError(f"no sample corpus named {text!r}; choose {choices}")


# ---- the command line ----

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="microlm", description="Train and explore character-level LSTM "
                     "language models from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    probe = commands.add_parser(
        "probe", help="describe this machine and how fast it trains each preset",
        description="Print this machine's CPU, memory and GPUs, measure its training speed "
                    "in a short calibration, and list the presets with their true size and "
                    "estimated speed here.")
    probe.add_argument("--device", help="measure on this device (cpu, cuda, cuda:1, mps); "
                       "default: the best available")
    probe.add_argument("--seconds", type=positive_float, default=1.5,
                       help="how long the speed calibration runs (default 1.5)")
    _add_threads_option(probe)
    probe.set_defaults(handler=run_probe)

    train = commands.add_parser(
        "train", help="train a model on a text file or a built-in sample corpus",
        description="Train a model and save it as one checkpoint file. Settings come from, "
                    "in order of precedence: the explicit flags, then --preset, then the "
                    "recommendation for --time-budget, then the 'small' preset. Ctrl-C, "
                    "SIGTERM or SIGHUP (a job's time limit, a closed terminal) stops "
                    "training and still saves the checkpoint. Under 'torchrun "
                    "--nproc_per_node=N' it trains on N processes (one per GPU, or CPU "
                    "processes): each step then sees N x --batch-size windows (the global "
                    "batch), and the learning rate is not scaled for you.")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path,
                        help="the text file to learn from, or a folder made by 'microlm "
                             "prepare' (read through a memory map, for texts larger than "
                             "memory)")
    source.add_argument("--sample", type=sample_name, metavar="NAME",
                        help="learn from a built-in corpus made from your Python installation: "
                             + ", ".join(_slug(n) for n in SAMPLE_CORPORA))
    train.add_argument("--preset", choices=list(presets.PRESETS),
                       help="a ready-made model size and training setup, from tiny and fast "
                            "(nano) to large and slow (xlarge); see 'microlm probe'")
    model = train.add_argument_group("model shape (override the preset or recommendation)")
    model.add_argument("--embedding-dim", type=positive_int,
                       help="length of the vector each character is turned into")
    model.add_argument("--hidden-dim", type=positive_int,
                       help="size of the LSTM memory per layer; bigger learns more, trains slower")
    model.add_argument("--num-layers", type=positive_int, help="number of stacked LSTM layers")
    model.add_argument("--dropout", type=dropout_float,
                       help="fraction of activations zeroed during training against "
                            "memorising (0 = off)")
    model.add_argument("--output-hidden-dim", type=_number(int, lambda v: v >= 0,
                                                           "a whole number >= 0"),
                       metavar="N",
                       help="units in a hidden layer (GELU) between the LSTM and the "
                            "character scores; 0 = one linear output layer")
    run = train.add_argument_group("training (override the preset or recommendation)")
    run.add_argument("--sequence-length", type=positive_int,
                     help="characters per training window: how far back the model learns to look")
    run.add_argument("--batch-size", type=positive_int,
                     help="windows trained on per step (per process under torchrun: the "
                          "global batch is N x this)")
    run.add_argument("--learning-rate", type=positive_float, help="peak step size of AdamW")
    run.add_argument("--weight-decay", type=_number(float, lambda v: 0 <= v <= 10,
                                                    "a number in [0, 10]"),
                     help="AdamW's pull of the weight matrices towards zero at each step, "
                          "times the learning rate (against memorising the text)")
    run.add_argument("--ema-decay", type=_number(float, lambda v: 0 <= v < 1,
                                                 "a number in [0, 1)"),
                     help="validate and keep a moving average of the weights, each step moving "
                          "it 1 - this of the way to the new weights (default 0.98; 0: the "
                          "weights as trained)")
    run.add_argument("--batching", choices=("random", "sequential"),
                     help="random (default): each pass over the text reads every window of "
                          "it once, in random order; or sequential: each batch row continues "
                          "where it stopped and the LSTM state is carried over (longer memory)")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="bfloat16: mixed precision (the weights stay float32), faster on "
                          "CPUs with AMX or AVX-512 bf16 units and on recent GPUs, less exact; "
                          "auto (default): bfloat16 where this device runs the LSTM in it, "
                          "else float32")
    run.add_argument("--epochs", type=positive_int,
                     help="passes over the training text (with --time-budget: at most this many)")
    run.add_argument("--val-fraction", type=_number(float, lambda v: 0 <= v < 1,
                                                   "a number in [0, 1)"),
                     help="share of the text held out to measure the validation loss "
                          "(default 0.1)")
    run.add_argument("--eval-interval", type=count_int,
                     help="training steps between validation runs (0 = once per epoch)")
    run.add_argument("--patience", type=count_int,
                     help="stop early after this many validations without improvement "
                          "(0 = never)")
    run.add_argument("--checkpoint-every", type=count_int, metavar="EPOCHS",
                     help="also save the checkpoint every this many epochs during training "
                          "(default 0: at the end only)")
    run.add_argument("--checkpoint-minutes", type=positive_float, metavar="MINUTES",
                     help="also save the checkpoint every this many minutes of training, so "
                          "that a crash or a kill loses at most that much")
    train.add_argument("--time-budget", type=positive_float, metavar="SECONDS",
                       help="finish within this many seconds, everything included; alone, it "
                            "also picks the model that fits the time on this machine")
    train.add_argument("--output", "-o", type=Path, metavar="PATH",
                       help="where to save the checkpoint (default: <text name>.pt in the "
                            "current folder; with --resume: the resumed file)")
    train.add_argument("--resume", type=Path, metavar="PATH",
                       help="continue the run saved in this checkpoint exactly where it "
                            "stopped (give the same text)")
    train.add_argument("--seed", type=int, default=None,
                       help="random seed: the same seed, text and settings give the same model "
                            "(default 1337)")
    train.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available; "
                       "under torchrun with CUDA, each process uses cuda:LOCAL_RANK)")
    _add_threads_option(train)
    train.set_defaults(handler=run_train)

    prepare = commands.add_parser(
        "prepare", help="encode a large text file once, to train on it through a memory map",
        description="Read a UTF-8 text file of any size in one streaming pass and write its "
                    "characters as token ids (train.bin, val.bin) and its vocabulary "
                    "(vocab.json) into a folder; 'microlm train FOLDER' then trains from it "
                    "without holding the text in memory. The validation part is the last "
                    "--val-fraction of the text, as 'microlm train FILE' would hold out.")
    prepare.add_argument("file", type=Path, help="the UTF-8 text file to encode")
    prepare.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                         help="the folder to write (created if needed)")
    prepare.add_argument("--val-fraction", type=_number(float, lambda v: 0 <= v < 1,
                                                        "a number in [0, 1)"), default=0.1,
                         help="share of the text held out for validation (default 0.1)")
    prepare.set_defaults(handler=run_prepare)

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
                          help="compute in fp32 on a CUDA GPU too (default: bf16 autocast "
                               "where the GPU supports it)")
    _add_threads_option(generate)
    generate.set_defaults(handler=run_generate)

    inspect = commands.add_parser(
        "inspect", help="show what is inside a checkpoint",
        description="Print a checkpoint's architecture, its parameters layer by layer, its "
                    "memory, a health check of its weights and how it was trained.")
    inspect.add_argument("checkpoint", type=Path, help="a .pt file saved by 'microlm train'")
    inspect.set_defaults(handler=run_inspect)

    bench = commands.add_parser(
        "bench", help="measure how fast this machine trains and generates, and the memory "
                      "training takes",
        description="Train each preset for a few seconds on the built-in Python documentation "
                    "sample, then generate text with it, and print the characters per second "
                    "of both and the memory training added. Needs no file; takes under a "
                    "minute on a 2-core CPU.")
    bench.add_argument("--presets", nargs="+", choices=list(presets.PRESETS), metavar="NAME",
                       default=list(benchmark.PRESET_NAMES),
                       help=f"the presets to time (default: "
                            f"{' '.join(benchmark.PRESET_NAMES)}; choose from "
                            f"{', '.join(presets.PRESETS)})")
    bench.add_argument("--seconds", type=positive_float, metavar="SECONDS",
                       help=f"training time of each preset (default "
                            f"{benchmark.TRAIN_SECONDS:g}); longer runs give steadier "
                            f"figures")
    bench.add_argument("--quick", action="store_true",
                       help=f"{benchmark.QUICK_SECONDS:g} s per preset: checks that training "
                            f"and generation run here (the figures are rough)")
    bench.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")
    _add_threads_option(bench)
    bench.set_defaults(handler=run_bench)
    return parser


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads torch may use (default: torch's choice, usually one "
                             "per core); small models on a busy machine often run much faster "
                             "with 1")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 bad input)."""
    # From a real command line, the time budget counts from the moment the process started
    # (interpreter and torch start-up included), not from when this function runs.
    started = time.monotonic() - (_seconds_since_process_start() if argv is None else 0.0)
    parser = build_parser()
    threads = torch.get_num_threads()
    try:
        args = parser.parse_args(argv)
        args.started = started
        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        return args.handler(args)
    except SystemExit as exit_request:  # --help, or a command line argparse rejected
        return exit_request.code if isinstance(exit_request.code, int) else 0
    except (UserError, CorpusError, CheckpointError, UnknownCharacterError, ValueError) as err:
        return _fail(str(err), 2)
    except KeyboardInterrupt:
        return _fail("interrupted.", INTERRUPTED)
    except BrokenPipeError:  # e.g. `microlm generate ... | head`: the reader has gone
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except MemoryError:
        return _fail("out of memory; use a smaller model, batch or text.", 1)
    except (OSError, RuntimeError) as err:
        return _fail(_first_line(err), 1)
    except Exception as err:  # a bug: still one line, with a way to get the traceback
        if os.environ.get("MICROLM_DEBUG"):
            raise
        return _fail(f"internal error ({type(err).__name__}: {_first_line(err)}); run again "
                     f"with MICROLM_DEBUG=1 to see the traceback and please report it.", 1)
    finally:
        torch.set_num_threads(threads)  # called in-process (a notebook, a test): leave it as it was
        distributed.shutdown()  # under torchrun: leave the process group on every path


def _fail(message: str, status: int) -> int:
    message = " ".join(message.split())  # one line, whatever the message was built from
    print(f"error: {message}", file=sys.stderr)
    return status


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _seconds_since_process_start() -> float:
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # no psutil or no permission: count from now
        return 0.0


# ---- probe ----

def run_probe(args: argparse.Namespace) -> int:
    device = str(hardware.select_device(args.device))
    print(hardware.probe().summary())
    print(f"\nMeasuring training speed on {device} for about {args.seconds:g} s ...",
          file=sys.stderr, flush=True)
    speed = calibration.calibrate(seconds=args.seconds, device=device)
    print(f"\nMeasured training speed on {speed.device}: {speed.summary()}.")
    print(f"\nPresets (parameters for a text of {TYPICAL_VOCAB} distinct characters):")
    rows = [("preset", "embedding", "hidden", "layers", "parameters", "est. chars/s")]
    for name, preset in presets.PRESETS.items():
        config = preset.model_config(TYPICAL_VOCAB)
        rate = speed.chars_per_second(config, preset.batch_size, preset.sequence_length)
        rows.append((name, str(preset.embedding_dim), str(preset.hidden_dim),
                     str(preset.num_layers),
                     f"{presets.preset_parameters(name, TYPICAL_VOCAB):,}", f"{rate:,.0f}"))
    print(format_table(rows))
    return 0


def format_table(rows: Sequence[Sequence[str]], indent: str = "  ",
                 left_columns: int = 1) -> str:
    """Words left-aligned (the first `left_columns`), numbers right-aligned, a rule under
    the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [cell.ljust(width) if i < left_columns else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        return indent + "  ".join(cells).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(rows[0]), rule] + [line(row) for row in rows[1:]])


# ---- train ----

def run_train(args: argparse.Namespace) -> int:
    budget = args.time_budget
    # Under torchrun: one process per GPU (cuda:LOCAL_RANK), joined into one process group.
    device = str(hardware.select_device(distributed.local_device(args.device)))
    if distributed.init_from_environment(device):
        distributed.quiet_other_ranks()
    given = {name: getattr(args, name) for name in MODEL_FLAGS + TRAINING_FLAGS
             if getattr(args, name) is not None}
    if args.resume is not None:
        not_allowed = [n for n in given if n not in RESUME_FLAGS]
        if args.preset:
            not_allowed.append("preset")
        if args.seed is not None:
            not_allowed.append("seed")
        if not_allowed:
            flags = ", ".join("--" + n.replace("_", "-") for n in not_allowed)
            allowed = ", ".join("--" + n.replace("_", "-") for n in RESUME_FLAGS)
            raise UserError(f"--resume continues the saved run with its own settings; leave out "
                            f"{flags} (only {allowed}, --time-budget may change).")

    on_disk = None  # a prepared folder: tokens memory-mapped, the text never read
    if args.file is not None and args.file.is_dir():
        on_disk = prepared.load_prepared(args.file)  # says how to prepare one if it is not
        text, notes = "", ()
    else:
        corpus = _load_corpus(args)
        text, notes = corpus.text, corpus.warnings
        del corpus  # the trainer keeps the text encoded, a quarter or less of the string's size
    corpus_chars = on_disk.num_chars if on_disk else len(text)
    output = _output_path(args)
    saves = distributed.is_main_process()  # under torchrun rank 0 alone writes the checkpoint
    keep = [args.file] if args.file else []
    # Checked before the work, not after it: never the text, nor a file that is not a
    # checkpoint (a resumed run first says what is wrong with the file it resumes).
    if saves and args.resume is None:
        check_output(output, keep)

    if args.resume is not None:
        try:
            trainer = ModelTrainer.from_checkpoint(args.resume, None if on_disk else text,
                                                   device=device)
            if on_disk:
                prepared.use_prepared(trainer, on_disk, prepared.saved_loader_state(args.resume))
        except UnknownCharacterError as err:
            shown = ", ".join(repr(c) for c in err.characters[:10])
            raise UserError(f"this text has {len(err.characters)} character(s) the saved model "
                            f"never saw ({shown}); resume with the text it was trained on."
                            ) from None
        overrides = {n: v for n, v in given.items() if n in RESUME_FLAGS}
        if saves:
            check_output(output, keep)
        print(f"Resuming {args.resume} at step {trainer.step:,}.", file=sys.stderr)
    else:
        tokenizer = on_disk.tokenizer if on_disk else CharacterTokenizer(text)
        model_config, training_config = _choose_config(args, corpus_chars,
                                                       tokenizer.vocab_size(), device, given)
        if budget is not None and not args.threads:
            threads = budgets.calibrate_for(budget, device).threads
            if threads and threads != torch.get_num_threads():
                # The calibration timed both: on a busy machine one thread can be far faster.
                torch.set_num_threads(threads)
                print(f"Using {threads} CPU thread(s): the fastest here just now.",
                      file=sys.stderr)
        # Every rank must build the same model: rank 0's choice (a --time-budget
        # recommendation comes from a calibration that varies) is everyone's.
        model_config, training_config = distributed.broadcast((model_config, training_config))
        set_seed(training_config.seed)  # the model's initial weights come from the seed too
        model = MicroLM(config=model_config)
        trainer = ModelTrainer(model, tokenizer, device=device, config=training_config)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if on_disk:
                prepared.use_prepared(trainer, on_disk)
            else:
                trainer.prepare_data(text)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        overrides = {}
        print(_describe(trainer, corpus_chars), file=sys.stderr)
    del text
    # Shown once the text is known to be usable, so that an error stays the only line.
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if saves:
        check_room(output, resumable_size(trainer.model))

    if budget is not None:
        val_chars = 0 if trainer.val_tokens is None else len(trainer.val_tokens)
        reserve = budgets.finishing_reserve(budgets.calibrate_for(budget, device),
                                            trainer.model.config, trainer.config, val_chars,
                                            budget)
        try:
            remaining = budgets.training_seconds(budget, time.monotonic() - args.started,
                                                 reserve)
        except budgets.BudgetTooShort as err:
            raise UserError(str(err)) from None
        overrides["time_budget_s"] = distributed.broadcast(remaining)  # one schedule for all
        print(f"Training for {remaining:.1f} s of the {budget:g} s budget ({reserve:.1f} s kept "
              f"for the last validation and saving).", file=sys.stderr)
    overrides["checkpoint_path"] = str(output)
    with output_lock(output) if saves else nullcontext():  # one run at a time per file
        return _train_with_progress(trainer, overrides, output, args)


def _load_corpus(args: argparse.Namespace) -> Corpus:
    if args.sample is not None:
        corpus = sample_corpus(args.sample)
    else:
        corpus = read_corpus(args.file)
    return corpus


def _output_path(args: argparse.Namespace) -> Path:
    stem = _slug(args.sample) if args.sample is not None else Path(args.file).stem
    if args.output is None:
        return args.resume if args.resume is not None else Path.cwd() / f"{stem}.pt"
    if args.output.is_dir():
        return args.output / f"{stem}.pt"
    return args.output


def _choose_config(args: argparse.Namespace, corpus_chars: int, vocab_size: int, device: str,
                   given: dict) -> tuple[ModelConfig, TrainingConfig]:
    """Explicit flags > --preset > recommendation for --time-budget > the default preset."""
    budget = args.time_budget
    if args.preset is None and budget is not None:
        speed = budgets.calibrate_for(budget, device)  # paid from the budget
        recommended = recommendation.recommend(
            corpus_chars, budgets.planning_seconds(budget, time.monotonic() - args.started),
            vocab_size, speed)
        print(f"Recommended for {budget:g} s on this machine:", file=sys.stderr)
        for reason in recommended.reasons:
            print(f"  - {reason}", file=sys.stderr)
        model_config = recommended.model_config
        training_config = recommended.training_config
    else:
        preset = presets.PRESETS[args.preset or DEFAULT_PRESET]
        if args.preset is None:
            print(f"Using the '{preset.name}' preset (choose with --preset, or let "
                  f"--time-budget pick).", file=sys.stderr)
        model_config = preset.model_config(vocab_size)
        training_config = preset.training_config()  # precision auto: the device's fastest
        if budget is not None and "epochs" not in given:
            # With a budget, time ends the run; the schedule then follows the clock.
            training_config = replace(training_config, epochs=1_000_000)
    model_config = replace(model_config, vocab_size=vocab_size,
                           **{n: given[n] for n in MODEL_FLAGS if n in given})
    settings = {n: given[n] for n in TRAINING_FLAGS if n in given}
    if args.seed is not None:
        settings["seed"] = args.seed
    training_config = replace(training_config, device=device, **settings)
    if args.preset is None and budget is not None and (
            set(given) - {"epochs", "eval_interval"}):
        # Flags changed the recommended model or batches: plan epochs and validation for
        # the model that will actually train (the flags themselves still win).
        planned = recommendation.budget_plan(model_config, training_config, corpus_chars,
                                             recommended.training_config.time_budget_s, speed)
        training_config = replace(planned, **{n: given[n] for n in ("epochs", "eval_interval")
                                              if n in given})
    return model_config, training_config


def _describe(trainer: ModelTrainer, corpus_chars: int) -> str:
    m, t = trainer.model.config, trainer.config
    parameters = sum(p.numel() for p in trainer.model.parameters())
    output = f", output layer {m.output_hidden_dim} units" if m.output_hidden_dim else ""
    return (f"Model: {parameters:,} parameters (embedding {m.embedding_dim}, hidden "
            f"{m.hidden_dim} x {m.num_layers} layer(s){output}, dropout {m.dropout:g}), "
            f"vocabulary "
            f"{m.vocab_size}. Training on {corpus_chars:,} characters with batches of "
            f"{t.batch_size} x {t.sequence_length}, learning rate {t.learning_rate:g}, "
            f"on {trainer.device}.")


def _train_with_progress(trainer: ModelTrainer, overrides: dict, output: Path,
                         args: argparse.Namespace) -> int:
    control = TrainingControl()
    progress = ProgressLine(sys.stderr, run_epochs=None if "time_budget_s" in overrides
                            else overrides.get("epochs", trainer.config.epochs))
    interrupted = False
    first_step = trainer.step

    def on_stop_signal(signum, frame) -> None:
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C gives up at once; other signals wait for the save
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        interrupted = True
        if signum == getattr(signal, "SIGHUP", None):
            _leave_closed_terminal(terminals, progress)
        received = "" if signum == signal.SIGINT else f"{signal.Signals(signum).name} received. "
        progress.message(f"{received}Stopping after this step and saving (Ctrl-C again to "
                         f"abort) ...")
        control.stop()

    # Asked now: once hung up, a terminal may no longer say that it is one.
    terminals = [name for name in ("stdout", "stderr") if getattr(sys, name).isatty()]
    previous_handlers = _install_stop_handler(on_stop_signal)
    finished: TrainingFinished | None = None
    # (threads given with --threads stay as given)
    watch = SlowdownWatch.for_run(trainer.device) if args.threads is None else None
    try:
        for event in trainer.fit(control=control, **overrides):
            if isinstance(event, TrainingStarted):
                progress.started(event, first_step)
            elif isinstance(event, StepCompleted):
                progress.step(event)
                # Threads that wait on each other at every character are what makes a busy
                # machine many times slower; one thread keeps going until the load passes.
                note = watch.apply(event.elapsed_s, event.step) if watch else None
                if note:
                    progress.message(note)
            elif isinstance(event, Evaluated):
                progress.evaluated(event)
            elif isinstance(event, SampleGenerated):
                progress.message(f"sample at step {event.step}: {event.text!r}")
            elif isinstance(event, TrainingFinished):
                finished = event
    except CheckpointSaveError as err:  # at the end or a periodic save: keep the model
        raise CheckpointSaveError(err.errno, f"{err} {_keep_elsewhere(trainer, output)}"
                                  ) from None
    finally:
        progress.close()
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)

    if finished.best_val_loss is not None:
        print(f"Best validation loss: {finished.best_val_loss:.4f} nats/char "
              f"({finished.best_val_loss / math.log(2):.3f} bits/char).")
    if finished.reason == "time_budget":
        message = f"Time budget of {args.time_budget:g} s reached (everything included)."
    else:
        message = finished.message
    print(f"{message} Step {finished.step:,} after {finished.elapsed_s:.1f} s of training; "
          f"this command took {time.monotonic() - args.started:.1f} s.")
    print(f"Checkpoint saved to {output}")
    if finished.reason == "diverged":
        return 1
    return INTERRUPTED if interrupted else 0


def _install_stop_handler(handler: Callable) -> dict:
    """Handle every stop signal with `handler`; returns the handlers it replaced. Only the
    main thread receives signals (elsewhere, e.g. a worker, nothing changes), and a signal
    ignored on purpose (nohup ignores SIGHUP) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current not in (signal.SIG_IGN, None):  # None: set outside Python, keep it
            previous[signum] = signal.signal(signum, handler)
    return previous


def _leave_closed_terminal(terminals: list[str], progress: ProgressLine) -> None:
    """After a hang-up, writing to the terminal fails, which would end the run before its
    save: what was meant for it (sys.stdout, sys.stderr named in `terminals`) goes
    nowhere; a log file still gets what was meant for it."""
    for name in terminals:
        setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives to the exit
    if progress.is_terminal:
        progress.stream = sys.stderr


def _keep_elsewhere(trainer: ModelTrainer, output: Path) -> str:
    """Save the model that could not be saved to `output` in the temporary folder; say where."""
    fallback = fallback_path(output)
    try:
        trainer.save_checkpoint(fallback)
    except (CheckpointSaveError, CheckpointError) as err:
        return f"Keeping it in {fallback} failed too: {err}"
    return (f"The model was kept in {fallback} instead: move it where you want it (it also "
            f"resumes with --resume).")


class ProgressLine:
    """One line on a terminal, rewritten in place, plus a line per validation.

    Redrawn at most ten times a second so a fast tiny model is not slowed by printing.
    When the stream is not a terminal (a log file), a plain line is written every
    ten seconds instead.
    """

    def __init__(self, stream: TextIO, run_epochs: int | None, width: int = 24):
        self.stream = stream
        self.run_epochs = run_epochs  # None: the run ends on time, not on epochs
        self.width = width
        self.is_terminal = hasattr(stream, "isatty") and stream.isatty()
        self.redraw_every = 0.1 if self.is_terminal else 10.0
        self.total_steps = 0
        self.run_start_step = 0
        self.val_loss: float | None = None
        self.best_val_loss: float | None = None
        self.last: StepCompleted | None = None
        self._drawn_at = 0.0
        self._line_length = 0

    def started(self, event: TrainingStarted, trainer_step: int) -> None:
        self.run_start_step = trainer_step - event.start_step
        self.total_steps = event.total_steps

    def step(self, event: StepCompleted) -> None:
        self.last = event
        now = time.monotonic()
        if now - self._drawn_at >= self.redraw_every:
            self._drawn_at = now
            self._draw()

    def evaluated(self, event: Evaluated) -> None:
        self.val_loss, self.best_val_loss = event.val_loss, event.best_val_loss
        mark = "  (new best)" if event.improved else ""
        train = (f"  train loss {event.train_loss:.4f}" if math.isfinite(event.train_loss)
                 else "")  # NaN: no step since the last validation
        self.message(f"step {event.step:,}  epoch {event.epoch}{train}  val loss "
                     f"{event.val_loss:.4f}  best {event.best_val_loss:.4f}{mark}")

    def message(self, text: str) -> None:
        self._clear()
        self._write(text + "\n")
        if self.last is not None and self.is_terminal:
            self._draw()

    def close(self) -> None:
        if self.last is not None and self.is_terminal:
            self._draw()
            self._write("\n")
            self._line_length = 0

    def _draw(self) -> None:
        self._write(("\r" if self.is_terminal else "") + self._line()
                    + ("" if self.is_terminal else "\n"))

    def _clear(self) -> None:
        if self.is_terminal and self._line_length:
            self._write("\r" + " " * self._line_length + "\r")
            self._line_length = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:  # a closed terminal: showing progress is not worth ending the run
            self.stream = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the line

    def _line(self) -> str:
        e = self.last
        run_step = e.step - self.run_start_step
        # With a time budget the step count is whatever fits in the time: estimate it.
        expected = self.total_steps
        if e.progress > 0:
            expected = min(expected, max(run_step, round(run_step / e.progress)))
        epoch = f"epoch {e.epoch}" + (f"/{self.run_epochs}" if self.run_epochs else "")
        val = f"{self.val_loss:.3f}" if self.val_loss is not None else "-"
        best = f"{self.best_val_loss:.3f}" if self.best_val_loss is not None else "-"
        # Most wanted first: a narrow terminal cuts the end of the line.
        text = (f"{e.progress:4.0%} ETA {format_duration(e.eta_s)}  "
                f"step {run_step:,}/{expected:,}  "
                f"{epoch}  loss {e.loss:.3f}  val {val}  best {best}  "
                f"{e.chars_per_second:,.0f} chars/s")
        width = self.width
        if self.is_terminal:
            # A line wider than the terminal would wrap, and "\r" only returns to its last
            # row: shrink the bar first, then cut the end.
            columns = shutil.get_terminal_size().columns - 1
            width = max(5, min(self.width, columns - len(text) - 3))
        done = int(width * e.progress)
        line = f"[{'#' * done}{'-' * (width - done)}] {text}"
        if self.is_terminal:
            line = line[:columns]
        padding = " " * max(0, self._line_length - len(line))
        self._line_length = len(line)
        return line + padding


# ---- prepare ----

def run_prepare(args: argparse.Namespace) -> int:
    if args.file.is_dir():
        raise UserError(f"{args.file} is a folder; give the text file to prepare.")
    started = time.perf_counter()

    def show(done: int, total: int) -> None:
        rate = done / 1e6 / max(time.perf_counter() - started, 1e-9)
        print(f"\rPreparing {args.file.name}: {done / total:4.0%} ({done / 1e6:,.0f} of "
              f"{total / 1e6:,.0f} MB, {rate:,.0f} MB/s)", end="", file=sys.stderr, flush=True)

    try:
        result = prepared.prepare_corpus(args.file, args.output, args.val_fraction,
                                         progress=show)
    finally:
        print(file=sys.stderr)
    print(f"Prepared {result.characters:,} characters ({result.train_characters:,} for "
          f"training, {result.val_characters:,} for validation), vocabulary "
          f"{result.vocab_size}, in {result.seconds:.1f} s ({result.megabytes_per_second:,.0f} "
          f"MB/s) into {result.directory}. Train with: microlm train {result.directory}")
    return 0


# ---- generate ----

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


# ---- inspect ----

def run_inspect(args: argparse.Namespace) -> int:
    model, tokenizer, metadata = load_model(args.checkpoint)
    info = inspect_model(model)
    health = analyze_parameters(model)
    print(f"Checkpoint: {args.checkpoint}")
    print(f"\nArchitecture:\n{info['architecture']}")
    print(f"\nParameters: {info['parameter_count']:,}   weights in memory: "
          f"{info['memory_mb']:.2f} MB   vocabulary: {tokenizer.vocab_size()} characters\n")
    rows = [("tensor", "type", "shape", "parameters")]
    rows += [(layer["name"], str(layer["type"]), str(layer["shape"]),
              f"{layer['parameters']:,}") for layer in info["layers"]]
    print(format_table(rows, left_columns=3))
    print(f"\nHealth score: {health['health_score']:.2f} (1 = no sign of dead, exploding or "
          f"saturated weights)")
    for note in health.get("health_notes", []):
        print(f"  - {note}")
    print("\nTraining:")
    print(_training_summary(metadata))
    return 0


def _training_summary(metadata: dict) -> str:
    history = metadata.get("history") or {}
    steps = int(metadata.get("step") or len(history.get("step_losses", [])))
    if not steps:
        return "  not trained (no training history in this checkpoint)"
    lines = [f"  steps: {steps:,}   training time: "
             f"{format_duration(float(history.get('training_time', 0.0)))} "
             f"({float(history.get('training_time', 0.0)):.1f} s)"]
    best = metadata.get("best_val_loss")
    if best is not None:
        lines.append(f"  best validation loss: {best:.4f} nats/char "
                     f"({best / math.log(2):.3f} bits/char)")
    step_losses = history.get("step_losses") or []
    if step_losses:
        lines.append(f"  training loss: first {step_losses[0]:.4f}, last {step_losses[-1]:.4f}")
    config = metadata.get("training_config") or {}
    if config:
        lines.append(f"  settings: batch {config.get('batch_size')} x "
                     f"{config.get('sequence_length')} characters, learning rate "
                     f"{config.get('learning_rate'):g}, seed {config.get('seed')}")
    return "\n".join(lines)


# ---- bench ----

def run_bench(args: argparse.Namespace) -> int:
    result = benchmark.run_bench(
        args.presets, args.device, quick=args.quick, train_seconds=args.seconds,
        log=lambda message: print(message, file=sys.stderr, flush=True))
    print(benchmark.format_report(result))
    for problem in result.problems():
        print(f"error: {problem}", file=sys.stderr)
    return 1 if result.problems() else 0
