"""Channel dependency analysis and physical compaction: the compacted plain model computes what
the masked model computes (on real images), and it is smaller exactly where removal is legal."""

import numpy as np
import pytest
from helpers import random_bn

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact, plan_compaction
from tf_evosyn.compaction.report import compaction_report, format_report
from tf_evosyn.core.layers import EvolvableMixin
from tf_evosyn.graph.dependency import analyze
from tf_evosyn.models import lenet5

TOLERANCE = 1e-5


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _deterministic_weights():
    """Initial weights are random; fix them so every run checks the same models."""
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="module")
def cifar_images(datasets_dir) -> np.ndarray:
    path = datasets_dir / "cifar10_subset" / "cifar10_data_batch_1_first4000.npz"
    if not path.is_file():
        pytest.skip(f"real CIFAR-10 subset {path} not found")
    with np.load(path) as data:
        return data["x"][:32].astype(np.float32) / 255.0


def assert_equivalent(masked: keras.Model, compacted: keras.Model, images: np.ndarray) -> None:
    expected = masked(images, training=False).numpy()
    actual = compacted(images, training=False).numpy()
    assert actual.shape == expected.shape
    assert np.abs(expected).max() > 1e-3  # a real, non-trivial output
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)


def assert_plain(model: keras.Model) -> None:
    assert not any(isinstance(layer, EvolvableMixin) for layer in model.layers)
    names = {w.name for w in model.weights}
    assert not any("mask" in n or "heredity" in n for n in names)


def channels(model: keras.Model, name: str) -> int:
    return int(model.get_layer(name).kernel.shape[-1])


def plain_params(model: keras.Model) -> int:
    return sum(row["params_before"] for row in compaction_report(model, model))


def kill(model, dead_clusters: dict[str, list[int]], rng, synapse_survival=0.8) -> None:
    """Random synapse masks; the listed clusters dead, all others alive."""
    for layer in tf_evosyn.evolvable_layers(model):
        synapses = rng.random(layer.matrix_shape) < synapse_survival
        clusters = np.ones(layer.num_clusters, dtype=bool)
        clusters[dead_clusters.get(layer.name, [])] = False
        layer.set_masks(synapses, clusters)


def kill_groups(model, groups, rng, synapse_survival=0.8) -> None:
    dead: dict[str, list[int]] = {}
    for group in groups:
        for name, channel in group.producers:
            dead.setdefault(name, []).append(channel)
    kill(model, dead, rng, synapse_survival)


def living(model: keras.Model, name: str) -> int:
    return int(model.get_layer(name).living_cluster_mask().sum())


# -- LeNet-5 (Sequential) ------------------------------------------------------------------------
def test_lenet_groups_are_single_channels_and_outputs_are_kept():
    model = tf_evosyn.evolvable(lenet5())
    graph = analyze(model)
    owned = [g for g in graph.groups if g.members]
    assert len(owned) == 580
    assert all(len(g.members) == 1 for g in owned)
    assert graph.group_of("conv2", 7).members == [("conv2", 7)]
    # fc1 reads conv2 channel 7 through Flatten(4x4x50) at rows 7, 57, ..., 757.
    (consumer,) = [c for c in graph.group_of("conv2", 7).consumers if c.layer_name == "fc1"]
    np.testing.assert_array_equal(consumer.indices, 7 + 50 * np.arange(16))
    assert not any(graph.group_of("fc2", c).removable for c in range(10))
    assert all(graph.group_of("fc1", c).removable for c in range(500))
    assert [(b.layer_name, b.reason) for b in graph.barriers] == [("fc2", "model output")]
    assert "fc2 (EvoDense): model output" in graph.describe()


def test_lenet_random_masks_compact_equivalently(mnist_images):
    model = tf_evosyn.evolvable(lenet5())
    rng = np.random.default_rng(0)
    dead = {
        "conv1": rng.choice(20, 8, replace=False),
        "conv2": rng.choice(50, 20, replace=False),
        "fc1": rng.choice(500, 250, replace=False),
    }
    kill(model, {k: list(v) for k, v in dead.items()}, rng, synapse_survival=0.6)
    compacted = compact(model)

    assert isinstance(compacted, keras.Sequential)
    assert_plain(compacted)
    assert_equivalent(model, compacted, mnist_images)
    for name in ("conv1", "conv2", "fc1", "fc2"):
        assert channels(compacted, name) == living(model, name)
    assert channels(compacted, "conv1") == 12 and channels(compacted, "fc2") == 10
    # fc1 rows: only the 16 positions of each living conv2 channel remain.
    assert compacted.get_layer("fc1").kernel.shape[0] == 16 * living(model, "conv2")
    assert compacted.count_params() < plain_params(model) / 2
    # Dead synapses are zeros in the plain kernel.
    conv1 = model.get_layer("conv1")
    kept = conv1.living_cluster_mask()
    np.testing.assert_array_equal(
        compacted.get_layer("conv1").kernel.numpy(), conv1.masked_kernel().numpy()[..., kept]
    )
    text = format_report(compaction_report(model, compacted))
    assert "conv2" in text and "50 -> 30" in text


