"""SeparableConv1D, a layer kind added as one rule file (tf_evosyn/core/kinds/separable1d.py):
its evolvable twin (pointwise filters are the clusters, depthwise taps shared synapses), the
channel analysis (input ``c`` read through rows ``c * m + j``), exact compaction of evolved
sequence models (a dead input's constant folded through both kernels), MACs and save/load."""

import numpy as np
import pytest

from tf_evosyn import compact, evolvable, evolvable_layers, load_model, save_model
from tf_evosyn._keras import keras
from tf_evosyn.core import kinds
from tf_evosyn.core.kinds.separable1d import EvoSeparableConv1D
from tf_evosyn.core.layers import EVOLVABLE_TWINS
from tf_evosyn.environments.base import ConstantFactor
from tf_evosyn.graph.dependency import PRODUCER, analyze
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.synthesis.offspring import synthesize
from tf_evosyn.zoo import randomize_batchnorm, relative_difference

RNG = np.random.default_rng(0)
layers = keras.layers


def _sequences(steps=12, channels=3, count=4):
    return RNG.normal(size=(count, steps, channels)).astype(np.float32)


def test_the_kind_is_registered_by_its_own_module():
    rule = kinds.rule_for(layers.SeparableConv1D(2, 3))
    assert rule is kinds.rule_for(EvoSeparableConv1D) and rule.twin is EvoSeparableConv1D
    assert "separable1d" in kinds.KIND_MODULES
    assert EVOLVABLE_TWINS[layers.SeparableConv1D] is EvoSeparableConv1D


@pytest.mark.parametrize("padding", ["same", "valid", "causal"])
def test_twin_computes_the_plain_layer_and_masks_taps_and_filters(padding):
    kwargs = dict(filters=4, kernel_size=3, depth_multiplier=2, padding=padding)
    reference, evolved = layers.SeparableConv1D(**kwargs), EvoSeparableConv1D(**kwargs)
    reference.build((None, 12, 3))
    evolved.build((None, 12, 3))
    evolved.copy_plain_weights(reference)
    x = _sequences()
    np.testing.assert_array_equal(evolved(x).numpy(), reference(x).numpy())
    assert evolved.matrix_shape == (1, 6, 4) and evolved.num_clusters == 4
    np.testing.assert_array_equal(evolved.kernel_rows(np.array([0, 2])), [0, 1, 4, 5])
    assert evolved.synapse_count() == 6 * 4 + 3 * 3 * 2
    evolved.set_masks(np.ones(evolved.matrix_shape), np.array([1, 1, 0, 1]))
    assert np.abs(evolved(x).numpy()[..., 2]).max() == 0.0
    # A masked depthwise tap changes the output exactly as zeroing that weight does.
    mask = np.ones(evolved.depthwise_kernel.shape, np.float32)
    mask[1, 0, 1] = 0
    evolved.set_depthwise_mask(mask)
    kernel = reference.depthwise_kernel.numpy()
    kernel[1, 0, 1] = 0
    reference.depthwise_kernel.assign(kernel)
    expected = reference(x).numpy()
    expected[..., 2] = 0
    np.testing.assert_allclose(evolved(x).numpy(), expected, atol=1e-6)
    restored = EvoSeparableConv1D.from_config(evolved.get_config())
    assert restored.get_config() == evolved.get_config()


def _sequence_model(padding: str = "same") -> keras.Model:
    """Conv1D(8) -> BN -> ReLU -> SeparableConv1D(6, m=2) -> BN -> ReLU -> pool -> Dense(3)."""
    inputs = keras.Input((12, 3))
    x = layers.Conv1D(8, 3, padding="same", name="c1")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(name="c1_bn")(x))
    x = layers.SeparableConv1D(6, 3, padding=padding, depth_multiplier=2, name="sep")(x)
    x = layers.ReLU()(layers.BatchNormalization(name="sep_bn")(x))
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(3, name="logits")(x))


def _evolvable(padding="same", seed=0):
    keras.utils.set_random_seed(seed)
    model = _sequence_model(padding)
    randomize_batchnorm(model, np.random.default_rng(seed))
    return evolvable(model)


def test_separable_layer_is_a_producer_reading_its_inputs_through_both_kernels():
    model = _evolvable()
    graph = analyze(model)
    assert {node.layer.name: node.kind for node in graph.nodes}["sep"] == PRODUCER
    group = graph.group_of("c1", 5)
    assert group.producers == [("c1", 5)] and group.removable
    assert "sep" in [c.layer_name for c in group.consumers]


def test_valid_padding_folds_a_dead_inputs_constant_through_both_kernels():
    model = _evolvable(padding="valid", seed=1)
    for layer in evolvable_layers(model):
        clusters = np.ones(layer.num_clusters, bool)
        if layer.name == "c1":
            clusters[[1, 6]] = False  # after BN + ReLU: non-zero constants
        layer.set_masks(np.ones(layer.matrix_shape, bool), clusters)
    compacted = compact(model)
    new = compacted.get_layer("sep")
    assert new.depthwise_kernel.shape == (3, 6, 2) and new.pointwise_kernel.shape == (1, 12, 6)
    x = _sequences()
    assert relative_difference(model(x).numpy(), compacted(x).numpy()) < 1e-5


@pytest.mark.parametrize("keep_evolvable", [False, True])
def test_synthesis_kills_taps_and_filters_and_compaction_is_exact(keep_evolvable, tmp_path):
    parent = _evolvable(seed=2)
    offspring, _ = synthesize(parent, ConstantFactor(0.6, 0.8), seed=3)
    sep = offspring.get_layer("sep")
    assert 0 < sep.living_depthwise_mask().sum() < sep.depthwise_mask.shape.num_elements()
    assert 0 < sep.living_cluster_mask().sum() < sep.num_clusters
    assert sep.living_synapse_count() == (
        sep.living_synapse_mask().sum() + sep.living_depthwise_mask().sum()
    )
    compacted = compact(offspring, keep_evolvable=keep_evolvable)
    x = _sequences(count=8)
    assert relative_difference(offspring(x).numpy(), compacted(x).numpy()) < 1e-5
    new = compacted.get_layer("sep")
    assert new.pointwise_kernel.shape[-1] == sep.living_cluster_mask().sum()
    if keep_evolvable:  # the depthwise masks follow the kept input channels
        assert isinstance(new, EvoSeparableConv1D)
        assert new.living_depthwise_mask().sum() == sep.living_depthwise_mask().sum()
    loaded = load_model(save_model(offspring, tmp_path / "m"))
    np.testing.assert_array_equal(
        loaded.get_layer("sep").depthwise_mask.numpy(), sep.depthwise_mask.numpy()
    )
    np.testing.assert_array_equal(loaded(x).numpy(), offspring(x).numpy())


def test_macs_count_depthwise_and_pointwise_weights_per_output_position():
    inputs = keras.Input((10, 4))
    outputs = layers.SeparableConv1D(5, 3, depth_multiplier=2, name="sep")(inputs)  # 8 steps
    model = evolvable(keras.Model(inputs, outputs), protect_outputs=False)
    layer = model.get_layer("sep")
    synapses = np.ones(layer.matrix_shape)
    synapses[:, :2, :] = 0  # the pointwise rows of input channel 0
    layer.set_masks(synapses, np.ones(5))
    row = count_flops(model).layers[0]
    assert row.dense_macs == 8 * (3 * 4 * 2 + 8 * 5)
    assert row.living_macs == 8 * (3 * 4 * 2 + 6 * 5)
