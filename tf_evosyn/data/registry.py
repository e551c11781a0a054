"""Resolve a data config into validated train/test arrays and tf.data pipelines.

All validation (files, limits, source) happens here, before any model is built, so a bad
configuration fails in seconds instead of after a generation of training. The source is never
switched silently: a configured local folder that is broken raises instead of falling back to TFDS.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from tf_evosyn._keras import keras, tf
from tf_evosyn.data.datasets import (
    DATASETS,
    DatasetSpec,
    _get,
)
from tf_evosyn.data.errors import DataError
from tf_evosyn.data.mnist_idx import SplitArrays
from tf_evosyn.data.pipeline import make_classification_dataset
from tf_evosyn.data.tfds_source import load_tfds_arrays
from tf_evosyn.data.transforms import CIFAR_PAD, ChannelStats, channel_stats
from tf_evosyn.data.validation import split_validation, validation_count

DATA_DIR_ENV = "EVOSYN_DATA_DIR"
# 'local' = local files in the dataset's native format; 'idx' is MNIST's name for it (kept for
# old configs); 'auto' = local if a folder is configured, else TFDS.
SOURCES = ("auto", "local", "idx", "tfds")
# data.normalize_style: how ``normalize`` maps pixels. 'standardize': (x - mean) / std per
# channel with pixels in [0, 1]; 'caffe': raw 0-255 pixels minus the per-channel mean, no
# division (the input scale Caffe's cifar10 examples train on; they subtract the mean image).
NORMALIZE_STYLES = ("standardize", "caffe")


@dataclasses.dataclass
class ClassificationData:
    """Validated numpy arrays of an image-classification dataset plus pipeline builders.

    ``normalize`` computes per-channel statistics on the training images (after limits) and
    applies them to both splits (as :data:`NORMALIZE_STYLES` ``normalize_style`` says);
    ``augment`` adds the random pad-crop (``augment_pad`` pixels) and, if ``augment_flip``,
    the horizontal flip to training batches.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    description: str
    augment: bool = False
    augment_pad: int = CIFAR_PAD
    augment_flip: bool = True
    normalize: bool = False
    channel_stats: ChannelStats | None = None
    normalize_style: str = "standardize"
    # Held out from the training data (its last images); evolution decides on it.
    validation_images: np.ndarray | None = None
    validation_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.normalize and self.channel_stats is None:
            self.channel_stats = channel_stats(self.train_images)

    @property
    def normalization(self) -> ChannelStats | None:
        """The statistics the pipelines apply (None when ``normalize`` is off); for the 'caffe'
        style the std is 1/255, so ``(x - mean) / std`` is the raw pixel minus its mean."""
        if not self.normalize:
            return None
        if self.normalize_style == "caffe":
            mean = self.channel_stats.mean
            return ChannelStats(mean, np.full_like(mean, 1.0 / 255.0))
        return self.channel_stats

    def train_dataset(
        self,
        batch_size: int,
        seed: int,
        *,
        drop_remainder: bool = False,
        soft_targets: np.ndarray | None = None,
    ) -> tf.data.Dataset:
        """Shuffled (and, if enabled, augmented) training batches; same ``seed``, same batches.
        ``soft_targets``: one row per training image, gathered with its label."""
        return make_classification_dataset(
            self.train_images,
            self.train_labels,
            batch_size=batch_size,
            training=True,
            seed=seed,
            drop_remainder=drop_remainder,
            augment=self.augment,
            normalization=self.normalization,
            augment_pad=self.augment_pad,
            augment_flip=self.augment_flip,
            soft_targets=soft_targets,
        )

    def soft_target_train_data(self, teacher: keras.Model, batch_size: int):
        """``seed -> training batches`` whose labels carry ``teacher``'s logits of each image,
        computed once here (for distillation, see tf_evosyn.loop.distill); None when the training
        images are augmented (the teacher must then see each augmented image)."""
        if self.augment:
            return None
        logits = teacher.predict(self.preprocess(self.train_images), batch_size=1024, verbose=0)

        return lambda seed: self.train_dataset(batch_size, seed, soft_targets=logits)

    def test_dataset(self, batch_size: int) -> tf.data.Dataset:
        """Test batches in file order (unshuffled, never augmented, so evaluations compare)."""
        return make_classification_dataset(
            self.test_images,
            self.test_labels,
            batch_size=batch_size,
            training=False,
            seed=None,
            normalization=self.normalization,
        )

    def validation_dataset(self, batch_size: int) -> tf.data.Dataset:
        """Validation batches in order (unshuffled, never augmented); see data/validation.py."""
        if self.validation_images is None or not len(self.validation_images):
            raise DataError(
                "this dataset has no validation split (data.validation_size=0); hold some "
                "training images out, or select on the test split explicitly with "
                "--config.evolution.select_on=test (the papers' protocol)."
            )
        return make_classification_dataset(
            self.validation_images,
            self.validation_labels,
            batch_size=batch_size,
            training=False,
            seed=None,
            normalization=self.normalization,
        )

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 images -> the float32 NHWC model input the test pipeline feeds (for export)."""
        x = np.asarray(images, dtype=np.float32) / 255.0
        x = x[..., None] if x.ndim == 3 else x
        stats = self.normalization
        return x if stats is None else (x - stats.mean) / stats.std


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


def _flag(config: Any, key: str, default: bool) -> bool:
    """``data.<key>`` as a bool; missing or None means the dataset's default."""
    value = _get(config, key, None)
    if value is None:
        return default
    if not isinstance(value, bool | np.bool_):
        raise DataError(f"data.{key} must be True or False, got {value!r}.")
    return bool(value)


