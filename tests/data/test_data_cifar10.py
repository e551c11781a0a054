"""Tests of the CIFAR-10 readers, the .npz source, the registry and the CIFAR pipeline options.

Everything runs on the real 4000-image CIFAR-10 subset (shared/datasets/cifar10_subset, see its
SOURCE.md). Official-format python batches are written in tmp_path from those real images: a
pickled dict with b'data' (N, 3072) uint8 in CHW order and b'labels' a list of ints, exactly as
in cifar-10-python.tar.gz.
"""

import os
import pickle
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from tf_evosyn.data import (
    DATASETS,
    DataError,
    channel_stats,
    load_cifar10_python,
    load_cifar10_subset,
    load_classification_data,
    load_npz_dataset,
    make_classification_dataset,
    read_cifar10_batch,
    read_npz_images,
)
from tf_evosyn.data.cifar10 import CIFAR10_TRAIN_FILES

SUBSET_HISTOGRAM = [396, 366, 420, 384, 422, 393, 414, 385, 407, 413]
TRAIN_PER_BATCH = 600  # 5 x 600 = images 0..2999 as "training batches", 3000..3999 as test


def _config(**overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(
        {
            "name": "cifar10_subset",
            "source": "auto",
            "data_dir": "",
            "tfds_data_dir": "",
            "download": False,
            "train_limit": 0,
            "test_limit": 0,
            # These tests check the readers; the validation split has its own tests below.
            "validation_size": 0,
        }
    )
    for key, value in overrides.items():
        cfg[key] = value  # also adds the new optional keys that old configs do not have
    return cfg


def _official_row_data(images: np.ndarray) -> np.ndarray:
    """NHWC uint8 -> the official (N, 3072) layout: 1024 R, 1024 G, 1024 B, each row-major."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _write_batch(path: Path, images: np.ndarray, labels: np.ndarray, label: str) -> Path:
    batch = {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": _official_row_data(images),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return path


@pytest.fixture(scope="module")
def subset(cifar10_subset_file):
    images, labels = read_npz_images(cifar10_subset_file)
    return images, labels


@pytest.fixture(scope="module")
def batches_root(tmp_path_factory, subset) -> Path:
    """A folder holding cifar-10-batches-py/ with 5 x 600 real training images and 1000 test."""
    images, labels = subset
    root = tmp_path_factory.mktemp("cifar_root")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for i, name in enumerate(CIFAR10_TRAIN_FILES):
        part = slice(i * TRAIN_PER_BATCH, (i + 1) * TRAIN_PER_BATCH)
        _write_batch(folder / name, images[part], labels[part], f"training batch {i + 1} of 5")
    _write_batch(folder / "test_batch", images[3000:], labels[3000:], "testing batch 1 of 1")
    return root


@pytest.fixture()
def batches_copy(tmp_path, batches_root) -> Path:
    """A writable copy of the python-batch folder, to damage on purpose."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for src in (batches_root / "cifar-10-batches-py").iterdir():
        (folder / src.name).write_bytes(src.read_bytes())
    return folder


# ---------------------------------------------------------------- the real subset file


def test_subset_file_is_the_documented_data(subset):
    images, labels = subset
    assert images.shape == (4000, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (4000,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == SUBSET_HISTOGRAM


# ---------------------------------------------------------------- python batches


@pytest.mark.parametrize("nested", [True, False], ids=["parent", "batches-folder"])
def test_python_batches_round_trip(batches_root, subset, nested):
    images, labels = subset
    folder = batches_root if nested else batches_root / "cifar-10-batches-py"
    arrays = load_cifar10_python(folder)
    np.testing.assert_array_equal(arrays.train_images, images[:3000])
    np.testing.assert_array_equal(arrays.train_labels, labels[:3000])
    np.testing.assert_array_equal(arrays.test_images, images[3000:])
    np.testing.assert_array_equal(arrays.test_labels, labels[3000:])
    assert arrays.train_images.dtype == np.uint8 and arrays.train_labels.dtype == np.int64
    assert arrays.train_images.flags.c_contiguous


def test_batch_layout_is_chw(batches_root, subset):
    """Pixel (r, c) of channel k is data[n, 1024 k + 32 r + c] in the official rows."""
    path = batches_root / "cifar-10-batches-py" / "data_batch_2"
    raw = pickle.loads(path.read_bytes(), encoding="bytes")[b"data"]
    images, _ = read_cifar10_batch(path)
    for k in range(3):
        assert images[7, 5, 9, k] == raw[7, 1024 * k + 32 * 5 + 9]
    np.testing.assert_array_equal(images[0], subset[0][TRAIN_PER_BATCH])


def test_str_keys_and_array_labels_accepted(tmp_path, subset):
    images, labels = subset[0][:10], subset[1][:10]
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _official_row_data(images), "labels": labels}))
    got_x, got_y = read_cifar10_batch(path)
    np.testing.assert_array_equal(got_x, images)
    np.testing.assert_array_equal(got_y, labels)


