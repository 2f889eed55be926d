"""The Generate tab's left column: the prompt, the sampling settings, the buttons, and what
the last generation did. Widgets and their teaching texts only; the tab wires them."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .probability_colours import gradient_style, legend_html

TEMPERATURE_STEP = 0.05  # one slider notch; the slider holds whole numbers 0..40
TEMPERATURE_MAX_STEPS = 40  # 40 x 0.05 = 2.00
DEFAULT_TEMPERATURE_STEPS = 16  # 0.80: the seed README's everyday temperature
COMPARE_TEMPERATURES = (0.2, 0.5, 0.8, 1.0, 1.3)
PREVIEW_MAX_CHARS = 1_000  # a live preview shows at most this many characters
RANDOM_SEED = -1  # seedSpin value shown as "random"
NO_MODEL_MESSAGE = ("No model yet. Train a model or open one (File > Open Model…) "
                    "to generate text.")

TEMPERATURE_TIP = (
    "Temperature divides the model's scores before they become probabilities.\n"
    "1.00: sample from the model's own probabilities, exactly as it learned them.\n"
    "Below 1 sharpens them: likely characters win even more often, so the text gets safer "
    "and more repetitive. 0.00 is greedy: always the single most likely character.\n"
    "Above 1 flattens them: unlikely characters get a real chance, so the text gets more "
    "surprising, then turns to gibberish.")
COLOUR_TIP = (
    "Colour each generated character by the probability the model itself gave it there: "
    "its own probability, at temperature 1, before temperature, top-k and top-p reshaped "
    "it for sampling. Dark blue: the model was sure; orange: a surprise (p under 0.1). "
    "Higher temperatures pick more orange characters, because they sample from flatter "
    "probabilities. Hover a character to see the 5 characters the model found likeliest "
    "there.")


def _named(widget: QWidget, name: str, accessible: str, tip: str) -> QWidget:
    widget.setObjectName(name)
    widget.setAccessibleName(accessible)
    widget.setToolTip(tip)
    return widget


class GenerateSettings(QWidget):
    """Prompt, length, temperature, top-k, top-p, seed, live preview, colouring, buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMaximumWidth(420)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)

        self.model_status = QLabel(NO_MODEL_MESSAGE)
        self.model_status.setObjectName("generateModelStatus")
        self.model_status.setWordWrap(True)
        self.model_status.setStyleSheet("QLabel { color: #7a4b00; background: #fff4d6; "
                                        "padding: 6px; border-radius: 4px; }")
        column.addWidget(self.model_status)
        column.addWidget(self._build_prompt())
        column.addWidget(self._build_sampling())
        self._build_colouring(column)
        column.addLayout(self._build_buttons())

        self.generation_stats = QLabel()
        self.generation_stats.setObjectName("generationStats")
        self.generation_stats.setAccessibleName("What the text shown is")
        self.generation_stats.setToolTip(
            "Whether the text shown is a live preview or a full run started with Generate, "
            "and the settings and seed that made it.")
        self.generation_stats.setWordWrap(True)
        column.addWidget(self.generation_stats)
        self.speed_label = _named(
            QLabel(), "generationSpeedLabel", "Generation speed",
            "Characters generated per second, measured while the text streams in. Each "
            "character costs one step of the network, so this is the model's speed on this "
            "computer.")
        column.addWidget(self.speed_label)
        column.addStretch(1)

    def temperature(self) -> float:
        return round(self.temperature_slider.value() * TEMPERATURE_STEP, 2)

    # ---- builders ----

    def _build_prompt(self) -> QGroupBox:
        box = QGroupBox("Prompt")
        layout = QVBoxLayout(box)
        self.prompt_edit = _named(
            QPlainTextEdit(), "promptEdit", "Prompt",
            "The text the model continues. It reads the prompt one character at a time to "
            "build up its memory (the LSTM state), then continues it. Leave it empty to start "
            "from a new line. Ctrl+Return generates.")
        self.prompt_edit.setPlaceholderText("Text the model continues, e.g. ROMEO:")
        self.prompt_edit.setMaximumHeight(80)
        layout.addWidget(self.prompt_edit)
        self.unknown_chars_label = QLabel()
        self.unknown_chars_label.setObjectName("unknownCharsLabel")
        self.unknown_chars_label.setWordWrap(True)
        self.unknown_chars_label.setStyleSheet("QLabel { color: #a03000; }")
        self.unknown_chars_label.hide()
        layout.addWidget(self.unknown_chars_label)
        return box

    def _build_sampling(self) -> QGroupBox:
        box = QGroupBox("Sampling")
        form = QFormLayout(box)
        self.length_spin = _named(
            QSpinBox(), "lengthSpin", "Length",
            "How many new characters to generate after the prompt. Each one costs a single "
            "LSTM step, because the model carries its memory forward instead of re-reading "
            "the text, so time grows in proportion to length. A live preview shows at most "
            f"the first {PREVIEW_MAX_CHARS:,}.")
        self.length_spin.setRange(1, 20_000)
        self.length_spin.setValue(300)
        self.length_spin.setSuffix(" characters")
        form.addRow("Length", self.length_spin)

        self.temperature_slider = _named(QSlider(Qt.Orientation.Horizontal),
                                         "temperatureSlider", "Temperature", TEMPERATURE_TIP)
        self.temperature_slider.setRange(0, TEMPERATURE_MAX_STEPS)
        self.temperature_slider.setSingleStep(1)
        self.temperature_slider.setPageStep(4)
        self.temperature_slider.setTickInterval(4)
        self.temperature_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.temperature_slider.setValue(DEFAULT_TEMPERATURE_STEPS)
        self.temperature_label = _named(
            QLabel(), "temperatureLabel", "Temperature value",
            "The temperature the slider is set to: 1.00 is the model's own probabilities, "
            "0.00 is greedy.")
        self.temperature_label.setMinimumWidth(36)
        self.temperature_slider.valueChanged.connect(self._on_temperature_changed)
        self._on_temperature_changed()
        row = QHBoxLayout()
        row.addWidget(self.temperature_slider, 1)
        row.addWidget(self.temperature_label)
        form.addRow("Temperature", row)

        self.top_k_spin = _named(
            QSpinBox(), "topKSpin", "Top-k",
            "Top-k keeps only the k most likely next characters and samples among them "
            "(0 = off: every character stays possible). A small k such as 5 removes rare "
            "mistakes at high temperature; k = 1 is the same as greedy.")
        self.top_k_spin.setRange(0, 1000)
        self.top_k_spin.setSpecialValueText("off")
        form.addRow("Top-k", self.top_k_spin)

        self.top_p_spin = _named(
            QDoubleSpinBox(), "topPSpin", "Top-p",
            "Top-p (nucleus sampling) keeps the smallest set of likely characters whose "
            "probabilities, after temperature, add up to p, so the choice adapts: few "
            "candidates when the model is sure, many when it is not. 0.90 is a common "
            "setting; 1.00 = off.")
        self.top_p_spin.setRange(0.05, 1.0)
        self.top_p_spin.setSingleStep(0.05)
        self.top_p_spin.setDecimals(2)
        self.top_p_spin.setValue(1.0)
        self.top_p_spin.setSuffix("  (1.00 = off)")
        form.addRow("Top-p", self.top_p_spin)

        self.seed_spin = _named(
            QSpinBox(), "seedSpin", "Seed",
            "The seed fixes the random draws: the same model, prompt, settings and seed give "
            "the same text, so you can change one setting and see its effect alone. "
            "'random' picks a new seed for each Generate (shown after generating, so you can "
            "reuse it); a live preview keeps the seed of the text shown.")
        self.seed_spin.setRange(RANDOM_SEED, 2_147_483_647)
        self.seed_spin.setSpecialValueText("random")
        self.seed_spin.setValue(RANDOM_SEED)
        form.addRow("Seed", self.seed_spin)

        self.live_preview_check = _named(
            QCheckBox("Live preview"), "livePreviewCheck", "Live preview",
            "Generate again while you move the temperature slider or change top-k or top-p, "
            "with the same seed, so the only difference you see is the setting you changed. "
            f"A preview shows at most the first {PREVIEW_MAX_CHARS:,} characters; Generate "
            "runs the full length. Off: only Generate generates.")
        self.live_preview_check.setChecked(True)
        form.addRow("", self.live_preview_check)
        return box

    def _build_colouring(self, column: QVBoxLayout) -> None:
        self.colour_check = _named(QCheckBox("Colour by probability"),
                                   "colourByProbabilityCheck", "Colour by probability",
                                   COLOUR_TIP)
        column.addWidget(self.colour_check)
        self.colour_legend = QWidget()
        self.colour_legend.setObjectName("probabilityLegend")
        legend = QVBoxLayout(self.colour_legend)
        legend.setContentsMargins(0, 0, 0, 0)
        legend.setSpacing(2)
        bar = _named(QLabel("p = 0   →   p = 1"), "probabilityScale",
                     "Probability colour scale",
                     "The colours from probability 0 (left, orange) to 1 (right, dark blue).")
        bar.setAlignment(Qt.AlignmentFlag.AlignCenter)
        bar.setStyleSheet(gradient_style().replace("}", " color: black; padding: 2px; }"))
        legend.addWidget(bar)
        self.colour_words = _named(QLabel(legend_html()), "probabilityLegendWords",
                                   "What the colours mean", COLOUR_TIP)
        self.colour_words.setTextFormat(Qt.TextFormat.RichText)
        self.colour_words.setWordWrap(True)
        legend.addWidget(self.colour_words)
        self.colour_legend.setVisible(False)
        column.addWidget(self.colour_legend)

    def _build_buttons(self) -> QGridLayout:
        buttons = QGridLayout()
        self.generate_button = _named(
            QPushButton("Generate"), "generateButton", "Generate",
            "Continue the prompt with the model for the full length, streaming characters "
            "as they are sampled (Ctrl+Return). While it runs the button becomes Stop.")
        self.compare_button = _named(
            QPushButton("Compare temperatures"), "compareTemperaturesButton",
            "Compare temperatures",
            "Generate the same prompt with the same seed at temperatures "
            + ", ".join(f"{t:.1f}" for t in COMPARE_TEMPERATURES)
            + " side by side, to see how temperature trades safety for variety.")
        self.copy_button = _named(QPushButton("Copy"), "copyGeneratedButton",
                                  "Copy generated text",
                                  "Copy the prompt and generated text to the clipboard.")
        self.save_button = _named(QPushButton("Save…"), "saveGeneratedButton",
                                  "Save generated text",
                                  "Save the prompt and generated text as a UTF-8 text file.")
        buttons.addWidget(self.generate_button, 0, 0, 1, 2)
        buttons.addWidget(self.compare_button, 1, 0, 1, 2)
        buttons.addWidget(self.copy_button, 2, 0)
        buttons.addWidget(self.save_button, 2, 1)
        return buttons

    def _on_temperature_changed(self) -> None:
        self.temperature_label.setText(f"{self.temperature():.2f}")
