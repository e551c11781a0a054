"""KITTI object detection data for DetectNet: config -> validated folder or TFDS -> tf.data.

Each element is ``(image, gt)``: ``image`` float32 [height, width, 3], raw RGB in [0, 255] (the
model normalises), the original image padded at the bottom/right to the network input (never
resized; the paper's 1248x384 input pads every KITTI image, a smaller input crops at the
bottom/right), and ``gt`` a dict of fixed-size tensors (so batches stack): ``boxes`` float32
[max_boxes, 4] (x1, y1, x2, y2 in pixels of that input, i.e. KITTI pixels), ``types`` int32
[max_boxes] (index into KITTI_TYPES, -1 = padding row), ``truncated`` float32, ``occluded`` int32,
``image_size`` int32 [2] (original height, width) and ``image_id`` string. DontCare boxes,
truncation and occlusion are kept for the evaluation.

The local folder is split by ID blocks of the sorted numeric IDs: the last ``test_fraction`` is
the test block (only ever reported), the ``validation_fraction`` before it the validation block
(evolution decides on it), the rest trains: NOT KITTI's benchmark split, which every
description says.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from tf_evosyn._keras import tf
from tf_evosyn.data.errors import DataError
from tf_evosyn.data.kitti_augment import DetectNetAugmentation, augment_example, fit_to_input
from tf_evosyn.data.kitti_labels import (
    DEFAULT_MAX_BOXES,
    KittiRecord,
    padded_arrays,
    scan_kitti_folder,
    split_by_id_blocks,
)
from tf_evosyn.data.kitti_tfds import TfdsKittiSplit, prepared_kitti_builder
from tf_evosyn.data.pipeline import augment_seed
from tf_evosyn.data.registry import DATA_DIR_ENV, _flag, _get, _limit

SOURCES = ("auto", "local", "tfds")
_DEFAULT_INPUT_SIZE = (384, 1248)  # (height, width) of DetectNet's KITTI prototxt
_DEFAULT_VALIDATION_FRACTION = 0.2
_NOT_BENCHMARK = "NOT KITTI's benchmark split"


def _decode_png(path: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Eager PNG decode inside tf.py_function, so a bad file raises an error naming it."""
    name = path.numpy().decode()
    try:
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
        raise DataError(
            f"KITTI image {name} cannot be decoded ({e.message.strip()}); the file is corrupt: "
            "re-extract data_object_image_2.zip."
        ) from None
    if tuple(image.shape[:2]) != (int(height), int(width)):
        raise DataError(
            f"KITTI image {name} decodes to {tuple(image.shape[:2])}, its header says "
            f"{(int(height), int(width))}; the file is corrupt: re-extract it."
        )
    return image


class LocalKittiSplit:
    """Records of a local folder as a dataset of (float32 original image, padded gt)."""

    def __init__(self, records: list[KittiRecord], max_boxes: int):
        if not records:
            raise DataError("A KITTI split needs at least one image.")
        self.records = records
        self.size = len(records)
        self.arrays = padded_arrays(records, max_boxes)
        self.paths = np.array([str(r.image_path) for r in records])

    def dataset(self, shuffle_seed: int | None = None) -> tf.data.Dataset:
        tensors = {
            k: tf.constant(v.astype(str) if v.dtype == object else v)
            for k, v in self.arrays.items()
        }
        paths = tf.constant(self.paths)
        ds = tf.data.Dataset.range(self.size)
        if shuffle_seed is not None:
            ds = ds.shuffle(self.size, seed=shuffle_seed, reshuffle_each_iteration=True)

        def load(index: tf.Tensor):
            gt = {key: tf.gather(value, index) for key, value in tensors.items()}
            size = gt["image_size"]
            image = tf.py_function(
                _decode_png, [tf.gather(paths, index), size[0], size[1]], tf.uint8
            )
            image = tf.cast(tf.ensure_shape(image, [None, None, 3]), tf.float32)
            return image, gt

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def image_ids_and_sizes(self) -> tuple[list[str], list[tuple[int, int]]]:
        return [r.image_id for r in self.records], [(r.height, r.width) for r in self.records]


