"""Detection with DetectNet's grid outputs, judged by KITTI AP (Car, Moderate, AP|R40).

The model has two outputs, ``coverage`` [B, H/s, W/s, C] (sigmoid) and ``bbox`` [B, H/s, W/s,
4C] (corner offsets in pixels, see :mod:`tf_evosyn.detection.targets`). Training data are
(image, ground truth) pairs whose ground truth :meth:`DetectionTask.targets` turns into
DetectNet's targets inside tf.data; evaluation decodes the outputs (DetectNet's clustering, or
keras-cv NMS) and scores them with the official devkit's rules and DIGITS' precision/recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.detection import (
    DETECTNET_LOSS_WEIGHTS,
    KITTI_TYPES,
    BboxLoss,
    CoverageLoss,
    digits_metrics,
    encode,
    evaluate_kitti,
)
from tf_evosyn.detection.decoding import DecodeSettings
from tf_evosyn.detection.targets import with_corners
from tf_evosyn.tasks.base import Evaluation, Task

OUTPUT_NAMES = ("coverage", "bbox")


@dataclass
class DetectionTask(Task):
    """KITTI-style detection of ``class_names`` (DetectNet: ``("Car",)``) with a DetectNet."""

    class_names: Sequence[str] = ("Car",)
    image_shape: tuple[int, int] = (384, 1248)
    stride: int = 16
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    # 1 = DetectNet's coverage loss; > 1 weighs covered cells more (see CoverageLoss).
    coverage_positive_weight: float = 1.0
    # DetectNet weighs the bbox loss 2 against the coverage loss; None keeps that.
    bbox_loss_weight: float | None = None

    name = "detection"
    supports_distillation = True

    def __post_init__(self) -> None:
        unknown = [n for n in self.class_names if n not in KITTI_TYPES or n == "DontCare"]
        if unknown or not self.class_names:
            raise ValueError(
                f"detection classes {list(self.class_names)} must be KITTI types other than "
                f"DontCare: {[t for t in KITTI_TYPES if t != 'DontCare']}."
            )
        if self.bbox_loss_weight is not None and not self.bbox_loss_weight > 0:
            raise ValueError(f"bbox_loss_weight must be > 0, got {self.bbox_loss_weight!r}.")
        self.class_names = tuple(self.class_names)
        self.class_ids = tuple(KITTI_TYPES.index(n) for n in self.class_names)

    @property
    def metric(self) -> str:  # type: ignore[override]
        """The primary score: Moderate AP|R40 of the first class (KITTI's ranking measure)."""
        return f"{self.class_names[0].lower()}_moderate_ap_r40"

    # -- training ---------------------------------------------------------------------------
    def loss(self) -> dict[str, keras.losses.Loss]:
        return {
            "coverage": CoverageLoss(positive_weight=self.coverage_positive_weight),
            "bbox": BboxLoss(),
        }

    def loss_weights(self) -> dict[str, float]:
        weights = dict(DETECTNET_LOSS_WEIGHTS)
        if self.bbox_loss_weight is not None:
            weights["bbox"] = float(self.bbox_loss_weight)
        return weights

    def distillation_loss(self, teacher_outputs, student_outputs, y_true, temperature):
        """The teacher's maps as targets, in the task's own losses and weights.

        Coverage: the squared error to the teacher's coverage on every cell, covered cells of
        the ground truth weighted ``coverage_positive_weight`` as in training. Boxes: the L1 to
        the teacher's corners on the cells the ground truth covers, with its normalisation. A
        map is denser than 61 images' labels: every cell says what the parent predicted there.
        ``temperature`` has no meaning for these maps and is ignored.
        """
        del temperature
        coverage = tf.cast(student_outputs["coverage"], tf.float32)
        taught = tf.cast(teacher_outputs["coverage"], tf.float32)
        covered = tf.cast(tf.cast(y_true["coverage"], tf.float32) > 0, tf.float32)
        weight = 1.0 + (self.coverage_positive_weight - 1.0) * covered
        per_image = 0.5 * tf.reduce_sum(
            tf.reshape(weight * tf.square(coverage - taught), [tf.shape(coverage)[0], -1]), 1
        )
        bbox_target = with_corners(tf.cast(y_true["bbox"], tf.float32), teacher_outputs["bbox"])
        bbox = BboxLoss()(bbox_target, tf.cast(student_outputs["bbox"], tf.float32))
        weights = self.loss_weights()
        return weights["coverage"] * tf.reduce_mean(per_image) + weights["bbox"] * bbox

    def targets(self, gt: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """DetectNet's training targets of a (batched) ground truth, as tf.data ops."""
        return encode(
            gt["boxes"],
            gt["types"],
            self.class_ids,
            image_shape=self.image_shape,
            stride=self.stride,
            crop_to_image=True,
        )

    def training_pairs(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """(image, ground truth) batches -> (image, {coverage, bbox} targets) batches."""
        return dataset.map(
            lambda image, gt: (image, self.targets(gt)), num_parallel_calls=tf.data.AUTOTUNE
        )

    # -- evaluation -------------------------------------------------------------------------
    def predict(self, model: keras.Model, images) -> dict[str, np.ndarray]:
        outputs = model(images, training=False)
        if isinstance(outputs, dict):
            return {k: np.asarray(outputs[k]) for k in OUTPUT_NAMES}
        return {name: np.asarray(o) for name, o in zip(model.output_names, outputs, strict=True)}

    def detect(self, coverage: np.ndarray, bbox: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Boxes per image (``boxes`` xyxy px, ``confidence``, ``classes``) from grid outputs."""
        return self.decode.detect(coverage, bbox, self.stride)

    def ground_truth_and_detections(
        self, model: keras.Model, dataset: tf.data.Dataset
    ) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
        """Per image of ``dataset`` (batches of images and padded ground truth): its ground
        truth and the model's decoded detections, for metrics beyond :meth:`evaluate`'s (other
        IoU thresholds, bootstrap intervals)."""
        ground_truth, detections = [], []
        for images, gt in dataset:
            outputs = self.predict(model, images)
            detections += self.detect(outputs["coverage"], outputs["bbox"])
            ground_truth += _unbatch(gt)
        if not ground_truth:
            raise ValueError("The evaluation dataset is empty.")
        return ground_truth, detections

    def evaluate(self, model: keras.Model, dataset: tf.data.Dataset) -> Evaluation:
        ground_truth, detections = self.ground_truth_and_detections(model, dataset)
        metrics: dict[str, float] = evaluate_kitti(ground_truth, detections, self.class_names)
        for index, name in enumerate(self.class_names):
            gt_boxes = [g["boxes"][g["types"] == self.class_ids[index]] for g in ground_truth]
            det_boxes = [d["boxes"][d["classes"] == index] for d in detections]
            for key, value in digits_metrics(gt_boxes, det_boxes).items():
                metrics[f"{name.lower()}_digits_{key.lower()}"] = value / 100.0
        metrics["detections"] = int(sum(len(d["boxes"]) for d in detections))
        metrics["images"] = len(ground_truth)
        return Evaluation(metrics[self.metric], metrics)


def _unbatch(gt: dict[str, tf.Tensor]) -> list[dict[str, np.ndarray]]:
    """A batch of padded ground truth -> one dict per image without its padding rows."""
    arrays = {
        k: np.asarray(v) for k, v in gt.items() if k in ("boxes", "types", "truncated", "occluded")
    }
    images = []
    for i in range(len(arrays["types"])):
        keep = arrays["types"][i] >= 0
        images.append({k: v[i][keep] for k, v in arrays.items()})
    return images