def test_missing_batch_file_is_named(batches_copy):
    (batches_copy / "test_batch").unlink()
    (batches_copy / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load_cifar10_python(batches_copy.parent)
    msg = str(info.value)
    assert "data_batch_3, test_batch" in msg and "2 of 6 files" in msg
    assert str(batches_copy) in msg
    assert "cifar-10-python.tar.gz" in msg and "source=tfds" in msg


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        load_cifar10_python(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_folder_without_batches(tmp_path):
    with pytest.raises(DataError, match="6 of 6 files") as info:
        load_cifar10_python(tmp_path)
    assert "cifar-10-batches-py" in str(info.value)


def test_truncated_batch(batches_copy):
    path = batches_copy / "data_batch_4"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated") as info:
        load_cifar10_python(batches_copy)
    msg = str(info.value)
    assert str(path) in msg and "cifar-10-python.tar.gz" in msg and "source=tfds" in msg


def test_corrupt_batch(batches_copy):
    path = batches_copy / "data_batch_1"
    path.write_bytes(b"this is not a pickle" + path.read_bytes()[20:])
    with pytest.raises(DataError, match="corrupt or not a CIFAR-10 python batch") as info:
        read_cifar10_batch(path)
    assert str(path) in str(info.value)


def test_trailing_bytes(batches_copy):
    path = batches_copy / "test_batch"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="extra bytes"):
        read_cifar10_batch(path)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_pickle_with_foreign_objects_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="refusing global posix.mkdir|refusing global os.mkdir"):
        read_cifar10_batch(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "batch, match",
    [
        ({b"labels": [0]}, r"no \['data'\] entry"),
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, r"shape \(2, 3000\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "must be a uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "must be 2 integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "contains label 10"),
        ([1, 2, 3], "holds a list"),
    ],
)
def test_bad_batch_content(tmp_path, batch, match):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=match) as info:
        read_cifar10_batch(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- registry: cifar10


def test_registry_cifar10_local(batches_root):
    d = load_classification_data(
        _config(name="cifar10", source="local", data_dir=str(batches_root))
    )
    assert len(d.train_labels) == 3000 and len(d.test_labels) == 1000
    assert d.num_classes == 10 and d.input_shape == (32, 32, 3)
    assert d.augment and d.normalize  # CIFAR defaults
    assert d.description.startswith(
        f"CIFAR-10 from python batches at {batches_root} (train 3000, test 1000)"
    )


def test_registry_cifar10_auto_via_env(tmp_path, batches_root, monkeypatch):
    (tmp_path / "cifar10").symlink_to(batches_root, target_is_directory=True)
    monkeypatch.setenv("EVOSYN_DATA_DIR", str(tmp_path))
    d = load_classification_data(_config(name="cifar10", train_limit=100, test_limit=50))
    assert len(d.train_labels) == 100 and len(d.test_labels) == 50


def test_registry_cifar10_auto_broken_env_folder_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOSYN_DATA_DIR", str(tmp_path))  # no cifar10/ in it
    with pytest.raises(DataError, match="does not exist") as info:
        load_classification_data(_config(name="cifar10"))
    assert str(tmp_path / "cifar10") in str(info.value)  # never a silent TFDS fallback


def test_registry_cifar10_tfds_not_prepared(tmp_path, monkeypatch):
    monkeypatch.delenv("EVOSYN_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="Could not load TFDS dataset 'cifar10'") as info:
        load_classification_data(_config(name="cifar10", tfds_data_dir=str(tmp_path)))
    assert "source=local" in str(info.value)


def test_registry_idx_source_is_mnist_only(batches_root):
    with pytest.raises(DataError, match="source=idx means MNIST IDX files.*source=local or tfds"):
        load_classification_data(_config(name="cifar10", source="idx", data_dir=str(batches_root)))


def test_registry_unknown_name_lists_all():
    with pytest.raises(DataError) as info:
        load_classification_data(_config(name="cifar100"))
    assert "known datasets: mnist, cifar10, cifar10_subset, npz" in str(info.value)


def test_dataset_defaults():
    assert not DATASETS["mnist"].augment and not DATASETS["mnist"].normalize
    assert DATASETS["cifar10"].augment and DATASETS["cifar10"].normalize
    assert DATASETS["cifar10_subset"].augment and DATASETS["cifar10_subset"].normalize
    assert not DATASETS["npz"].augment and not DATASETS["npz"].normalize


# ---------------------------------------------------------------- registry: cifar10_subset


@pytest.fixture(scope="module")
def subset_data(datasets_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVOSYN_DATA_DIR", str(datasets_dir))
        return load_classification_data(_config())


def test_subset_default_split(subset_data, subset, cifar10_subset_file):
    images, labels = subset
    d = subset_data
    assert len(d.train_labels) == 3200 and len(d.test_labels) == 800
    np.testing.assert_array_equal(d.train_images, images[:3200])
    np.testing.assert_array_equal(d.test_images, images[3200:])  # the LAST fraction is test
    np.testing.assert_array_equal(d.test_labels, labels[3200:])
    assert d.num_classes == 10 and d.input_shape == (32, 32, 3)
    assert d.augment and d.normalize
    assert d.description.startswith(
        f"CIFAR-10 subset from {cifar10_subset_file} (train 3200, test 800); "
        "a 4000-image subset of CIFAR-10 training batch 1"
    )
    assert (
        "test = its last 800 (data.test_fraction=0.2), which is NOT the official CIFAR-10 "
        "test split" in d.description
    )


def test_subset_fraction_and_determinism(cifar10_subset_file, subset):
    folder = str(cifar10_subset_file.parent)
    a = load_classification_data(_config(data_dir=folder, test_fraction=0.1))
    b = load_classification_data(_config(data_dir=folder, test_fraction=0.1))
    assert len(a.train_labels) == 3600 and len(a.test_labels) == 400
    np.testing.assert_array_equal(a.test_images, b.test_images)
    np.testing.assert_array_equal(a.test_images, subset[0][3600:])
    arrays, path = load_cifar10_subset(cifar10_subset_file, 0.25)  # the file itself works too
    assert path == cifar10_subset_file and len(arrays.test_labels) == 1000


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.2", True])
def test_subset_bad_fraction(cifar10_subset_file, fraction):
    cfg = _config(data_dir=str(cifar10_subset_file.parent), test_fraction=fraction)
    with pytest.raises(DataError, match="test_fraction"):
        load_classification_data(cfg)


def test_subset_has_no_tfds():
    with pytest.raises(DataError, match="no TFDS version.*data.name=cifar10"):
        load_classification_data(_config(source="tfds"))


def test_subset_without_folder(monkeypatch):
    monkeypatch.delenv("EVOSYN_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="needs a local folder"):
        load_classification_data(_config())


def test_subset_missing_file(tmp_path):
    with pytest.raises(DataError, match="CIFAR-10 subset file .* does not exist"):
        load_classification_data(_config(data_dir=str(tmp_path)))


def test_subset_wrong_file(tmp_path, subset):
    np.savez(tmp_path / "cifar10_data_batch_1_first4000.npz", x=subset[0][:10], y=subset[1][:10])
    with pytest.raises(DataError, match="not the shared cifar10_subset file"):
        load_classification_data(_config(data_dir=str(tmp_path)))


def test_flags_override_defaults_and_are_validated(cifar10_subset_file):
    folder = str(cifar10_subset_file.parent)
    d = load_classification_data(_config(data_dir=folder, augment=False, normalize=False))
    assert not d.augment and not d.normalize and d.normalization is None
    assert "augmented" not in d.description
    with pytest.raises(DataError, match="data.augment must be True or False"):
        load_classification_data(_config(data_dir=folder, augment="yes"))


# ---------------------------------------------------------------- npz source


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory, subset) -> tuple[Path, Path]:
    images, labels = subset
    folder = tmp_path_factory.mktemp("npz")
    np.savez_compressed(folder / "train.npz", x=images[:500], y=labels[:500])
    np.savez_compressed(folder / "test.npz", x=images[500:700], y=labels[500:700])
    return folder / "train.npz", folder / "test.npz"


def test_npz_separate_files(npz_files, subset):
    train, test = npz_files
    d = load_classification_data(_config(name="npz", train_file=str(train), test_file=str(test)))
    np.testing.assert_array_equal(d.train_images, subset[0][:500])
    np.testing.assert_array_equal(d.test_labels, subset[1][500:700])
    assert d.num_classes == 10 and d.input_shape == (32, 32, 3)
    assert not d.augment and not d.normalize
    assert d.description == (
        f"NumPy data from npz files {train} (train) and {test} (test) (train 500, test 200)"
    )


def test_npz_single_file_relative_to_data_dir(npz_files, subset):
    train, _ = npz_files
    d = load_classification_data(
        _config(name="npz", data_dir=str(train.parent), train_file="train.npz", test_fraction=0.3)
    )
    assert len(d.train_labels) == 350 and len(d.test_labels) == 150
    np.testing.assert_array_equal(d.test_images, subset[0][350:500])


def test_npz_num_classes(npz_files):
    train, test = npz_files
    d = load_classification_data(
        _config(name="npz", train_file=str(train), test_file=str(test), num_classes=12)
    )
    assert d.num_classes == 12
    with pytest.raises(DataError, match=r"fall outside 0\.\.4.*data.num_classes"):
        load_classification_data(
            _config(name="npz", train_file=str(train), test_file=str(test), num_classes=5)
        )


def test_npz_needs_train_file():
    with pytest.raises(DataError, match="needs --config.data.train_file"):
        load_classification_data(_config(name="npz"))


def test_npz_tfds_refused(npz_files):
    with pytest.raises(DataError, match="no TFDS version"):
        load_classification_data(_config(name="npz", source="tfds", train_file=str(npz_files[0])))


def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_errors(tmp_path, subset, npz_files):
    x, y = subset[0][:20], subset[1][:20]
    cases = [
        (_save(tmp_path / "nox.npz", images=x, y=y), r"no array\(s\) \['x'\]"),
        (_save(tmp_path / "float.npz", x=x.astype(np.float32), y=y), "x must be non-empty uint8"),
        (_save(tmp_path / "short.npz", x=x, y=y[:-1]), r"y must be integer labels of shape"),
        (_save(tmp_path / "neg.npz", x=x, y=y - 5), "negative label"),
        (tmp_path / "missing.npz", "does not exist"),
    ]
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(npz_files[0].read_bytes()[:5000])
    cases.append((truncated, "not a readable .npz archive"))
    text = tmp_path / "text.npz"
    text.write_text("hello")
    cases.append((text, "not a readable .npz archive"))
    npy = tmp_path / "single.npy"
    np.save(npy, x)
    cases.append((npy, "single .npy array"))
    for path, match in cases:
        with pytest.raises(DataError, match=match) as info:
            read_npz_images(path)
        assert str(path) in str(info.value), match


def test_npz_shape_mismatch(tmp_path, subset):
    train = _save(tmp_path / "a.npz", x=subset[0][:10], y=subset[1][:10])
    test = _save(tmp_path / "b.npz", x=subset[0][:10, :16], y=subset[1][:10])
    with pytest.raises(DataError, match="Image shapes differ"):
        load_npz_dataset(train, test)


# ---------------------------------------------------------------- pipeline: augmentation


def _batches(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _find_transform(augmented: np.ndarray, padded: np.ndarray) -> list[tuple[int, int, bool]]:
    """All (dy, dx, flip) that turn ``padded`` (H+8, W+8, C) into ``augmented`` exactly."""
    hits = []
    for dy in range(9):
        for dx in range(9):
            crop = padded[dy : dy + 32, dx : dx + 32]
            for flip in (False, True):
                if np.array_equal(crop[:, ::-1] if flip else crop, augmented):
                    hits.append((dy, dx, flip))
    return hits


@pytest.fixture(scope="module")
def small(subset):
    return subset[0][:512], subset[1][:512]


def test_augmentation_shapes_and_determinism(small):
    images, labels = small

    def epochs(seed: int, augment: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
        ds = make_classification_dataset(
            images, labels, batch_size=100, training=True, seed=seed, augment=augment
        )
        return [_batches(ds), _batches(ds)]

    a, b, c = epochs(5), epochs(5), epochs(6)
    plain = epochs(5, augment=False)
    assert a[0][0].shape == (512, 32, 32, 3) and a[0][0].dtype == np.float32
    for epoch in range(2):
        np.testing.assert_array_equal(a[epoch][0], b[epoch][0])  # rebuilt: same crops/flips
        np.testing.assert_array_equal(a[epoch][1], plain[epoch][1])  # order unchanged
    assert not np.array_equal(a[0][0], a[1][0])  # fresh augmentation each epoch
    assert not np.array_equal(a[0][0], c[0][0])


def test_augmentation_really_crops_and_flips(small):
    images, labels = small
    kwargs = dict(batch_size=128, training=True, seed=11)
    aug_x, _ = _batches(make_classification_dataset(images, labels, augment=True, **kwargs))
    plain_x, _ = _batches(make_classification_dataset(images, labels, augment=False, **kwargs))
    padded = np.pad(plain_x, [(0, 0), (4, 4), (4, 4), (0, 0)])
    transforms = []
    for i in range(len(aug_x)):
        hits = _find_transform(aug_x[i], padded[i])
        assert hits, f"image {i} is not a pad-4 crop (+ flip) of its original"
        transforms.append(hits[0])
    flips = np.mean([t[2] for t in transforms])
    offsets = {(t[0], t[1]) for t in transforms}
    assert 0.4 < flips < 0.6
    assert len(offsets) > 60  # of 81 possible offsets
    assert np.mean([(t[0], t[1]) == (4, 4) for t in transforms]) < 0.1
    assert (aug_x == 0).any(axis=(1, 2, 3)).mean() > 0.5  # zero borders from the padding


def test_augmentation_only_for_training(small):
    with pytest.raises(DataError, match="only for training"):
        make_classification_dataset(*small, batch_size=8, training=False, seed=None, augment=True)


def test_test_dataset_is_never_augmented(subset_data):
    x, y = _batches(subset_data.test_dataset(batch_size=256))
    np.testing.assert_array_equal(y, subset_data.test_labels)
    np.testing.assert_array_equal(x, subset_data.preprocess(subset_data.test_images))


# ---------------------------------------------------------------- pipeline: normalisation


def test_channel_stats_match_numpy(subset_data):
    stats = subset_data.channel_stats
    pixels = subset_data.train_images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(stats.mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.std, pixels.std(axis=0), rtol=1e-6)
    assert stats.mean.dtype == np.float32 and stats.mean.shape == (3,)


def test_normalised_train_split_has_zero_mean_unit_std(cifar10_subset_file):
    d = load_classification_data(
        _config(data_dir=str(cifar10_subset_file.parent), augment=False, normalize=True)
    )
    x, _ = _batches(d.train_dataset(batch_size=500, seed=0))
    per_channel = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(per_channel.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(per_channel.std(axis=0), 1.0, atol=1e-4)
    # the test split uses the training statistics, not its own
    test_x, _ = _batches(d.test_dataset(batch_size=500))
    expected = (d.test_images / np.float32(255.0) - d.channel_stats.mean) / d.channel_stats.std
    np.testing.assert_allclose(test_x, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(test_x.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-4)


def test_normalisation_with_and_without_cache_agree(subset_data):
    images, labels = subset_data.test_images[:64], subset_data.test_labels[:64]
    stats = subset_data.channel_stats
    kw = dict(batch_size=64, training=False, seed=None, normalization=stats)
    a, _ = _batches(make_classification_dataset(images, labels, cache=True, **kw))
    b, _ = _batches(make_classification_dataset(images, labels, cache=False, **kw))
    np.testing.assert_array_equal(a, b)


def test_channel_stats_errors(subset):
    flat = subset[0][:4].copy()
    flat[..., 1] = 7
    with pytest.raises(DataError, match=r"channel\(s\) \[1\] are constant"):
        channel_stats(flat)
    stats = channel_stats(subset[0][:16])
    grey = subset[0][:16, ..., 0]
    with pytest.raises(DataError, match="1 channel"):
        make_classification_dataset(
            grey, subset[1][:16], batch_size=8, training=False, seed=None, normalization=stats
        )


def test_subset_validation_is_the_end_of_its_training_part(subset, cifar10_subset_file):
    """By default the last 1/8 of the subset's 3,200 training images are the validation split
    that evolution decides on; the 800 test images stay apart."""
    images, labels = subset
    config = _config(data_dir=str(cifar10_subset_file.parent))
    del config["validation_size"]
    d = load_classification_data(config)
    assert len(d.train_labels) == 2800 and len(d.validation_labels) == 400
    np.testing.assert_array_equal(d.validation_images, images[2800:3200])
    np.testing.assert_array_equal(d.test_images, images[3200:])
    assert "validation 400 = the last 400 training images" in d.description
