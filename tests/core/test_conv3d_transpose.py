"""Conv3DTranspose, a layer kind added as one rule file (tf_evosyn/core/kinds/conv3d_transpose.py):
its evolvable twin, the channel analysis, exact compaction of an evolved volume decoder, MACs,
save/load and TF-MOT, on hand-checkable shapes."""

import numpy as np
import pytest

from tf_evosyn import compact, evolvable, load_model, save_model
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import plan_compaction
from tf_evosyn.compaction.report import compaction_report
from tf_evosyn.core import kinds
from tf_evosyn.core.kinds.conv3d_transpose import EvoConv3DTranspose
from tf_evosyn.core.layers import EVOLVABLE_TWINS
from tf_evosyn.environments.base import ConstantFactor
from tf_evosyn.graph.dependency import PRODUCER, analyze
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.interop.tfmot import from_tfmot, to_tfmot
from tf_evosyn.synthesis.offspring import synthesize
from tf_evosyn.zoo import randomize_batchnorm, relative_difference

RNG = np.random.default_rng(0)
layers = keras.layers


def _volumes(shape, count=2):
    return RNG.normal(size=(count, *shape)).astype(np.float32)


def test_the_kind_is_registered_by_its_own_module():
    rule = kinds.rule_for(layers.Conv3DTranspose(2, 2))
    assert rule is kinds.rule_for(EvoConv3DTranspose) and rule.twin is EvoConv3DTranspose
    assert "conv3d_transpose" in kinds.KIND_MODULES
    assert EVOLVABLE_TWINS[layers.Conv3DTranspose] is EvoConv3DTranspose
    assert not rule.folds_constants and rule.macs_per_input and rule.tfmot_prunes


def test_twin_computes_the_plain_layer_and_a_dead_filter_emits_zero():
    kwargs = dict(filters=4, kernel_size=3, strides=2, padding="same", output_padding=1)
    reference, evolved = layers.Conv3DTranspose(**kwargs), EvoConv3DTranspose(**kwargs)
    shape = (3, 4, 5, 3)
    reference.build((None, *shape))
    evolved.build((None, *shape))
    evolved.copy_plain_weights(reference)
    x = _volumes(shape)
    np.testing.assert_array_equal(evolved(x).numpy(), reference(x).numpy())
    # Keras stores (kd, kh, kw, filters, inputs); the matrix view puts the filters last.
    assert evolved.kernel.shape == (3, 3, 3, 4, 3)
    assert evolved.matrix_shape == (3, 3, 3, 3, 4) and evolved.num_clusters == 4
    evolved.set_masks(np.ones(evolved.matrix_shape), np.array([1, 0, 1, 1]))
    assert np.abs(evolved(x).numpy()[..., 1]).max() == 0.0
    assert not evolved.kernel.numpy()[..., 1, :].any() and evolved.kernel.numpy()[..., 0, :].all()
    restored = EvoConv3DTranspose.from_config(evolved.get_config())
    assert restored.get_config() == evolved.get_config()


def _volume_decoder(beta: float = 0.0) -> keras.Model:
    """Conv3D(6) -> BN (beta) -> ReLU -> Conv3DTranspose(5, stride 2) -> ReLU -> Conv3D(2)."""
    inputs = keras.Input((3, 4, 4, 2))
    x = layers.Conv3D(6, 1, name="encode")(inputs)
    x = layers.BatchNormalization(name="bn", beta_initializer=keras.initializers.Constant(beta))(x)
    x = layers.ReLU()(x)
    x = layers.Conv3DTranspose(5, 3, strides=2, padding="same", name="decode")(x)
    x = layers.ReLU()(x)
    return keras.Model(inputs, layers.Conv3D(2, 1, name="head")(x))


def _kill(model, name, clusters):
    layer = model.get_layer(name)
    mask = np.ones(layer.num_clusters)
    mask[clusters] = 0
    layer.set_masks(np.ones(layer.matrix_shape), mask)