def _normalize_style(config: Any) -> str:
    value = _get(config, "normalize_style", None)
    if value is None:
        return NORMALIZE_STYLES[0]
    if value not in NORMALIZE_STYLES:
        raise DataError(
            f"data.normalize_style={value!r} is invalid; use one of {', '.join(NORMALIZE_STYLES)}."
        )
    return str(value)


def _num_classes(spec: DatasetSpec, config: Any, arrays: SplitArrays) -> int:
    """The spec's class count, or ``data.num_classes`` / 1 + the largest label (npz)."""
    if spec.num_classes:
        return spec.num_classes
    value = _get(config, "num_classes", 0)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DataError(
            f"data.num_classes must be an integer >= 0 (0 = from labels), got {value!r}."
        )
    if value:
        return int(value)
    return int(max(arrays.train_labels.max(), arrays.test_labels.max())) + 1


def _resolve_source(name: str, spec: DatasetSpec, source: str, folder: Path | None, origin: str):
    """Map the configured source to 'local' or 'tfds', or explain why it cannot be used."""
    if source not in SOURCES:
        raise DataError(f"data.source={source!r} is invalid; use one of {', '.join(SOURCES)}.")
    if source in spec.local_aliases:
        return "local"
    if source == "idx":
        raise DataError(
            f"data.source=idx means MNIST IDX files; {spec.display_name} ({name}) reads "
            f"{spec.local_format}: use --config.data.source=local"
            + (" or tfds." if spec.tfds_name else ".")
        )
    if source == "tfds" and not spec.tfds_name:
        hint = " (for the full CIFAR-10 use data.name=cifar10)" if name == "cifar10_subset" else ""
        raise DataError(
            f"{spec.display_name} ({name}) has no TFDS version{hint}; use "
            "--config.data.source=local (or auto)."
        )
    if source == "auto":
        resolved = "local" if folder is not None or not spec.tfds_name else "tfds"
        if spec.tfds_name:
            logging.info(
                "data.source=auto resolved to %r (%s).",
                resolved,
                f"local folder from {origin}"
                if folder
                else f"no data.data_dir and no ${DATA_DIR_ENV}",
            )
        return resolved
    return source


