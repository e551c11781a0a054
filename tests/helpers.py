"""Helpers shared by the compaction tests: real images, random BatchNorm statistics, exactness.

Kept out of conftest.py on purpose: these are plain functions, imported where they are used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tf_evosyn._keras import tf
from tf_evosyn.zoo import plain_params, randomize_batchnorm
from tf_evosyn.zoo import relative_difference as zoo_relative_difference

__all__ = ["cifar_images", "plain_params", "random_bn", "relative_difference", "without_timing"]

TIMING_KEYS = ("seconds", "seconds_per_epoch")
CIFAR_SUBSET = Path("cifar10_subset") / "cifar10_data_batch_1_first4000.npz"


def cifar_images(datasets_dir: Path, count: int = 32, size: int = 32) -> np.ndarray:
    """The first ``count`` images of the real CIFAR-10 subset in [0, 1], resized to ``size``."""
    path = datasets_dir / CIFAR_SUBSET
    if not path.is_file():
        pytest.fail(f"real CIFAR-10 subset {path} not found")
    with np.load(path) as data:
        images = data["x"][:count].astype(np.float32) / 255.0
    if size != images.shape[1]:
        images = tf.image.resize(images, (size, size)).numpy()
    return images


# Non-trivial BatchNorm statistics (random gamma, beta, moving mean and variance), so that dead
# channels emit non-zero constants that compaction must fold; nested models too.
random_bn = randomize_batchnorm


def relative_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| / max |expected|, refusing an all-zero (vacuous) reference."""
    assert np.abs(expected).max() > 0, "the reference output is all zeros: the check is vacuous"
    return zoo_relative_difference(expected, actual)


def without_timing(value):
    """Lineage records without their wall-clock fields (``seconds`` and ``seconds_per_epoch`` at
    any depth: every candidate has them), so a resumed run's lineage compares equal to an
    uninterrupted one."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value
