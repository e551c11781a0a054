"""CIFAR-10 from local files: the official python batches and the shared 4000-image subset.

The official ``cifar-10-python.tar.gz`` unpacks to ``cifar-10-batches-py/`` holding
``data_batch_1`` .. ``data_batch_5`` and ``test_batch``: pickled dicts whose ``data`` is a
``(N, 3072)`` uint8 array (1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major)
and whose ``labels`` is a list of N class indices. Reading them directly lets experiments run
offline. The pickles are read with an unpickler that only accepts the numpy objects these files
contain, so a tampered file cannot run code, and every check is strict (shapes, label range,
trailing bytes) because a truncated download would otherwise train on partial data.

``cifar10_subset`` is the real 4000-image subset of training batch 1 in the shared datasets
folder (see its SOURCE.md); it is split into train and test by a fraction and is *not* the
official test split.
"""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path

import numpy as np

from tf_evosyn.data.errors import CIFAR10_DOWNLOAD_URL, CIFAR10_REFETCH_HINT, DataError
from tf_evosyn.data.mnist_idx import SplitArrays
from tf_evosyn.data.npz_source import read_npz_images, split_by_fraction

_CIFAR10_FOLDER_NAME = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST_FILE = "test_batch"
CIFAR10_NUM_CLASSES = 10
_CIFAR10_IMAGE_SHAPE = (32, 32, 3)
_ROW_BYTES = 32 * 32 * 3

_CIFAR10_SUBSET_FILE = "cifar10_data_batch_1_first4000.npz"
_CIFAR10_SUBSET_SIZE = 4000
CIFAR10_SUBSET_NOTE = (
    "a 4000-image subset of CIFAR-10 training batch 1 (images 0-3999 of data_batch_1)"
)

