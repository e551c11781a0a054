"""Tests of tf_evosyn.data on the real MNIST IDX files (shared/datasets/mnist, see SOURCE.md).

Only one test module fixture reads the 60000-image train file; the other tests use the 10000-image
test split. Folders built in tmp_path hold copies of the real test-split files (also under the
train-* names, to keep them small), damaged on purpose where a test needs a corrupt file.
"""

import gzip
import shutil
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from tf_evosyn.data import (
    DataError,
    load_classification_data,
    load_mnist_idx,
    load_tfds_arrays,
    make_classification_dataset,
    read_idx,
)

TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_HISTOGRAM = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
KEYS = ("train-images", "train-labels", "t10k-images", "t10k-labels")


def _config(**overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(
        {
            "name": "mnist",
            "source": "auto",
            "data_dir": "",
            "tfds_data_dir": "",
            "download": False,
            "train_limit": 0,
            "test_limit": 0,
        }
    )
    cfg.update(overrides)
    return cfg


def _real_name(key: str) -> str:
    rank = 3 if key.endswith("images") else 1
    return f"t10k-{key.split('-')[1]}-idx{rank}-ubyte.gz"  # test-split file for every key


def _file_name(key: str, dotted: bool, compressed: bool) -> str:
    prefix, kind = key.split("-")
    rank = 3 if kind == "images" else 1
    sep = "." if dotted else "-"
    return f"{prefix}-{kind}{sep}idx{rank}-ubyte" + (".gz" if compressed else "")


def _small_folder(mnist_dir: Path, dst: Path, *, dotted=False, compressed=True, skip=()) -> Path:
    """Folder of real test-split IDX files under all four names (optionally omitting some)."""
    dst.mkdir(parents=True, exist_ok=True)
    for key in KEYS:
        if key in skip:
            continue
        src = mnist_dir / _real_name(key)
        out = dst / _file_name(key, dotted, compressed)
        if compressed:
            shutil.copyfile(src, out)
        else:
            out.write_bytes(gzip.decompress(src.read_bytes()))
    return dst


@pytest.fixture(scope="module")
def test_split(mnist_dir):
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    return images, labels


@pytest.fixture(scope="module")
def full_data(datasets_dir):
    """The one full read: source=auto resolved through $EVOSYN_DATA_DIR (no data_dir set)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVOSYN_DATA_DIR", str(datasets_dir))
        return load_classification_data(_config())


@pytest.fixture(scope="module")
def raw_labels(mnist_dir) -> bytes:
    return gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())


# ---------------------------------------------------------------- IDX reader


def test_read_test_split(test_split):
    images, labels = test_split
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert np.bincount(labels, minlength=10).tolist() == TEST_HISTOGRAM
    assert images.flags.writeable


@pytest.mark.parametrize("dotted", [False, True], ids=["dashed", "dotted"])
@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "raw"])
def test_file_name_variants(mnist_dir, tmp_path, test_split, dotted, compressed):
    folder = _small_folder(mnist_dir, tmp_path / "m", dotted=dotted, compressed=compressed)
    arrays = load_mnist_idx(folder)
    np.testing.assert_array_equal(arrays.test_images, test_split[0])
    np.testing.assert_array_equal(arrays.test_labels, test_split[1])
    np.testing.assert_array_equal(arrays.train_labels, test_split[1])


def test_missing_file_is_named(mnist_dir, tmp_path):
    folder = _small_folder(mnist_dir, tmp_path / "m", skip=("t10k-labels",))
    with pytest.raises(DataError) as info:
        load_mnist_idx(folder)
    msg = str(info.value)
    assert "missing 1 of 4" in msg and "t10k-labels (looked for" in msg and str(folder) in msg
    assert "train-images (" not in msg and "t10k-images (" not in msg
    assert "EVOSYN_DATA_DIR" in msg and "source=tfds" in msg


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        load_mnist_idx(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_truncated_gzip(mnist_dir, tmp_path):
    data = (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "Re-download" in str(info.value)


def test_corrupt_magic(tmp_path, raw_labels):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x02" + raw_labels[4:])
    with pytest.raises(DataError, match="magic number") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_swapped_images_and_labels(mnist_dir, tmp_path):
    folder = _small_folder(mnist_dir, tmp_path / "m")
    images = folder / "t10k-images-idx3-ubyte.gz"
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    tmp = folder / "swap"
    images.rename(tmp)
    labels.rename(images)
    tmp.rename(labels)
    with pytest.raises(DataError, match="expected here"):
        load_mnist_idx(folder)


@pytest.mark.parametrize("delta", [-1, 1], ids=["short", "long"])
def test_payload_length_mismatch(tmp_path, raw_labels, delta):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(raw_labels[:-1] if delta < 0 else raw_labels + b"\x00")
    word = "shorter" if delta < 0 else "longer"
    with pytest.raises(DataError, match=f"payload is {word} than its header") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_label_out_of_range(mnist_dir, tmp_path, raw_labels):
    folder = _small_folder(mnist_dir, tmp_path / "m", skip=("t10k-labels",))
    bad = bytearray(raw_labels)
    bad[100] = 10
    (folder / "t10k-labels-idx1-ubyte").write_bytes(bytes(bad))
    with pytest.raises(DataError, match="label 10"):
        load_mnist_idx(folder)


# ---------------------------------------------------------------- registry


def test_full_load_via_auto_and_env(full_data, mnist_dir):
    d = full_data
    assert d.train_images.shape == (55000, 28, 28) and d.test_images.shape == (10000, 28, 28)
    assert d.validation_images.shape == (5000, 28, 28)
    all_train = np.concatenate([d.train_labels, d.validation_labels])
    assert np.bincount(all_train, minlength=10).tolist() == TRAIN_HISTOGRAM
    assert np.bincount(d.test_labels, minlength=10).tolist() == TEST_HISTOGRAM
    assert d.num_classes == 10 and d.input_shape == (28, 28, 1)
    assert d.description == (
        f"MNIST from IDX files at {mnist_dir} (train 55000, validation 5000 = the last 5000 "
        "training images, test 10000)"
    )


def test_validation_is_the_end_of_the_training_file_and_never_test(full_data, mnist_dir):
    """Evolution decides on the validation split: the last 5,000 training images of the IDX
    file, disjoint from the training images it trains on and from the test split."""
    raw = load_mnist_idx(mnist_dir)
    np.testing.assert_array_equal(full_data.validation_images, raw.train_images[-5000:])
    np.testing.assert_array_equal(full_data.train_images, raw.train_images[:-5000])
    test_rows = {img.tobytes() for img in full_data.test_images}
    assert not any(img.tobytes() in test_rows for img in full_data.validation_images[:2000])
    batches = list(full_data.validation_dataset(batch_size=1000))
    assert sum(len(y) for _, y in batches) == 5000


def test_validation_size_is_configurable_and_checked(mnist_dir, tmp_path):
    folder = _small_folder(mnist_dir, tmp_path / "m")
    d = load_classification_data(_config(source="idx", data_dir=str(folder), validation_size=7))
    assert len(d.validation_images) == 7
    none = load_classification_data(_config(source="idx", data_dir=str(folder), validation_size=0))
    with pytest.raises(DataError, match="select_on=test"):
        none.validation_dataset(batch_size=8)
    with pytest.raises(DataError, match="validation_size"):
        load_classification_data(_config(source="idx", data_dir=str(folder), validation_size=10**6))


def test_limits(mnist_dir, tmp_path, test_split):
    folder = _small_folder(mnist_dir, tmp_path / "m")
    d = load_classification_data(
        _config(source="idx", data_dir=str(folder), train_limit=100, test_limit=50)
    )
    assert len(d.train_images) == len(d.train_labels) == 100
    assert len(d.test_images) == len(d.test_labels) == 50
    np.testing.assert_array_equal(d.test_images, test_split[0][:50])
    assert "(train 100, validation 5000" in d.description and "test 50)" in d.description


def test_limit_bigger_than_split(mnist_dir, tmp_path):
    folder = _small_folder(mnist_dir, tmp_path / "m")
    with pytest.raises(DataError, match="test_limit=10001 exceeds the 10000"):
        load_classification_data(_config(data_dir=str(folder), test_limit=10001))


@pytest.mark.parametrize("key", ["train_limit", "test_limit"])
def test_negative_limit_rejected_before_reading(tmp_path, key):
    cfg = _config(source="idx", data_dir=str(tmp_path / "nowhere"), **{key: -1})
    with pytest.raises(DataError, match=f"{key} must be >= 0"):
        load_classification_data(cfg)


def test_unknown_dataset_name():
    with pytest.raises(DataError, match="Unknown dataset.*'imagenet'.*known datasets: mnist"):
        load_classification_data(_config(name="imagenet"))


def test_unknown_source():
    with pytest.raises(DataError, match="data.source='web' is invalid"):
        load_classification_data(_config(source="web"))


def test_auto_with_broken_env_folder_raises_not_tfds(tmp_path, monkeypatch, mnist_dir):
    _small_folder(mnist_dir, tmp_path / "mnist", skip=("train-images",))
    monkeypatch.setenv("EVOSYN_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="missing 1 of 4 IDX files: train-images") as info:
        load_classification_data(_config())
    assert str(tmp_path / "mnist") in str(info.value)


def test_idx_without_folder(monkeypatch):
    monkeypatch.delenv("EVOSYN_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="needs a local folder"):
        load_classification_data(_config(source="idx"))


def test_auto_without_folder_uses_tfds(tmp_path, monkeypatch):
    monkeypatch.delenv("EVOSYN_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="Could not load TFDS dataset 'mnist'"):
        load_classification_data(_config(tfds_data_dir=str(tmp_path), download=False))


# ---------------------------------------------------------------- TFDS (no network here)


def test_tfds_not_prepared_raises(tmp_path):
    with pytest.raises(DataError) as info:
        load_tfds_arrays("mnist", str(tmp_path), download=False)
    msg = str(info.value)
    assert str(tmp_path) in msg and "tfds build mnist" in msg and "source=idx" in msg


def test_tfds_unknown_name(tmp_path):
    with pytest.raises(DataError, match="not a known TFDS dataset name"):
        load_tfds_arrays("no_such_dataset_xyz", str(tmp_path), download=False)


# ---------------------------------------------------------------- pipeline


def _labels(ds) -> np.ndarray:
    return np.concatenate([y.numpy() for _, y in ds])


def test_pipeline_batches(test_split):
    images, labels = test_split
    ds = make_classification_dataset(
        images[:1000], labels[:1000], batch_size=32, training=True, seed=1
    )
    batches = list(ds)
    assert len(batches) == 32  # 31 full + remainder of 8
    x, y = batches[0]
    assert x.shape == (32, 28, 28, 1) and x.dtype.name == "float32"
    assert y.shape == (32,) and y.dtype.name == "int32"
    assert batches[-1][0].shape[0] == 8
    all_x = np.concatenate([b[0].numpy() for b in batches])
    assert all_x.min() == 0.0 and all_x.max() == 1.0
    assert sorted(_labels(ds).tolist()) == sorted(labels[:1000].tolist())

    dropped = make_classification_dataset(
        images[:1000], labels[:1000], batch_size=32, training=True, seed=1, drop_remainder=True
    )
    assert len(list(dropped)) == 31


@pytest.mark.parametrize("cache", [True, False])
def test_pipeline_cache_flag_same_result(test_split, cache):
    images, labels = test_split[0][:300], test_split[1][:300]
    ds = make_classification_dataset(
        images, labels, batch_size=100, training=False, seed=None, cache=cache
    )
    x = np.concatenate([b[0].numpy() for b in ds])
    np.testing.assert_allclose(x[..., 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(_labels(ds), labels)


def test_pipeline_seed_determinism(test_split):
    images, labels = test_split[0][:1000], test_split[1][:1000]

    def epochs(seed: int) -> list[np.ndarray]:
        ds = make_classification_dataset(images, labels, batch_size=50, training=True, seed=seed)
        return [_labels(ds), _labels(ds)]

    a, b, c = epochs(7), epochs(7), epochs(8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])  # rebuilt dataset repeats the epoch sequence
    assert not np.array_equal(a[0], a[1])  # reshuffled each epoch
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], labels)


def test_test_dataset_not_shuffled(full_data):
    ds = full_data.test_dataset(batch_size=500)
    np.testing.assert_array_equal(_labels(ds), full_data.test_labels)
    x, _ = next(iter(ds))
    np.testing.assert_allclose(x.numpy()[..., 0], full_data.test_images[:500] / 255.0, rtol=1e-6)


def test_train_dataset_method(full_data):
    x, y = next(iter(full_data.train_dataset(batch_size=64, seed=3)))
    assert x.shape == (64, 28, 28, 1) and y.shape == (64,)


def test_digit_augmentation_shifts_without_flipping(mnist_dir, tmp_path):
    """data.augment_pad=2, augment_flip=False: every training digit is its original moved by at
    most 2 pixels (zero filled), never mirrored; evaluation splits stay untouched."""
    folder = _small_folder(mnist_dir, tmp_path / "m")
    d = load_classification_data(
        _config(
            source="idx",
            data_dir=str(folder),
            train_limit=200,
            validation_size=50,
            augment=True,
            augment_pad=2,
            augment_flip=False,
        )
    )
    assert "shifts up to 2 px" in d.description and "flips" not in d.description
    kwargs = dict(batch_size=100, training=True, seed=3)
    shifted = np.concatenate([x.numpy() for x, _ in d.train_dataset(100, 3)])
    plain = np.concatenate(
        [
            x.numpy()
            for x, _ in make_classification_dataset(d.train_images, d.train_labels, **kwargs)
        ]
    )
    padded = np.pad(plain, [(0, 0), (2, 2), (2, 2), (0, 0)])
    offsets = []
    for image, source in zip(shifted, padded, strict=True):
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(source[dy : dy + 28, dx : dx + 28], image)
        ]
        assert hits, "an augmented digit is not a <= 2 px shift of its original"
        offsets.append(hits[0])
    assert len(set(offsets)) > 15  # of 25 possible shifts
    x_val = np.concatenate([x.numpy() for x, _ in d.validation_dataset(64)])
    np.testing.assert_array_equal(x_val, d.preprocess(d.validation_images))


@pytest.mark.parametrize(
    "pad, message", [(-1, "augment_pad must be an integer >= 0"), ("2", "must be an integer")]
)
def test_bad_augment_pad_is_named(mnist_dir, tmp_path, pad, message):
    folder = _small_folder(mnist_dir, tmp_path / "m")
    with pytest.raises(DataError, match=message):
        load_classification_data(
            _config(source="idx", data_dir=str(folder), augment=True, augment_pad=pad)
        )
    big = load_classification_data(
        _config(source="idx", data_dir=str(folder), augment=True, augment_pad=28)
    )
    with pytest.raises(DataError, match="augment_pad must be in"):
        big.train_dataset(8, 0)
