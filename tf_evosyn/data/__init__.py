"""Datasets for tf_evosyn: strict local IDX reader, TFDS loader, tf.data pipeline, registry."""

from tf_evosyn.data.errors import DataError
from tf_evosyn.data.mnist_idx import (
    MnistArrays,
    SplitArrays,
    find_mnist_files,
    load_mnist_idx,
    read_idx,
)
from tf_evosyn.data.pipeline import make_classification_dataset
from tf_evosyn.data.registry import (
    DATASETS,
    ClassificationData,
    DatasetSpec,
    load_classification_data,
)
from tf_evosyn.data.tfds_source import load_tfds_arrays

__all__ = [
    "DATASETS",
    "ClassificationData",
    "DataError",
    "DatasetSpec",
    "MnistArrays",
    "SplitArrays",
    "find_mnist_files",
    "load_classification_data",
    "load_mnist_idx",
    "load_tfds_arrays",
    "make_classification_dataset",
    "read_idx",
]
