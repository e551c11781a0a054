"""Datasets for tf_evosyn: strict local readers (MNIST IDX, CIFAR-10 python batches, .npz), TFDS
loader, tf.data pipeline (optional normalisation and CIFAR augmentation), registry, and KITTI
object detection (folder or TFDS, padded ground truth, DetectNet augmentation)."""

from tf_evosyn.data.cifar10 import (
    load_cifar10_python,
    load_cifar10_subset,
    read_cifar10_batch,
)
from tf_evosyn.data.errors import DataError
from tf_evosyn.data.kitti import KittiData, load_kitti_data
from tf_evosyn.data.kitti_augment import DetectNetAugmentation
from tf_evosyn.data.kitti_labels import (
    KITTI_TYPES,
    KittiObject,
    KittiRecord,
    class_ids,
    parse_label_file,
    parse_label_line,
    scan_kitti_folder,
    split_by_id_blocks,
)
from tf_evosyn.data.mnist_idx import (
    MnistArrays,
    SplitArrays,
    find_mnist_files,
    load_mnist_idx,
    read_idx,
)
from tf_evosyn.data.npz_source import load_npz_dataset, read_npz_images, split_by_fraction
from tf_evosyn.data.pipeline import make_classification_dataset
from tf_evosyn.data.registry import (
    DATASETS,
    ClassificationData,
    DatasetSpec,
    load_classification_data,
)
from tf_evosyn.data.tfds_source import load_tfds_arrays
from tf_evosyn.data.transforms import ChannelStats, channel_stats, random_crop_flip

__all__ = [
    "DATASETS",
    "ChannelStats",
    "ClassificationData",
    "DataError",
    "DatasetSpec",
    "DetectNetAugmentation",
    "KITTI_TYPES",
    "KittiData",
    "KittiObject",
    "KittiRecord",
    "MnistArrays",
    "SplitArrays",
    "channel_stats",
    "class_ids",
    "find_mnist_files",
    "load_cifar10_python",
    "load_cifar10_subset",
    "load_classification_data",
    "load_kitti_data",
    "load_mnist_idx",
    "load_npz_dataset",
    "load_tfds_arrays",
    "make_classification_dataset",
    "parse_label_file",
    "parse_label_line",
    "random_crop_flip",
    "read_cifar10_batch",
    "read_idx",
    "read_npz_images",
    "scan_kitti_folder",
    "split_by_fraction",
    "split_by_id_blocks",
]
