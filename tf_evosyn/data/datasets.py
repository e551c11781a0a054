"""The datasets ``data.name`` can name: how each loads from local files and from TFDS.

A new dataset is one :class:`DatasetSpec` entry in :data:`DATASETS` (and its local reader).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from tf_evosyn.data.cifar10 import (
    CIFAR10_NUM_CLASSES,
    CIFAR10_SUBSET_NOTE,
    load_cifar10_python,
    load_cifar10_subset,
)
from tf_evosyn.data.errors import DataError
from tf_evosyn.data.mnist_idx import SplitArrays, load_mnist_idx
from tf_evosyn.data.npz_source import check_test_fraction, load_npz_dataset

_DEFAULT_TEST_FRACTION = 0.2


def _get(config: Any, key: str, default: Any) -> Any:
    """Read ``config.key`` from a ConfigDict or any attribute object, with a default."""
    try:
        return getattr(config, key)
    except (AttributeError, KeyError):
        return default


def _test_fraction(config: Any) -> float:
    return check_test_fraction(_get(config, "test_fraction", _DEFAULT_TEST_FRACTION))


class LocalData(NamedTuple):
    """What a local loader returns: the arrays, where they came from, and a caveat if any."""

    arrays: SplitArrays
    where: str
    note: str = ""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to load one named dataset from local files and from TFDS, and its pipeline defaults.

    ``load_local(folder, data_config)`` reads the local files (``folder`` is ``data.data_dir`` or
    ``$EVOSYN_DATA_DIR/<name>``, None if neither is set). ``num_classes`` 0 means "from
    ``data.num_classes`` or the labels"; an empty ``tfds_name`` means there is no TFDS version.
    ``augment``/``normalize`` are the defaults of ``data.augment``/``data.normalize``.
    """

    display_name: str
    num_classes: int
    load_local: Callable[[Path | None, Any], LocalData]
    tfds_name: str = ""
    local_format: str = "local files"
    local_aliases: tuple[str, ...] = ()
    needs_folder: bool = True
    augment: bool = False
    normalize: bool = False


def _load_mnist(folder: Path | None, config: Any) -> LocalData:
    return LocalData(load_mnist_idx(folder), f"IDX files at {folder}")


def _load_cifar10(folder: Path | None, config: Any) -> LocalData:
    return LocalData(load_cifar10_python(folder), f"python batches at {folder}")


def _load_cifar10_subset(folder: Path | None, config: Any) -> LocalData:
    fraction = _test_fraction(config)
    arrays, path = load_cifar10_subset(folder, fraction)
    note = (
        f"{CIFAR10_SUBSET_NOTE}; train = its first {len(arrays.train_labels)} images, test = "
        f"its last {len(arrays.test_labels)} (data.test_fraction={fraction:g}), which is NOT "
        "the official CIFAR-10 test split"
    )
    return LocalData(arrays, str(path), note)


def _resolve(path: str, config: Any) -> Path:
    """``path`` with ~ and $VARS expanded; relative paths are taken inside ``data.data_dir``."""
    resolved = Path(os.path.expandvars(path)).expanduser()
    data_dir = str(_get(config, "data_dir", "") or "")
    if data_dir and not resolved.is_absolute():
        resolved = Path(os.path.expandvars(data_dir)).expanduser() / resolved
    return resolved


def _load_npz(folder: Path | None, config: Any) -> LocalData:
    train_file = str(_get(config, "train_file", "") or "")
    test_file = str(_get(config, "test_file", "") or "")
    if not train_file:
        raise DataError(
            "data.name=npz needs --config.data.train_file=<file.npz> (x uint8 NHWC images, y "
            "integer labels); add --config.data.test_file=<file.npz> for a separate test set, or "
            "the last data.test_fraction of train_file is used for testing."
        )
    train_path = _resolve(train_file, config)
    if test_file:
        test_path = _resolve(test_file, config)
        arrays = load_npz_dataset(train_path, test_path)
        return LocalData(arrays, f"npz files {train_path} (train) and {test_path} (test)")
    fraction = _test_fraction(config)
    arrays = load_npz_dataset(train_path, None, fraction)
    where = f"npz file {train_path}, last {fraction:g} as test split"
    return LocalData(arrays, where)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        display_name="MNIST",
        num_classes=10,
        load_local=_load_mnist,
        tfds_name="mnist",
        local_format="IDX files",
        local_aliases=("idx",),
    ),
    "cifar10": DatasetSpec(
        display_name="CIFAR-10",
        num_classes=CIFAR10_NUM_CLASSES,
        load_local=_load_cifar10,
        tfds_name="cifar10",
        local_format="python batches (cifar-10-batches-py)",
        augment=True,
        normalize=True,
    ),
    "cifar10_subset": DatasetSpec(
        display_name="CIFAR-10 subset",
        num_classes=CIFAR10_NUM_CLASSES,
        load_local=_load_cifar10_subset,
        local_format="the cifar10_subset .npz file",
        augment=True,
        normalize=True,
    ),
    "npz": DatasetSpec(
        display_name="NumPy data",
        num_classes=0,
        load_local=_load_npz,
        local_format=".npz files",
        needs_folder=False,
    ),
}