@dataclasses.dataclass
class KittiData:
    """Train/validation KITTI pipelines at one network input size (see the module docstring)."""

    train_split: Any  # LocalKittiSplit | TfdsKittiSplit
    validation_split: Any
    test_split: Any
    input_shape: tuple[int, int, int]
    max_boxes: int
    description: str
    augment: bool = True
    augmentation: DetectNetAugmentation = dataclasses.field(default_factory=DetectNetAugmentation)

    @property
    def num_train(self) -> int:
        return self.train_split.size

    @property
    def num_validation(self) -> int:
        return self.validation_split.size

    def train_dataset(
        self, batch_size: int, seed: int, augment: bool = True, *, drop_remainder: bool = False
    ) -> tf.data.Dataset:
        """Shuffled batches, augmented (if ``augment`` and ``data.augment``) as DetectNet does.

        Each epoch reshuffles and redraws the augmentation, but a dataset rebuilt with the same
        ``seed`` repeats the same sequence of epochs exactly. ``gt["image_size"]`` stays the
        original image size; the boxes are in pixels of the augmented input.
        """
        _check_batch_size(batch_size)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise DataError(f"A training dataset needs an integer seed, got {seed!r}.")
        height, width = self.input_shape[:2]
        ds = self.train_split.dataset(shuffle_seed=int(seed))
        if augment and self.augment:
            # One random int64 per example, re-drawn every epoch but fixed by the seed; with the
            # position in the epoch it seeds the stateless augmentation ops of that example.
            randoms = tf.data.Dataset.random(
                seed=augment_seed(int(seed)), rerandomize_each_iteration=True
            )
            ds = tf.data.Dataset.zip((ds.enumerate(), randoms))
            params = self.augmentation

            def augment_one(indexed, rand):
                position, (image, gt) = indexed
                return augment_example(image, gt, height, width, params, tf.stack([rand, position]))

            ds = ds.map(augment_one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        else:
            ds = ds.map(
                lambda image, gt: fit_to_input(image, gt, height, width),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

    @property
    def num_test(self) -> int:
        return self.test_split.size if self.test_split is not None else 0

    def validation_dataset(self, batch_size: int) -> tf.data.Dataset:
        """Validation batches in ID order (TFDS: split order), never augmented."""
        return self._evaluation_dataset(self.validation_split, batch_size)

    def test_dataset(self, batch_size: int) -> tf.data.Dataset:
        """Test batches in ID order, never augmented (recorded, never decisive)."""
        if self.test_split is None:
            raise DataError(
                "this KITTI source has no test split; use the local folder (ID blocks) or "
                "TFDS kitti, which has one."
            )
        return self._evaluation_dataset(self.test_split, batch_size)

    def _evaluation_dataset(self, split: Any, batch_size: int) -> tf.data.Dataset:
        _check_batch_size(batch_size)
        height, width = self.input_shape[:2]
        ds = split.dataset(shuffle_seed=None)
        ds = ds.map(
            lambda image, gt: fit_to_input(image, gt, height, width),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def validation_image_info(self) -> tuple[list[str], np.ndarray]:
        """(image IDs, int32 [N, 2] original (height, width)) of the validation split, in the
        order :meth:`validation_dataset` yields them."""
        ids, sizes = self.validation_split.image_ids_and_sizes()
        return ids, np.array(sizes, np.int32).reshape(-1, 2)


def _fraction_of_rest(fraction: Any, records: list, rest: list) -> Any:
    """``validation_fraction`` is of all IDs; as a fraction of what the test block left."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        return fraction  # split_by_id_blocks explains what is wrong
    return min(0.99, fraction * len(records) / max(1, len(rest)))


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch_size must be an integer >= 1, got {batch_size!r}.")


def _positive_int(config: Any, key: str, default: int) -> int:
    value = _get(config, key, default)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"data.{key} must be an integer >= 1, got {value!r}.")
    return int(value)


def _local_folder(config: Any) -> tuple[Path | None, str]:
    """(folder, origin): data.data_dir, else $EVOSYN_DATA_DIR/kitti if that exists."""
    data_dir = str(_get(config, "data_dir", "") or "")
    if data_dir:
        return Path(os.path.expandvars(data_dir)).expanduser(), "data.data_dir"
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser() / "kitti", f"${DATA_DIR_ENV}/kitti"
    return None, ""


def _id_range(records: list[KittiRecord]) -> str:
    return f"IDs {records[0].image_id}-{records[-1].image_id}"


def load_kitti_data(data_config: Any) -> KittiData:
    """Validate ``data_config`` and the data it names (whole folder, before any training).

    Keys: ``name`` ('kitti'), ``source`` ('auto' = local folder if ``data.data_dir`` is set or
    ``$EVOSYN_DATA_DIR/kitti`` exists, else TFDS; 'local'; 'tfds'), ``data_dir``,
    ``tfds_data_dir``, ``download`` (TFDS only, default False: ~12 GB), ``train_limit`` (first N
    training images, 0 = all), ``validation_fraction`` and ``test_fraction`` (local only,
    default 0.2 each, blocks of IDs),
    ``image_height``/``image_width`` (network input, default 384x1248), ``max_boxes`` (default
    64), ``augment`` (default True) and optional ``augmentation`` (overrides of
    :class:`DetectNetAugmentation`). Raises :class:`DataError` naming the fix.
    """
    name = str(_get(data_config, "name", "")).lower()
    if name != "kitti":
        raise DataError(f"load_kitti_data reads data.name='kitti', got {name!r}.")
    source = str(_get(data_config, "source", "auto")).lower()
    if source not in SOURCES:
        raise DataError(f"data.source={source!r} is invalid for KITTI; use one of {SOURCES}.")
    height = _positive_int(data_config, "image_height", _DEFAULT_INPUT_SIZE[0])
    width = _positive_int(data_config, "image_width", _DEFAULT_INPUT_SIZE[1])
    max_boxes = _positive_int(data_config, "max_boxes", DEFAULT_MAX_BOXES)
    train_limit = _limit(data_config, "train_limit")
    augment = _flag(data_config, "augment", True)
    augmentation = DetectNetAugmentation.from_config(_get(data_config, "augmentation", None))
    folder, origin = _local_folder(data_config)
    if source == "auto":
        use_local = origin == "data.data_dir" or (folder is not None and folder.is_dir())
        source = "local" if use_local else "tfds"
        logging.info("data.source=auto resolved to %r (folder %s).", source, folder)

    if source == "local":
        if folder is None:
            raise DataError(
                f"data.source=local needs a KITTI folder: set ${DATA_DIR_ENV} (holding kitti/) "
                "or --config.data.data_dir=<dir with training/image_2 and training/label_2>, "
                "or use --config.data.source=tfds."
            )
        fraction = _get(data_config, "validation_fraction", _DEFAULT_VALIDATION_FRACTION)
        test_fraction = _get(data_config, "test_fraction", _DEFAULT_VALIDATION_FRACTION)
        records = scan_kitti_folder(folder, max_boxes)
        rest, test = split_by_id_blocks(records, test_fraction)
        train, validation = split_by_id_blocks(rest, _fraction_of_rest(fraction, records, rest))
        if train_limit > len(train):
            raise DataError(
                f"data.train_limit={train_limit} exceeds the {len(train)} training images; use "
                "at most that (or 0 for all)."
            )
        train = train[:train_limit] if train_limit else train
        description = (
            f"KITTI local folder {folder} (from {origin}): train {len(train)} images "
            f"({_id_range(train)}), validation {len(validation)} ({_id_range(validation)}), "
            f"test {len(test)} ({_id_range(test)}): blocks of IDs, the last {test_fraction:g} "
            f"test and the {fraction:g} before it validation; this ID-block split is "
            f"{_NOT_BENCHMARK}"
        )
        train_split = LocalKittiSplit(train, max_boxes)
        validation_split = LocalKittiSplit(validation, max_boxes)
        test_split = LocalKittiSplit(test, max_boxes)
    else:
        tfds_dir = str(_get(data_config, "tfds_data_dir", "") or "") or None
        builder = prepared_kitti_builder(tfds_dir, bool(_get(data_config, "download", False)))
        train_split = TfdsKittiSplit(builder, "train", max_boxes, train_limit)
        validation_split = TfdsKittiSplit(builder, "validation", max_boxes)
        # TFDS kitti has a test split; a hand-prepared copy may not (then no test block).
        has_test = "test" in builder.info.splits
        test_split = TfdsKittiSplit(builder, "test", max_boxes) if has_test else None
        description = (
            f"KITTI from TFDS 'kitti' ({tfds_dir or 'default data dir'}): train "
            f"{train_split.size}, validation {validation_split.size}, test "
            f"{test_split.size if test_split else 0} "
            "images (TFDS's own split by "
            f"drive, {_NOT_BENCHMARK}; TFDS drops DontCare boxes)"
        )
    description += f"; input {height}x{width} (padded/cropped at bottom-right, never resized)"
    if augment:
        description += " [DetectNet augmentation]"
    logging.info("Data: %s", description)
    return KittiData(
        train_split=train_split,
        validation_split=validation_split,
        test_split=test_split,
        input_shape=(height, width, 3),
        max_boxes=max_boxes,
        description=description,
        augment=augment,
        augmentation=augmentation,
    )
