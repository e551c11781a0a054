"""GoogLeNet (Inception v1) trunk as DetectNet uses it: conv1 up to inception_5b, no pool4.

Transcribed from NVIDIA/caffe ``examples/kitti/detectnet_network.prototxt``: the same kernel
sizes, strides, branch widths and Concat order (1x1, 3x3, 5x5, pool_proj) as the prototxt, layer
names with ``/`` replaced by ``_`` (``inception_3a/1x1`` -> ``inception_3a_1x1``). DetectNet drops
GoogLeNet's pool4 (``inception_4e`` feeds ``inception_5a`` directly), so the total stride is 16.
ReLUs are fused into the convolutions (Caffe's in-place ``relu_*`` layers have no weights).

Faithful details:

- conv1's ``pad: 3`` is an explicit ``ZeroPadding2D(3)`` before a valid 7x7/2 convolution
  (Keras's ``'same'`` would pad 2 before and 3 after). The 3x3 (pad 1) and 5x5 (pad 2)
  convolutions are ``'same'``, which is Caffe's symmetric padding at stride 1.
- Caffe pools in ceil mode. For an even input size a 3x3/2 ``'same'`` max pool has the same
  windows (start ``2i``, the last one clipped at the border) and, like Caffe, ignores what lies
  outside, so it is exact; the stride-1 pools (``pad: 1``) are ``'same'`` too. The input height
  and width must therefore be multiples of 16 (every stride-2 layer then sees an even size):
  384x1248 gives Caffe's 192x624 -> 96x312 -> 48x156 -> 24x78.
- Initialisation as the prototxt: Caffe's ``xavier`` filler (uniform, limit sqrt(3 / fan_in);
  its ``std`` fields are ignored by Caffe) and constant bias 0.2.
"""

from __future__ import annotations

import numbers

from tf_evosyn._keras import keras
from tf_evosyn.models.lrn import CrossChannelLRN

STRIDE = 16
_MIN_FILTERS = 4
_NORMALIZATIONS = ("lrn", "batchnorm", "none")

# name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj (the prototxt's num_output values)
_INCEPTION_MODULES = (
    ("inception_3a", 64, 96, 128, 16, 32, 32),
    ("inception_3b", 128, 128, 192, 32, 96, 64),
    ("inception_4a", 192, 96, 208, 16, 48, 64),
    ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64),
    ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    ("inception_5a", 256, 160, 320, 32, 128, 128),
    ("inception_5b", 384, 192, 384, 48, 128, 128),
)
_POOL_BEFORE = {"inception_4a": "pool3_3x3_s2"}  # pool4 is removed in DetectNet
_NORM_LAYERS = ("pool1_norm1", "conv2_norm2")


def caffe_xavier() -> keras.initializers.Initializer:
    """Caffe's ``xavier`` filler: uniform in +-sqrt(3 / fan_in)."""
    return keras.initializers.VarianceScaling(1.0, mode="fan_in", distribution="uniform")


def scaled(filters: int, width: float) -> int:
    """A width-scaled filter count: rounded, never below _MIN_FILTERS (or the original count)."""
    return max(min(filters, _MIN_FILTERS), int(round(filters * width)))


def check_input_shape(input_shape) -> tuple[int, int, int]:
    """(height, width, 3) with height and width multiples of 16, or a clear error."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, numbers.Integral) for d in shape) or shape[-1] != 3:
        raise ValueError(
            f"input_shape must be (height, width, 3) with fixed sizes, got {input_shape!r}."
        )
    if shape[0] % STRIDE or shape[1] % STRIDE or min(shape[:2]) < STRIDE:
        raise ValueError(
            f"input_shape {shape}: height and width must be positive multiples of {STRIDE} "
            "(GoogLeNet's pools reproduce Caffe's ceil-mode sizes only then); pad the images "
            "at the bottom/right, e.g. KITTI's 375x1242 to DetectNet's 384x1248."
        )
    return tuple(int(d) for d in shape)


def l2_decay(weight_decay: float):
    """SGD weight decay ``d`` as Keras's L2, which adds ``l * sum(w^2)``: ``l = d / 2``."""
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay > 0 else None


def _conv(x, filters, kernel, name, strides=1, padding="same", weight_decay=0.0):
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        activation="relu",
        kernel_initializer=caffe_xavier(),
        bias_initializer=keras.initializers.Constant(0.2),
        kernel_regularizer=l2_decay(weight_decay),
        name=name,
    )(x)


def _normalize(x, normalization: str, name: str):
    if normalization == "lrn":
        return CrossChannelLRN(5, 1e-4, 0.75, name=name)(x)
    if normalization == "batchnorm":
        return keras.layers.BatchNormalization(name=name)(x)
    return x


def _max_pool(x, strides: int, name: str):
    return keras.layers.MaxPooling2D(3, strides, padding="same", name=name)(x)


def inception(x, name: str, widths: tuple[int, ...], width: float, weight_decay: float = 0.0):
    """One Inception module: four branches concatenated in the prototxt's order."""
    n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj = (scaled(w, width) for w in widths)
    wd = weight_decay
    a = _conv(x, n1x1, 1, f"{name}_1x1", weight_decay=wd)
    b = _conv(x, n3x3_reduce, 1, f"{name}_3x3_reduce", weight_decay=wd)
    b = _conv(b, n3x3, 3, f"{name}_3x3", weight_decay=wd)
    c = _conv(x, n5x5_reduce, 1, f"{name}_5x5_reduce", weight_decay=wd)
    c = _conv(c, n5x5, 5, f"{name}_5x5", weight_decay=wd)
    d = _max_pool(x, 1, f"{name}_pool")
    d = _conv(d, pool_proj, 1, f"{name}_pool_proj", weight_decay=wd)
    return keras.layers.Concatenate(name=f"{name}_output")([a, b, c, d])


def googlenet_trunk(x, width: float = 1.0, normalization: str = "lrn", weight_decay: float = 0.0):
    """GoogLeNet from conv1 to inception_5b's output (stride 16), on mean-subtracted pixels."""
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}.")
    if not width > 0:
        raise ValueError(f"width must be > 0 (1.0 is the paper's network), got {width!r}.")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    wd = weight_decay
    x = _conv(x, scaled(64, width), 7, "conv1_7x7_s2", 2, "valid", weight_decay=wd)
    x = _max_pool(x, 2, "pool1_3x3_s2")
    x = _normalize(x, normalization, "pool1_norm1")
    x = _conv(x, scaled(64, width), 1, "conv2_3x3_reduce", weight_decay=wd)
    x = _conv(x, scaled(192, width), 3, "conv2_3x3", weight_decay=wd)
    x = _normalize(x, normalization, "conv2_norm2")
    x = _max_pool(x, 2, "pool2_3x3_s2")
    for name, *widths in _INCEPTION_MODULES:
        if name in _POOL_BEFORE:
            x = _max_pool(x, 2, _POOL_BEFORE[name])
        x = inception(x, name, tuple(widths), width, weight_decay)
    return x
