"""A recurrent classifier of images read row by row: the sequence model of the zoo.

Each image row is one time step (MNIST: 28 steps of 28 pixels), the way the IRNN and
uRNN papers test recurrent networks on MNIST. No text or sequence dataset ships with the
installed packages here (Keras' and TFDS' datasets download), so this reads the real MNIST
files as sequences; the model is the same for any (steps, features) input.
"""

from __future__ import annotations

from tf_evosyn._keras import keras

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}


def row_rnn(
    input_shape=(28, 28, 1), num_classes: int = 10, cell: str = "lstm", units: int = 128
) -> keras.Model:
    """Reshape (H, W, C) images to H steps of W*C features -> ``cell``(units) -> logits."""
    if cell not in _CELLS:
        raise ValueError(f"cell={cell!r}; use one of {sorted(_CELLS)}.")
    steps, width, channels = input_shape
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Reshape((steps, width * channels), name="rows"),
            _CELLS[cell](units, name=cell),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name=f"row_{cell}",
    )


def lstm_rows(input_shape=(28, 28, 1), num_classes: int = 10) -> keras.Model:
    """:func:`row_rnn` with an LSTM of 128 units (81,674 parameters on MNIST)."""
    return row_rnn(input_shape, num_classes, "lstm", 128)
