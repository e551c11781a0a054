"""The single exception type for bad input data.

Every problem with dataset files or data configuration raises :class:`DataError`, so callers (and
the command-line tools) can catch one type and show its message, which always names the file or
setting at fault and says how to fix it. It subclasses ``ValueError`` because it is bad input.
"""

from __future__ import annotations

_MNIST_DOWNLOAD_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

REFETCH_HINT = (
    f"Re-download it (e.g. from {_MNIST_DOWNLOAD_URL}) or use --config.data.source=tfds instead."
)


class DataError(ValueError):
    """A dataset file or data setting is missing, corrupt or inconsistent."""


CIFAR10_DOWNLOAD_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

CIFAR10_REFETCH_HINT = (
    f"Re-download and extract {CIFAR10_DOWNLOAD_URL} (it unpacks to cifar-10-batches-py/), "
    "or use --config.data.source=tfds instead."
)
