"""Helpers shared by the compaction tests: real images, random BatchNorm statistics, exactness.

Kept out of conftest.py on purpose: these are plain functions, imported where they are used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tf_evosyn._keras import keras
from tf_evosyn.flops import layer_params

CIFAR_SUBSET = Path("cifar10_subset") / "cifar10_data_batch_1_first4000.npz"


def cifar_images(datasets_dir: Path, count: int = 32, size: int = 32) -> np.ndarray:
    """The first ``count`` images of the real CIFAR-10 subset in [0, 1], resized to ``size``."""
    path = datasets_dir / CIFAR_SUBSET
    if not path.is_file():
        pytest.fail(f"real CIFAR-10 subset {path} not found")
    with np.load(path) as data:
        images = data["x"][:count].astype(np.float32) / 255.0
    if size != images.shape[1]:
        import tensorflow as tf

        images = tf.image.resize(images, (size, size)).numpy()
    return images


def random_bn(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial BatchNorm statistics (gamma, beta, moving mean and variance), so that dead
    channels emit non-zero constants that compaction must fold."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            random_bn(layer, rng)
        elif isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[-1]
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            if layer.center:
                layer.beta.assign(rng.uniform(-0.5, 0.5, c))
            layer.moving_mean.assign(rng.uniform(-0.5, 0.5, c))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c))


def relative_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| / max |expected|."""
    scale = float(np.abs(expected).max())
    assert scale > 0, "the reference output is all zeros: the check would be vacuous"
    return float(np.abs(expected - actual).max()) / scale


def plain_params(model: keras.Model) -> int:
    """Parameters of a model as a plain Keras model has them (no mask/heredity buffers)."""
    total = 0
    for layer in model.layers:
        total += plain_params(layer) if isinstance(layer, keras.Model) else layer_params(layer)
    return total


def without_timing(value):
    """Lineage records without their wall-clock fields (``seconds`` at any depth: every
    candidate has one), so a resumed run's lineage compares equal to an uninterrupted one."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value
