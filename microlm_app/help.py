"""The Help texts of MicroLM Studio: the About box and the "How it works" page."""

from __future__ import annotations

import platform

import pyqtgraph
import PySide6
import torch
from PySide6.QtCore import qVersion

import microlm
from microlm import TrainingConfig

_DEFAULTS = TrainingConfig()  # the stabilisers' settings, quoted as the trainer uses them


def about_html() -> str:
    """Version, purpose and the versions of the libraries the app runs on."""
    return (
        f"<h2>MicroLM Studio {microlm.__version__}</h2>"
        "<p>Learn how neural language models work by building one: load a text, pick a "
        "model that fits your machine, train a character-level LSTM while watching the "
        "loss fall, generate text with a temperature slider, and look inside the trained "
        "network.</p>"
        "<p>Everything the app does is also available from Python through the "
        "<code>microlm</code> library and from the <code>microlm</code> command.</p>"
        "<table cellpadding='2'>"
        f"<tr><td>PyTorch</td><td>{torch.__version__}</td></tr>"
        f"<tr><td>Qt / PySide6</td><td>{qVersion()} / {PySide6.__version__}</td></tr>"
        f"<tr><td>pyqtgraph</td><td>{pyqtgraph.__version__}</td></tr>"
        f"<tr><td>Python</td><td>{platform.python_version()}</td></tr>"
        "</table><p>MIT licence.</p>"
    )


