"""Tests of the CIFAR models (ResNet-20/56, Caffe cifar10_full "AlexNet") and their custom layers.

Counts are computed from the built models and pinned here; the short training checks run a
couple of steps on real images of the CIFAR-10 subset (shared/datasets/cifar10_subset).
"""

import ml_collections
import numpy as np
import pytest

import tf_evosyn
from tf_evosyn import models
from tf_evosyn._keras import keras, tf
from tf_evosyn.core.measures import count_living
from tf_evosyn.models import PadShortcut, WithinChannelLRN
from tf_evosyn.models.shortcut import centred_positions

RNG = np.random.default_rng(0)


def _kernels(model: keras.Model) -> list[tuple[str, tuple[int, ...]]]:
    return [(x.name, tuple(x.kernel.shape)) for x in model.layers if hasattr(x, "kernel")]


def _kernel_weights(model: keras.Model) -> int:
    return sum(int(np.prod(shape)) for _, shape in _kernels(model))


def _clusters(model: keras.Model) -> int:
    return sum(shape[-1] for _, shape in _kernels(model))


def _trainable(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _of_type(model: keras.Model, cls) -> list:
    return [layer for layer in model.layers if type(layer) is cls]


@pytest.fixture(scope="module")
def resnet56():
    return models.build("resnet56", input_shape=(32, 32, 3), num_classes=10)


@pytest.fixture(scope="module")
def resnet20():
    return models.build("resnet20", input_shape=(32, 32, 3), num_classes=10)


@pytest.fixture(scope="module")
def cifar_small(cifar10_subset_file):
    """64 train / 32 test real CIFAR-10 images, normalised, augmented (the CIFAR defaults)."""
    from tf_evosyn.data import load_classification_data

    config = ml_collections.ConfigDict(
        {
            "name": "cifar10_subset",
            "source": "local",
            "data_dir": str(cifar10_subset_file.parent),
            "train_limit": 64,
            "test_limit": 32,
        }
    )
    return load_classification_data(config)


# ---------------------------------------------------------------- ResNet


@pytest.mark.parametrize(
    "name, params, trainable, kernels, clusters",
    [
        ("resnet56", 857_082, 853_018, 848_944, 2_042),
        ("resnet20", 271_098, 269_722, 268_336, 698),
    ],
)
def test_resnet_counts(name, params, trainable, kernels, clusters, request):
    model = request.getfixturevalue(name)
    assert model.count_params() == params
    assert _trainable(model) == trainable
    assert _kernel_weights(model) == kernels
    assert _clusters(model) == clusters
    counted = count_living(tf_evosyn.evolvable(model))  # the library's own definition
    assert (counted.synapses, counted.clusters) == (kernels, clusters)


@pytest.mark.parametrize("name, n", [("resnet56", 9), ("resnet20", 3)])
def test_resnet_structure(name, n, request):
    model = request.getfixturevalue(name)
    assert model.name == name and model.output_shape == (None, 10)
    convs = _of_type(model, keras.layers.Conv2D)
    assert len(convs) == 6 * n + 1  # + the dense layer = 6n + 2 weighted layers
    assert all(not c.use_bias and c.kernel_size == (3, 3) for c in convs)
    assert len(_of_type(model, keras.layers.Add)) == 3 * n
    assert len(_of_type(model, keras.layers.BatchNormalization)) == 6 * n + 1
    shortcuts = _of_type(model, PadShortcut)
    assert [s.name for s in shortcuts] == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
    assert [(s.stride, s.out_channels) for s in shortcuts] == [(2, 32), (2, 64)]
    for stage, (size, filters) in enumerate([(32, 16), (16, 32), (8, 64)], start=1):
        for block in range(1, n + 1):
            prefix = f"stage{stage}_block{block}_"
            for suffix in ("conv1", "bn1", "relu1", "conv2", "bn2", "add", "out"):
                layer = model.get_layer(prefix + suffix)
                assert layer.output_shape == (None, size, size, filters), prefix + suffix
        first = model.get_layer(f"stage{stage}_block1_conv1")
        assert first.strides == ((2, 2) if stage > 1 else (1, 1))
    assert model.get_layer("stage2_block1_pad1").padding == ((1, 1), (1, 1))
    assert model.get_layer("avg_pool").output_shape == (None, 64)


def test_resnet_weight_decay(resnet20):
    regs = [c.kernel_regularizer for c in _of_type(resnet20, keras.layers.Conv2D)]
    regs.append(resnet20.get_layer("fc").kernel_regularizer)
    assert len(resnet20.losses) == len(regs) == 20
    assert [float(r.l2) for r in regs] == pytest.approx([5e-5] * 20)  # SGD decay 1e-4
    none = models.build("resnet20", weight_decay=0.0)
    assert none.losses == [] and none.count_params() == resnet20.count_params()


def test_resnet_option_b():
    model = models.build("resnet56", shortcut="B")
    assert model.name == "resnet56_b" and model.output_shape == (None, 10)
    assert not _of_type(model, PadShortcut)
    projections = [model.get_layer(f"stage{s}_block1_shortcut") for s in (2, 3)]
    assert [(p.kernel_size, p.strides, p.filters) for p in projections] == [
        ((1, 1), (2, 2), 32),
        ((1, 1), (2, 2), 64),
    ]
    assert model.get_layer("stage3_block1_shortcut_bn").output_shape == (None, 8, 8, 64)
    assert (model.count_params(), _kernel_weights(model), _clusters(model)) == (
        860_026,
        851_504,
        2_138,
    )


@pytest.mark.parametrize("kwargs", [{"depth": 21}, {"depth": 2}, {"shortcut": "C"}])
def test_resnet_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        models.resnet_cifar(**kwargs)


def test_resnet_other_input_and_classes():
    model = models.build("resnet20", input_shape=(28, 28, 1), num_classes=7)
    assert model.output_shape == (None, 7)
    assert model.get_layer("stage3_block1_shortcut").output_shape == (None, 7, 7, 64)


# ---------------------------------------------------------------- PadShortcut


def _pad_reference(x: np.ndarray, stride: int, out: int, positions) -> np.ndarray:
    sub = x[:, ::stride, ::stride, :]
    y = np.zeros(sub.shape[:3] + (out,), x.dtype)
    for i, p in enumerate(positions):
        y[..., p] = sub[..., i]
    return y


@pytest.mark.parametrize("size", [8, 7])
def test_pad_shortcut_centred(size):
    x = RNG.normal(size=(2, size, size, 16)).astype(np.float32)
    layer = PadShortcut(2, 32)
    y = layer(x).numpy()
    assert centred_positions(16, 32) == list(range(8, 24))
    expected = _pad_reference(x, 2, 32, range(8, 24))
    assert y.shape == (2, (size + 1) // 2, (size + 1) // 2, 32)
    np.testing.assert_array_equal(y, expected)
    assert np.all(y[..., :8] == 0) and np.all(y[..., 24:] == 0)
    assert layer.index_map == [16] * 8 + list(range(16)) + [16] * 8
    assert layer.weights == []


def test_pad_shortcut_custom_positions():
    positions = [9, 0, 5, 11, 2]
    x = RNG.normal(size=(3, 6, 6, 5)).astype(np.float32)
    y = PadShortcut(2, 12, positions)(x).numpy()
    np.testing.assert_array_equal(y, _pad_reference(x, 2, 12, positions))
    zero = [c for c in range(12) if c not in positions]
    assert np.all(y[..., zero] == 0)
    same = PadShortcut(1, 5, [4, 3, 2, 1, 0])(x).numpy()  # stride 1: a channel permutation
    np.testing.assert_array_equal(same, x[..., ::-1])


@pytest.mark.parametrize(
    "args, match",
    [
        ((2, 8, [0, 1, 2]), "positions has 3 entries"),
        ((2, 8, [0, 1, 1, 2]), "not distinct"),
        ((2, 8, [0, 1, 2, 8]), r"must lie in \[0, 8\)"),
        ((2, 2, None), "cannot map 4 input channels into 2"),
    ],
)
def test_pad_shortcut_validation(args, match):
    with pytest.raises(ValueError, match=match):
        PadShortcut(*args)(np.zeros((1, 4, 4, 4), np.float32))


def test_pad_shortcut_config_round_trip():
    layer = PadShortcut(2, 12, [9, 0, 5, 11, 2], name="sc")
    config = layer.get_config()
    assert config["positions"] == [9, 0, 5, 11, 2]
    assert (config["stride"], config["out_channels"], config["name"]) == (2, 12, "sc")
    clone = PadShortcut.from_config(config)
    assert clone.get_config() == config
    x = RNG.normal(size=(1, 4, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is PadShortcut and revived.positions == layer.positions
    assert keras.layers.serialize(layer)["registered_name"] == "tf_evosyn>PadShortcut"
    assert PadShortcut(2, 32).get_config()["positions"] is None  # default stays the default


def test_pad_shortcut_xla_and_tflite(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, PadShortcut(2, 8, [6, 1, 3, 4])(inputs))
    x = RNG.normal(size=(1, 8, 8, 4)).astype(np.float32)
    expected = _pad_reference(x, 2, 8, [6, 1, 3, 4])
    xla = tf.function(lambda t: model(t), jit_compile=True)
    np.testing.assert_array_equal(xla(x).numpy(), expected)

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path = tmp_path / "pad.tflite"
    path.write_bytes(converter.convert())
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(got, expected)


def test_model_save_load_round_trip(tmp_path, resnet20, cifar_small):
    x = cifar_small.preprocess(cifar_small.test_images[:8])
    expected = resnet20(x, training=False).numpy()
    path = tf_evosyn.save_model(resnet20, tmp_path / "resnet20.keras")
    for loaded in (tf_evosyn.load_model(path), keras.models.load_model(path)):
        assert [type(s) for s in _of_type(loaded, PadShortcut)] == [PadShortcut] * 2
        got = loaded(x, training=False).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    inputs = keras.Input((4, 4, 3))
    small = keras.Model(inputs, PadShortcut(2, 6, [5, 0, 2], name="sc")(inputs))
    loaded = tf_evosyn.load_model(tf_evosyn.save_model(small, tmp_path / "small.keras"))
    assert loaded.get_layer("sc").positions == [5, 0, 2]


def test_evolvable_resnet_round_trip(tmp_path, resnet20):
    evolvable = tf_evosyn.evolvable(resnet20)
    assert len(_of_type(evolvable, PadShortcut)) == 2
    loaded = tf_evosyn.load_model(tf_evosyn.save_model(evolvable, tmp_path / "evo.keras"))
    x = RNG.normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(
        loaded(x, training=False).numpy(), evolvable(x, training=False).numpy(), atol=1e-5
    )


# ---------------------------------------------------------------- AlexNet (Caffe cifar10_full)


@pytest.mark.parametrize("lrn", [False, True])
def test_alexnet_counts_and_shapes(lrn):
    model = models.build("alexnet_cifar", local_response_norm=lrn)
    assert model.count_params() == _trainable(model) == 89_578
    assert _kernel_weights(model) == 89_440 and _clusters(model) == 138
    assert _kernels(model) == [
        ("conv1", (5, 5, 3, 32)),
        ("conv2", (5, 5, 32, 32)),
        ("conv3", (5, 5, 32, 64)),
        ("fc", (1024, 10)),
    ]
    sizes = [model.get_layer(f"pool{i}").output_shape[1:3] for i in (1, 2, 3)]
    assert sizes == [(16, 16), (8, 8), (4, 4)]  # Caffe's ceil-mode pooling
    assert model.output_shape == (None, 10)
    assert len(_of_type(model, WithinChannelLRN)) == (2 if lrn else 0)
    counted = count_living(tf_evosyn.evolvable(model))
    assert (counted.synapses, counted.clusters) == (89_440, 138)


def test_alexnet_caffe_order_and_decay():
    model = models.build("alexnet_cifar", local_response_norm=True)
    assert [layer.name for layer in model.layers] == [
        "conv1", "pool1", "relu1", "norm1",
        "conv2", "relu2", "pool2", "norm2",
        "conv3", "relu3", "pool3", "flatten", "fc",
    ]  # fmt: skip
    assert isinstance(model.get_layer("pool1"), keras.layers.MaxPooling2D)
    assert isinstance(model.get_layer("pool3"), keras.layers.AveragePooling2D)
    l2 = {n: float(model.get_layer(n).kernel_regularizer.l2) for n in ("conv1", "conv3", "fc")}
    assert l2 == pytest.approx({"conv1": 0.002, "conv3": 0.002, "fc": 0.5})
    assert models.build("alexnet_cifar", weight_decay=0).losses == []


def _caffe_pool(x: np.ndarray, mode: str, k: int = 3, s: int = 2) -> np.ndarray:
    """Caffe PoolingLayer (pad 0, ceil mode) on NHWC, as in pooling_layer.cpp."""
    n, h, w, c = x.shape
    oh, ow = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    out = np.zeros((n, oh, ow, c), np.float64)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s, j * s
            he, we = min(hs + k, h), min(ws + k, w)  # pool_size uses min(hs + k, h + pad)
            window = x[:, hs:he, ws:we]
            if mode == "max":
                out[:, i, j] = window.max(axis=(1, 2))
            else:
                out[:, i, j] = window.sum(axis=(1, 2)) / ((he - hs) * (we - ws))
    return out


@pytest.mark.parametrize("size", [32, 16, 8])
def test_same_pooling_equals_caffe_ceil_mode(size):
    x = RNG.normal(size=(2, size, size, 3)).astype(np.float32)
    got_max = keras.layers.MaxPooling2D(3, 2, padding="same")(x).numpy()
    got_avg = keras.layers.AveragePooling2D(3, 2, padding="same")(x).numpy()
    np.testing.assert_allclose(got_max, _caffe_pool(x, "max"), rtol=1e-6)
    np.testing.assert_allclose(got_avg, _caffe_pool(x, "ave"), rtol=1e-5, atol=1e-6)


def test_within_channel_lrn_matches_caffe_formula():
    x = (RNG.normal(size=(2, 5, 6, 3)) * 80).astype(np.float32)
    layer = WithinChannelLRN(3, 5e-5, 0.75)
    got = layer(x).numpy()
    padded = np.pad(x.astype(np.float64) ** 2, [(0, 0), (1, 1), (1, 1), (0, 0)])
    expected = np.empty_like(got, dtype=np.float64)
    for i in range(5):
        for j in range(6):
            window = padded[:, i : i + 3, j : j + 3].sum(axis=(1, 2))  # same channel only
            expected[:, i, j] = x[:, i, j] * (1 + 5e-5 / 9 * window) ** -0.75
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not np.allclose(got, x, rtol=1e-2)  # it does normalise at this scale
    clone = WithinChannelLRN.from_config(layer.get_config())
    assert (clone.local_size, clone.alpha, clone.beta) == (3, 5e-5, 0.75)


# ---------------------------------------------------------------- zoo and training smoke


def test_zoo_names():
    assert models.names() == [
        "alexnet_cifar",
        "detectnet",
        "detectnet_mobilenetv2",
        "lenet5",
        "lstm_rows",
        "resnet20",
        "resnet56",
    ]
    with pytest.raises(ValueError, match="Unknown model"):
        models.build("resnet110")


@pytest.mark.parametrize("name", ["resnet20", "alexnet_cifar"])
def test_two_training_steps_on_real_images(name, cifar_small):
    keras.utils.set_random_seed(0)
    model = models.build(name, input_shape=cifar_small.input_shape, num_classes=10)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(
        cifar_small.train_dataset(batch_size=32, seed=0), epochs=1, steps_per_epoch=2, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    logits = model.predict(cifar_small.test_dataset(batch_size=32), verbose=0)
    assert logits.shape == (32, 10) and np.all(np.isfinite(logits))
