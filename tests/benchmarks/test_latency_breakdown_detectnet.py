"""CrossChannelLRN's XNNPACK-friendly lowering and the DetectNet latency breakdown's parts
(benchmarks/tflite_ops.py, benchmarks/detectnet_breakdown.py) on a thin, small DetectNet."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import detectnet_breakdown  # noqa: E402
import latency_lineages  # noqa: E402
import tflite_ops  # noqa: E402

from tf_evosyn._keras import keras, tf  # noqa: E402
from tf_evosyn.export.artifacts import tflite_outputs  # noqa: E402
from tf_evosyn.models import detectnet  # noqa: E402
from tf_evosyn.models.lrn import CrossChannelLRN  # noqa: E402

SMALL = {"input_shape": (32, 64, 3), "width": 0.125, "normalization": "lrn"}


def _tf_lrn(x, local_size=5, alpha=1e-4, beta=0.75):
    radius = (local_size - 1) // 2
    return tf.nn.local_response_normalization(x, radius, 1.0, alpha / local_size, beta)


@pytest.mark.parametrize("local_size,alpha,beta", [(5, 1e-4, 0.75), (3, 2e-3, 0.5)])
def test_cross_channel_lrn_equals_tfs_lrn_op_with_its_gradient(local_size, alpha, beta):
    x = tf.constant(np.random.default_rng(0).normal(0, 40, (2, 3, 5, 11)).astype(np.float32))
    layer = CrossChannelLRN(local_size, alpha, beta)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, theirs = layer(x), _tf_lrn(x, local_size, alpha, beta)
        # a non-uniform upstream gradient, so every partial derivative counts
        weights = tf.constant(np.linspace(-1, 1, x.shape.num_elements()).reshape(x.shape))
        ours_loss = tf.reduce_sum(ours * tf.cast(weights, tf.float32))
        theirs_loss = tf.reduce_sum(theirs * tf.cast(weights, tf.float32))
    assert not np.allclose(ours.numpy(), x.numpy(), rtol=1e-3)  # the normalisation does act
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(ours_loss, x).numpy(), tape.gradient(theirs_loss, x).numpy(), atol=1e-5
    )


def test_detectnet_lowers_to_one_xnnpack_partition_with_the_same_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = detectnet(**SMALL)
    builtin = detectnet_breakdown.with_builtin_lrn(model)
    assert [type(layer).__name__ for layer in builtin.layers].count("BuiltinLRN") == 2
    assert detectnet_breakdown.max_relative_difference(model, builtin) < 1e-5

    ours = tflite_ops.export_tflite(model, tmp_path / "delegated")
    before = tflite_ops.export_tflite(builtin, tmp_path / "builtin")
    ops = tflite_ops.op_histogram(ours)
    assert "LOCAL_RESPONSE_NORMALIZATION" not in ops and "POW" not in ops
    assert tflite_ops.delegation(ours) == {"partitions": 1, "undelegated": []}
    # the builtin op splits the graph: XNNPACK before norm1, between norm1 and norm2, after norm2
    assert tflite_ops.op_histogram(before)["LOCAL_RESPONSE_NORMALIZATION"] == 2
    assert tflite_ops.delegation(before) == {
        "partitions": 3,
        "undelegated": ["LOCAL_RESPONSE_NORMALIZATION"] * 2,
    }

    images = np.random.default_rng(1).uniform(0, 255, (1, 32, 64, 3)).astype(np.float32)
    expected = model(images)
    for name, lite in tflite_outputs(ours, images).items():
        keras_out = expected[model.output_names.index(name)].numpy()
        np.testing.assert_allclose(lite, keras_out, rtol=1e-4, atol=1e-4 * np.abs(keras_out).max())


def test_one_layer_models_reproduce_their_layers_and_families_cover_every_op():
    keras.utils.set_random_seed(0)
    model = detectnet(**SMALL)
    rng = np.random.default_rng(2)
    for name in ("conv2_norm2", "inception_3a_output", "inception_3a_3x3"):
        layer = model.get_layer(name)
        alone = tflite_ops.one_layer_model(layer)
        shapes = [i.shape[1:] for i in alone.inputs]
        inputs = [rng.normal(size=(1, *s)).astype(np.float32) for s in shapes]
        args = inputs if len(inputs) > 1 else inputs[0]
        np.testing.assert_allclose(alone(args).numpy(), layer(args).numpy(), rtol=1e-6)
    kinds = {layer.name: detectnet_breakdown.family(layer) for layer in model.layers}
    assert kinds["conv1_7x7_s2"] == "stem conv" and kinds["bbox_regressor"] == "head conv"
    assert kinds["pool1_norm1"] == "LRN" and kinds["coverage"] == "sigmoid"
    assert {name for name, kind in kinds.items() if kind is None} == {
        "image",
        "pool5_drop_s1",
        "bbox",
    }


def test_drawn_lineage_takes_an_input_size_for_detectnet_only():
    environment = latency_lineages.environment_for("detectnet", 0.7, 0)
    with pytest.raises(ValueError, match="fixed input size"):
        latency_lineages.drawn_lineage("resnet56", 0, environment, (64, 64))
    (ancestor,) = latency_lineages.drawn_lineage("detectnet", 0, environment, (32, 48))
    assert tuple(ancestor.inputs[0].shape[1:]) == (32, 48, 3)
