"""LeNet-5 exactly as Caffe's MNIST example (the papers' ancestor).

conv1 20x5x5 -> maxpool 2 -> conv2 50x5x5 -> maxpool 2 -> fc 500 + ReLU -> fc 10 (logits).
Caffe's variant has no non-linearity after the convolutions. Kernel weights: 500 + 25,000 +
400,000 + 5,000 = 430,500 (431,080 parameters with biases); clusters: 20 + 50 + 500 + 10 = 580.
"""

from __future__ import annotations

from tf_evosyn._keras import keras


def lenet5(input_shape=(28, 28, 1), num_classes: int = 10) -> keras.Model:
    """The plain (non-evolvable) Caffe LeNet-5; outputs logits."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(20, 5, name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(50, 5, name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(500, activation="relu", name="fc1"),
            keras.layers.Dense(num_classes, name="fc2"),
        ],
        name="lenet5",
    )