def test_lenet_with_relu_convolutions_compacts_equivalently(mnist_images):
    model = tf_evosyn.evolvable(lenet5(conv_activation="relu"))
    rng = np.random.default_rng(1)
    dead = {"conv1": [0, 3, 7], "conv2": list(range(0, 50, 3)), "fc1": list(range(0, 500, 2))}
    kill(model, dead, rng, synapse_survival=0.6)
    compacted = compact(model)
    assert compacted.get_layer("conv2").activation is keras.activations.relu
    assert channels(compacted, "conv1") == 17 and channels(compacted, "conv2") == 33
    assert_equivalent(model, compacted, mnist_images)


def test_lenet_three_synthesized_generations_compact_equivalently(mnist_images):
    model = tf_evosyn.evolvable(lenet5())
    for generation in range(1, 4):
        model, _ = tf_evosyn.synthesize(
            model, tf_evosyn.ConstantFactor(0.7, 0.9), seed=5, generation=generation
        )
    compacted = compact(model)
    assert_equivalent(model, compacted, mnist_images)
    for name in ("conv1", "conv2", "fc1", "fc2"):
        assert channels(compacted, name) == living(model, name)
    assert living(model, "conv2") < 50 and living(model, "fc1") < 500
    report = {row["name"]: row for row in compaction_report(model, compacted)}
    assert report["fc1"]["params_after"] < report["fc1"]["params_before"]
    assert compacted.count_params() < plain_params(model)


