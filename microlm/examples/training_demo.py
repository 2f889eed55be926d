"""Train a character-level language model from start to end with the microlm API.

It teaches the whole path: the built-in sample text, a tokenizer, a small model, training
with a time budget while printing the progress events, evaluating on the held-out text,
saving one checkpoint file and writing a sample with the trained model.

    python -m microlm.examples.training_demo                 # ~25 s, saves training_demo.pt
    python -m microlm.examples.training_demo my_model.pt --seconds 60

Then try the other demos on the checkpoint it saved:

    python -m microlm.examples.text_generation_demo training_demo.pt
    python -m microlm.examples.model_inspection_demo training_demo.pt
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from microlm import (
    CharacterTokenizer,
    Evaluated,
    MicroLM,
    ModelTrainer,
    StepCompleted,
    TextGenerator,
    TrainingConfig,
    TrainingFinished,
    TrainingStarted,
    load_model,
    sample_corpus,
    set_seed,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m microlm.examples.training_demo",
        description="Train a small model on the built-in sample text, evaluate it, save it "
                    "and print a sample.")
    parser.add_argument("checkpoint", nargs="?", default="training_demo.pt",
                        help="where to save the trained model (default: training_demo.pt in "
                             "the current folder)")
    parser.add_argument("--seconds", type=float, default=25.0,
                        help="time budget for training, in seconds (default 25)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be more than 0")

    # 1. The text. sample_corpus() builds a text from this Python installation (its
    #    documentation), so the demo needs no download. read_corpus("my.txt") reads your own.
    set_seed(1337)  # every random choice below (weights, batches, samples) follows the seed
    text = sample_corpus("Python documentation").text
    print(f"Text: {len(text):,} characters of Python's documentation.")

    # 2. The tokenizer: one id per character that occurs in the text, in sorted order.
    tokenizer = CharacterTokenizer(text)
    print(f"Vocabulary: {tokenizer.vocab_size()} characters in the vocabulary.")

    # 3. The model: embedding -> LSTM -> output layer. Hidden size 128 with one layer trains
    #    to readable fragments within a minute on a laptop CPU; more needs more time.
    model = MicroLM(vocab_size=tokenizer.vocab_size(), embedding_dim=32, hidden_dim=128,
                    num_layers=1, dropout=0.0)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"Model: hidden size 128, 1 layer, {parameters:,} parameters.")

    # 4. The run's settings. With a time budget the run stops when the time is spent (its
    #    learning-rate schedule is stretched over the budget), so `epochs` is only an upper
    #    bound. eval_interval: validate every 100 steps; eval_chars caps what each
    #    validation reads, so it stays cheap.
    config = TrainingConfig(epochs=50, batch_size=32, sequence_length=64, learning_rate=1e-2,
                            eval_interval=100, eval_chars=20_000, time_budget_s=args.seconds)
    trainer = ModelTrainer(model, tokenizer, config=config)
    trainer.prepare_data(text)  # the last 10 % of the text is held out for validation

    # 5. Train. fit() yields small events as it goes; train() would run to the end silently.
    print(f"\nTraining for {args.seconds:g} s ...")
    last_print = -math.inf
    for event in trainer.fit():
        if isinstance(event, TrainingStarted):
            print(f"  {event.train_chars:,} characters to train on, {event.val_chars:,} "
                  f"held out, on {event.device} in {event.precision}")
        elif isinstance(event, StepCompleted) and event.elapsed_s - last_print >= 2.0:
            last_print = event.elapsed_s  # one line every 2 s is plenty
            print(f"  step {event.step:5,}  {event.elapsed_s:5.1f} s  loss {event.loss:.3f}  "
                  f"{event.chars_per_second:,.0f} characters/s")
        elif isinstance(event, Evaluated):
            best = "  (best so far)" if event.improved else ""
            print(f"  step {event.step:5,}  validation loss {event.val_loss:.3f}{best}")
        elif isinstance(event, TrainingFinished):
            print(f"Finished: {event.message}")

    # 6. Evaluate: the mean loss on the held-out text, in nats per character. The same
    #    number in bits (divide by ln 2), and as perplexity e^loss: how many characters
    #    the model is, on average, as unsure as if it chose among them evenly.
    loss = trainer.evaluate()
    print(f"\nValidation loss: {loss:.3f} nats per character = {loss / math.log(2):.2f} bits "
          f"per character; the model is as unsure as choosing among {math.exp(loss):.1f} "
          f"characters (a blind guess: {tokenizer.vocab_size()}).")

    # 7. Save: one file with weights, model config, vocabulary and training history.
    #    load_model() rebuilds model and tokenizer from it without running any code in it.
    path = trainer.save_checkpoint(Path(args.checkpoint))
    model, tokenizer, metadata = load_model(path)
    print(f"Checkpoint saved to {path.resolve()} ({path.stat().st_size / 2**20:.1f} MiB, "
          f"step {metadata['step']:,}).")

    # 8. Generate from the reloaded model: a prompt, then 200 new characters. One character
    #    at a time is a small step: one thread runs it about as fast as two, and much
    #    faster while other programs keep the cores busy.
    torch.set_num_threads(1)
    generator = TextGenerator(model, tokenizer)
    sample = generator.generate("The ", length=200, temperature=0.8, seed=1)
    print(f"\nSample (temperature 0.8):\n{sample}")


if __name__ == "__main__":
    main()
