"""tf.data input pipeline for image classification from numpy arrays.

The training order depends only on ``seed``: the evolution engine rebuilds the training dataset
every generation with a seed derived from (run seed, generation), so a resumed run sees exactly
the same batches as an uninterrupted one. Optional per-channel normalisation (statistics from the
training split, see :mod:`tf_evosyn.data.transforms`) and the standard CIFAR augmentation (random
pad-4 crop and horizontal flip, training only) are off by default, so MNIST input is unchanged.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import tf
from tf_evosyn.data.errors import DataError
from tf_evosyn.data.transforms import CIFAR_PAD, ChannelStats, normalize, random_crop_flip


def _decode(images: tf.Tensor, stats: ChannelStats | None = None) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1] (normalised with ``stats`` if given), with a channel
    axis for (N, H, W) input."""
    images = tf.cast(images, tf.float32) / 255.0
    images = images[..., tf.newaxis] if images.shape.rank == 3 else images
    return images if stats is None else normalize(images, stats)


def augment_seed(seed: int) -> int:
    """The seed of the augmentation stream, decorrelated from the shuffle seed ``seed``."""
    return int(np.random.SeedSequence([seed % 2**64, 0xA06]).generate_state(1, np.uint32)[0] >> 1)


def make_classification_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    training: bool,
    seed: int | None,
    cache: bool = True,
    drop_remainder: bool = False,
    augment: bool = False,
    normalization: ChannelStats | None = None,
    augment_pad: int = CIFAR_PAD,
    augment_flip: bool = True,
    soft_targets: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Build a batched, prefetched dataset of ``(float32 image, int32 label)``.

    Training data is shuffled over the whole set with ``seed`` (reshuffled each epoch, but the
    same sequence of epochs for the same seed); evaluation data keeps its original order.
    ``cache`` decodes the whole set once up front and keeps it in memory (4 bytes per pixel);
    without it each batch is decoded on the fly from the uint8 array. The order also depends on
    the global ``tf.random.set_seed`` value, if one is set.

    ``normalization`` (statistics of the *training* split) maps each channel to
    ``(x - mean) / std``. ``augment`` (training only) pads each image by ``augment_pad``
    pixels, takes a random crop of the original size and, if ``augment_flip``, flips it
    horizontally with probability 1/2; the crops and
    flips are drawn afresh every epoch from a stream seeded by ``seed``, so a rebuilt dataset
    repeats them exactly.

    ``soft_targets`` (N, K), e.g. a distillation teacher's logits of these images, are gathered
    with the labels: the elements are then ``(image, (label, soft_target))``.
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
    if augment and not training:
        raise DataError(
            "augment=True is only for training datasets; evaluation data is never augmented."
        )
    if augment and not 0 <= int(augment_pad) < min(images.shape[1:3]):
        raise DataError(
            f"augment_pad must be in [0, {min(images.shape[1:3])}) pixels for "
            f"{images.shape[1]}x{images.shape[2]} images, got {augment_pad}."
        )
    if soft_targets is not None and len(soft_targets) != len(images):
        raise DataError(
            f"soft_targets must have one row per image ({len(images)}), got {len(soft_targets)}."
        )
    if soft_targets is not None and augment:
        raise DataError("soft_targets belong to the un-augmented images; set augment=False.")
    channels = images.shape[-1] if images.ndim == 4 else 1
    if normalization is not None and np.shape(normalization.mean) != (channels,):
        raise DataError(
            f"normalization statistics have shape {np.shape(normalization.mean)}, the images "
            f"have {channels} channel(s)."
        )

    # Shuffle and batch example indices, then gather whole batches: same order as shuffling the
    # examples themselves, but several times faster to build than a per-example map, which
    # matters because the training dataset is rebuilt every generation.
    labels_t = tf.constant(labels.astype(np.int32))
    if soft_targets is not None:
        targets_t = tf.constant(np.asarray(soft_targets, np.float32))

        def label(idx: tf.Tensor):
            return tf.gather(labels_t, idx), tf.gather(targets_t, idx)
    else:

        def label(idx: tf.Tensor):
            return tf.gather(labels_t, idx)

    if cache:
        source = _decode(tf.constant(images), normalization)  # decoded once, kept in memory

        def gather(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return tf.gather(source, idx), label(idx)
    else:
        source = tf.constant(images)

        def gather(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return _decode(tf.gather(source, idx), normalization), label(idx)

    ds = tf.data.Dataset.range(len(images))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment:
        # One random int64 per batch, re-drawn every epoch but fixed by the seed: the crops and
        # flips do not depend on how the parallel map schedules the batches.
        randoms = tf.data.Dataset.random(seed=augment_seed(seed), rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, randoms))

        def gather_augmented(idx: tf.Tensor, rand: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x, y = gather(idx)
            return random_crop_flip(x, rand, augment_pad, augment_flip), y

        ds = ds.map(gather_augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
