"""Caffe's ``LRN`` layer: ``norm_region: WITHIN_CHANNEL`` (used by cifar10_full) and
``ACROSS_CHANNELS`` (GoogLeNet, hence DetectNet; see :class:`CrossChannelLRN`).

Keras has neither as a layer; ``tf.nn.local_response_normalization`` is Caffe's ACROSS_CHANNELS
mode. WITHIN_CHANNEL normalises each value by the squares of its ``local_size x local_size`` spatial
neighbourhood in the *same* channel::

    y = x * (1 + alpha / local_size**2 * sum_{3x3 window, zero padded} x**2) ** -beta

(Caffe builds it from Power, AVE Pooling with pad ``(local_size - 1) // 2`` whose divisor counts
the padding, Power and Eltwise layers, hence the fixed ``local_size**2`` divisor.) It never mixes
channels, but the channel-dependency analysis does not know this custom layer, so it is a
barrier there; the AlexNet builder therefore leaves it out by default.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras, tf


class _CaffeLRN(keras.layers.Layer):
    """What both Caffe LRN modes share: an odd ``local_size``, ``alpha`` and ``beta``; no
    weights; the output has the input's shape."""

    def __init__(self, local_size: int, alpha: float, beta: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if local_size < 1 or local_size % 2 == 0:
            raise ValueError(f"local_size must be a positive odd number, got {local_size}.")
        self.local_size = int(local_size)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"local_size": self.local_size, "alpha": self.alpha, "beta": self.beta})
        return config


@keras.utils.register_keras_serializable(package="tf_evosyn")
class WithinChannelLRN(_CaffeLRN):
    """Caffe LRN, WITHIN_CHANNEL mode, on NHWC input (see module docstring). No weights."""

    def __init__(
        self, local_size: int = 3, alpha: float = 5e-5, beta: float = 0.75, **kwargs
    ) -> None:
        super().__init__(local_size, alpha, beta, **kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        pad = (self.local_size - 1) // 2
        squares = tf.pad(tf.square(inputs), [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        mean = tf.nn.avg_pool2d(squares, self.local_size, 1, "VALID")  # divisor local_size**2
        return inputs * tf.pow(1.0 + self.alpha * mean, -self.beta)


@keras.utils.register_keras_serializable(package="tf_evosyn")
class CrossChannelLRN(_CaffeLRN):
    """Caffe LRN, ACROSS_CHANNELS mode (GoogLeNet's ``norm1``/``norm2``), on NHWC input.

    Caffe divides ``alpha`` by ``local_size``::

        y_c = x_c * (1 + alpha / local_size * sum_{|c' - c| <= r} x_c'**2) ** -beta

    with ``r = (local_size - 1) / 2`` (zero padded at the first and last channels), which is
    ``tf.nn.local_response_normalization`` with ``depth_radius = (local_size - 1) // 2``,
    ``bias = 1`` and ``alpha = alpha / local_size``. It mixes neighbouring channels, so the
    channel-dependency analysis treats it as a barrier: the channels that flow into it are never
    removed. No weights.

    It is *computed* as a chain of ops, not TF's LRN op: that op becomes TFLite's builtin
    LOCAL_RESPONSE_NORMALIZATION, which XNNPACK cannot run (the graph splits into three delegate
    partitions around norm1/norm2, and the builtin kernel, one scalar ``pow`` per value, took
    8.4 of DetectNet's 33.9 ms at 96x320, 1 thread, whatever evolution removed elsewhere). The
    window sum is a 1x1 convolution with a constant banded C x C kernel and the power is
    ``exp(-beta * log(.))`` (TFLite's POW is not delegated either), so every op runs in XNNPACK:
    1.6 ms there (benchmarks/latency_breakdown_detectnet.py). Same values up to float32
    rounding (relative difference ~3e-7, as between TF's and TFLite's own LRN kernels).
    """

    def __init__(
        self, local_size: int = 5, alpha: float = 1e-4, beta: float = 0.75, **kwargs
    ) -> None:
        super().__init__(local_size, alpha, beta, **kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        channels = inputs.shape[-1]
        if channels is None:  # no static channel count: no banded kernel to build
            return self.tf_lrn(inputs)
        window = tf.constant(
            _channel_window(channels, self.local_size, self.alpha / self.local_size),
            dtype=inputs.dtype,
        )
        scale = 1.0 + tf.nn.conv2d(tf.square(inputs), window, strides=1, padding="VALID")
        return inputs * tf.exp(-self.beta * tf.math.log(scale))

    def tf_lrn(self, inputs: tf.Tensor) -> tf.Tensor:
        """The same normalisation by TF's LRN op (TFLite's LOCAL_RESPONSE_NORMALIZATION, which
        XNNPACK does not run)."""
        return tf.nn.local_response_normalization(
            inputs,
            depth_radius=(self.local_size - 1) // 2,
            bias=1.0,
            alpha=self.alpha / self.local_size,
            beta=self.beta,
        )


def _channel_window(channels: int, local_size: int, weight: float) -> np.ndarray:
    """A (1, 1, C, C) 1x1-convolution kernel that sums each channel's ``local_size`` neighbours
    (``weight`` where ``|c_in - c_out| <= (local_size - 1) / 2``, else 0)."""
    index = np.arange(int(channels))
    band = np.abs(index[:, None] - index[None, :]) <= (local_size - 1) // 2
    return (band * weight).astype(np.float32)[None, None]