# The only globals a CIFAR-10 python batch (written by Python 2 cPickle or by numpy today)
# refers to; anything else in a pickle is refused.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
    ("numpy._core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
    ("numpy.core.multiarray", "scalar"): np.int64(0).__reduce__()[0],
    ("numpy._core.multiarray", "scalar"): np.int64(0).__reduce__()[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy globals listed in ``_ALLOWED_GLOBALS``."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}, which a CIFAR-10 batch never contains"
            ) from None


def _text_keys(batch: dict) -> dict:
    """Python 2 pickles loaded with ``encoding='bytes'`` have bytes keys; make them str."""
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def read_cifar10_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one python batch file into ``(N, 32, 32, 3)`` uint8 images and ``(N,)`` int64 labels.

    Raises :class:`DataError` naming the file if it is missing, truncated, corrupt, or does not
    hold a CIFAR-10 ``data``/``labels`` dict.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
            trailing = f.read(1)
    except FileNotFoundError as e:
        raise DataError(f"CIFAR-10 batch file {path} does not exist. {CIFAR10_REFETCH_HINT}") from e
    except EOFError as e:
        raise DataError(
            f"CIFAR-10 batch file {path} is truncated (incomplete download?). "
            f"{CIFAR10_REFETCH_HINT}"
        ) from e
    except OSError as e:
        raise DataError(
            f"Cannot read CIFAR-10 batch file {path}: {e}. {CIFAR10_REFETCH_HINT}"
        ) from e
    except Exception as e:  # unpickling garbage raises many types (UnpicklingError, ValueError..)
        raise DataError(
            f"CIFAR-10 batch file {path} is corrupt or not a CIFAR-10 python batch "
            f"({type(e).__name__}: {e}). {CIFAR10_REFETCH_HINT}"
        ) from e
    if trailing:
        raise DataError(
            f"CIFAR-10 batch file {path} has extra bytes after its pickle; it is corrupt. "
            f"{CIFAR10_REFETCH_HINT}"
        )
    if not isinstance(batch, dict):
        raise DataError(
            f"CIFAR-10 batch file {path} holds a {type(batch).__name__}, not a dict with 'data' "
            f"and 'labels'. {CIFAR10_REFETCH_HINT}"
        )
    batch = _text_keys(batch)
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DataError(
            f"CIFAR-10 batch file {path} has no {missing} entry (keys: {sorted(batch)}). "
            f"{CIFAR10_REFETCH_HINT}"
        )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(
            f"CIFAR-10 batch file {path}: 'data' must be a uint8 (N, {_ROW_BYTES}) array, got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}. "
            f"{CIFAR10_REFETCH_HINT}"
        )
    if data.shape[1] != _ROW_BYTES or data.shape[0] == 0:
        raise DataError(
            f"CIFAR-10 batch file {path}: 'data' has shape {data.shape}, expected (N, "
            f"{_ROW_BYTES}) with N > 0 (32x32 RGB images). {CIFAR10_REFETCH_HINT}"
        )
    try:
        labels = np.asarray(batch["labels"])
    except (TypeError, ValueError) as e:
        raise DataError(f"CIFAR-10 batch file {path}: unreadable 'labels' ({e}).") from e
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(data),):
        raise DataError(
            f"CIFAR-10 batch file {path}: 'labels' must be {len(data)} integers to match 'data', "
            f"got {labels.dtype} {labels.shape}. {CIFAR10_REFETCH_HINT}"
        )
    if labels.min() < 0 or labels.max() >= CIFAR10_NUM_CLASSES:
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise DataError(
            f"CIFAR-10 batch file {path} contains label {bad}; CIFAR-10 labels are "
            f"0..{CIFAR10_NUM_CLASSES - 1}. {CIFAR10_REFETCH_HINT}"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> NHWC
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _find_cifar10_folder(folder: str | os.PathLike[str]) -> Path:
    """The ``cifar-10-batches-py`` folder: ``folder`` itself or ``folder/cifar-10-batches-py``.

    Raises :class:`DataError` listing every missing batch file and the places it looked.
    """
    folder = Path(folder).expanduser()
    fix = (
        f"Download {CIFAR10_DOWNLOAD_URL} and extract it there (it unpacks to "
        f"{_CIFAR10_FOLDER_NAME}/), point EVOSYN_DATA_DIR or --config.data.data_dir at the right "
        "folder, or use --config.data.source=tfds."
    )
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 data folder {folder} does not exist or is not a folder. {fix}")
    names = (*CIFAR10_TRAIN_FILES, _CIFAR10_TEST_FILE)
    nested = folder / _CIFAR10_FOLDER_NAME
    if not any((folder / n).exists() for n in names) and nested.is_dir():
        folder = nested
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        where = str(folder) if folder == nested else f"{folder} (or {nested})"
        raise DataError(
            f"CIFAR-10 python batches missing in {where}: {', '.join(missing)} "
            f"({len(missing)} of {len(names)} files). {fix}"
        )
    return folder


def load_cifar10_python(folder: str | os.PathLike[str]) -> SplitArrays:
    """Load CIFAR-10 train (data_batch_1..5, in order) and test (test_batch) arrays.

    ``folder`` is ``cifar-10-batches-py`` itself or a folder containing it. Images come back as
    ``(N, 32, 32, 3)`` uint8 (RGB, HWC), labels as ``(N,)`` int64 in 0..9.
    """
    folder = _find_cifar10_folder(folder)
    train = [read_cifar10_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    test_x, test_y = read_cifar10_batch(folder / _CIFAR10_TEST_FILE)
    return SplitArrays(
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        test_x,
        test_y,
    )


def _find_cifar10_subset_file(location: str | os.PathLike[str]) -> Path:
    """``location`` itself if it is a file, else ``location/cifar10_data_batch_1_first4000.npz``."""
    location = Path(location).expanduser()
    path = location if location.is_file() else location / _CIFAR10_SUBSET_FILE
    if not path.is_file():
        raise DataError(
            f"CIFAR-10 subset file {path} does not exist. Point EVOSYN_DATA_DIR at the shared "
            f"datasets folder (holding cifar10_subset/{_CIFAR10_SUBSET_FILE}) or "
            "--config.data.data_dir at the folder holding the file; for the full dataset use "
            "--config.data.name=cifar10."
        )
    return path


def load_cifar10_subset(
    location: str | os.PathLike[str], test_fraction: float = 0.2
) -> tuple[SplitArrays, Path]:
    """The 4000-image subset of training batch 1, split deterministically by ``test_fraction``.

    The first ``1 - test_fraction`` of the images (in their original order) are the training
    split, the last part the test split. Returns the arrays and the file they came from.
    """
    path = _find_cifar10_subset_file(location)
    images, labels = read_npz_images(path)
    expected = (_CIFAR10_SUBSET_SIZE, *_CIFAR10_IMAGE_SHAPE)
    if images.shape != expected:
        raise DataError(
            f"CIFAR-10 subset file {path} holds images of shape {images.shape}, expected "
            f"{expected}; it is not the shared cifar10_subset file (see its SOURCE.md)."
        )
    if labels.max() >= CIFAR10_NUM_CLASSES:
        raise DataError(
            f"CIFAR-10 subset file {path} contains label {int(labels.max())}; CIFAR-10 labels "
            f"are 0..{CIFAR10_NUM_CLASSES - 1}."
        )
    return split_by_fraction(images, labels, test_fraction, str(path)), path
