"""What the Train tab's tests share: a Session holding a text and settings, as the Data and
Configure tabs would leave it."""

from __future__ import annotations

from microlm import CharacterTokenizer, Corpus, ModelConfig, TrainingConfig, corpus_stats
from microlm_app.session import Session


def session_with_text(text: str, model: dict, training: TrainingConfig) -> Session:
    """A Session whose loaded text is `text`, with a model of these settings (its
    vocabulary the text's) and these training settings."""
    session = Session()
    tokenizer = CharacterTokenizer(text)
    corpus = Corpus(text=text, source="test text", encoding="utf-8", size_bytes=len(text))
    session.set_corpus(corpus, corpus_stats(text, tokenizer), tokenizer)
    session.set_configs(ModelConfig(vocab_size=tokenizer.vocab_size(), **model), training, [])
    return session
