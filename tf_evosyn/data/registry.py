"""Resolve a data config into validated train/test arrays and tf.data pipelines.

All validation (files, limits, source) happens here, before any model is built, so a bad
configuration fails in seconds instead of after a generation of training. The source is never
switched silently: a configured local folder that is broken raises instead of falling back to TFDS.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from tf_evosyn._keras import tf
from tf_evosyn.data.errors import DataError
from tf_evosyn.data.mnist_idx import SplitArrays, load_mnist_idx
from tf_evosyn.data.pipeline import make_classification_dataset
from tf_evosyn.data.tfds_source import load_tfds_arrays

DATA_DIR_ENV = "EVOSYN_DATA_DIR"
SOURCES = ("auto", "idx", "tfds")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to load one named dataset from a local folder and from TFDS."""

    display_name: str
    num_classes: int
    load_local: Callable[[Path], SplitArrays]
    tfds_name: str


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        display_name="MNIST", num_classes=10, load_local=load_mnist_idx, tfds_name="mnist"
    ),
}


@dataclasses.dataclass
class ClassificationData:
    """Validated numpy arrays of an image-classification dataset plus pipeline builders."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    description: str

    def train_dataset(
        self, batch_size: int, seed: int, *, drop_remainder: bool = False
    ) -> tf.data.Dataset:
        """Shuffled training batches; the same ``seed`` always gives the same order."""
        return make_classification_dataset(
            self.train_images,
            self.train_labels,
            batch_size=batch_size,
            training=True,
            seed=seed,
            drop_remainder=drop_remainder,
        )

    def test_dataset(self, batch_size: int) -> tf.data.Dataset:
        """Test batches in file order (unshuffled, so evaluations are comparable)."""
        return make_classification_dataset(
            self.test_images, self.test_labels, batch_size=batch_size, training=False, seed=None
        )


def _get(config: Any, key: str, default: Any) -> Any:
    """Read ``config.key`` from a ConfigDict or any attribute object, with a default."""
    try:
        return getattr(config, key)
    except (AttributeError, KeyError):
        return default


def _limit(config: Any, key: str) -> int:
    """Validated ``train_limit``/``test_limit`` (0 = all)."""
    value = _get(config, key, 0)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DataError(f"data.{key} must be an integer (0 = all), got {value!r}.")
    if value < 0:
        raise DataError(f"data.{key} must be >= 0 (0 = use all examples), got {value}.")
    return int(value)


def _local_folder(config: Any, name: str) -> tuple[Path | None, str]:
    """The configured local folder for dataset ``name`` and where that setting came from."""
    data_dir = str(_get(config, "data_dir", "") or "")
    if data_dir:
        return Path(os.path.expandvars(data_dir)).expanduser(), "data.data_dir"
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser() / name, f"${DATA_DIR_ENV}"
    return None, ""


def _apply_limit(images: np.ndarray, labels: np.ndarray, limit: int, split: str, key: str):
    """First ``limit`` examples of a split; a limit beyond the split size is an error."""
    if limit == 0:
        return images, labels
    if limit > len(images):
        raise DataError(
            f"data.{key}={limit} exceeds the {len(images)} examples of the {split} split; "
            f"use at most {len(images)} (or 0 for all)."
        )
    return images[:limit], labels[:limit]


def load_classification_data(data_config: Any) -> ClassificationData:
    """Load and validate the dataset described by ``data_config`` (see module docstring).

    Keys: ``name``, ``source`` ('auto'|'idx'|'tfds'), ``data_dir``, ``tfds_data_dir``,
    ``download``, ``train_limit``, ``test_limit``. Raises :class:`DataError` on any problem.
    """
    name = str(_get(data_config, "name", "")).lower()
    if name not in DATASETS:
        raise DataError(
            f"Unknown dataset data.name={name!r}; known datasets: {', '.join(sorted(DATASETS))}."
        )
    spec = DATASETS[name]
    source = str(_get(data_config, "source", "auto")).lower()
    if source not in SOURCES:
        raise DataError(f"data.source={source!r} is invalid; use one of {', '.join(SOURCES)}.")
    train_limit = _limit(data_config, "train_limit")
    test_limit = _limit(data_config, "test_limit")

    folder, origin = _local_folder(data_config, name)
    if source == "auto":
        source = "idx" if folder is not None else "tfds"
        logging.info(
            "data.source=auto resolved to %r (%s).",
            source,
            f"local folder from {origin}" if folder else f"no data.data_dir and no ${DATA_DIR_ENV}",
        )
    if source == "idx":
        if folder is None:
            raise DataError(
                f"data.source=idx needs a local folder: set ${DATA_DIR_ENV} (folder holding "
                f"{name}/) or --config.data.data_dir (folder holding the files), or use "
                "--config.data.source=tfds."
            )
        logging.info(
            "Loading %s from IDX files in %s (from %s).", spec.display_name, folder, origin
        )
        arrays = spec.load_local(folder)
        where = f"IDX files at {folder}"
    else:
        tfds_dir = str(_get(data_config, "tfds_data_dir", "") or "") or None
        download = bool(_get(data_config, "download", True))
        logging.info(
            "Loading %s from TFDS %r (data_dir=%s, download=%s).",
            spec.display_name,
            spec.tfds_name,
            tfds_dir or "default",
            download,
        )
        arrays = load_tfds_arrays(spec.tfds_name, tfds_dir, download)
        where = f"TFDS '{spec.tfds_name}' ({tfds_dir or 'default data dir'})"

    for split, labels in (("train", arrays.train_labels), ("test", arrays.test_labels)):
        if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
            raise DataError(
                f"{spec.display_name} {split} labels from {where} fall outside "
                f"0..{spec.num_classes - 1}; the data is corrupt, re-download it."
            )
    train_x, train_y = _apply_limit(
        arrays.train_images, arrays.train_labels, train_limit, "train", "train_limit"
    )
    test_x, test_y = _apply_limit(
        arrays.test_images, arrays.test_labels, test_limit, "test", "test_limit"
    )
    input_shape = tuple(int(d) for d in train_x.shape[1:])
    if len(input_shape) == 2:
        input_shape += (1,)
    description = f"{spec.display_name} from {where} (train {len(train_x)}, test {len(test_x)})"
    logging.info("Data: %s", description)
    return ClassificationData(
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        num_classes=spec.num_classes,
        input_shape=input_shape,
        description=description,
    )
