"""The model the generation and inspection demos look at: a checkpoint, or a tiny model
trained for a few seconds (training_demo.py explains each step of training)."""

from __future__ import annotations

from microlm import (
    CharacterTokenizer,
    MicroLM,
    ModelTrainer,
    TrainingConfig,
    load_model,
    sample_corpus,
    set_seed,
)

# The built-in text every demo uses: Python's own documentation, about 465,000 characters.
CORPUS = "Python documentation"


def quick_model(seconds: float) -> tuple[MicroLM, CharacterTokenizer]:
    """Train a tiny model on the built-in text for `seconds` and return it with its
    tokenizer (training_demo explains each step; this is the short version)."""
    set_seed(1337)  # the same weights at the start each time
    text = sample_corpus(CORPUS).text
    tokenizer = CharacterTokenizer(text)
    model = MicroLM(vocab_size=tokenizer.vocab_size(), embedding_dim=32, hidden_dim=128,
                    num_layers=1, dropout=0.0)
    # epochs is an upper bound here: the time budget ends the run first.
    config = TrainingConfig(epochs=50, batch_size=32, sequence_length=64, learning_rate=1e-2,
                            eval_chars=20_000, time_budget_s=seconds)
    trainer = ModelTrainer(model, tokenizer, config=config)
    trainer.prepare_data(text)
    trainer.train()
    # After a run the trainer holds the weights it kept: the best-validated, averaged ones.
    return trainer.model, tokenizer


def load_or_train(checkpoint: str | None, seconds: float) -> tuple[MicroLM, CharacterTokenizer]:
    """The model in `checkpoint`, or, without one, a tiny model trained for `seconds`."""
    if checkpoint:
        model, tokenizer, metadata = load_model(checkpoint)
        print(f"Loaded {checkpoint}: trained for {metadata.get('step', 0):,} steps, "
              f"{tokenizer.vocab_size()} characters in the vocabulary.")
        return model, tokenizer
    print(f"No checkpoint given: training a tiny model on the built-in {CORPUS} text for "
          f"{seconds:g} s first (give a checkpoint from training_demo or `microlm train` "
          f"for a model that writes words).")
    return quick_model(seconds)