# -- residual model (Functional, Add, BN, projection shortcut) ------------------------------------
def residual_model() -> keras.Model:
    layers = keras.layers

    def conv_bn(x, filters, name, kernel=3, strides=1, relu=True):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x) if relu else x

    inputs = keras.Input((32, 32, 3))
    x = conv_bn(inputs, 8, "stem")
    y = conv_bn(x, 8, "b1_conv1")
    y = conv_bn(y, 8, "b1_conv2", relu=False)
    x = layers.ReLU(name="b1_out")(layers.Add(name="b1_add")([x, y]))
    y = conv_bn(x, 12, "b2_conv1", strides=2)
    y = conv_bn(y, 12, "b2_conv2", relu=False)
    shortcut = conv_bn(x, 12, "b2_proj", kernel=1, strides=2, relu=False)
    x = layers.ReLU(name="b2_out")(layers.Add(name="b2_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return tf_evosyn.evolvable(keras.Model(inputs, outputs, name="resnet_tiny"))


def test_residual_coupled_groups():
    graph = analyze(residual_model())
    for c in range(8):
        assert graph.group_of("stem", c).members == [("b1_conv2", c), ("stem", c)]
        assert graph.group_of("b1_conv1", c).members == [("b1_conv1", c)]
    for c in range(12):
        group = graph.group_of("b2_proj", c)
        assert group.members == [("b2_conv2", c), ("b2_proj", c)]
        readers = {(x.layer_name, tuple(x.indices)) for x in group.consumers}
        assert {("b2_add", (c,)), ("b2_proj_bn", (c,)), ("b2_conv2_bn", (c,))} <= readers
        assert group.removable
    assert len([g for g in graph.groups if g.removable]) == 8 + 8 + 12 + 12
    assert "[b1_conv2:0, stem:0]" in graph.describe()


def test_residual_killed_groups_are_removed_and_equivalent(cifar_images):
    model = residual_model()
    rng = np.random.default_rng(1)
    random_bn(model, rng)
    # BN constants that ReLU turns into 0: a dead channel is then exactly 0 at the 3x3 convs.
    for name in ("stem_bn", "b1_conv1_bn", "b1_conv2_bn", "b2_conv1_bn"):
        layer = model.get_layer(name)
        layer.beta.assign(layer.beta.numpy() - 3.0)
    graph = analyze(model)
    removable = [g for g in graph.groups if g.removable]
    killed = [removable[i] for i in rng.choice(len(removable), 16, replace=False)]
    kill_groups(model, killed, rng)

    plan = plan_compaction(model, graph)
    assert plan.dead.sum() == 16 and plan.removed.sum() == 16 and not plan.kept_dead
    compacted = compact(model, graph)
    assert_plain(compacted)
    assert_equivalent(model, compacted, cifar_images)
    for name in ("stem", "b1_conv1", "b1_conv2", "b2_conv1", "b2_conv2", "b2_proj"):
        assert channels(compacted, name) == living(model, name)
    assert channels(compacted, "stem") == channels(compacted, "b1_conv2")
    assert compacted.get_layer("stem_bn").moving_mean.shape[0] == channels(compacted, "stem")
    assert compacted.count_params() < plain_params(model)


def test_residual_nonzero_constant_before_padded_conv_is_kept(cifar_images):
    model = residual_model()
    rng = np.random.default_rng(2)
    random_bn(model, rng)
    graph = analyze(model)
    # b1_conv1 channel 3 dies; BN then ReLU make it a positive constant that the zero-padded
    # 3x3 b1_conv2 cannot absorb. b2 channel 5 dies too: it only reaches GAP -> Dense, where
    # its constant (whatever it is) folds into the Dense bias exactly.
    for name, channel in (("b1_conv1_bn", 3), ("b2_proj_bn", 5)):
        bn = model.get_layer(name)
        beta = bn.beta.numpy()
        beta[channel] = 3.0  # BN(0) >= 3 - 1.06 > 0 for the stats of random_bn
        bn.beta.assign(beta)
    padded, folded = graph.group_of("b1_conv1", 3), graph.group_of("b2_proj", 5)
    kill_groups(model, [padded, folded], rng)

    plan = plan_compaction(model, graph)
    assert plan.dead[[padded.index, folded.index]].all()
    assert plan.removed[folded.index] and not plan.removed[padded.index]
    assert "zero-padded b1_conv2" in plan.kept_dead[padded.index]
    compacted = compact(model, graph)
    assert_equivalent(model, compacted, cifar_images)
    assert channels(compacted, "b1_conv1") == 8
    assert channels(compacted, "b2_proj") == channels(compacted, "b2_conv2") == 11
    logits = compacted.get_layer("logits")
    assert not np.allclose(logits.bias.numpy(), model.get_layer("logits").bias.numpy())


def test_residual_partly_dead_group_is_not_removed(cifar_images):
    model = residual_model()
    rng = np.random.default_rng(3)
    random_bn(model, rng)
    kill(model, {"stem": [0], "b2_conv2": [4]}, rng)  # their partners stay alive
    graph = analyze(model)
    plan = plan_compaction(model, graph)
    assert not plan.dead.any()
    compacted = compact(model, graph)
    assert_equivalent(model, compacted, cifar_images)
    assert channels(compacted, "stem") == channels(compacted, "b1_conv2") == 8
    assert channels(compacted, "b2_conv2") == channels(compacted, "b2_proj") == 12


# -- Inception-style Concatenate ------------------------------------------------------------------
def test_concatenate_offsets(cifar_images):
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    a = layers.Conv2D(4, 1, activation="relu", name="branch_a")(inputs)
    b = layers.Conv2D(6, 3, padding="same", activation="relu", name="branch_b")(inputs)
    x = layers.Concatenate(name="concat")([a, b])
    x = layers.Conv2D(5, 3, strides=2, name="mix")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, name="logits")(x)
    model = tf_evosyn.evolvable(keras.Model(inputs, outputs))
    graph = analyze(model)
    (reader,) = [c for c in graph.group_of("branch_b", 2).consumers if c.layer_name == "mix"]
    assert reader.indices.tolist() == [4 + 2]

    rng = np.random.default_rng(4)
    kill(model, {"branch_a": [1, 3], "branch_b": [0, 4], "mix": [2]}, rng)
    compacted = compact(model, graph)
    assert_equivalent(model, compacted, cifar_images)
    assert (channels(compacted, "branch_a"), channels(compacted, "branch_b")) == (2, 4)
    kept_rows = [0, 2, 4 + 1, 4 + 2, 4 + 3, 4 + 5]
    expected = model.get_layer("mix").masked_kernel().numpy()[:, :, kept_rows, :][..., [0, 1, 3, 4]]
    np.testing.assert_array_equal(compacted.get_layer("mix").kernel.numpy(), expected)


# -- DepthwiseConv2D follows its input channel ----------------------------------------------
def test_depthwise_channels_follow_their_input(cifar_images):
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(6, 3, strides=2, padding="same", name="expand")(inputs)
    x = layers.ReLU(name="expand_relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = layers.BatchNormalization(name="dw_bn")(x)
    x = layers.ReLU(name="dw_relu")(x)
    x = layers.Conv2D(8, 1, name="project")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, name="logits")(x)
    model = tf_evosyn.evolvable(keras.Model(inputs, outputs))
    rng = np.random.default_rng(5)
    random_bn(model, rng)
    dw = model.get_layer("dw")
    dw.bias.assign(rng.uniform(-0.5, 0.5, 12))  # dead input -> constant bias -> folded by 1x1
    graph = analyze(model)
    assert graph.group_of("expand", 2).members == [("dw", 4), ("dw", 5), ("expand", 2)]

    kill(model, {"expand": [2, 5], "dw": [4, 5, 10, 11]}, rng)  # evolvable dw: a coupled group
    compacted = compact(model, graph)
    assert_equivalent(model, compacted, cifar_images)
    assert channels(compacted, "expand") == 4
    new_dw = compacted.get_layer("dw")
    assert new_dw.depthwise_kernel.shape == (3, 3, 4, 2) and new_dw.bias.shape == (8,)
    assert compacted.get_layer("project").kernel.shape == (1, 1, 8, 8)


# -- BatchNormalization folding through Flatten ---------------------------------------------------
def flatten_model(middle=None) -> keras.Model:
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(4, 5, strides=4, name="conv")(inputs)  # 6x6x4
    x = (middle or layers.BatchNormalization(name="bn"))(x)
    x = layers.Conv2D(3, 1, name="conv2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(16, activation="relu", name="fc")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return tf_evosyn.evolvable(keras.Model(inputs, outputs))


def test_batchnorm_constant_is_folded_into_dense_after_flatten(mnist_images):
    model = flatten_model()
    rng = np.random.default_rng(6)
    random_bn(model, rng)
    kill(model, {"conv": [1], "conv2": [0, 2]}, rng)
    graph = analyze(model)
    (reader,) = [c for c in graph.group_of("conv2", 2).consumers if c.layer_name == "fc"]
    np.testing.assert_array_equal(reader.indices, np.arange(2, 108, 3))

    compacted = compact(model, graph)
    assert_equivalent(model, compacted, mnist_images)
    assert channels(compacted, "conv") == 3 and channels(compacted, "conv2") == 1
    assert compacted.get_layer("bn").gamma.shape == (3,)
    # fc keeps the rows of conv2 channel 1 (flat index i -> channel i % 3).
    fc = model.get_layer("fc")
    np.testing.assert_array_equal(
        compacted.get_layer("fc").kernel.numpy(), fc.masked_kernel().numpy()[1::3]
    )
    # conv's dead channel 1 is the BN constant k everywhere; the unpadded 1x1 conv2 absorbs
    # k * w into its bias.
    bn = model.get_layer("bn")
    k = (0.0 - bn.moving_mean.numpy()[1]) / np.sqrt(
        bn.moving_variance.numpy()[1] + bn.epsilon
    ) * bn.gamma.numpy()[1] + bn.beta.numpy()[1]
    conv2 = model.get_layer("conv2")
    w = conv2.masked_kernel().numpy()[0, 0, 1, 1]
    assert abs(k * w) > 1e-3
    np.testing.assert_allclose(
        compacted.get_layer("conv2").bias.numpy(),
        [conv2.masked_bias().numpy()[1] + k * w],
        rtol=1e-5,
    )


def test_barrier_keeps_channels_it_reads(mnist_images):
    model = flatten_model(keras.layers.LayerNormalization(name="ln"))
    rng = np.random.default_rng(7)
    kill(model, {"conv": [0, 3], "conv2": [1]}, rng)
    graph = analyze(model)
    assert ("ln", "LayerNormalization") in {(b.layer_name, b.layer_type) for b in graph.barriers}
    assert not graph.group_of("conv", 0).removable
    assert "ln (LayerNormalization)" in graph.describe()
    plan = plan_compaction(model, graph)
    assert "read by ln" in plan.kept_dead[graph.group_of("conv", 0).index]

    compacted = compact(model, graph)
    assert_equivalent(model, compacted, mnist_images)
    assert channels(compacted, "conv") == 4  # nothing removed across the barrier
    assert channels(compacted, "conv2") == 2  # after it, removal works again


def test_compact_is_public_api(mnist_images):
    model = tf_evosyn.evolvable(lenet5())
    kill(model, {"conv1": [0, 5], "fc1": list(range(100))}, np.random.default_rng(9))
    compacted = tf_evosyn.compact(model)  # the documented entry point
    assert channels(compacted, "conv1") == 18 and channels(compacted, "fc1") == 400
    assert_equivalent(model, compacted, mnist_images)
