"""Neurons that name themselves: features of a text (one number per character, computed from
the text alone) and, for every LSTM neuron, the feature its value follows best.

A feature's value at position t describes the text as read up to and including character t,
as the neuron's value at t is the state after reading that character. "Follows best" is the
largest |r|, Pearson's correlation over the text: r = 1 when the neuron rises and falls
exactly with the feature, -1 when it moves exactly against it, 0 when it ignores it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .inspection import ActivationTrace, activations
from .model import MicroLM
from .tokenizer import CharacterTokenizer

# ---- features: each a short function of the text, one value per character ----

OPENING_BRACKETS, CLOSING_BRACKETS = "([{", ")]}"
SENTENCE_ENDS = ".!?"
VOWELS = "aeiouAEIOU"


def inside_double_quotes(text: str) -> np.ndarray:
    """1 from an opening " up to the character before its closing ", else 0. The opening
    quote counts as inside and the closing one as outside; a new line ends a quote left
    open (so one stray quote does not flip the rest of the text)."""
    return _inside_quotes(text, '"', apostrophes=False)


def inside_single_quotes(text: str) -> np.ndarray:
    """Like inside_double_quotes, for ' ... '. A ' right after a letter or digit while no
    quote is open is an apostrophe (don't, 1990's) and changes nothing."""
    return _inside_quotes(text, "'", apostrophes=True)


def _inside_quotes(text: str, quote: str, apostrophes: bool) -> np.ndarray:
    values = np.zeros(len(text), dtype=np.float32)
    inside = False
    for t, char in enumerate(text):
        if char == "\n":
            inside = False
        elif char == quote:
            apostrophe = apostrophes and not inside and t > 0 and text[t - 1].isalnum()
            if not apostrophe:
                inside = not inside
                values[t] = 1.0 if inside else 0.0
                continue
        values[t] = float(inside)
    return values


def bracket_depth(text: str) -> np.ndarray:
    """How many ( [ { are open after reading each character: +1 at an opening bracket,
    -1 at a closing one (never below 0). Brackets span lines, as in code."""
    values = np.zeros(len(text), dtype=np.float32)
    depth = 0
    for t, char in enumerate(text):
        if char in OPENING_BRACKETS:
            depth += 1
        elif char in CLOSING_BRACKETS:
            depth = max(0, depth - 1)
        values[t] = depth
    return values


def position_in_line(text: str) -> np.ndarray:
    """Characters since the last new line: 1 for a line's first character, 0 for the new
    line itself."""
    values = np.zeros(len(text), dtype=np.float32)
    column = 0
    for t, char in enumerate(text):
        column = 0 if char == "\n" else column + 1
        values[t] = column
    return values


def line_indentation(text: str) -> np.ndarray:
    """The number of spaces and tabs that begin the current line, as far as it has been
    read: it grows through the leading blanks, then holds for the rest of the line; 0 for
    the new line itself."""
    values = np.zeros(len(text), dtype=np.float32)
    indent, leading = 0, True
    for t, char in enumerate(text):
        if char == "\n":
            indent, leading = 0, True
        elif leading and char in " \t":
            indent += 1
        else:
            leading = False
        values[t] = indent
    return values


def is_word_char(char: str) -> bool:
    """Letters, digits and the underscore make words (as in Python names)."""
    return char.isalnum() or char == "_"


def inside_word(text: str) -> np.ndarray:
    """1 on a character of a word (a letter, digit or _), 0 between words."""
    return np.array([is_word_char(char) for char in text], dtype=np.float32)


def position_in_word(text: str) -> np.ndarray:
    """1 for a word's first character, 2 for its second, ...; 0 between words."""
    values = np.zeros(len(text), dtype=np.float32)
    position = 0
    for t, char in enumerate(text):
        position = position + 1 if is_word_char(char) else 0
        values[t] = position
    return values


def upper_case(text: str) -> np.ndarray:
    """1 on an upper-case letter, else 0."""
    return np.array([char.isupper() for char in text], dtype=np.float32)


def digit(text: str) -> np.ndarray:
    """1 on a digit 0-9, else 0."""
    return np.array([char in "0123456789" for char in text], dtype=np.float32)


def vowel(text: str) -> np.ndarray:
    """1 on a, e, i, o or u (either case), else 0."""
    return np.array([char in VOWELS for char in text], dtype=np.float32)


def sentence_start(text: str) -> np.ndarray:
    """1 where a new sentence is awaited: from the blank after . ! or ? up to and including
    the next letter or digit (the sentence's first), and so at the text's first word.
    The full stop itself is 0: until the blank after it, it may be a decimal point."""
    values = np.zeros(len(text), dtype=np.float32)
    awaiting = True
    for t, char in enumerate(text):
        if char.isspace() and t > 0 and text[t - 1] in SENTENCE_ENDS:
            awaiting = True
        values[t] = float(awaiting)
        if char.isalnum():
            awaiting = False
    return values


def inside_comment(text: str) -> np.ndarray:
    """1 from a # to the end of its line (the # included, the new line not), as a Python
    comment; a # inside double or single quotes on the line starts no comment."""
    values = np.zeros(len(text), dtype=np.float32)
    comment, quote = False, ""
    for t, char in enumerate(text):
        if char == "\n":
            comment, quote = False, ""
        elif not comment and char in "\"'":
            quote = "" if quote == char else (quote or char)
        elif char == "#" and not quote:
            comment = True
        values[t] = float(comment)
    return values


@dataclass(frozen=True)
class Feature:
    name: str  # short key, as in a table column
    phrase: str  # what it means, for people
    values: Callable[[str], np.ndarray]  # the text -> one float32 per character


FEATURES: tuple[Feature, ...] = (
    Feature("double_quotes", "inside double quotes", inside_double_quotes),
    Feature("single_quotes", "inside single quotes", inside_single_quotes),
    Feature("bracket_depth", "depth of ( [ { brackets", bracket_depth),
    Feature("line_position", "position in the line", position_in_line),
    Feature("indentation", "indentation of the line", line_indentation),
    Feature("in_word", "inside a word", inside_word),
    Feature("word_position", "position in the word", position_in_word),
    Feature("upper_case", "upper-case letter", upper_case),
    Feature("digit", "digit", digit),
    Feature("sentence_start", "start of a sentence", sentence_start),
    Feature("comment", "inside a # comment", inside_comment),
    Feature("vowel", "vowel", vowel),
)


def feature_values(text: str, features: Sequence[Feature] = FEATURES) -> np.ndarray:
    """Every feature of the text as one column: (len(text), len(features)), float32."""
    columns = [feature.values(text) for feature in features]
    return (np.stack(columns, axis=1) if columns
            else np.zeros((len(text), 0), dtype=np.float32))


# ---- correlation ----

def pearson_r(values: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Pearson's r of every column of `values` (T, N) with every column of `features`
    (T, F), as one (N, F) matrix: the mean product of standardised columns. A column that
    does not vary (or fewer than two rows) gives r = 0, not NaN."""
    if len(values) < 2:
        return np.zeros((values.shape[1], features.shape[1]), dtype=np.float32)
    product = _standardised(values).T @ _standardised(features)  # (N, F)
    return np.clip(product / len(values), -1.0, 1.0)


def _standardised(columns: np.ndarray) -> np.ndarray:
    """(x - mean) / std per column, in float32 (sums in float64); 0 for a column that does
    not vary: its std is below a millionth of its size, float32 rounding noise."""
    columns = np.asarray(columns, dtype=np.float32)
    centred = columns - columns.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = np.sqrt(np.square(centred).mean(axis=0, dtype=np.float64))
    varies = std > 1e-6 * np.maximum(1.0, np.abs(columns).max(axis=0))
    scale = np.where(varies, 1.0 / np.where(varies, std, 1.0), 0.0).astype(np.float32)
    centred *= scale
    return centred


# ---- naming ----

STATES = ("cell", "hidden")  # the two states of a layer that are named


@dataclass(frozen=True)
class NeuronName:
    layer: int  # LSTM layer, 0 = the one that reads the characters
    state: str  # "cell" (the memory) or "hidden" (what the layer outputs)
    neuron: int  # index within the layer
    feature: Feature  # the feature the neuron's value follows best
    r: float  # Pearson's r with it, in [-1, 1]

    @property
    def phrase(self) -> str:
        """The name for people, e.g. 'inside double quotes (r = 0.82)'."""
        return f"{self.feature.phrase} (r = {self.r:.2f})".replace("= -", "= −")


@dataclass(frozen=True)
class NeuronNames:
    text: str  # the text the correlations were measured on
    features: tuple[Feature, ...]
    feature_values: np.ndarray  # (T, F): each feature's value at each character
    correlations: np.ndarray  # (layers, 2, hidden_dim, F): r per (layer, state, neuron, feature)
    names: tuple[NeuronName, ...]  # every neuron with its best feature, largest |r| first

    def best(self, feature: str | None = None) -> NeuronName | None:
        """The neuron that follows `feature` (a name) best, or the best-named one overall."""
        for name in self.names:
            if feature is None or name.feature.name == feature:
                return name
        return None

    def feature(self, name: str) -> np.ndarray:
        """The values of one feature over the text, (T,)."""
        index = [feature.name for feature in self.features].index(name)
        return self.feature_values[:, index]

    def name_of(self, layer: int, state: str, neuron: int) -> NeuronName:
        """The best feature of one neuron."""
        row = self.correlations[layer, STATES.index(state), neuron]
        best = int(np.argmax(np.abs(row)))
        return NeuronName(layer, state, neuron, self.features[best], float(row[best]))


def neuron_names(trace: ActivationTrace,
                 features: Sequence[Feature] = FEATURES) -> NeuronNames:
    """For every layer, state (cell and hidden) and neuron of the trace, the feature of its
    text that its value follows best, with Pearson's r (all neurons against all features
    as one matrix product)."""
    features = tuple(features)
    table = feature_values(trace.text, features)  # (T, F)
    columns = [getattr(layer, state) for layer in trace.layers for state in STATES]
    hidden_dim = columns[0].shape[1] if columns else 0
    values = np.concatenate(columns, axis=1) if columns else np.zeros((len(table), 0))
    r = pearson_r(values, table) if features else np.zeros((values.shape[1], 0))
    correlations = r.reshape(len(trace.layers), len(STATES), hidden_dim, len(features))
    names = []
    if features:
        best = np.argmax(np.abs(correlations), axis=-1)  # (layers, 2, H)
        for (layer, state, neuron), index in np.ndenumerate(best):
            names.append(NeuronName(int(layer), STATES[state], int(neuron), features[index],
                                    float(correlations[layer, state, neuron, index])))
        names.sort(key=lambda name: -abs(name.r))
    return NeuronNames(trace.text, features, table, correlations.astype(np.float32),
                       tuple(names))


def name_neurons(model: MicroLM, tokenizer: CharacterTokenizer, text: str,
                 features: Sequence[Feature] = FEATURES,
                 on_unknown: str = "drop") -> NeuronNames:
    """Run the model over `text` and name every neuron by the feature it follows best.
    Use a few thousand characters or more that the model did not train on (the
    validation part of its text): over a short text, chance correlations look strong."""
    return neuron_names(activations(model, tokenizer, text, on_unknown), features)
