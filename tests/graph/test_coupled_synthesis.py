"""Evolution in groups: synthesis draws one decision per coupled cluster group, so offspring of
residual and concatenating networks stay consistent and compact exactly (on real images)."""

import numpy as np
import pytest
from helpers import random_bn

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact, plan_compaction
from tf_evosyn.core.heredity import Heredity, layer_heredity
from tf_evosyn.graph.coupling import group_cluster_probs, plan_coupling

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def cifar_images(datasets_dir) -> np.ndarray:
    path = datasets_dir / "cifar10_subset" / "cifar10_data_batch_1_first4000.npz"
    if not path.is_file():
        pytest.fail(f"real CIFAR-10 subset {path} not found")
    with np.load(path) as data:
        return data["x"][:32].astype(np.float32) / 255.0


def conv_bn(x, filters, name, kernel=3, strides=1, relu=True):
    layers = keras.layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def resnet_style() -> keras.Model:
    """Stem + two identity blocks + a stage transition with a projection shortcut."""
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = conv_bn(inputs, 12, "stem")
    for block in ("b1", "b2"):
        y = conv_bn(x, 12, f"{block}_conv1")
        y = conv_bn(y, 12, f"{block}_conv2", relu=False)
        x = layers.ReLU(name=f"{block}_out")(layers.Add(name=f"{block}_add")([x, y]))
    y = conv_bn(x, 16, "b3_conv1", strides=2)
    y = conv_bn(y, 16, "b3_conv2", relu=False)
    shortcut = conv_bn(x, 16, "b3_proj", kernel=1, strides=2, relu=False)
    x = layers.ReLU(name="b3_out")(layers.Add(name="b3_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="resnet_style")


def inception_style() -> keras.Model:
    """Two Inception modules (1x1, 3x3 and pooled branches concatenated), then a classifier."""
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="stem")(inputs)
    for module in ("m1", "m2"):
        a = layers.Conv2D(6, 1, activation="relu", name=f"{module}_1x1")(x)
        b = layers.Conv2D(6, 1, activation="relu", name=f"{module}_3x3_reduce")(x)
        b = layers.Conv2D(8, 3, padding="same", activation="relu", name=f"{module}_3x3")(b)
        c = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{module}_pool")(x)
        c = layers.Conv2D(4, 1, activation="relu", name=f"{module}_pool_proj")(c)
        x = layers.Concatenate(name=f"{module}_concat")([a, b, c])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="inception_style")


def evolve(model: keras.Model, generations: int, environment) -> list[keras.Model]:
    lineage = [model]
    for generation in range(1, generations + 1):
        offspring, _ = tf_evosyn.synthesize(
            lineage[-1], environment, seed=11, generation=generation
        )
        lineage.append(offspring)
    return lineage


def clusters(model: keras.Model) -> dict[str, np.ndarray]:
    return {layer.name: layer.living_cluster_mask() for layer in tf_evosyn.evolvable_layers(model)}


def assert_groups_consistent(model: keras.Model) -> None:
    plan = plan_coupling(model)
    alive = clusters(model)
    for group in plan.groups:
        states = {bool(alive[name][channel]) for name, channel in group.members}
        assert len(states) == 1, f"group {group.members} is partly dead"


def assert_compacts_exactly(model: keras.Model, images: np.ndarray) -> keras.Model:
    plan = plan_compaction(model)
    assert plan.dead.any(), "evolution killed no group: the test would prove nothing"
    assert not plan.kept_dead, f"dead groups left in place: {plan.kept_dead}"
    compacted = compact(model)
    expected = model(images, training=False).numpy()
    actual = compacted(images, training=False).numpy()
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)
    return compacted


