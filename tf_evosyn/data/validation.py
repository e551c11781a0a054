"""The validation split that evolution decides on, held out from the training data.

Acceptance, re-draws, early stop and ``best/`` are decided on validation data, never on the
test split, so the test figures a run reports were never used to choose anything. The held-out
block is the END of the training split (the last 5,000 MNIST / CIFAR-10 training images, as is
customary), so it is deterministic and never overlaps the test split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tf_evosyn.data.errors import DataError

# Default held-out size per dataset: an int = that many images, a float = that fraction.
_DEFAULT_VALIDATION = {"mnist": 5000, "cifar10": 5000, "cifar10_subset": 0.125, "npz": 0.1}


def validation_count(name: str, data_config: Any, num_train: int) -> int:
    """How many of the ``num_train`` training images are held out for validation.

    ``data.validation_size`` (images) or ``data.validation_fraction`` (of the training split)
    override the dataset's default; 0 means no validation split (then selection can only run on
    the test split, which must be asked for explicitly: ``evolution.select_on='test'``).
    """
    size = _get(data_config, "validation_size", None)
    fraction = _get(data_config, "validation_fraction", None)
    if size is not None and fraction is not None:
        raise DataError(
            "data.validation_size and data.validation_fraction are both set; keep one of them."
        )
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
            raise DataError(f"data.validation_size must be an integer >= 0, got {size!r}.")
        count = int(size)
    else:
        value = _DEFAULT_VALIDATION.get(name, 0.1) if fraction is None else fraction
        if isinstance(value, float) or fraction is not None:
            if not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
                raise DataError(f"data.validation_fraction must be in [0, 1), got {fraction!r}.")
            count = int(round(float(value) * num_train))
        else:
            count = int(value)
    if count >= num_train:
        raise DataError(
            f"the validation split ({count} images) would take all {num_train} training images; "
            "lower data.validation_size (or data.validation_fraction)."
        )
    return count


def split_validation(
    images: np.ndarray, labels: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, validation images, validation labels): the last ``count``
    training examples are the validation split."""
    if count <= 0:
        return images, labels, images[:0], labels[:0]
    return images[:-count], labels[:-count], images[-count:], labels[-count:]


def _get(config: Any, key: str, default: Any) -> Any:
    try:
        value = getattr(config, key)
    except (AttributeError, KeyError):
        return default
    return default if value is None else value