def test_channel_analysis_reads_inputs_and_removes_dead_filters_exactly():
    model = evolvable(_volume_decoder(), protect_outputs=False)
    graph = analyze(model)
    assert {node.layer.name: node.kind for node in graph.nodes}["decode"] == PRODUCER
    group = graph.group_of("decode", 3)
    assert group.producers == [("decode", 3)] and group.removable
    assert "head" in [c.layer_name for c in group.consumers]  # read through the ReLU
    _kill(model, "encode", [1, 4])  # beta 0, mean 0: the dead channels are exactly 0
    _kill(model, "decode", [0, 3])
    compacted = compact(model)
    # (kd, kh, kw, filters, inputs): two filters and two input channels fewer.
    assert compacted.get_layer("decode").kernel.shape == (3, 3, 3, 3, 4)
    assert compacted.get_layer("head").kernel.shape == (1, 1, 1, 3, 2)
    x = _volumes((3, 4, 4, 2))
    assert relative_difference(model(x).numpy(), compacted(x).numpy()) < 1e-5
    rows = {row["name"]: row for row in compaction_report(model, compacted)}
    assert (rows["decode"]["channels_before"], rows["decode"]["channels_after"]) == (5, 3)


def test_a_constant_input_channel_is_kept_not_folded():
    # beta 1: the dead channel is the constant 1, which a strided transposed window sums
    # unevenly; it must stay, and the compacted model still computes the same.
    model = evolvable(_volume_decoder(beta=1.0), protect_outputs=False)
    _kill(model, "encode", [2])
    plan = plan_compaction(model)
    assert any("transposed convolution" in reason for reason in plan.kept_dead.values())
    compacted = compact(model)
    assert compacted.get_layer("decode").kernel.shape[-1] == 6
    x = _volumes((3, 4, 4, 2))
    assert relative_difference(model(x).numpy(), compacted(x).numpy()) < 1e-5


@pytest.mark.parametrize("keep_evolvable", [False, True])
def test_an_evolved_decoder_compacts_exactly(keep_evolvable):
    keras.utils.set_random_seed(0)
    model = _volume_decoder()
    randomize_batchnorm(model, np.random.default_rng(1))
    parent = evolvable(model, protect_outputs=False)
    offspring, _ = synthesize(parent, ConstantFactor(0.6, 0.7), seed=2)
    decode = offspring.get_layer("decode")
    assert 0 < decode.living_cluster_mask().sum() < decode.num_clusters
    compacted = compact(offspring, keep_evolvable=keep_evolvable)
    x = _volumes((3, 4, 4, 2), count=4)
    assert relative_difference(offspring(x).numpy(), compacted(x).numpy()) < 1e-5
    new = compacted.get_layer("decode")
    assert new.kernel.shape[-2] == decode.living_cluster_mask().sum()
    if keep_evolvable:
        assert isinstance(new, EvoConv3DTranspose)
        np.testing.assert_array_equal(new.living_cluster_mask(), np.ones(new.num_clusters, bool))


def test_macs_count_input_positions_and_living_synapses():
    inputs = keras.Input((2, 3, 4, 2))
    outputs = layers.Conv3DTranspose(5, 3, strides=2, padding="same", name="up")(inputs)
    model = evolvable(keras.Model(inputs, outputs), protect_outputs=False)
    layer = model.get_layer("up")
    synapses = np.ones(layer.matrix_shape)
    synapses[..., 0, :] = 0  # input channel 0's synapses: half of 3*3*3*2*5
    layer.set_masks(synapses, np.ones(5))
    row = count_flops(model).layers[0]
    assert row.dense_macs == 2 * 3 * 4 * 3 * 3 * 3 * 2 * 5  # every input voxel meets every tap
    assert row.living_macs == 2 * 3 * 4 * 3 * 3 * 3 * 1 * 5
    # A model input is never removed: the plain compacted layer computes every weight.
    assert count_flops(compact(model)).layers[0].dense_macs == row.dense_macs


def test_save_load_and_tfmot_round_trip_keep_the_masks(tmp_path):
    keras.utils.set_random_seed(3)
    parent = evolvable(_volume_decoder(), protect_outputs=False)
    offspring, _ = synthesize(parent, ConstantFactor(0.7, 0.8), seed=4)
    x = _volumes((3, 4, 4, 2))
    expected = offspring(x).numpy()
    loaded = load_model(save_model(offspring, tmp_path / "m"))
    assert isinstance(loaded.get_layer("decode"), EvoConv3DTranspose)
    np.testing.assert_array_equal(loaded(x).numpy(), expected)
    pruned = to_tfmot(offspring)  # TF-MOT prunes Conv3DTranspose kernels
    np.testing.assert_allclose(pruned(x).numpy(), expected, atol=1e-5)
    back = from_tfmot(pruned, protect_outputs=False)
    np.testing.assert_array_equal(
        back.get_layer("decode").living_synapse_mask(),
        offspring.get_layer("decode").living_synapse_mask(),
    )
