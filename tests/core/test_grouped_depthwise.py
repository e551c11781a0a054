"""Grouped, depthwise and separable convolutions: evolvable layers (masks, get_config, save/load)
and their channel rules (a depthwise channel follows its input, a separable layer reads input
``c`` through rows ``c * m + j``, a grouped convolution lives or dies by whole groups), checked by
exact compaction on real images with non-trivial BatchNorm statistics."""

import numpy as np
import pytest
from helpers import cifar_images, plain_params, random_bn, relative_difference

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.layers import EvoDepthwiseConv2D, EvoSeparableConv2D
from tf_evosyn.graph.dependency import analyze

layers = keras.layers


@pytest.fixture(scope="module")
def images(datasets_dir) -> np.ndarray:
    return cifar_images(datasets_dir, count=16)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def conv_bn_relu(x, layer, name):
    x = layer(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def grouped_model() -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = conv_bn_relu(inputs, layers.Conv2D(16, 3, strides=2, padding="same", name="c1"), "c1")
    x = conv_bn_relu(x, layers.Conv2D(16, 3, padding="same", groups=4, name="grouped"), "g")
    x = layers.Conv2D(8, 1, name="project")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))


def separable_model(padding: str = "same") -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = conv_bn_relu(inputs, layers.Conv2D(8, 3, strides=2, padding="same", name="c1"), "c1")
    x = conv_bn_relu(x, layers.DepthwiseConv2D(3, padding="same", name="dw"), "dw")
    sep = layers.SeparableConv2D(12, 3, padding=padding, depth_multiplier=2, name="sep")
    x = conv_bn_relu(x, sep, "sep")
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))


def evolved(model: keras.Model, seed: int = 0) -> keras.Model:
    random_bn(model, np.random.default_rng(seed))
    return tf_evosyn.evolvable(model)


def assert_exact(masked: keras.Model, images: np.ndarray) -> keras.Model:
    compacted = compact(masked)
    expected = masked(images, training=False).numpy()
    assert relative_difference(expected, compacted(images, training=False).numpy()) <= 1e-5
    return compacted


def test_grouped_convolution_couples_each_group_and_compacts_whole_groups(images):
    model = evolved(grouped_model())
    group = analyze(model).group_of("c1", 5)
    assert sorted(group.producers) == [("c1", c) for c in range(4, 8)] + [
        ("grouped", c) for c in range(4, 8)
    ]
    for layer in tf_evosyn.evolvable_layers(model):  # group 1 of the grouped conv dies
        clusters = np.ones(layer.num_clusters, bool)
        if layer.name in ("c1", "grouped"):
            clusters[4:8] = False
        layer.set_masks(np.ones(layer.matrix_shape, bool), clusters)
    compacted = assert_exact(model, images)
    grouped = compacted.get_layer("grouped")
    assert grouped.groups == 3 and grouped.kernel.shape == (3, 3, 4, 12)
    assert compacted.get_layer("c1").kernel.shape[-1] == 12


def test_grouped_convolution_evolves_by_whole_groups_and_compacts_exactly(images):
    parent = evolved(grouped_model(), seed=1)
    offspring, _ = tf_evosyn.synthesize(parent, tf_evosyn.ConstantFactor(0.6, 0.9), seed=4)
    alive = offspring.get_layer("grouped").living_cluster_mask().reshape(4, 4)
    assert (alive.all(axis=1) | ~alive.any(axis=1)).all()  # a group lives or dies whole
    compacted = assert_exact(offspring, images)
    assert compacted.get_layer("grouped").groups == int(alive.all(axis=1).sum())


def test_depthwise_and_separable_layers_are_evolvable_and_compute_like_the_originals(images):
    model = separable_model()
    random_bn(model, np.random.default_rng(2))
    evo = tf_evosyn.evolvable(model)
    assert isinstance(evo.get_layer("dw"), EvoDepthwiseConv2D)
    assert isinstance(evo.get_layer("sep"), EvoSeparableConv2D)
    np.testing.assert_allclose(evo(images).numpy(), model(images).numpy(), atol=1e-5)
    sep = evo.get_layer("sep")
    assert sep.matrix_shape == (1, 1, 16, 12)  # pointwise filters are the clusters
    np.testing.assert_array_equal(sep.kernel_rows(np.array([1, 3])), [2, 3, 6, 7])
    assert evo.get_layer("dw").matrix_shape == (3, 3, 1, 8)
    # A masked depthwise tap changes the output exactly as zeroing that weight does.
    mask = np.ones(sep.depthwise_kernel.shape, np.float32)
    mask[1, 1, 0, 0] = 0
    sep.set_depthwise_mask(mask)
    reference = model.get_layer("sep")
    kernel = reference.depthwise_kernel.numpy()
    kernel[1, 1, 0, 0] = 0
    reference.depthwise_kernel.assign(kernel)
    np.testing.assert_allclose(evo(images).numpy(), model(images).numpy(), atol=1e-5)


