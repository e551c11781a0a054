"""DetectNet's two training losses as Keras losses (examples/kitti/detectnet_network.prototxt).

* coverage: Caffe ``EuclideanLoss`` = sum of squared differences / (2 * batch).
* bbox: Caffe ``L1Loss`` (sum of absolute differences / batch) between prediction and target,
  *both* multiplied by the coverage mask (``bbox_mask``), by 1/w, 1/h, 1/w, 1/h (``bbox-norm``) and
  by ``obj_norm`` (``bbox-obj-norm``), so every object weighs about the same whatever its size.
  DetectNet weighs it 2 against the coverage loss: ``DETECTNET_LOSS_WEIGHTS``.

Each loss returns one value per image; Keras' default ``sum_over_batch_size`` reduction then
divides by the (global) batch size, which is Caffe's ``/ num``.
"""

from __future__ import annotations

from tf_evosyn._keras import keras, tf
from tf_evosyn.detection.targets import split_bbox_target

DETECTNET_LOSS_WEIGHTS = {"coverage": 1.0, "bbox": 2.0}


def _per_image_sum(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


@keras.utils.register_keras_serializable(package="tf_evosyn")
class CoverageLoss(keras.losses.Loss):
    """Half the summed squared error of the coverage map, per image (Caffe EuclideanLoss)."""

    def __init__(self, name: str = "coverage_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        return 0.5 * _per_image_sum(tf.square(y_pred - y_true))


@keras.utils.register_keras_serializable(package="tf_evosyn")
class BboxLoss(keras.losses.Loss):
    """Summed L1 of masked, size- and object-normalised corners, per image (DetectNet bbox loss).

    ``y_true`` is the [B, H/s, W/s, 8*C] target of ``targets.encode``; ``y_pred`` the model's
    [B, H/s, W/s, 4*C] corner offsets.
    """

    def __init__(self, name: str = "bbox_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        target = split_bbox_target(tf.cast(y_true, y_pred.dtype))
        num_classes = target["mask"].shape[-1]
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != 4 * num_classes:
            raise ValueError(
                f"bbox prediction has {y_pred.shape[-1]} channels but the target encodes "
                f"{num_classes} classes: the bbox head needs 4 * {num_classes} channels"
            )
        predicted = tf.reshape(y_pred, tf.concat([tf.shape(y_pred)[:-1], [num_classes, 4]], 0))
        inv_w, inv_h = target["inv_w"], target["inv_h"]
        weight = (target["mask"] * target["obj_norm"])[..., None] * tf.stack(
            [inv_w, inv_h, inv_w, inv_h], axis=-1
        )
        return _per_image_sum(tf.abs(weight * predicted - weight * target["corners"]))
