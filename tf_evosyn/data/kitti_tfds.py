"""KITTI from TFDS (``tfds.builder("kitti")``), converted to the local reader's ground truth.

TFDS stores each box as a ``tfds.features.BBox`` normalised to [0, 1] with the y axis flipped
(origin bottom left). tensorflow_datasets 4.9 (datasets/kitti/kitti_dataset_builder.py,
``_build_bounding_box``) builds it as::

    return tfds.features.BBox(
        ymin=(height - bbox.bottom) / height,
        ymax=(height - bbox.top) / height,
        xmin=bbox.left / width,
        xmax=bbox.right / width,
    )

so x1 = xmin * W, x2 = xmax * W, y1 = (1 - ymax) * H, y2 = (1 - ymin) * H recover KITTI pixels
(up to float32 rounding, ~1e-4 px). ``objects/type`` is a ClassLabel over TFDS's own name list
(read from the builder's info and mapped to :data:`KITTI_TYPES` by name); ``objects/occluded`` is
a ClassLabel whose index is KITTI's integer. TFDS drops DontCare objects
(``_parse_kitti_annotations``: "DontCare objects lack annotations, so skip them"), so TFDS ground
truth has no DontCare regions, and its train/validation/test splits are TFDS's own split by drive,
not KITTI's benchmark split.
"""

from __future__ import annotations

from collections.abc import Sequence

from tf_evosyn._keras import tf
from tf_evosyn.data.errors import DataError
from tf_evosyn.data.kitti_labels import KITTI_TYPES

_TFDS_NAME = "kitti"
_SHUFFLE_BUFFER = 256  # encoded PNGs (~0.8 MB each) held for shuffling


def kitti_type_table(tfds_type_names: Sequence[str]) -> tf.Tensor:
    """int32 table: TFDS type index -> index into KITTI_TYPES (by name)."""
    unknown = [name for name in tfds_type_names if name not in KITTI_TYPES]
    if unknown:
        raise DataError(
            f"TFDS 'kitti' has object types {unknown} that are not KITTI types "
            f"({', '.join(KITTI_TYPES)}); this tensorflow_datasets version is not supported."
        )
    return tf.constant([KITTI_TYPES.index(name) for name in tfds_type_names], tf.int32)


def tfds_example_to_kitti(
    example: dict, type_table: tf.Tensor, max_boxes: int
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """A decoded TFDS kitti example -> (float32 image [H, W, 3], padded KITTI ground truth)."""
    image = example["image"]
    if image.dtype == tf.string:  # SkipDecoding: the stored PNG bytes
        image = tf.io.decode_png(image, channels=3)
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    objects = example["objects"]
    bbox = tf.cast(objects["bbox"], tf.float32)  # ymin, xmin, ymax, xmax, y flipped
    boxes = tf.stack(
        [bbox[:, 1] * w, (1.0 - bbox[:, 2]) * h, bbox[:, 3] * w, (1.0 - bbox[:, 0]) * h], axis=1
    )
    count = tf.shape(boxes)[0]
    check = tf.debugging.assert_less_equal(
        count,
        max_boxes,
        message=f"A TFDS kitti image has more objects than data.max_boxes={max_boxes}; "
        "raise --config.data.max_boxes",
    )
    with tf.control_dependencies([check]):
        pad = max_boxes - count

    def padded(values: tf.Tensor, dtype: tf.DType, fill) -> tf.Tensor:
        values = tf.cast(values, dtype)
        rank = len(values.shape)
        out = tf.pad(values, [[0, pad]] + [[0, 0]] * (rank - 1), constant_values=fill)
        return tf.ensure_shape(out, [max_boxes] + values.shape[1:].as_list())

    gt = {
        "boxes": padded(boxes, tf.float32, 0.0),
        "types": padded(tf.gather(type_table, tf.cast(objects["type"], tf.int32)), tf.int32, -1),
        "truncated": padded(objects["truncated"], tf.float32, 0.0),
        "occluded": padded(objects["occluded"], tf.int32, 0),
        "image_size": tf.stack([shape[0], shape[1]]),
        "image_id": tf.strings.regex_replace(example["image/file_name"], r"\.png$", ""),
    }
    return image, gt


def prepared_kitti_builder(data_dir: str | None, download: bool):
    """``tfds.builder("kitti")``, prepared; downloads (~12 GB) only if ``download`` is True."""
    import tensorflow_datasets as tfds

    where = data_dir or "the default TFDS data dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    builder = tfds.builder(_TFDS_NAME, data_dir=data_dir or None)
    if builder.is_prepared():
        return builder
    if not download:
        raise DataError(
            f"TFDS 'kitti' is not prepared in {where} and data.download=False. Fix: run once "
            "with --config.data.download=True (about 12 GB), or `tfds build kitti "
            "--data_dir=...`, or use a local folder with --config.data.source=local and "
            "--config.data.data_dir=<dir holding training/image_2 and training/label_2>."
        )
    try:
        builder.download_and_prepare()
    except Exception as e:  # TFDS raises assorted types (network, checksum, disk)
        raise DataError(
            f"Could not download/prepare TFDS 'kitti' in {where}: {type(e).__name__}: {e}. "
            "Check network and disk space, or use a local folder (data.source=local)."
        ) from e
    return builder


class TfdsKittiSplit:
    """One split of TFDS kitti as a dataset of (float32 image, padded ground truth)."""

    def __init__(self, builder, split: str, max_boxes: int, limit: int = 0):
        self.builder = builder
        self.split = f"{split}[:{limit}]" if limit else split
        self.max_boxes = max_boxes
        total = builder.info.splits[split].num_examples
        if limit > total:
            raise DataError(
                f"data.train_limit={limit} exceeds the {total} images of TFDS kitti {split}."
            )
        self.size = limit or total
        self.type_table = kitti_type_table(builder.info.features["objects"]["type"].names)

    def dataset(self, shuffle_seed: int | None = None) -> tf.data.Dataset:
        import tensorflow_datasets as tfds

        read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed)
        ds = self.builder.as_dataset(
            split=self.split,
            shuffle_files=shuffle_seed is not None,
            read_config=read_config,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
        if shuffle_seed is not None:
            ds = ds.shuffle(_SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.map(
            lambda ex: tfds_example_to_kitti(ex, self.type_table, self.max_boxes),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def image_ids_and_sizes(self) -> tuple[list[str], list[tuple[int, int]]]:
        """IDs and original (height, width) of the split, in its order (decodes every image)."""
        ids, sizes = [], []
        for _, gt in self.dataset().as_numpy_iterator():
            ids.append(gt["image_id"].decode())
            sizes.append(tuple(int(v) for v in gt["image_size"]))
        return ids, sizes
