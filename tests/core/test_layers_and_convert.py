"""Evolvable layers, evolvable() conversion, and save/load round trips with masks intact."""

import numpy as np
import pytest

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.core.layers import EvoConv2D, EvoDense
from tf_evosyn.models import lenet5


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")


def _random_masks(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in tf_evosyn.evolvable_layers(model):
        clusters = rng.random(layer.num_clusters) < 0.6
        clusters[0] = True
        layer.set_masks(rng.random(layer.kernel.shape) < 0.5, clusters)


def test_lenet5_has_the_papers_counts():
    model = lenet5()
    assert model.count_params() == 431_080
    counts = tf_evosyn.count_living(tf_evosyn.evolvable(model))
    assert (counts.synapses, counts.clusters) == (430_500, 580)
    assert [layer.total_clusters for layer in counts.layers] == [20, 50, 500, 10]


def test_evolvable_keeps_function_and_protects_outputs(images):
    model = lenet5()
    evo = tf_evosyn.evolvable(model)
    np.testing.assert_array_equal(model(images).numpy(), evo(images).numpy())
    kinds = [type(layer) for layer in tf_evosyn.evolvable_layers(evo)]
    assert kinds == [EvoConv2D, EvoConv2D, EvoDense, EvoDense]
    assert [layer.evolve_clusters for layer in tf_evosyn.evolvable_layers(evo)] == [
        True,
        True,
        True,
        False,
    ]
    # A protected output survives a softmax placed after it.
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Softmax()(keras.layers.Dense(3, name="head")(hidden))
    evo = tf_evosyn.evolvable(keras.Model(inputs, outputs))
    assert not evo.get_layer("head").evolve_clusters and evo.get_layer("hidden").evolve_clusters


def test_forward_pass_uses_only_living_synapses_of_living_clusters():
    layer = EvoDense(3)
    layer.build((None, 2))
    layer.kernel.assign([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    layer.bias.assign([1.0, 1.0, 1.0])
    layer.set_masks(np.array([[1, 0, 1], [1, 1, 1]]), np.array([1, 1, 0]))
    out = layer(np.array([[1.0, 1.0]], dtype="float32")).numpy()
    np.testing.assert_allclose(out, [[1 + 4 + 1, 5 + 1, 0.0]])
    assert layer.kernel.numpy()[0, 1] == 0.0  # dead weights are zeroed


def test_evolvable_reports_layers_it_cannot_evolve():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.LocallyConnected2D(3, 3, name="local")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    report = tf_evosyn.evolvability_report(model)
    assert [(s.name, s.type) for s in report] == [("local", "LocallyConnected2D")]
    with pytest.raises(ValueError, match="local"):
        tf_evosyn.evolvable(model, strict=True)
    evo = tf_evosyn.evolvable(model)
    assert isinstance(evo.get_layer("conv"), EvoConv2D)
    assert type(evo.get_layer("local")) is keras.layers.LocallyConnected2D


def test_evolvable_rejects_subclassed_and_unbuilt_models():
    class Custom(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="subclassed"):
        tf_evosyn.evolvable(Custom())
    with pytest.raises(ValueError, match="input shape"):
        tf_evosyn.evolvable(keras.Sequential([keras.layers.Dense(3)]))


def test_layer_get_config_round_trip():
    layer = EvoConv2D(7, 3, strides=2, padding="same", activation="relu", evolve_clusters=False)
    config = layer.get_config()
    clone = EvoConv2D.from_config(config)
    assert clone.get_config() == config and clone.evolve_clusters is False


@pytest.mark.parametrize("fmt", ["keras", "savedmodel"])
def test_save_load_round_trip_keeps_masks_and_buffers(tmp_path, images, fmt):
    model = tf_evosyn.evolvable(lenet5())
    _random_masks(model)
    tf_evosyn.compute_heredity(model)
    if fmt == "keras":
        path = tf_evosyn.save_model(model, tmp_path / "run")
    else:
        path = tmp_path / "sm"
        model.save(path, save_format="tf")
    loaded = tf_evosyn.load_model(path)
    for a, b in zip(
        tf_evosyn.evolvable_layers(model), tf_evosyn.evolvable_layers(loaded), strict=True
    ):
        for name in (
            "kernel",
            "synapse_mask",
            "cluster_mask",
            "synapse_heredity",
            "cluster_heredity",
        ):
            np.testing.assert_array_equal(getattr(a, name).numpy(), getattr(b, name).numpy())
        assert a.evolve_clusters == b.evolve_clusters
    np.testing.assert_allclose(model(images).numpy(), loaded(images).numpy(), atol=1e-6)
    assert tf_evosyn.count_living(loaded) == tf_evosyn.count_living(model)


def test_load_model_errors_name_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.keras"):
        tf_evosyn.load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        tf_evosyn.load_model(tmp_path / "empty")