def test_residual_stage_is_one_family_of_coupled_groups():
    plan = plan_coupling(tf_evosyn.evolvable(resnet_style()))
    stage = plan.groups[plan.layer_groups["stem"][0]]
    assert stage.family == ("b1_conv2", "b2_conv2", "stem")
    transition = plan.groups[plan.layer_groups["b3_proj"][5]]
    assert transition.family == ("b3_conv2", "b3_proj")
    assert len(plan.coupled_groups()) == 12 + 16
    readers = {name for name, _ in stage.readers}
    assert readers == {"b1_conv1", "b2_conv1", "b3_conv1", "b3_proj"}


def test_group_probability_pools_the_members_strengths():
    rng = np.random.default_rng(0)
    model = tf_evosyn.evolvable(resnet_style())
    plan = plan_coupling(model)
    heredities = [
        layer_heredity(
            layer.name,
            layer.kernel.numpy() * rng.uniform(0.1, 3.0),
            *[
                layer.living_synapse_mask(),
                layer.living_cluster_mask(),
            ],
        )
        for layer in tf_evosyn.evolvable_layers(model)
    ]
    probs = group_cluster_probs(plan, heredities)
    by_name = {h.name: h for h in heredities}
    # The three members of a stage group share one probability ...
    np.testing.assert_array_equal(probs["stem"], probs["b1_conv2"])
    np.testing.assert_array_equal(probs["stem"], probs["b2_conv2"])
    # ... which is exp(r / max r - 1), r = mean over members of s_c / Z_l.
    ratios = np.mean(
        [np.log(by_name[n].cluster_probs) + 1 for n in ("stem", "b1_conv2", "b2_conv2")], axis=0
    )
    np.testing.assert_allclose(probs["stem"], np.exp(ratios / ratios.max() - 1), rtol=1e-12)
    # Uncoupled layers keep the paper's per-layer formula exactly.
    np.testing.assert_allclose(probs["b1_conv1"], by_name["b1_conv1"].cluster_probs, rtol=1e-12)
    assert (probs["logits"] == 1.0).all()  # classes are protected


