"""Model families the zoo check covers beyond ``tf_keras.applications``: the kinds of network
users bring that Keras ships no constructor for.

* ``UNet``: an encoder-decoder for segmentation (Ronneberger et al. 2015) with
  ``Conv2DTranspose`` up-sampling and skip concatenations, so the decoder's filters and the
  skip channels it reads must shrink together.

Each builder takes ``(input side, classes)`` like :func:`tf_evosyn.zoo.build_application` and
returns a Functional model with random weights.
"""

from __future__ import annotations

from collections.abc import Callable

from tf_evosyn._keras import keras


def _conv_block(x, filters: int, name: str):
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def unet(size: int = 32, classes: int = 10, base: int = 16, depth: int = 3) -> keras.Model:
    """A U-Net: ``depth`` down-sampling blocks, a bottleneck, and ``depth`` Conv2DTranspose
    (stride 2) up-sampling blocks, each concatenated with its encoder block; per-pixel logits."""
    if size % 2**depth:
        raise ValueError(f"UNet: the input side {size} must be a multiple of 2**depth={2**depth}.")
    inputs = keras.Input((size, size, 3))
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base * 2**level, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(name=f"down{level}_pool")(x)
    x = _conv_block(x, base * 2**depth, "bottleneck")
    for level in reversed(range(depth)):
        filters = base * 2**level
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_deconv")(x)
        x = keras.layers.BatchNormalization(name=f"up{level}_deconv_bn")(x)
        x = keras.layers.ReLU(name=f"up{level}_deconv_relu")(x)
        x = keras.layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        x = _conv_block(x, filters, f"up{level}")
    outputs = keras.layers.Conv2D(classes, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name="unet")


# constructor name (as in tf_evosyn.zoo.FAMILIES) -> builder(input side, classes)
BUILDERS: dict[str, Callable[[int, int], keras.Model]] = {"UNet": unet}
