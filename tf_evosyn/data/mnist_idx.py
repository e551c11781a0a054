"""Native reader for the MNIST IDX files (no TensorFlow, no network).

Reading the four official files directly lets experiments run offline and reproducibly from a
shared folder. Every check is strict (magic number, header dims, exact payload length, label
range), because a silently truncated download would otherwise train on partial data.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tf_evosyn.data.errors import REFETCH_HINT, DataError

_IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dims
_LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dim
_RANK_BY_MAGIC = {_IMAGES_MAGIC: 3, _LABELS_MAGIC: 1}

# logical file -> (prefix, kind, idx rank)
_MNIST_FILES = {
    "train-images": ("train", "images", 3),
    "train-labels": ("train", "labels", 1),
    "t10k-images": ("t10k", "images", 3),
    "t10k-labels": ("t10k", "labels", 1),
}
_MNIST_NUM_CLASSES = 10
_MNIST_IMAGE_SHAPE = (28, 28)


class SplitArrays(NamedTuple):
    """Train and test arrays of an image-classification dataset, as numpy.

    Images are ``(N, H, W)`` or ``(N, H, W, C)`` uint8, labels ``(N,)`` integers.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


MnistArrays = SplitArrays


def _candidate_names(key: str) -> list[str]:
    """File names accepted for one logical file, in order of preference."""
    prefix, kind, rank = _MNIST_FILES[key]
    stems = [f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte"]
    return [stem + suffix for stem in stems for suffix in (".gz", "")]


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed) content of ``path``; corrupt or truncated gzip -> DataError."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError as e:
        raise DataError(f"IDX file {path} does not exist. {REFETCH_HINT}") from e
    except EOFError as e:
        raise DataError(
            f"IDX file {path} is a truncated gzip file (incomplete download?). {REFETCH_HINT}"
        ) from e
    except (gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"IDX file {path} is not a valid gzip file ({e}). {REFETCH_HINT}") from e
    except OSError as e:
        raise DataError(f"Cannot read IDX file {path}: {e}. {REFETCH_HINT}") from e


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a uint8 array, validating it completely.

    Accepts magic 2051 (images, rank 3) and 2049 (labels, rank 1); ``expected_magic`` additionally
    pins which of the two the file must be. Raises :class:`DataError` naming the file on a wrong
    magic number, bad header, or a payload that is shorter or longer than the header declares.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(
            f"IDX file {path} is only {len(data)} bytes long, too short for an IDX header. "
            f"{REFETCH_HINT}"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic not in _RANK_BY_MAGIC:
        hint = ""
        if data[:2] == b"\x1f\x8b":
            hint = " The file looks gzip-compressed; give it a .gz suffix."
        raise DataError(
            f"IDX file {path} has magic number {magic:#010x}, expected {_IMAGES_MAGIC} (images) "
            f"or {_LABELS_MAGIC} (labels): it is corrupt or not an MNIST IDX file.{hint} "
            f"{REFETCH_HINT}"
        )
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"IDX file {path} has magic number {magic}, but {expected_magic} was expected here "
            f"(images/labels file swapped or misnamed?). {REFETCH_HINT}"
        )
    rank = _RANK_BY_MAGIC[magic]
    header_len = 4 + 4 * rank
    if len(data) < header_len:
        raise DataError(
            f"IDX file {path} ends inside its header ({len(data)} of {header_len} bytes). "
            f"{REFETCH_HINT}"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    if any(d == 0 for d in dims):
        raise DataError(f"IDX file {path} declares an empty array with dims {dims}. {REFETCH_HINT}")
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(data) - header_len
    if actual != expected:
        what = "shorter" if actual < expected else "longer"
        raise DataError(
            f"IDX file {path} payload is {what} than its header declares: header dims {dims} "
            f"need {expected} bytes, file has {actual}. {REFETCH_HINT}"
        )
    array = np.frombuffer(data, dtype=np.uint8, count=expected, offset=header_len)
    return array.reshape(dims).copy()  # copy: frombuffer on bytes is read-only


def find_mnist_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Locate the four MNIST IDX files in ``folder`` (standard or dotted names, ``.gz`` or raw).

    Raises :class:`DataError` listing exactly which files are missing and where it looked.
    """
    folder = Path(folder).expanduser()
    fix = (
        "Put the four official files there (e.g. from "
        "https://storage.googleapis.com/cvdf-datasets/mnist/), point EVOSYN_DATA_DIR or "
        "--config.data.data_dir at the right folder, or use --config.data.source=tfds."
    )
    if not folder.is_dir():
        raise DataError(f"MNIST data folder {folder} does not exist or is not a folder. {fix}")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key in _MNIST_FILES:
        names = _candidate_names(key)
        hit = next((folder / n for n in names if (folder / n).is_file()), None)
        if hit is None:
            missing.append(f"{key} (looked for {', '.join(names)})")
        else:
            found[key] = hit
    if missing:
        raise DataError(
            f"MNIST data folder {folder} is missing {len(missing)} of 4 IDX files: "
            f"{'; '.join(missing)}. {fix}"
        )
    return found


def load_mnist_idx(folder: str | os.PathLike[str]) -> SplitArrays:
    """Load MNIST train/test arrays from the four IDX files in ``folder``.

    Images come back as ``(N, 28, 28)`` uint8, labels as ``(N,)`` uint8 in 0..9; image and label
    counts must agree. Any problem raises :class:`DataError`.
    """
    files = find_mnist_files(folder)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "t10k"):
        images_path, labels_path = files[f"{split}-images"], files[f"{split}-labels"]
        images = read_idx(images_path, _IMAGES_MAGIC)
        labels = read_idx(labels_path, _LABELS_MAGIC)
        if images.shape[1:] != _MNIST_IMAGE_SHAPE:
            raise DataError(
                f"IDX file {images_path} holds images of shape {images.shape[1:]}, MNIST needs "
                f"{_MNIST_IMAGE_SHAPE}. {REFETCH_HINT}"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
                f"labels; the files do not belong together. {REFETCH_HINT}"
            )
        if labels.max() >= _MNIST_NUM_CLASSES:
            raise DataError(
                f"IDX file {labels_path} contains label {int(labels.max())}, MNIST labels are "
                f"0..{_MNIST_NUM_CLASSES - 1}. {REFETCH_HINT}"
            )
        arrays[split] = (images, labels)
    return SplitArrays(*arrays["train"], *arrays["t10k"])