HOW_IT_WORKS_HTML = f"""
<h2>How it works</h2>

<h3>A language model guesses the next character</h3>
<p>A language model reads some text and gives, for every possible next character, a
probability: after <i>"the ca"</i> it may say <i>t</i> 40&nbsp;%, <i>r</i> 25&nbsp;%,
<i>n</i> 10&nbsp;%, and so on. Written as a formula it estimates
P(next character | all the characters before it). Generating text is nothing more
than asking this question again and again, each time appending the character it picked.</p>

<h3>Why characters and not words</h3>
<p>MicroLM works one character at a time. Its vocabulary is just the characters that occur
in your text, often 60 to 100 of them, so the model stays small and it can spell any
word, even one it invented. The price: it needs many steps per word, generation is
slower, and connecting ideas that are far apart in the text is harder than for a
model that sees whole words.</p>

<h3>Inside the model: embedding, LSTM, output layer</h3>
<p>Each character first becomes a short vector of numbers (its <b>embedding</b>), learned
during training, so that characters used alike end up close together. The vectors
then flow through an <b>LSTM</b> (long short-term memory), a recurrent network that reads
the text left to right and keeps a memory, the <b>cell state</b> c, from one character to
the next. At every character, four small layers inside it each read the same two things:
the current character's vector (in a higher LSTM layer, the output of the layer below) and
the <b>hidden state</b> h the layer produced after the previous character. Three of them
are gates, numbers between 0 and 1 for each unit of the memory; the fourth proposes new
content:</p>
<ul>
<li>the <b>forget gate</b> decides how much of the old memory to keep,</li>
<li>the <b>input gate</b> decides how much of the new content to write into it,</li>
<li>the <b>candidate</b> is that new content, between −1 and 1,</li>
<li>the <b>output gate</b> decides which part of the memory to show.</li>
</ul>
<p>The new memory is c = forget × old memory + input × candidate, and the layer's output is
h = output gate × tanh(c). That h goes up to the next layer (or to the output layer), and
it is also carried, with c, to the next character, where the gates read it again. Because
the memory is updated by adding and scaling rather than by squeezing it through a new
matrix each step, the learning signal survives across many characters. That is what lets
an LSTM remember that a quote or a bracket is still open, where a plain recurrent network
soon forgets. LSTM layers are numbered from 1, the one that reads the characters.</p>
<p>Finally an <b>output layer</b> turns the last LSTM layer's h into one score per
character of the vocabulary, and a softmax turns the scores into probabilities. It is
one linear map, or, with <i>Output layer units</i> above 0, a small network with a hidden
layer: extra capacity that is cheap to train, because it scores every position of a batch
at once while the LSTM must read the text one character at a time.</p>

<h3>Training, one step at a time</h3>
<ol>
<li><b>Forward pass</b>: a batch of text windows goes through the model, which predicts
the next character at every position.</li>
<li><b>Loss</b>: the predictions are compared with the characters that really came next.
The loss is the mean, over all those positions, of −ln p, where p is the probability the
model gave the right next character: 0 when it was sure and right, large when it gave the
right character little chance. It is counted in <b>nats per character</b>;
bits per character = nats / ln&nbsp;2. e<sup>loss</sup> (the perplexity) says it in
words: a loss of 1.5 nats (2.16 bits) means the model is as unsure as choosing among
e<sup>1.5</sup> = 4.5 characters. Guessing every character of a 65-character vocabulary
alike gives ln&nbsp;65 = 4.17 nats: as unsure as choosing among 65.</li>
<li><b>Backward pass</b>: back-propagation computes, for every weight, how the loss would
change if the weight moved a little (the gradient).</li>
<li><b>Update</b>: the optimizer (AdamW) moves every weight a small step downhill; the
learning rate sets the size of the step.</li>
<li><b>Repeat</b> for many batches. One <b>epoch</b> is about one pass over the text.</li>
</ol>
<p>The trainer keeps these steps steady with a few standard helpers, all on by default:</p>
<ul>
<li><b>Warm-up and cosine decay</b>: the learning rate rises in a straight line over the
first {_DEFAULTS.warmup_steps} steps (at most 5&nbsp;% of the run), then falls along half a
cosine to {_DEFAULTS.min_lr_fraction:.0%} of its peak by the end: big steps while the
model is far off, small ones to settle.</li>
<li><b>Gradient clipping</b>: when the combined size (norm) of all gradients of a step is
above {_DEFAULTS.grad_clip:g}, they are scaled down together to {_DEFAULTS.grad_clip:g},
so one odd batch cannot throw the weights far.</li>
<li><b>Weight decay</b> ({_DEFAULTS.weight_decay:g}): each step pulls the weight matrices
slightly towards zero (not the biases or the embedding), which keeps them from growing
without need.</li>
<li><b>Weight averaging</b> (<code>--ema-decay</code> {_DEFAULTS.ema_decay:g}): besides the
weights it trains, the trainer keeps the averaged weights, which each step move
{1 - _DEFAULTS.ema_decay:.0%} of the way towards the weights just trained. Validation,
samples and the saved model use the averaged weights: they are steadier and usually a
little better.</li>
<li><b>Best weights kept</b>: the weights that scored the best validation loss are the
ones the run ends with.</li>
</ul>
<p>Part of the text (the <b>validation share</b>) is held back for <b>validation</b>. If
the training loss keeps falling while the validation loss rises, the model is memorising
your text instead of learning its patterns: stop, add text, shrink the model or raise
dropout.</p>
<p>Validation dots often sit <i>below</i> the smoothed loss of the training line, and that
is no mistake: dropout switches off parts of the network while it trains but not while it
is validated; the smoothed loss averages the last steps, when the model was still a little
worse; validation scores the averaged weights, which are usually better than the weights
of the latest step; and the end of a text can simply be easier than the rest.</p>

<h3>Generating: greedy or with a temperature</h3>
<p>To write, the model is given a prompt and picks one character at a time. <b>Greedy</b>
decoding always takes the most likely character; it is predictable and soon repeats
itself. <b>Sampling</b> draws the character at random according to the probabilities, so
any character of the vocabulary can come, the likely ones most often.
The <b>temperature</b> reshapes them before the draw: below 1 it sharpens them
(safer, more repetitive text), above 1 it flattens them (more surprising, more
mistakes), and 0 is the same as greedy. <b>Top-k</b> and <b>top-p</b> cut off the unlikely
tail before sampling, so that a rare bad choice cannot derail the text.</p>

<h3>Where to see each idea in the app</h3>
<ul>
<li><b>Data</b>: the characters of your text become the vocabulary, and the losses to beat
show what guessing alike and knowing only letter frequencies would score.</li>
<li><b>Configure</b>: embedding size, hidden size and the number of layers decide the
number of weights.</li>
<li><b>Train</b>: the loss curve is the training loop above, step by step.</li>
<li><b>Generate</b>: try the same prompt at temperature 0.2, 0.8 and 1.5.</li>
<li><b>Inspect</b>: watch single cell-state neurons respond to quotes, line ends or
brackets, follow one character through the gates step by step, and see which characters
the embedding placed close together.</li>
</ul>
"""
