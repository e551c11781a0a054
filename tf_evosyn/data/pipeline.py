"""tf.data input pipeline for image classification from numpy arrays.

The training order depends only on ``seed``: the evolution engine rebuilds the training dataset
every generation with a seed derived from (run seed, generation), so a resumed run sees exactly
the same batches as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import tf
from tf_evosyn.data.errors import DataError


def _decode(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1], with a channel axis for (N, H, W) input."""
    images = tf.cast(images, tf.float32) / 255.0
    return images[..., tf.newaxis] if images.shape.rank == 3 else images


def make_classification_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    training: bool,
    seed: int | None,
    cache: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Build a batched, prefetched dataset of ``(float32 image, int32 label)``.

    Training data is shuffled over the whole set with ``seed`` (reshuffled each epoch, but the
    same sequence of epochs for the same seed); evaluation data keeps its original order.
    ``cache`` decodes the whole set once up front and keeps it in memory (4 bytes per pixel);
    without it each batch is decoded on the fly from the uint8 array. The order also depends on
    the global ``tf.random.set_seed`` value, if one is set.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim not in (3, 4):
        raise DataError(f"images must be (N, H, W) or (N, H, W, C), got shape {images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"labels must be (N,) with N = {len(images)} images, got shape {labels.shape}."
        )
    if len(images) == 0:
        raise DataError("Cannot build a dataset from 0 examples; check train_limit/test_limit.")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}.")
    if training and seed is None:
        raise DataError("A training dataset needs an explicit seed for a reproducible order.")

    # Shuffle and batch example indices, then gather whole batches: same order as shuffling the
    # examples themselves, but several times faster to build than a per-example map, which
    # matters because the training dataset is rebuilt every generation.
    labels_t = tf.constant(labels.astype(np.int32))
    if cache:
        source = _decode(tf.constant(images))  # decoded once, kept in memory

        def gather(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return tf.gather(source, idx), tf.gather(labels_t, idx)
    else:
        source = tf.constant(images)

        def gather(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return _decode(tf.gather(source, idx)), tf.gather(labels_t, idx)

    ds = tf.data.Dataset.range(len(images))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
