"""Transposed and 3-D convolutions: evolvable twins, their channel rule, compaction, MACs, the
latency model's shape and TF-MOT, on hand-checkable shapes; a U-Net's decoder shrinks exactly."""

import numpy as np
import pytest

from tf_evosyn import compact, evolvable
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import plan_compaction
from tf_evosyn.compaction.report import compaction_report
from tf_evosyn.core.layers import EvoConv1DTranspose, EvoConv2DTranspose, EvoConv3D
from tf_evosyn.environments.base import ConstantFactor
from tf_evosyn.export.artifacts import export_model
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.hardware.latency_model import layer_shapes
from tf_evosyn.interop.tfmot import from_tfmot, to_tfmot
from tf_evosyn.synthesis.offspring import synthesize
from tf_evosyn.zoo import plain_params, randomize_batchnorm, relative_difference
from tf_evosyn.zoo_models import unet

RNG = np.random.default_rng(0)


def _images(shape, count=2):
    return RNG.normal(size=(count, *shape)).astype(np.float32)


@pytest.mark.parametrize(
    "plain, twin, shape, kwargs",
    [
        (keras.layers.Conv2DTranspose, EvoConv2DTranspose, (5, 6, 3), dict(output_padding=1)),
        (keras.layers.Conv1DTranspose, EvoConv1DTranspose, (7, 3), {}),
        (keras.layers.Conv3D, EvoConv3D, (4, 5, 6, 3), {}),
    ],
)
def test_twin_computes_the_plain_layer_and_a_dead_filter_emits_zero(plain, twin, shape, kwargs):
    strides = 1 if plain is keras.layers.Conv3D else 2
    layer_args = dict(filters=4, kernel_size=3, strides=strides, padding="same", **kwargs)
    reference, evolved = plain(**layer_args), twin(**layer_args)
    reference.build((None, *shape))
    evolved.build((None, *shape))
    evolved.copy_plain_weights(reference)
    x = _images(shape)
    np.testing.assert_allclose(evolved(x).numpy(), reference(x).numpy(), atol=1e-6)
    # The matrix view puts the filters last whatever Keras' layout (transposed: (..., 4, 3)).
    assert evolved.matrix_shape[-2:] == (3, 4) and evolved.num_clusters == 4
    clusters = np.array([1, 0, 1, 1])
    evolved.set_masks(np.ones(evolved.matrix_shape), clusters)
    assert np.abs(evolved(x).numpy()[..., 1]).max() == 0.0
    filter_axis = -2 if twin.swaps_kernel_axes else -1
    assert not np.take(evolved.kernel.numpy(), 1, axis=filter_axis).any()  # filter 1's weights
    assert np.take(evolved.kernel.numpy(), 0, axis=filter_axis).all()
    restored = twin.from_config(evolved.get_config())
    assert restored.evolve_clusters and restored.get_config() == evolved.get_config()


def _encoder_decoder(beta: float) -> keras.Model:
    """Conv2D(4) -> BN (beta) -> Conv2DTranspose(3, stride 2) -> Conv2D(2)."""
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(4, 1, name="encode")(inputs)
    x = keras.layers.BatchNormalization(
        name="bn", beta_initializer=keras.initializers.Constant(beta)
    )(x)
    x = keras.layers.Conv2DTranspose(3, 3, strides=2, name="decode")(x)
    outputs = keras.layers.Conv2D(2, 1, name="head")(x)
    return keras.Model(inputs, outputs)


def _kill(model, name, cluster):
    layer = model.get_layer(name)
    mask = np.ones(layer.num_clusters)
    mask[cluster] = 0
    layer.set_masks(np.ones(layer.matrix_shape), mask)


def test_transposed_convolution_reads_its_inputs_and_loses_its_own_filters():
    model = evolvable(_encoder_decoder(beta=0.0), protect_outputs=False)
    _kill(model, "encode", 2)  # BN's beta 0 and mean 0: the dead channel is exactly 0
    _kill(model, "decode", 0)
    compacted = compact(model)
    # Keras' layout (kh, kw, filters, inputs): one filter and one input channel fewer.
    assert compacted.get_layer("decode").kernel.shape == (3, 3, 2, 3)
    assert compacted.get_layer("head").kernel.shape == (1, 1, 2, 2)
    x = _images((4, 4, 2))
    assert relative_difference(model(x).numpy(), compacted(x).numpy()) < 1e-5


