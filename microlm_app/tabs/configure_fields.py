"""The Configure tab's fields: what each setting means, and the spin box that edits it."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox

from microlm import ModelConfig
from microlm.speed import MachineSpeed

# attribute: (objectName, label, (low, high, step[, decimals]), tooltip), in form order.
MODEL_FIELDS = {
    "embedding_dim": ("embeddingDimSpin", "Embedding size", (1, 4096, 16),
                      "How many numbers describe each character before the LSTM reads it. "
                      "Larger lets the model tell characters apart in more ways; beyond "
                      "about 128 it rarely helps a character model."),
    "hidden_dim": ("hiddenDimSpin", "Hidden size", (1, 8192, 32),
                   "The size of the LSTM's memory (its hidden and cell state). This is the "
                   "main knob for model capacity: the LSTM's own parameters grow with its "
                   "square, the embedding and output layer only in proportion. Raise it when "
                   "the loss stops falling and you have text and time to spare."),
    "num_layers": ("numLayersSpin", "Layers", (1, 8, 1),
                   "How many LSTM layers are stacked; each reads the one below (layer 1 reads "
                   "the characters). A second layer can learn more abstract patterns (words, "
                   "syntax) but trains slower; with little text or time one wide layer "
                   "usually wins."),
    "output_hidden_dim": ("outputHiddenSpin", "Output layer units", (0, 8192, 128),
                          "0: the LSTM's hidden units are turned into next-character scores "
                          "by one linear map. Above 0: by a small network with this many "
                          "units (and a GELU) between. It adds capacity cheaply: it scores "
                          "every position of a batch at once, while the LSTM must read the "
                          "text one character at a time."),
    "dropout": ("dropoutSpin", "Dropout", (0.0, 0.9, 0.05, 2),
                "During training, randomly silence this share of the LSTM's outputs so the "
                "model cannot lean on any single neuron. It fights memorising a small text; "
                "0 is best when the text is large or training is short. With one layer it "
                "applies only before the output layer."),
}
TRAINING_FIELDS = {
    "sequence_length": ("sequenceLengthSpin", "Sequence length", (1, 100_000, 16),
                        "How many characters the model reads in one training window, which "
                        "is also how far back the learning signal reaches. Longer windows "
                        "teach longer patterns (closing a bracket, ending a sentence) but "
                        "each step takes longer."),
    "batch_size": ("batchSizeSpin", "Batch size", (1, 4096, 8),
                   "How many windows are trained on together in one step. Bigger batches "
                   "give smoother, steadier updates and use a GPU well; smaller ones give "
                   "more updates per second on a CPU. Memory grows with batch size."),
    "epochs": ("epochsSpin", "Epochs", (1, 10_000, 1),
               "How many times training goes over the text. More epochs lower the "
               "training loss; when the validation loss starts rising, more epochs only "
               "make the model memorise."),
    "learning_rate": ("learningRateSpin", "Learning rate", (0.00001, 1.0, 0.0001, 5),
                      "How big a step the optimizer takes on each update (the peak value: it "
                      "warms up, then decays). Too high and the loss jumps around or becomes "
                      "NaN; too low and it falls slowly. 0.001-0.01 suits most LSTMs here."),
}
ADVANCED_FIELDS = {
    "eval_interval": ("evalIntervalSpin", "Validation interval (steps)", (0, 1_000_000, 50),
                      "How often (in steps) the model is scored on the held-out validation "
                      "text; 0 means once per epoch. Frequent checks draw a detailed "
                      "validation curve but take time away from training."),
    "patience": ("patienceSpin", "Patience (validations)", (0, 1000, 1),
                 "Early stopping: stop after this many validations in a row without a new "
                 "best validation loss; 0 never stops early. It saves time once the model "
                 "has started to memorise."),
    "grad_clip": ("gradClipSpin", "Gradient clip", (0.0, 100.0, 0.1, 2),
                  "The largest allowed size (norm) of one update's gradient; bigger ones are "
                  "scaled down. It stops one unlucky batch from wrecking an LSTM; 0 turns it "
                  "off."),
    "weight_decay": ("weightDecaySpin", "Weight decay", (0.0, 1.0, 0.01, 3),
                     "At each step, pulls the weight matrices (the LSTM's and the output "
                     "layer's) slightly towards zero: AdamW multiplies them by 1 - learning "
                     "rate x this. The biases and the character vectors (embedding) are "
                     "exempt. A gentle brake on memorising: raise it a little if the "
                     "validation loss rises while the training loss falls."),
    "ema_decay": ("emaDecaySpin", "Weight averaging", (0.0, 0.999, 0.01, 3),
                  "Validates and keeps the averaged weights instead of the last ones: each "
                  "step moves the average 1 - this of the way to the new weights (0.98: "
                  "about the last 50 steps). Averaging smooths out the noise of single "
                  "batches; measured ~1 % lower validation loss. 0 keeps the weights as "
                  "trained."),
}


def make_spin(limits: tuple, object_name: str, label: str, tooltip: str) -> QAbstractSpinBox:
    """A spin box for a field table's row: (low, high, step) makes a whole-number box,
    (low, high, step, decimals) a fractional one."""
    if len(limits) == 4:
        spin = QDoubleSpinBox(objectName=object_name)
        spin.setDecimals(limits[3])
    else:
        spin = QSpinBox(objectName=object_name)
    spin.setRange(limits[0], limits[1])
    spin.setSingleStep(limits[2])
    spin.setAccessibleName(label)
    spin.setToolTip(tooltip)
    spin.setKeyboardTracking(False)  # validate the number typed, not each keystroke
    return spin


def doubling_note(model_config: ModelConfig, speed: MachineSpeed | None,
                  batch_size: int, sequence_length: int) -> str:
    """What doubling the hidden size does to this model, computed: the parameters (the
    LSTM's grow with the square of the width, the rest in proportion or not at all) and,
    once the machine is measured, the time per step."""
    doubled = replace(model_config, hidden_dim=2 * model_config.hidden_dim)
    growth = doubled.num_parameters() / model_config.num_parameters()
    lstm = doubled.lstm_parameters() / model_config.lstm_parameters()
    text = (f"For this model, doubling it from {model_config.hidden_dim} to "
            f"{doubled.hidden_dim} multiplies the parameters by {growth:.1f} (the LSTM's by "
            f"{lstm:.1f})")
    if speed is not None:
        slower = (speed.step_seconds(doubled, batch_size, sequence_length)
                  / speed.step_seconds(model_config, batch_size, sequence_length))
        text += f" and the time per step by about {slower:.1f} on this computer"
    return text + "."