@pytest.mark.parametrize("cls", [EvoDepthwiseConv2D, EvoSeparableConv2D])
def test_get_config_round_trip(cls):
    kwargs = {"depth_multiplier": 2, "evolve_clusters": False}
    layer = cls(**({"filters": 4} if cls is EvoSeparableConv2D else {}), kernel_size=3, **kwargs)
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.evolve_clusters is False


def test_synthesis_kills_depthwise_taps_and_channels_and_compacts_exactly(images, tmp_path):
    parent = evolved(separable_model(), seed=3)
    offspring, _ = tf_evosyn.synthesize(parent, tf_evosyn.ConstantFactor(0.6, 0.9), seed=5)
    sep = offspring.get_layer("sep")
    assert 0 < sep.living_depthwise_mask().sum() < sep.depthwise_mask.shape.num_elements()
    assert sep.living_synapse_count() == (
        sep.living_synapse_mask().sum() + sep.living_depthwise_mask().sum()
    )
    dw = offspring.get_layer("dw")
    group = analyze(offspring).group_of("c1", 0)
    assert ("dw", 0) in group.producers  # a depthwise channel is coupled with its input
    np.testing.assert_array_equal(
        dw.living_cluster_mask(), offspring.get_layer("c1").living_cluster_mask()
    )
    compacted = assert_exact(offspring, images)
    assert plain_params(compacted) < plain_params(parent)
    # Masks and depthwise buffers survive save/load.
    loaded = tf_evosyn.load_model(tf_evosyn.save_model(offspring, tmp_path / "m"))
    np.testing.assert_array_equal(
        loaded.get_layer("sep").depthwise_mask.numpy(), sep.depthwise_mask.numpy()
    )
    np.testing.assert_allclose(loaded(images).numpy(), offspring(images).numpy(), atol=1e-6)


def test_separable_folds_a_dead_inputs_constant_through_both_kernels(images):
    """Valid padding: a dead channel's constant after BN+ReLU, still read by living pointwise
    rows, moves into the separable layer's bias when the channel is removed."""
    model = evolved(separable_model(padding="valid"), seed=6)
    for layer in tf_evosyn.evolvable_layers(model):
        clusters = np.ones(layer.num_clusters, bool)
        if layer.name in ("c1", "dw"):
            clusters[[1, 6]] = False
        layer.set_masks(np.ones(layer.matrix_shape, bool), clusters)
    compacted = assert_exact(model, images)
    new = compacted.get_layer("sep")
    assert new.depthwise_kernel.shape == (3, 3, 6, 2) and new.pointwise_kernel.shape[2] == 12


def test_tfmot_round_trip_keeps_depthwise_and_separable_outputs(images):
    from tf_evosyn.interop.tfmot import from_tfmot, to_tfmot

    parent = evolved(separable_model(), seed=7)
    offspring, _ = tf_evosyn.synthesize(parent, tf_evosyn.ConstantFactor(0.6, 0.9), seed=8)
    expected = offspring(images, training=False).numpy()
    pruned = to_tfmot(offspring)  # Conv2D/Dense wrapped; depthwise/separable plain and masked
    np.testing.assert_allclose(pruned(images, training=False).numpy(), expected, atol=1e-5)
    back = from_tfmot(pruned)
    assert isinstance(back.get_layer("sep"), EvoSeparableConv2D)
    np.testing.assert_allclose(back(images, training=False).numpy(), expected, atol=1e-5)


def test_conv1d_evolves_and_compacts_exactly_on_mnist_rows(mnist_small):
    """Conv1D (causal and valid) rides the same channel rules: MNIST rows as 28-step sequences."""
    sequences = mnist_small.test_images[:16].astype(np.float32) / 255.0  # (16, 28, 28)
    inputs = keras.Input((28, 28))
    x = conv_bn_relu(inputs, layers.Conv1D(16, 3, padding="causal", name="c1"), "c1")
    x = conv_bn_relu(x, layers.Conv1D(16, 3, name="c2"), "c2")
    x = layers.GlobalAveragePooling1D()(x)
    model = evolved(keras.Model(inputs, layers.Dense(10, name="logits")(x)), seed=9)
    assert isinstance(model.get_layer("c1"), tf_evosyn.EvoConv1D)
    offspring, _ = tf_evosyn.synthesize(model, tf_evosyn.ConstantFactor(0.6, 0.9), seed=10)
    compacted = assert_exact(offspring, sequences)
    living = offspring.get_layer("c2").living_cluster_mask().sum()
    assert living < 16 and compacted.get_layer("c2").kernel.shape[-1] == living
