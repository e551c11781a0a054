"""The TFDS path offline: builders, and the project's loader end to end, with the network cut.

Colab users load every dataset through TFDS by name, so a fresh install must get through TFDS's
builder code (which imports ``importlib_resources``, undeclared by tensorflow-datasets 4.9.x).
MNIST is prepared by TFDS itself from the real IDX files placed in its download cache (the same
files, byte for byte, that TFDS's registered checksums name). The official CIFAR-10 archive is
not among the shared datasets, so CIFAR-10 goes through ``tfds.testing.mock_data`` fed with the
real 4,000-image subset. No test here measures accuracy.
"""

import hashlib
import shutil
import socket
from pathlib import Path

import ml_collections
import numpy as np
import pytest

import tf_evosyn  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn._keras import tf
from tf_evosyn.data import DataError, load_classification_data, load_mnist_idx

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _tfds_config(name: str, tfds_dir: Path, download: bool, **extra) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "name": name,
            "source": "tfds",
            "data_dir": "",
            "tfds_data_dir": str(tfds_dir),
            "download": download,
            "train_limit": 0,
            "test_limit": 0,
            # These tests compare TFDS's data with the local files; no validation hold-out.
            "validation_size": 0,
            **extra,
        }
    )


@pytest.mark.parametrize(
    "name, image_shape, classes", [("mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10)]
)
def test_builder_and_its_info_offline(tmp_path, no_network, name, image_shape, classes):
    builder = tfds.builder(name, data_dir=str(tmp_path))
    assert builder.info.features["image"].shape == image_shape
    assert builder.info.features["label"].num_classes == classes
    # The code path is what download_and_prepare resolves first; on tensorflow-datasets 4.9.x it
    # imports importlib_resources (ModuleNotFoundError when that dependency is missing).
    assert Path(str(builder.code_path)).suffix == ".py"
    assert not builder.is_prepared()


def _seed_download_cache(download_dir: Path, dataset: str, url_prefix: str, local: Path) -> int:
    """Place local copies of a dataset's registered downloads where TFDS's cache looks.

    TFDS then skips the download (and still verifies size and sha256 against its registry).
    """
    from tensorflow_datasets.core.download import checksums
    from tensorflow_datasets.core.download import resource as resource_lib

    target = download_dir / dataset
    target.mkdir(parents=True, exist_ok=True)
    placed = 0
    for url, info in checksums.get_all_url_infos().items():
        if not url.startswith(url_prefix):
            continue
        path = target / resource_lib.get_dl_fname(url, info.checksum)
        shutil.copyfile(local / url.rsplit("/", 1)[1], path)
        resource_lib.write_info_file(
            url=url, path=path, dataset_name=dataset, original_fname=path.name, url_info=info
        )
        placed += 1
    return placed


def _fingerprints(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """Sorted digests of (image, label) pairs: equal iff the same examples in any order."""
    return sorted(
        hashlib.sha1(image.tobytes() + int(label).to_bytes(2, "little")).digest()
        for image, label in zip(images, labels, strict=True)
    )


@pytest.mark.slow  # TFDS encodes all 70,000 images: ~30 s on 2 busy cores
def test_mnist_through_tfds_prepared_from_the_real_files(tmp_path, mnist_dir, no_network):
    tfds_dir = tmp_path / "tfds"
    placed = _seed_download_cache(
        tfds_dir / "downloads",
        "mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        mnist_dir,
    )
    assert placed == 4
    # download=True: the loader runs TFDS's own download_and_prepare, which finds the cache.
    data = load_classification_data(_tfds_config("mnist", tfds_dir, download=True))
    assert (tfds_dir / "mnist").is_dir() and "TFDS 'mnist'" in data.description
    assert data.input_shape == (28, 28, 1) and data.num_classes == 10
    idx = load_mnist_idx(mnist_dir)
    # TFDS stores the examples in its own (shuffled) order; the same examples, every one.
    assert _fingerprints(data.train_images, data.train_labels) == _fingerprints(
        idx.train_images, idx.train_labels
    )
    assert _fingerprints(data.test_images, data.test_labels) == _fingerprints(
        idx.test_images, idx.test_labels
    )
    # Prepared once, it loads again with downloads off.
    again = load_classification_data(
        _tfds_config("mnist", tfds_dir, download=False, train_limit=100, test_limit=50)
    )
    np.testing.assert_array_equal(again.test_images, data.test_images[:50])
    images, labels = next(iter(again.train_dataset(batch_size=32, seed=0)))
    assert images.shape == (32, 28, 28, 1) and labels.shape == (32,)


def test_unprepared_dataset_without_download_is_a_data_error(tmp_path, no_network):
    with pytest.raises(DataError, match="Could not load TFDS dataset 'mnist'.*Fix:"):
        load_classification_data(_tfds_config("mnist", tmp_path, download=False))


def test_cifar10_through_tfds_with_mock_data_of_real_images(
    tmp_path, cifar10_subset_file, no_network
):
    subset = np.load(cifar10_subset_file)
    splits = {"train": slice(0, 300), "test": slice(300, 400)}

    def real_images(builder, split, decoders=None, read_config=None, **kwargs):
        part = splits[str(split)]
        return tf.data.Dataset.from_tensor_slices(
            {"image": subset["x"][part], "label": subset["y"][part]}
        )

    with tfds.testing.mock_data(as_dataset_fn=real_images):
        data = load_classification_data(_tfds_config("cifar10", tmp_path, download=False))
    assert "TFDS 'cifar10'" in data.description
    assert data.input_shape == (32, 32, 3) and data.num_classes == 10
    np.testing.assert_array_equal(data.train_images, subset["x"][:300])
    np.testing.assert_array_equal(data.train_labels, subset["y"][:300])
    np.testing.assert_array_equal(data.test_images, subset["x"][300:400])
    # CIFAR-10's defaults apply on the TFDS path too: normalised and augmented batches.
    assert data.normalize and data.augment
    images, _ = next(iter(data.train_dataset(batch_size=16, seed=0)))
    assert images.shape == (16, 32, 32, 3) and abs(float(np.mean(images))) < 0.5


# --- KITTI (issue 11): once tf_evosyn's detection data loader exists, the lead adds
# --- test_kitti_through_tfds_offline here: the same pattern as CIFAR-10 above
# --- (tfds.testing.mock_data(as_dataset_fn=...) fed with the real images and labels under
# --- $EVOSYN_DATA_DIR/kitti/training), through the detection loader with source='tfds'.
