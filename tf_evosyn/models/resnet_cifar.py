"""CIFAR ResNets exactly as He et al. 2016 ("Deep Residual Learning", section 4.2).

A 3x3 convolution with 16 filters (+ BN + ReLU), three stages of ``n`` basic blocks with 16, 32
and 64 filters (the first block of stages 2 and 3 has stride 2), global average pooling and a
dense layer: depth ``6n + 2`` weighted layers (ResNet-20: n = 3, ResNet-56: n = 9). A block is
conv3x3-BN-ReLU-conv3x3-BN, added to its shortcut, then ReLU. Where a stage widens the channels
the shortcut is option A (:class:`PadShortcut`: subsample by 2, zero-pad the new channels; no
parameters, as in the paper's CIFAR experiments) or option B (1x1 convolution, stride 2, + BN).

Details that make it match the reference implementations (Caffe/Torch) rather than a Keras
approximation:

- Convolutions have no bias (BN follows) and use He-normal initialisation.
- The stride-2 3x3 convolutions pad 1 pixel on each side explicitly (``ZeroPadding2D``). Keras's
  ``padding="same"`` would pad only after (0 before, 1 after), centring output pixel ``i`` on input
  ``2i + 1`` while the shortcut samples ``2i``; with symmetric padding both use ``2i``.
- ``weight_decay`` is the SGD weight decay of the paper (1e-4): the gradient gets
  ``weight_decay * w``. Keras's L2 regulariser adds ``l * sum(w^2)`` to the loss (gradient
  ``2 l w``), so it is built with ``l = weight_decay / 2``. It applies to every convolution and
  dense kernel; BN parameters and the dense bias are not decayed.
- BatchNormalization uses momentum 0.9 and epsilon 1e-5 (Torch's defaults).

Counts (from the built models, 32x32x3 input, 10 classes, option A):

- ResNet-56: 848,944 kernel weights; 857,082 parameters (853,018 trainable, 4,064 BN moving
  statistics); clusters (conv filters + dense units) 16 + 9*2*(16 + 32 + 64) + 10 = 2,042.
- ResNet-20: 268,336 kernel weights; 271,098 parameters (269,722 trainable); 698 clusters.

Option B adds two 1x1 projection convolutions (512 + 2,048 kernel weights, 32 + 64 clusters) and
their BN layers: ResNet-56-B has 851,504 kernel weights, 860,026 parameters, 2,138 clusters.
"""

from __future__ import annotations

from tf_evosyn._keras import keras
from tf_evosyn.models.shortcut import PadShortcut

_STAGE_FILTERS = (16, 32, 64)
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
_SHORTCUTS = ("A", "B")


def _regularizer(weight_decay: float):
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay > 0 else None


def _conv(filters: int, kernel: int, stride: int, name: str, weight_decay: float):
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same" if stride == 1 else "valid",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=_regularizer(weight_decay),
        name=name,
    )


def _bn(name: str):
    return keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _block(x, filters: int, stride: int, prefix: str, shortcut: str, weight_decay: float):
    """One basic block; ``prefix`` is ``stage{s}_block{b}_``."""
    y = x
    if stride > 1:
        y = keras.layers.ZeroPadding2D(1, name=prefix + "pad1")(y)
    y = _conv(filters, 3, stride, prefix + "conv1", weight_decay)(y)
    y = _bn(prefix + "bn1")(y)
    y = keras.layers.Activation("relu", name=prefix + "relu1")(y)
    y = _conv(filters, 3, 1, prefix + "conv2", weight_decay)(y)
    y = _bn(prefix + "bn2")(y)

    in_channels = x.shape[-1]
    if stride == 1 and in_channels == filters:
        s = x
    elif shortcut == "A":
        s = PadShortcut(stride, filters, name=prefix + "shortcut")(x)
    else:
        s = _conv(filters, 1, stride, prefix + "shortcut", weight_decay)(x)
        s = _bn(prefix + "shortcut_bn")(s)
    y = keras.layers.Add(name=prefix + "add")([y, s])
    return keras.layers.Activation("relu", name=prefix + "out")(y)


def resnet_cifar(
    depth: int = 56,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    shortcut: str = "A",
    weight_decay: float = 1e-4,
) -> keras.Model:
    """The CIFAR ResNet of depth ``6n + 2`` (see module docstring); outputs logits."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}.")
    shortcut = str(shortcut).upper()
    if shortcut not in _SHORTCUTS:
        raise ValueError(f"shortcut must be one of {_SHORTCUTS}, got {shortcut!r}.")
    blocks = (depth - 2) // 6

    inputs = keras.Input(input_shape, name="input")
    x = _conv(_STAGE_FILTERS[0], 3, 1, "conv1", weight_decay)(inputs)
    x = _bn("bn1")(x)
    x = keras.layers.Activation("relu", name="relu1")(x)
    for stage, filters in enumerate(_STAGE_FILTERS, start=1):
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            prefix = f"stage{stage}_block{block}_"
            x = _block(x, filters, stride, prefix, shortcut, weight_decay)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(
        num_classes, kernel_regularizer=_regularizer(weight_decay), name="fc"
    )(x)
    suffix = "" if shortcut == "A" else "_b"
    return keras.Model(inputs, outputs, name=f"resnet{depth}{suffix}")


def resnet56(
    input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, **kwargs
) -> keras.Model:
    """ResNet-56 (n = 9), the CIFAR-10 ancestor network; see :func:`resnet_cifar`."""
    return resnet_cifar(56, input_shape, num_classes, **kwargs)


def resnet20(
    input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, **kwargs
) -> keras.Model:
    """ResNet-20 (n = 3): the same builder, small enough for fast tests."""
    return resnet_cifar(20, input_shape, num_classes, **kwargs)
