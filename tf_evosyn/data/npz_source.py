"""Image-classification data from local NumPy ``.npz`` files (``x`` uint8 images, ``y`` labels).

The generic way to bring your own images: save ``x`` as uint8 ``(N, H, W, C)`` (or ``(N, H, W)``
for greyscale) and ``y`` as integer class indices ``(N,)`` with ``numpy.savez[_compressed]``.
Either give separate train and test files, or one file whose *last* ``test_fraction`` is the
test split (deterministic, no shuffling, so the split never changes between runs). Files are
loaded with ``allow_pickle=False``: an ``.npz`` can never run code.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tf_evosyn.data.errors import DataError
from tf_evosyn.data.mnist_idx import SplitArrays

_NPZ_HINT = (
    "Write it with numpy.savez_compressed(path, x=images, y=labels): x uint8 (N, H, W, C), "
    "y integer class indices (N,)."
)


def read_npz_images(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate ``x`` (uint8 ``(N, H, W[, C])``) and ``y`` (``(N,)`` int64 >= 0).

    Raises :class:`DataError` naming ``path`` if the file is missing, not an ``.npz``, truncated,
    corrupt, or holds arrays of the wrong key, dtype or shape.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"NumPy file {path} does not exist or is not a file. {_NPZ_HINT}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as e:
        raise DataError(
            f"NumPy file {path} is not a readable .npz archive ({type(e).__name__}: {e}); it is "
            f"truncated, corrupt or of another format. {_NPZ_HINT}"
        ) from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is a single .npy array, not an .npz archive. {_NPZ_HINT}")
    with loaded as npz:
        missing = [k for k in ("x", "y") if k not in npz.files]
        if missing:
            raise DataError(
                f"NumPy file {path} has no array(s) {missing} (it holds {npz.files}). {_NPZ_HINT}"
            )
        try:
            images, labels = npz["x"], npz["y"]
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as e:
            raise DataError(
                f"NumPy file {path} is truncated or corrupt ({type(e).__name__}: {e}); copy or "
                f"write it again. {_NPZ_HINT}"
            ) from e
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) == 0:
        raise DataError(
            f"NumPy file {path}: x must be non-empty uint8 (N, H, W) or (N, H, W, C) pixels 0-255, "
            f"got {images.dtype} {images.shape}. {_NPZ_HINT}"
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(images),):
        raise DataError(
            f"NumPy file {path}: y must be integer labels of shape ({len(images)},) to match x, "
            f"got {labels.dtype} {labels.shape}. {_NPZ_HINT}"
        )
    if labels.min() < 0:
        raise DataError(f"NumPy file {path}: y holds negative label {int(labels.min())}.")
    return images, labels.astype(np.int64)


def check_test_fraction(value: object, key: str = "data.test_fraction") -> float:
    """A validated fraction strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise DataError(f"{key} must be a number between 0 and 1, got {value!r}.")
    if not 0.0 < float(value) < 1.0:
        raise DataError(f"{key} must be strictly between 0 and 1, got {value}.")
    return float(value)


def split_by_fraction(
    images: np.ndarray, labels: np.ndarray, test_fraction: float, source: str
) -> SplitArrays:
    """First ``1 - test_fraction`` of the examples for training, the last part for testing.

    The test size is ``round(N * test_fraction)``; both parts must be non-empty.
    """
    test_fraction = check_test_fraction(test_fraction)
    total = len(images)
    num_test = int(np.floor(total * test_fraction + 0.5))
    if num_test == 0 or num_test == total:
        raise DataError(
            f"data.test_fraction={test_fraction} of the {total} examples in {source} leaves an "
            "empty train or test split; choose a fraction that keeps both non-empty."
        )
    cut = total - num_test
    return SplitArrays(images[:cut], labels[:cut], images[cut:], labels[cut:])


def load_npz_dataset(
    train_file: str | os.PathLike[str],
    test_file: str | os.PathLike[str] | None = None,
    test_fraction: float = 0.2,
) -> SplitArrays:
    """Train/test arrays from ``train_file`` and ``test_file``, or from ``train_file`` alone split
    by ``test_fraction`` (the last fraction is the test split). Image shapes must agree."""
    train_x, train_y = read_npz_images(train_file)
    if not test_file:
        return split_by_fraction(train_x, train_y, test_fraction, str(train_file))
    test_x, test_y = read_npz_images(test_file)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"Image shapes differ: {train_file} has {train_x.shape[1:]}, {test_file} has "
            f"{test_x.shape[1:]}; train and test images must have the same shape."
        )
    return SplitArrays(train_x, train_y, test_x, test_y)