def test_group_probability_uses_the_family_sharpness():
    """A coupled group at cluster sharpness gamma gets exp(gamma (r / max r - 1)) with r the mean
    of its members' s_c / Z_l (from the kernels, by hand), as a single layer's cluster does; at
    gamma = 1 it is the papers' formula, and a sharper family keeps weak groups less often."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = tf_evosyn.evolvable(resnet_style())
    plan = plan_coupling(model)
    kernels = {
        layer.name: layer.kernel.numpy() * rng.uniform(0.1, 3.0)
        for layer in tf_evosyn.evolvable_layers(model)
    }

    def heredities(gamma):
        return [
            layer_heredity(
                layer.name,
                kernels[layer.name],
                layer.living_synapse_mask(),
                layer.living_cluster_mask(),
                heredity=Heredity(cluster_sharpness=gamma),
            )
            for layer in tf_evosyn.evolvable_layers(model)
        ]

    def strength_ratio(name):
        strength = (
            np.abs(kernels[name].astype(np.float64))
            .reshape(-1, kernels[name].shape[-1])
            .sum(axis=0)
        )
        return strength / strength.max()

    members = ("stem", "b1_conv2", "b2_conv2")
    ratios = np.mean([strength_ratio(n) for n in members], axis=0)
    papers = group_cluster_probs(plan, heredities(1.0))
    np.testing.assert_allclose(papers["stem"], np.exp(ratios / ratios.max() - 1), rtol=1e-5)
    sharp = group_cluster_probs(plan, heredities(4.0), sharpness=4.0)
    np.testing.assert_allclose(sharp["stem"], np.exp(4.0 * (ratios / ratios.max() - 1)), rtol=1e-5)
    weak = ratios < ratios.max()
    assert (sharp["stem"][weak] < papers["stem"][weak]).all()
    assert sharp["stem"].max() == pytest.approx(1.0)


def test_residual_evolution_keeps_groups_whole_and_compacts_exactly(cifar_images):
    keras.utils.set_random_seed(0)
    model = tf_evosyn.evolvable(resnet_style())
    random_bn(model, np.random.default_rng(1))
    lineage = evolve(model, 3, tf_evosyn.ConstantFactor(0.7, 0.8))
    previous = clusters(lineage[0])
    for offspring in lineage[1:]:
        assert_groups_consistent(offspring)
        now = clusters(offspring)
        for name, alive in now.items():
            assert not (alive & ~previous[name]).any()  # monotone
        previous = now
    last = lineage[-1]
    alive = clusters(last)
    assert alive["stem"].sum() < 12 and alive["b3_proj"].sum() < 16
    # A synapse that reads a dead stage channel is dead in every reader of the stage.
    for reader in ("b1_conv1", "b2_conv1", "b3_conv1", "b3_proj"):
        synapses = last.get_layer(reader).living_synapse_mask()
        assert not synapses[:, :, ~alive["stem"], :].any()
    compacted = assert_compacts_exactly(last, cifar_images)
    assert compacted.get_layer("stem").kernel.shape[-1] == alive["stem"].sum()
    assert compacted.get_layer("b2_conv2").kernel.shape[-1] == alive["stem"].sum()
    assert compacted.get_layer("b3_proj").kernel.shape[-1] == alive["b3_proj"].sum()
    assert compacted.count_params() < resnet_style().count_params()


def test_inception_evolution_compacts_exactly_through_concatenation(cifar_images):
    keras.utils.set_random_seed(0)
    model = tf_evosyn.evolvable(inception_style())
    lineage = evolve(model, 2, tf_evosyn.ConstantFactor(0.85, 1.0))
    last = lineage[-1]
    assert_groups_consistent(last)
    alive = clusters(last)
    # m2's convolutions read the m1 concatenation at offsets 0 / 6 / 14.
    concat_alive = np.concatenate([alive["m1_1x1"], alive["m1_3x3"], alive["m1_pool_proj"]])
    for reader in ("m2_1x1", "m2_3x3_reduce", "m2_pool_proj"):
        synapses = last.get_layer(reader).living_synapse_mask()
        assert not synapses[:, :, ~concat_alive, :].any()
    compacted = assert_compacts_exactly(last, cifar_images)
    assert compacted.get_layer("m2_1x1").kernel.shape[-2] == concat_alive.sum()


def test_resnet56_option_a_evolution_compacts_exactly_across_stages(cifar_images):
    from tf_evosyn.models import resnet56
    from tf_evosyn.models.shortcut import PadShortcut

    keras.utils.set_random_seed(0)
    model = tf_evosyn.evolvable(resnet56())
    random_bn(model, np.random.default_rng(2))
    plan = plan_coupling(model)
    # Stage 1's 16 channels run through all 27 blocks: option A carries them into the middle
    # of stage 2 (positions 8..23) and stage 3 (24..39); the zero channels couple stage 2's
    # and stage 3's own blocks only.
    stage1 = plan.groups[plan.layer_groups["conv1"][0]]
    assert len(stage1.family) == 1 + 27
    assert ("stage2_block1_conv2", 8) in stage1.members
    assert ("stage3_block1_conv2", 24) in stage1.members
    stage2_only = plan.groups[plan.layer_groups["stage2_block1_conv2"][0]]
    assert ("stage3_block9_conv2", 16) in stage2_only.members
    assert not any(name.startswith("stage1") for name, _ in stage2_only.members)

    lineage = evolve(model, 2, tf_evosyn.ConstantFactor(0.8, 0.9))
    last = lineage[-1]
    assert_groups_consistent(last)
    compacted = assert_compacts_exactly(last, cifar_images)
    alive = clusters(last)
    for stage, block in (("stage1", "block9"), ("stage2", "block1"), ("stage3", "block9")):
        name = f"{stage}_{block}_conv2"
        assert compacted.get_layer(name).kernel.shape[-1] == alive[name].sum()
    shortcut = next(layer for layer in compacted.layers if isinstance(layer, PadShortcut))
    assert shortcut.out_channels == alive["stage2_block1_conv2"].sum()
    assert compacted.count_params() < resnet56().count_params()