def load_classification_data(data_config: Any) -> ClassificationData:
    """Load and validate the dataset described by ``data_config`` (see module docstring).

    Keys: ``name`` (mnist | cifar10 | cifar10_subset | npz), ``source``
    ('auto'|'local'|'idx'|'tfds'; 'idx' is MNIST's alias of 'local'), ``data_dir``,
    ``tfds_data_dir``, ``download``, ``train_limit``, ``test_limit``, and, read with defaults so
    older configs still work: ``validation_size`` / ``validation_fraction`` (the held-out end
    of the training split that evolution decides on, see :mod:`tf_evosyn.data.validation`;
    default 5,000 images for MNIST and CIFAR-10), ``test_fraction`` (cifar10_subset,
    single-file npz; default 0.2),
    ``augment`` / ``normalize`` (None = the dataset's default: on for CIFAR-10, off otherwise),
    ``augment_pad`` (pixels of the random shift, default 4) / ``augment_flip`` (default True;
    digits want False),
    ``normalize_style`` (:data:`NORMALIZE_STYLES`, default 'standardize'),
    ``train_file`` / ``test_file`` / ``num_classes`` (npz). Raises :class:`DataError` on any
    problem, before anything is trained.
    """
    name = str(_get(data_config, "name", "")).lower()
    if name not in DATASETS:
        raise DataError(
            f"Unknown dataset data.name={name!r}; known datasets: {', '.join(DATASETS)}."
        )
    spec = DATASETS[name]
    source = str(_get(data_config, "source", "auto")).lower()
    configured_source = source
    folder, origin = _local_folder(data_config, name)
    source = _resolve_source(name, spec, source, folder, origin)
    train_limit = _limit(data_config, "train_limit")
    test_limit = _limit(data_config, "test_limit")
    augment = _flag(data_config, "augment", spec.augment)
    augment_flip = _flag(data_config, "augment_flip", True)
    augment_pad = _get(data_config, "augment_pad", None)
    augment_pad = CIFAR_PAD if augment_pad is None else augment_pad
    if (
        isinstance(augment_pad, bool)
        or not isinstance(augment_pad, int | np.integer)
        or augment_pad < 0
    ):
        raise DataError(f"data.augment_pad must be an integer >= 0 (pixels), got {augment_pad!r}.")
    normalize = _flag(data_config, "normalize", spec.normalize)
    normalize_style = _normalize_style(data_config)

    note = ""
    if source == "local":
        if spec.needs_folder and folder is None:
            raise DataError(
                f"data.source={configured_source} needs a local folder: set ${DATA_DIR_ENV} "
                f"(folder holding {name}/) or --config.data.data_dir (folder holding the "
                f"{spec.local_format})"
                + (", or use --config.data.source=tfds." if spec.tfds_name else ".")
            )
        logging.info(
            "Loading %s from %s in %s (from %s).",
            spec.display_name,
            spec.local_format,
            folder,
            origin or "data.train_file",
        )
        arrays, where, note = spec.load_local(folder, data_config)
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

    num_classes = _num_classes(spec, data_config, arrays)
    for split, labels in (("train", arrays.train_labels), ("test", arrays.test_labels)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(
                f"{spec.display_name} {split} labels from {where} fall outside "
                f"0..{num_classes - 1}; the data is corrupt, re-download it"
                + (" (or set data.num_classes)." if not spec.num_classes else ".")
            )
    if arrays.train_images.shape[1:] != arrays.test_images.shape[1:]:
        raise DataError(
            f"{spec.display_name} from {where}: train images {arrays.train_images.shape[1:]} and "
            f"test images {arrays.test_images.shape[1:]} differ in shape."
        )
    held_out = validation_count(name, data_config, len(arrays.train_labels))
    train_x, train_y, val_x, val_y = split_validation(
        arrays.train_images, arrays.train_labels, held_out
    )
    train_x, train_y = _apply_limit(train_x, train_y, train_limit, "train", "train_limit")
    test_x, test_y = _apply_limit(
        arrays.test_images, arrays.test_labels, test_limit, "test", "test_limit"
    )
    input_shape = tuple(int(d) for d in train_x.shape[1:])
    if len(input_shape) == 2:
        input_shape += (1,)
    held = f"validation {len(val_x)} = the last {len(val_x)} training images, " if held_out else ""
    description = (
        f"{spec.display_name} from {where} (train {len(train_x)}, {held}test {len(test_x)})"
    )
    if note:
        description += f"; {note}"
    normalized = "normalized" if normalize_style == "standardize" else "mean-subtracted, 0-255"
    augmented = f"augmented: shifts up to {augment_pad} px" + (", flips" if augment_flip else "")
    extras = [k for k, on in ((augmented, augment), (normalized, normalize)) if on]
    if extras:
        description += f" [{', '.join(extras)}]"
    logging.info("Data: %s", description)
    return ClassificationData(
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        num_classes=num_classes,
        input_shape=input_shape,
        description=description,
        augment=augment,
        augment_pad=int(augment_pad),
        augment_flip=augment_flip,
        normalize=normalize,
        normalize_style=normalize_style,
        validation_images=val_x,
        validation_labels=val_y,
    )
