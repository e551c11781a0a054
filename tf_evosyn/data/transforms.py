"""Per-channel normalisation statistics and the standard CIFAR training augmentation.

The statistics are computed once on the training split (exact integer sums over the uint8
pixels, in chunks, so a 50,000-image set needs no float64 copy) and applied unchanged to the test
split. The augmentation works on whole batches with stateless random ops, so it is deterministic
for a given per-batch seed whatever the parallelism of the ``tf.data`` map.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tf_evosyn._keras import tf
from tf_evosyn.data.errors import DataError

CIFAR_PAD = 4  # He et al. 2016, sec. 4.2: pad 4 pixels per side, random 32x32 crop, random flip
_CHUNK = 1024  # images per chunk when summing pixels


class ChannelStats(NamedTuple):
    """Per-channel mean and standard deviation of images scaled to [0, 1] (float32, shape (C,))."""

    mean: np.ndarray
    std: np.ndarray


def channel_stats(images: np.ndarray) -> ChannelStats:
    """Mean and (population) std per channel of uint8 ``(N, H, W[, C])`` images, in [0, 1] units.

    A constant channel has std 0 and cannot be normalised: that raises :class:`DataError`.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) == 0:
        raise DataError(
            f"channel statistics need non-empty uint8 (N, H, W[, C]) images, got {images.dtype} "
            f"{images.shape}."
        )
    channels = images.shape[-1] if images.ndim == 4 else 1
    total = np.zeros(channels, np.int64)
    squares = np.zeros(channels, np.int64)
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].reshape(-1, channels).astype(np.int64)
        total += chunk.sum(axis=0)
        squares += (chunk * chunk).sum(axis=0)
    count = images.size // channels
    mean = total / count
    var = np.maximum(squares / count - mean * mean, 0.0)
    std = np.sqrt(var)
    if np.any(std == 0):
        flat = [int(c) for c in np.flatnonzero(std == 0)]
        raise DataError(
            f"Training image channel(s) {flat} are constant, so per-channel normalisation would "
            "divide by zero; set --config.data.normalize=False or check the data."
        )
    return ChannelStats((mean / 255.0).astype(np.float32), (std / 255.0).astype(np.float32))


def normalize(images: tf.Tensor, stats: ChannelStats) -> tf.Tensor:
    """``(x - mean) / std`` per channel, for float images in [0, 1]."""
    return (images - tf.constant(stats.mean)) / tf.constant(stats.std)


def random_crop_flip(
    images: tf.Tensor, seed: tf.Tensor, pad: int = CIFAR_PAD, flip: bool = True
) -> tf.Tensor:
    """Zero-pad a ``(B, H, W, C)`` batch by ``pad`` pixels, take a random ``H x W`` crop per image
    and (if ``flip``) flip each image horizontally with probability 1/2. Without the flip it is
    a random shift of up to ``pad`` pixels, the augmentation that suits digits (a mirrored 2 is
    not a 2).

    ``seed`` is a scalar integer tensor; the same seed gives the same crops and flips. Crop and
    flip are one gather per axis, so the whole batch is augmented without a per-image loop.
    Zero padding happens after normalisation (as in fb.resnet.torch), so the border is the mean
    colour when the data is normalised and black otherwise.
    """
    seed = tf.cast(seed, tf.int64)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform(
        [batch, 2], seed=tf.stack([seed, 0]), minval=0, maxval=2 * pad + 1, dtype=tf.int32
    )
    rows = offsets[:, :1] + tf.range(height)[tf.newaxis]  # (B, H)
    columns = tf.range(width)[tf.newaxis]  # (1, W)
    if flip:
        flips = tf.random.stateless_uniform(
            [batch, 1], seed=tf.stack([seed, 1]), minval=0, maxval=2, dtype=tf.int32
        )
        columns = tf.where(flips == 1, width - 1 - columns, columns)
    cols = offsets[:, 1:] + columns  # (B, W)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, H, W + 2 pad, C)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)
