"""MACs and parameters per layer: hand-computed numbers, and living MACs under masks."""

import numpy as np

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.models import lenet5

LENET_MACS = {"conv1": 288_000, "conv2": 1_600_000, "fc1": 400_000, "fc2": 5_000}
LENET_PARAMS = {"conv1": 520, "conv2": 25_050, "fc1": 400_500, "fc2": 5_010}


def test_lenet5_macs_and_params_by_hand():
    report = count_flops(lenet5())
    for name, macs in LENET_MACS.items():
        row = report.layer(name)
        assert (row.macs, row.dense_macs, row.living_macs) == (macs, macs, macs)
        assert row.params == LENET_PARAMS[name]
    assert report.layer("pool1").macs == 0 and report.layer("flatten").params == 0
    assert report.total_macs == 2_293_000
    assert report.total_params == 431_080
    assert "2,293,000" in report.format()


def test_evolvable_lenet_counts_like_the_plain_one_until_masks_change():
    model = tf_evosyn.evolvable(lenet5())
    report = count_flops(model)
    assert report.total_dense_macs == report.total_living_macs == 2_293_000
    assert report.total_params == 431_080  # mask and heredity buffers are not parameters

    conv1 = model.get_layer("conv1")
    clusters = np.ones(20, dtype=bool)
    clusters[:5] = False
    conv1.set_masks(np.ones(conv1.kernel.shape, dtype=bool), clusters)
    fc1 = model.get_layer("fc1")
    synapses = np.ones(fc1.kernel.shape, dtype=bool)
    synapses[::2] = False  # half of the 800 input rows
    fc1.set_masks(synapses, np.ones(500, dtype=bool))

    report = count_flops(model)
    assert report.layer("conv1").living_macs == 15 * 25 * 24 * 24  # 216,000
    assert report.layer("conv1").dense_macs == 288_000
    assert report.layer("fc1").living_macs == report.layer("fc1").macs == 200_000
    assert report.layer("conv1").living_params == 15 * 25 + 15
    assert report.layer("fc1").living_params == 200_000 + 500
    assert report.total_living_macs == 2_293_000 - 72_000 - 200_000


def test_living_macs_equal_the_compacted_models_macs():
    """With synapses dead exactly where they read dead channels, the compacted plain model
    computes as many MACs as the masked model's living synapses."""
    model = tf_evosyn.evolvable(lenet5())
    rng = np.random.default_rng(0)
    alive_in = np.ones(1, dtype=bool)
    for layer in tf_evosyn.evolvable_layers(model):
        clusters = rng.random(layer.num_clusters) < 0.6
        if not layer.evolve_clusters:
            clusters[:] = True
        rows = alive_in if layer.name != "fc1" else np.tile(alive_in, 16)
        synapses = np.broadcast_to(rows[:, None], layer.kernel.shape[-2:])
        layer.set_masks(np.broadcast_to(synapses, layer.kernel.shape), clusters)
        alive_in = clusters
    masked = count_flops(model)
    compacted = count_flops(compact(model))
    assert compacted.total_dense_macs == masked.total_living_macs < masked.total_dense_macs
    for name in LENET_MACS:
        assert compacted.layer(name).macs == masked.layer(name).living_macs


def test_conv_strides_padding_depthwise_and_batchnorm():
    layers = keras.layers
    inputs = keras.Input((10, 10, 3))
    same = layers.Conv2D(4, 3, strides=2, padding="same", name="same")(inputs)  # 5x5x4
    valid = layers.Conv2D(4, 3, strides=2, name="valid")(inputs)  # 4x4x4
    dilated = layers.Conv2D(2, 3, dilation_rate=2, name="dilated")(inputs)  # 6x6x2
    x = layers.BatchNormalization(name="bn")(same)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)  # 5x5x8
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(3, name="fc")(x)
    model = keras.Model(inputs, [outputs, valid, dilated])
    report = count_flops(model)
    assert report.layer("same").macs == 5 * 5 * (3 * 3 * 3 * 4)  # 2,700
    assert report.layer("valid").macs == 4 * 4 * (3 * 3 * 3 * 4)  # 1,728
    assert report.layer("dilated").macs == 6 * 6 * (3 * 3 * 3 * 2)  # 1,944
    assert report.layer("dw").macs == 5 * 5 * (3 * 3 * 4 * 2)  # 1,800
    assert report.layer("dw").params == 3 * 3 * 4 * 2 + 8
    assert (report.layer("bn").macs, report.layer("bn").params) == (0, 4 * 4)
    assert report.layer("pool").macs == report.layer("gap").macs == 0
    assert report.layer("fc").macs == 8 * 3
    assert report.total_macs == 2_700 + 1_728 + 1_944 + 1_800 + 24
