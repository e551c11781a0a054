"""How a DetectNet bbox head's raw output becomes corner offsets: log distances from the cell.

DetectNet's bbox targets are pixel offsets of a box's corners from the top-left of every grid
cell it covers (:mod:`tf_evosyn.detection.targets`), ~10 to ~400 pixels. A linear 1x1 regressor
must map features to those magnitudes directly; measured on KITTI with a pretrained trunk, its
corner errors stayed at ~22% of the box width *on the training images* while the coverage map
was right (decoding the model's coverage with ground-truth boxes gives 82% AP on validation).

``LogDistanceCorners`` lets the regressor predict instead, per class, four log distances
``(l, t, r, b)`` from the cell centre to the box's sides, in units of the stride (as FCOS does):

    x1 = s/2 - s*exp(l),  y1 = s/2 - s*exp(t),  x2 = s/2 + s*exp(r),  y2 = s/2 + s*exp(b)

so a zero output is a box of one cell around the cell centre, every box has positive size, and
an error of the regressor is relative to the box size, which is what DetectNet's bbox loss
(L1 divided by the box's width and height) measures. The output keeps DetectNet's encoding, so
targets, losses and decoders are unchanged.
"""

from __future__ import annotations

from typing import Any

from tf_evosyn._keras import keras, tf

_MAX_LOG_DISTANCE = 5.0  # exp(5) * 16 px ~ 2,400 px: beyond any KITTI box; keeps exp finite


@keras.utils.register_keras_serializable(package="tf_evosyn")
class LogDistanceCorners(keras.layers.Layer):
    """[..., 4C] log distances (l, t, r, b per class) -> [..., 4C] corner offsets in pixels."""

    def __init__(self, stride: int = 16, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer (pixels), got {stride!r}.")
        self.stride = stride

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        channels = inputs.shape[-1]
        if channels is None or channels % 4:
            raise ValueError(
                f"LogDistanceCorners needs 4 channels per class (l, t, r, b); got {channels}."
            )
        sign = tf.constant([-1.0, -1.0, 1.0, 1.0] * (channels // 4), inputs.dtype)
        distance = tf.exp(tf.clip_by_value(inputs, -_MAX_LOG_DISTANCE, _MAX_LOG_DISTANCE))
        half = 0.5 * self.stride
        return half + sign * (self.stride * distance)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stride": self.stride}
