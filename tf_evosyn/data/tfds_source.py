"""Load an image-classification dataset by TFDS name, as numpy arrays.

TFDS is the portable fallback when no local data folder is configured. ``tensorflow_datasets`` is
imported inside the function because importing it is slow and IDX-only runs never need it.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn.data.errors import DataError
from tf_evosyn.data.mnist_idx import SplitArrays


def _check_builder_name(tfds, name: str) -> None:
    """Raise DataError if ``name`` (optionally ``name/config:version``) is no TFDS builder."""
    base = name.split(":", 1)[0].split("/", 1)[0]
    known = tfds.list_builders(with_community_datasets=False)
    if base not in known:
        raise DataError(
            f"{name!r} is not a known TFDS dataset name (TFDS {tfds.__version__} has "
            f"{len(known)} builders, e.g. mnist, cifar10, fashion_mnist). Fix the TFDS name."
        )


def load_tfds_arrays(name: str, data_dir: str | None, download: bool) -> SplitArrays:
    """Load the ``train`` and ``test`` splits of TFDS dataset ``name`` fully into numpy.

    Single-channel images are squeezed to ``(N, H, W)`` so the arrays match the IDX reader.
    Failure (no network, dataset not prepared) raises :class:`DataError` saying what to do.
    """
    import tensorflow_datasets as tfds

    _check_builder_name(tfds, name)
    where = data_dir or "the default TFDS data dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    try:
        train, test = tfds.load(
            name,
            split=["train", "test"],
            as_supervised=True,
            data_dir=data_dir or None,
            download=download,
        )
        # Batched reads, not batch_size=-1: TFDS sizes that one batch from the split metadata,
        # and when the metadata has no sizes (mocked or partial datasets) it asks for a
        # sys.maxsize batch, which aborts the whole process.
        train_x, train_y = _to_numpy(tfds, train)
        test_x, test_y = _to_numpy(tfds, test)
    except Exception as e:  # TFDS raises assorted types (AssertionError, OSError, ...)
        raise DataError(
            f"Could not load TFDS dataset {name!r} from {where} (download={download}): "
            f"{type(e).__name__}: {str(e).rstrip('.')}. Fix: run once with network access and "
            f"--config.data.download=True, or prepare it with `tfds build {name} "
            f"--data_dir=...`, or read local files with --config.data.source=local "
            f"(source=idx for MNIST) and EVOSYN_DATA_DIR / --config.data.data_dir."
        ) from e

    def _squeeze(images: np.ndarray) -> np.ndarray:
        return images[..., 0] if images.ndim == 4 and images.shape[-1] == 1 else images

    return SplitArrays(_squeeze(train_x), train_y, _squeeze(test_x), test_y)


def _to_numpy(tfds, dataset, batch_size: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """All (image, label) pairs of a supervised TFDS split as two numpy arrays."""
    images, labels = [], []
    for x, y in tfds.as_numpy(dataset.batch(batch_size)):
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
    if not images:
        raise ValueError("the split is empty")
    return np.concatenate(images), np.concatenate(labels)
