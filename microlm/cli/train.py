"""`microlm train`: train a model on a text file, a prepared folder or a sample corpus, and
save it as one checkpoint file."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch

from .. import budget as budgets
from .. import distributed, hardware, prepared, presets
from ..checkpoint import check_output, check_room, output_lock, resumable_size
from ..config import PRECISIONS
from ..data import SAMPLE_CORPORA, Corpus, read_corpus, sample_corpus
from ..model import MicroLM
from ..tokenizer import CharacterTokenizer, UnknownCharacterError
from ..trainer import ModelTrainer, set_seed
from .arguments import (
    UserError,
    add_threads_option,
    count_int,
    dropout_float,
    number,
    positive_float,
    positive_int,
    sample_name,
    slug,
)
from .train_loop import train_with_progress
from .train_settings import MODEL_FLAGS, RESUME_FLAGS, TRAINING_FLAGS, choose_config, describe


def add_parser(commands: argparse._SubParsersAction) -> None:
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
                             + ", ".join(slug(n) for n in SAMPLE_CORPORA))
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
    model.add_argument("--output-hidden-dim", type=number(int, lambda v: v >= 0,
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
    run.add_argument("--weight-decay", type=number(float, lambda v: 0 <= v <= 10,
                                                   "a number in [0, 10]"),
                     help="weight decay: AdamW's pull of the weight matrices towards zero at "
                          "each step, times the learning rate (against memorising the text); "
                          "the biases and the character vectors (embedding) are exempt")
    run.add_argument("--ema-decay", type=number(float, lambda v: 0 <= v < 1,
                                                "a number in [0, 1)"),
                     help="weight averaging: validate and keep the averaged weights, each "
                          "step moving them 1 - this of the way to the new weights (default "
                          "0.98; 0: the weights as trained)")
    run.add_argument("--batching", choices=("random", "sequential"),
                     help="random (default): each pass over the text reads every window of "
                          "it once, in random order; or sequential: each batch row continues "
                          "where it stopped and the LSTM state is carried over (longer memory)")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="bfloat16: mixed precision (the weights stay float32), faster on "
                          "CPUs with AMX or AVX-512 BF16 units and on recent GPUs, less exact; "
                          "auto (default): bfloat16 where this device runs the LSTM in it, "
                          "else float32")
    run.add_argument("--epochs", type=positive_int,
                     help="passes over the training text (with --time-budget: at most this many)")
    run.add_argument("--val-fraction", type=number(float, lambda v: 0 <= v < 1,
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
    train.add_argument("--explain", action="store_true",
                       help="with --time-budget alone: say why each recommended setting was "
                            "chosen, one plain sentence each")
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
    add_threads_option(train)
    train.set_defaults(handler=run_train)


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
        model_config, training_config = choose_config(args, corpus_chars,
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
        print(describe(trainer, corpus_chars), file=sys.stderr)
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
        return train_with_progress(trainer, overrides, output, args)


def _load_corpus(args: argparse.Namespace) -> Corpus:
    if args.sample is not None:
        corpus = sample_corpus(args.sample)
    else:
        corpus = read_corpus(args.file)
    return corpus


def _output_path(args: argparse.Namespace) -> Path:
    stem = slug(args.sample) if args.sample is not None else Path(args.file).stem
    if args.output is None:
        return args.resume if args.resume is not None else Path.cwd() / f"{stem}.pt"
    if args.output.is_dir():
        return args.output / f"{stem}.pt"
    return args.output
