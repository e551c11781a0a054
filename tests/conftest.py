"""Shared pytest fixtures for tf_evosyn.

The environment variables are set before anything imports TensorFlow: Keras 2 (tf_keras) must
be selected before TF loads, and TF's C++ info logs only clutter test output.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption(
        "--zoo",
        choices=("default", "all"),
        default="default",
        help="tests/package/test_zoo_coverage.py: one Keras Applications constructor per family "
        "(default) or every constructor (all)",
    )


def _missing_data(reason: str):
    """Skip locally; in CI the real datasets are part of the contract, so fail loudly."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide the real datasets via EVOSYN_DATA_DIR)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """Folder of the real shared datasets: $EVOSYN_DATA_DIR, /work/shared/datasets, ../shared."""
    env = os.environ.get("EVOSYN_DATA_DIR")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            _missing_data(f"EVOSYN_DATA_DIR={env} is not an existing folder")
        return path
    for path in (Path("/work/shared/datasets"), REPO_ROOT.parent / "shared" / "datasets"):
        if path.is_dir():
            return path
    _missing_data(
        "no real datasets found: set EVOSYN_DATA_DIR or provide /work/shared/datasets "
        "or ../shared/datasets next to the repo"
    )


@pytest.fixture(scope="session")
def mnist_dir(datasets_dir: Path) -> Path:
    """Folder with the four official MNIST IDX files."""
    path = datasets_dir / "mnist"
    if not path.is_dir():
        _missing_data(f"MNIST folder {path} not found")
    return path


@pytest.fixture(scope="session")
def mnist_small(mnist_dir: Path):
    """A small real MNIST subset (first 1,000 train / 500 test images) for fast training tests."""
    import ml_collections

    from tf_evosyn.data import load_classification_data

    config = ml_collections.ConfigDict(
        {
            "name": "mnist",
            "source": "idx",
            "data_dir": str(mnist_dir),
            "tfds_data_dir": "",
            "download": False,
            "train_limit": 1000,
            "test_limit": 500,
        }
    )
    return load_classification_data(config)


@pytest.fixture(scope="module")
def mnist_images(mnist_small):
    """64 real MNIST test digits as float32 NHWC in [0, 1] (compaction equivalence checks)."""
    import numpy as np

    return (mnist_small.test_images[:64].astype(np.float32) / 255.0)[..., None]


@pytest.fixture(scope="session")
def cifar10_subset_file(datasets_dir: Path) -> Path:
    """The real 4000-image CIFAR-10 subset (first 4000 images of data_batch_1, see SOURCE.md)."""
    path = datasets_dir / "cifar10_subset" / "cifar10_data_batch_1_first4000.npz"
    if not path.is_file():
        _missing_data(f"CIFAR-10 subset file {path} not found")
    return path


@pytest.fixture(scope="session")
def kitti_dir(datasets_dir: Path) -> Path:
    """The real 103-image KITTI object subset (training/image_2 + training/label_2, SOURCE.md)."""
    path = datasets_dir / "kitti"
    if not (path / "training" / "image_2").is_dir() or not (path / "training" / "label_2").is_dir():
        _missing_data(f"KITTI folder {path} (training/image_2, training/label_2) not found")
    return path
