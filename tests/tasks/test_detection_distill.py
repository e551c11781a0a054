"""Detection offspring can learn the parent's maps: the task's distillation loss on hand-made
maps, and a Distiller that trains a two-output detector against a frozen teacher."""

import numpy as np
import pytest

from tf_evosyn._keras import keras, tf
from tf_evosyn.detection.targets import (
    TARGET_CHANNELS_PER_CLASS,
    corners_from_target,
    with_corners,
)
from tf_evosyn.loop.distill import Distiller
from tf_evosyn.tasks.detection import DetectionTask

H, W = 2, 3


def _targets(covered_cell=(0, 1)):
    """One image, one class: a bbox target with one covered cell (mask 1, 1/w = 1/h = 0.1,
    obj_norm 1) and its coverage map."""
    bbox = np.zeros((1, H, W, TARGET_CHANNELS_PER_CLASS), np.float32)
    r, c = covered_cell
    bbox[0, r, c] = [10, 20, 30, 40, 1.0, 0.1, 0.1, 1.0]
    coverage = np.zeros((1, H, W, 1), np.float32)
    coverage[0, r, c] = 1.0
    return {"coverage": coverage, "bbox": bbox}


def test_with_corners_swaps_only_the_corners():
    target = _targets()["bbox"]
    corners = np.arange(1 * H * W * 4, dtype=np.float32).reshape(1, H, W, 4)
    replaced = with_corners(target, corners).numpy()
    np.testing.assert_array_equal(corners_from_target(replaced).numpy(), corners)
    np.testing.assert_array_equal(replaced[..., 4:], target[..., 4:])


def test_distillation_loss_by_hand():
    task = DetectionTask(coverage_positive_weight=5.0, bbox_loss_weight=2.0)
    y = _targets()
    teacher = {"coverage": np.full((1, H, W, 1), 0.5, np.float32), "bbox": np.zeros((1, H, W, 4))}
    teacher["bbox"][0, 0, 1] = [11, 20, 30, 40]
    assert float(task.distillation_loss(teacher, teacher, y, 1.0)) == pytest.approx(0.0)
    student = {"coverage": teacher["coverage"].copy(), "bbox": teacher["bbox"].copy()}
    student["coverage"][0, 0, 1] = 0.7  # covered cell: weight 5, 0.5 * 5 * 0.2^2 = 0.1
    student["coverage"][0, 1, 2] = 0.1  # background: 0.5 * 0.4^2 = 0.08
    student["bbox"][0, 0, 1] = [11, 20, 33, 40]  # 0.1 * |33 - 30| = 0.3 on the covered cell
    student["bbox"][0, 1, 0] = [99, 99, 99, 99]  # uncovered: no bbox loss
    loss = float(task.distillation_loss(teacher, student, y, 1.0))
    assert loss == pytest.approx(1.0 * (0.1 + 0.08) + 2.0 * 0.3, rel=1e-5)


def _detector(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((H, W, 3))
    coverage = keras.layers.Conv2D(1, 1, activation="sigmoid", name="coverage")(inputs)
    bbox = keras.layers.Conv2D(4, 1, name="bbox")(inputs)
    return keras.Model(inputs, [coverage, bbox])


def test_a_distiller_moves_a_detector_towards_its_teacher():
    task = DetectionTask(coverage_positive_weight=2.0)
    teacher, student = _detector(0), _detector(1)
    images = np.random.default_rng(0).normal(size=(8, H, W, 3)).astype(np.float32)
    y = {k: np.repeat(v, 8, axis=0) for k, v in _targets().items()}
    student.compile(keras.optimizers.Adam(0.05), loss=task.loss(), loss_weights=task.loss_weights())
    teacher_weights = [w.copy() for w in teacher.get_weights()]

    def gap():
        named = lambda m: dict(zip(m.output_names, m(images), strict=True))  # noqa: E731
        return float(task.distillation_loss(named(teacher), named(student), y, 1.0))

    before = gap()
    distiller = Distiller(student, teacher, alpha=0.0, distillation_loss=task.distillation_loss)
    distiller.compile(optimizer=student.optimizer)
    distiller.fit(tf.data.Dataset.from_tensor_slices((images, y)).batch(4), epochs=30, verbose=0)
    assert gap() < 0.2 * before
    for kept, now in zip(teacher_weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)  # the teacher never trains