def test_a_constant_channel_read_by_a_transposed_convolution_is_kept():
    # beta 1: the dead channel is the constant 1; with stride 2 and a 3x3 window, output pixels
    # receive 1, 2 or 4 taps, so its contribution is no bias: it must stay.
    model = evolvable(_encoder_decoder(beta=1.0), protect_outputs=False)
    _kill(model, "encode", 2)
    plan = plan_compaction(model)
    assert any("transposed convolution" in reason for reason in plan.kept_dead.values())
    compacted = compact(model)
    assert compacted.get_layer("decode").kernel.shape[-1] == 4  # the input channel stayed
    x = _images((4, 4, 2))
    assert relative_difference(model(x).numpy(), compacted(x).numpy()) < 1e-5


def test_macs_of_a_transposed_convolution_count_input_positions():
    inputs = keras.Input((4, 4, 2))
    outputs = keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same", name="up")(inputs)
    model = evolvable(keras.Model(inputs, outputs), protect_outputs=False)
    layer = model.get_layer("up")
    synapses = np.ones(layer.matrix_shape)
    synapses[..., 0, :] = 0  # input channel 0's synapses: half of 3*3*2*5
    layer.set_masks(synapses, np.ones(5))
    row = count_flops(model).layers[0]
    assert row.dense_macs == 4 * 4 * 3 * 3 * 2 * 5  # every input pixel meets every tap
    assert row.living_macs == 4 * 4 * 3 * 3 * 1 * 5
    shape = layer_shapes(compact(model))["up"]
    assert (shape.kind, shape.in_channels, shape.out_channels) == ("deconv", 2, 5)
    assert shape.macs() == row.dense_macs


def test_tfmot_round_trip_keeps_the_masks_of_transposed_and_3d_convolutions():
    inputs = keras.Input((4, 4, 4, 2))
    x = keras.layers.Conv3D(4, 2, padding="same", name="c3")(inputs)
    x = keras.layers.Reshape((4, 4, 16))(x)
    outputs = keras.layers.Conv2DTranspose(3, 2, strides=2, name="up")(x)
    model = evolvable(keras.Model(inputs, outputs), protect_outputs=False)
    offspring, _ = synthesize(model, ConstantFactor(0.7, 0.9), seed=1)
    pruned = to_tfmot(offspring)
    back = from_tfmot(pruned, protect_outputs=False)
    x = _images((4, 4, 4, 2))
    np.testing.assert_allclose(pruned(x).numpy(), offspring(x).numpy(), atol=1e-5)
    for name in ("c3", "up"):
        np.testing.assert_array_equal(
            back.get_layer(name).living_cluster_mask(),
            offspring.get_layer(name).living_cluster_mask(),
        )
        # read back: the living synapses of a living filter (TF-MOT knows no clusters)
        np.testing.assert_array_equal(
            back.get_layer(name).living_synapse_mask(),
            offspring.get_layer(name).living_synapse_mask(),
        )


@pytest.fixture(scope="module")
def unet_offspring():
    keras.utils.set_random_seed(0)
    model = unet(32, classes=3)
    randomize_batchnorm(model, np.random.default_rng(0))
    offspring, _ = synthesize(evolvable(model), ConstantFactor(0.7, 0.9), seed=0)
    return model, offspring, compact(offspring)


def test_unet_decoder_filters_shrink_and_compaction_is_exact(unet_offspring):
    model, offspring, compacted = unet_offspring
    x = _images((32, 32, 3))
    assert relative_difference(offspring(x).numpy(), compacted(x).numpy()) < 1e-5
    assert plain_params(compacted) <= 0.65 * plain_params(model)  # >= 35% of the parameters
    rows = {row["name"]: row for row in compaction_report(offspring, compacted)}
    for level in range(3):
        deconv = rows[f"up{level}_deconv"]
        assert deconv["channels_after"] < deconv["channels_before"], deconv


@pytest.mark.slow
def test_compacted_unet_exports_to_savedmodel_and_tflite(unet_offspring, tmp_path):
    _, offspring, _ = unet_offspring
    images = RNG.uniform(0, 1, size=(4, 32, 32, 3)).astype(np.float32)
    result = export_model(offspring, tmp_path, images, preprocess_images=False)
    differences = result["max_abs_difference"]
    assert differences["saved_model"] < 1e-4 and differences["tflite"] < 1e-4, differences
    assert result["parameters"]["exported"] < result["parameters"]["model"]
