"""LeNet-5 exactly as Caffe's MNIST example (the papers' ancestor).

conv1 20x5x5 -> maxpool 2 -> conv2 50x5x5 -> maxpool 2 -> fc 500 + ReLU -> fc 10 (logits).
Caffe's variant has no non-linearity after the convolutions. Kernel weights: 500 + 25,000 +
400,000 + 5,000 = 430,500 (431,080 parameters with biases); clusters: 20 + 50 + 500 + 10 = 580.

``conv_activation="relu"`` puts a ReLU after each convolution, as the PyTorch "LeNet-5-Caffe"
of the published compression results does (e.g. Louizos et al.'s L0 code: conv -> ReLU ->
pool). Same weights and clusters, but a small offspring keeps more accuracy: two linear
convolutions with max pooling between them are a weak feature extractor once only a few
filters are left (docs/benchmarks.md, "LeNet-5 with ReLU convolutions").
"""

from __future__ import annotations

from tf_evosyn._keras import keras

CONV_ACTIVATIONS = ("linear", "relu")


def lenet5(
    input_shape=(28, 28, 1), num_classes: int = 10, conv_activation: str = "linear"
) -> keras.Model:
    """The plain (non-evolvable) Caffe LeNet-5; outputs logits. ``conv_activation``: "linear"
    (Caffe's network, the papers' ancestor) or "relu" (see the module docstring)."""
    if conv_activation not in CONV_ACTIVATIONS:
        raise ValueError(
            f"conv_activation={conv_activation!r}; use one of {CONV_ACTIVATIONS} (linear is "
            "Caffe's LeNet-5)."
        )
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(20, 5, activation=conv_activation, name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(50, 5, activation=conv_activation, name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(500, activation="relu", name="fc1"),
            keras.layers.Dense(num_classes, name="fc2"),
        ],
        name="lenet5",
    )
