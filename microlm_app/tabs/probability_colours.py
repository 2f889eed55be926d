"""The colour scale of "Colour by probability": orange for a surprise, through white, to dark
blue for a character the model was sure of. Blue against orange stays distinct under the
common kinds of colour blindness (it is ColorBrewer's diverging PuOr / RdBu ends, which red
against green is not), and the text colour is chosen by the background's lightness so
every character stays readable."""

from __future__ import annotations

from itertools import pairwise

from PySide6.QtGui import QColor

# (probability, colour) stops, blended in RGB between them. Most sampled characters have
# p above 0.5, so the blue half is spread over 0.5..1 and the orange half over 0..0.3.
SCALE: tuple[tuple[float, str], ...] = (
    (0.0, "#b35806"),   # dark orange: the model gave it almost no chance
    (0.1, "#f1a340"),   # orange: a surprise
    (0.3, "#fee0b6"),   # pale orange: a long shot
    (0.5, "#f7f7f7"),   # near white: a coin flip
    (0.75, "#92c5de"),  # light blue: likely
    (0.9, "#4393c3"),   # blue
    (1.0, "#2166ac"),   # dark blue: the model was sure
)
# Above this relative luminance black text has more contrast than white (WCAG: the two
# contrasts are equal where (L + 0.05)^2 = 1.05 * 0.05).
BLACK_TEXT_ABOVE = 0.179


def probability_colour(probability: float) -> QColor:
    """The background for a character the model gave `probability` (clamped to [0, 1])."""
    probability = min(1.0, max(0.0, probability))
    for (low, low_colour), (high, high_colour) in pairwise(SCALE):
        if probability <= high:
            share = (probability - low) / (high - low)
            start, end = QColor(low_colour), QColor(high_colour)
            return QColor.fromRgbF(*(a + (b - a) * share for a, b in
                                     zip(start.getRgbF()[:3], end.getRgbF()[:3], strict=True)))
    return QColor(SCALE[-1][1])


def relative_luminance(colour: QColor) -> float:
    """WCAG relative luminance: 0 for black, 1 for white."""
    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in colour.getRgbF()[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: QColor, second: QColor) -> float:
    """WCAG contrast ratio, 1 (none) to 21 (black on white); 4.5 is readable body text."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)),
                             reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_colour_on(background: QColor) -> QColor:
    """Black on light backgrounds, white on dark ones: whichever contrasts more."""
    dark = relative_luminance(background) > BLACK_TEXT_ABOVE
    return QColor("black") if dark else QColor("white")


def gradient_style() -> str:
    """A style sheet that paints the scale left (p = 0) to right (p = 1)."""
    stops = ", ".join(f"stop:{p} {colour}" for p, colour in SCALE)
    return f"QLabel {{ background: qlineargradient(x1:0, y1:0, x2:1, y2:0, {stops}); }}"


def legend_html() -> str:
    """The scale in words, each colour word shown on its own colour."""
    def swatch(word: str, probability: float) -> str:
        background = probability_colour(probability)
        return (f'<span style="background-color:{background.name()}; '
                f'color:{text_colour_on(background).name()}">&nbsp;{word}&nbsp;</span>')

    return (f"{swatch('dark blue', 1.0)} the model was sure (p near 1) · "
            f"{swatch('white', 0.5)} a coin flip (p near 0.5) · "
            f"{swatch('orange', 0.1)} a surprise (p under 0.1). "
            "p is the model's own probability, at temperature 1.")
