"""Custom blocks: evolvable() looks inside layer subclasses that compose Keras layers (traced into
the functional graph, tf_evosyn.core.trace_blocks), refuses the unsafe ones with a reason in
evolvability_report, honours the evosyn_functional protocol, and the keras-cv / custom-block zoo
families compact exactly and lose >= 35% of their parameters."""

import numpy as np
import pytest
from helpers import random_bn

import tf_evosyn
from tf_evosyn import zoo
from tf_evosyn._keras import keras, tf
from tf_evosyn.core import flatten
from tf_evosyn.core.layers import EvoConv2D
from tf_evosyn.core.trace_blocks import trace_layer
from tf_evosyn.zoo_models import ResidualBlock

layers = keras.layers


class ConvBlock(layers.Layer):
    """conv-BN-ReLU with a base class the tracer can follow (the parent of the cases below)."""

    def __init__(self, filters: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = layers.Conv2D(filters, 3, padding="same", name=f"{self.name}_conv")
        self.bn = layers.BatchNormalization(name=f"{self.name}_bn")
        self.relu = layers.ReLU(name=f"{self.name}_relu")

    def call(self, x):
        return self.relu(self.bn(self.conv(x)))

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters}


class SignFlip(ConvBlock):
    """Python control flow on a tensor value: cannot be traced."""

    def call(self, x):
        y = super().call(x)
        if tf.reduce_mean(y) > 100.0:
            return -y
        return y


class TrainingNoise(ConvBlock):
    """A Python branch on ``training``: one trace would keep one branch."""

    def call(self, x, training=None):
        y = super().call(x)
        if training:
            y = y + 1.0
        return y


class OwnScale(ConvBlock):
    """A weight of its own, not held by a sub-layer."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(self.filters,), initializer="ones")
        super().build(input_shape)

    def call(self, x):
        return super().call(x) * self.scale


class LegacyBlock(ConvBlock):
    """The old learning-phase idiom (a branch on ``training``) declared through the protocol."""

    def call(self, x, training=None):
        if training is None:
            training = keras.backend.learning_phase()
        return self.relu(self.bn(self.conv(x), training=training))

    def evosyn_functional(self, x, training=None):
        return self.relu(self.bn(self.conv(x), training=training))


class LegacyWithoutProtocol(LegacyBlock):
    evosyn_functional = None


class WrongProtocol(LegacyBlock):
    """A declaration that does not compute what call does (no ReLU): refused."""

    def evosyn_functional(self, x, training=None):
        return self.bn(self.conv(x), training=training)


def block_model(block: layers.Layer, size: int = 8, channels: int = 3) -> keras.Model:
    """input (8x8x3) -> stem conv (6 filters) -> block -> global pooling -> Dense(3)."""
    inputs = keras.Input((size, size, channels))
    x = layers.Conv2D(6, 1, name="stem")(inputs)
    x = block(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(3, name="logits")(x), name="with_block")


def random_images(size: int = 8, count: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(count, size, size, 3)).astype(np.float32)


def inner_conv_evolves(evo: keras.Model, block_name: str) -> bool:
    """The block is gone and its inner convolution is an EvoConv2D of the outer graph."""
    names = {layer.name: layer for layer in evo.layers}
    return block_name not in names and isinstance(names.get(f"{block_name}_conv1"), EvoConv2D)


def residual_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = block_model(ResidualBlock(8, name="res"))  # 6 -> 8 channels: projection shortcut
    random_bn(model, np.random.default_rng(0))
    return model


def test_residual_block_is_inlined_its_convs_evolve_and_outputs_are_equal():
    model = residual_model()
    images = random_images()
    assert tf_evosyn.evolvability_report(model) == []  # looks inside the block
    evo = tf_evosyn.evolvable(model, strict=True)
    assert inner_conv_evolves(evo, "res")
    assert evo.get_layer("res_conv1").kernel.shape == (3, 3, 6, 8)
    assert evo.get_layer("res_conv2").kernel.shape == (3, 3, 8, 8)
    assert evo.get_layer("res_proj").kernel.shape == (1, 1, 6, 8)
    assert isinstance(evo.get_layer("res_add"), layers.Add)
    assert not any(isinstance(layer, ResidualBlock) for layer in evo.layers)
    np.testing.assert_allclose(
        evo(images, training=False).numpy(), model(images, training=False).numpy(), atol=1e-6
    )


def test_bypassing_the_tracer_keeps_the_block_whole(monkeypatch):
    """Mutation check: with the tracer bypassed, the assertion above fails."""
    monkeypatch.setattr(flatten, "traced_block", lambda layer, node: None)
    evo = tf_evosyn.evolvable(residual_model())
    assert not inner_conv_evolves(evo, "res")
    assert isinstance(evo.get_layer("res"), ResidualBlock)


def test_inlined_block_compacts_exactly_and_shrinks():
    model = residual_model()
    images = random_images()
    offspring, _ = tf_evosyn.synthesize(
        tf_evosyn.evolvable(model), tf_evosyn.ConstantFactor(0.5, 0.9), seed=0
    )
    compacted = tf_evosyn.compact(offspring)
    expected = offspring(images, training=False).numpy()
    got = compacted(images, training=False).numpy()
    assert zoo.relative_difference(expected, got) <= 1e-5
    assert compacted.get_layer("res_conv1").filters < 8  # the block's own filters shrank
    assert zoo.plain_params(compacted) < zoo.plain_params(model)


def test_a_block_called_twice_shares_its_inlined_layers():
    keras.utils.set_random_seed(0)
    block = ConvBlock(6, name="shared")
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 1, name="stem")(inputs)
    x = block(block(x))
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(x))
    flat = flatten.flatten_model(model)
    conv = flat.get_layer("shared_conv")
    assert len(conv.inbound_nodes) == 2  # one layer, two calls: weights stay shared
    np.testing.assert_allclose(flat(random_images()), model(random_images()), atol=1e-6)


class TwoWay(layers.Layer):
    """Two inputs in a list, two outputs, a nested custom block, an explicit ``training``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = ConvBlock(4, name=f"{self.name}_inner")
        self.side = layers.Conv2D(4, 1, name=f"{self.name}_side")
        self.add = layers.Add(name=f"{self.name}_add")

    def call(self, inputs, training=None):
        x, y = inputs
        u = self.inner(x, training=training)
        return u, self.add([u, self.side(y)])


def two_way_model(**call_kwargs) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    p, q = layers.Conv2D(5, 1)(inputs), layers.Conv2D(6, 1)(inputs)
    u, v = TwoWay(name="two")([p, q], **call_kwargs)
    x = layers.GlobalAveragePooling2D()(layers.Concatenate()([u, v]))
    return keras.Model(inputs, layers.Dense(3)(x))


def test_lists_tuples_and_nested_blocks_are_inlined():
    model = two_way_model()
    evo = tf_evosyn.evolvable(model, strict=True)
    names = [layer.name for layer in evo.layers]
    assert {"two_inner_conv", "two_inner_bn", "two_side", "two_add"} <= set(names)
    assert "two" not in names and "two_inner" not in names
    for training in (False, True):
        np.testing.assert_allclose(
            evo(random_images(), training=training),
            model(random_images(), training=training),
            atol=1e-5,
        )


def test_a_fixed_training_flag_is_written_in_or_refused():
    keras.utils.set_random_seed(0)
    model = block_model(LegacyBlock(name="legacy"))  # calls its BatchNorm with `training`
    inputs = keras.Input((8, 8, 3))
    outputs = LegacyBlock(name="frozen")(model.get_layer("stem")(inputs), training=False)
    frozen = keras.Model(inputs, outputs)
    evo = tf_evosyn.evolvable(frozen)
    assert evo.get_layer("frozen_bn").inbound_nodes[0].call_kwargs["training"] is False
    images = random_images()
    np.testing.assert_allclose(evo(images, training=True), frozen(images, training=True), atol=1e-5)
    # TwoWay's nested ConvBlock takes no `training`: the flag cannot be written into it.
    report = tf_evosyn.evolvability_report(two_way_model(training=False))
    assert "called with training=False" in report[0].reason and report[0].name == "two"


@pytest.mark.parametrize(
    "block, reason",
    [
        (SignFlip(name="sign"), "cannot be traced on symbolic inputs"),
        (TrainingNoise(name="noisy"), "branches on `training`"),
        (OwnScale(name="scaled"), "creates weights itself (scale"),
        (LegacyWithoutProtocol(name="legacy"), "branches on `training`"),
        (WrongProtocol(name="wrong"), "outputs differ from the block's"),
    ],
    ids=["value-control-flow", "training-branch", "own-weights", "no-protocol", "bad-protocol"],
)
def test_unsafe_blocks_stay_whole_with_the_reason_in_the_report(block, reason):
    keras.utils.set_random_seed(0)
    model = block_model(block)
    report = {s.name: s for s in tf_evosyn.evolvability_report(model)}
    assert report[block.name].type == type(block).__name__
    assert report[block.name].reason.startswith("kept whole: ")
    assert reason in report[block.name].reason
    evo = tf_evosyn.evolvable(model)
    assert isinstance(evo.get_layer(block.name), type(block))  # kept whole, still works
    images = random_images()
    np.testing.assert_allclose(evo(images), model(images), atol=1e-6)


def test_the_protocol_declares_a_block_the_tracer_would_refuse():
    keras.utils.set_random_seed(0)
    model = block_model(LegacyBlock(name="legacy"))
    random_bn(model, np.random.default_rng(1))
    assert trace_layer(model.get_layer("legacy")).model is not None
    assert tf_evosyn.evolvability_report(model) == []
    evo = tf_evosyn.evolvable(model, strict=True)
    assert isinstance(evo.get_layer("legacy_conv"), EvoConv2D)
    assert "legacy" not in [layer.name for layer in evo.layers]
    images = random_images()
    np.testing.assert_allclose(
        evo(images, training=False), model(images, training=False), atol=1e-6
    )


def test_a_lambda_of_tf_ops_becomes_tf_op_layers():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 1, name="conv")(inputs)
    x = layers.Lambda(lambda t: tf.nn.silu(t) * 2.0, name="act")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3, name="logits")(x))
    evo = tf_evosyn.evolvable(model)
    kinds = [type(layer).__name__ for layer in evo.layers]
    assert "Lambda" not in kinds and kinds.count("TFOpLambda") == 2
    graph = tf_evosyn.analyze(evo)
    assert [b.layer_name for b in graph.barriers] == ["logits"]  # the output; not the Lambda
    assert graph.group_of("conv", 0).removable  # so the conv's filters can evolve
    np.testing.assert_allclose(evo(random_images()), model(random_images()), atol=1e-6)


def test_inlined_model_saves_and_loads(tmp_path):
    evo = tf_evosyn.evolvable(residual_model())
    path = tmp_path / "evo.keras"
    evo.save(path)
    loaded = keras.models.load_model(path)
    images = random_images()
    np.testing.assert_allclose(loaded(images), evo(images), atol=1e-6)


# The zoo families of custom blocks and keras-cv backbones (tf_evosyn.zoo_models).
NEW_FAMILIES = [
    "ResidualBlockNet",
    "YOLOV8Backbone",
    "CSPDarkNetBackbone",
    "MobileNetV3Backbone",
    "EfficientNetV2Backbone",
]


@pytest.mark.parametrize(
    "constructor",
    [
        name if name == "ResidualBlockNet" else pytest.param(name, marks=pytest.mark.slow)
        for name in NEW_FAMILIES
    ],
)
def test_new_zoo_family_compacts_exactly_and_loses_35_percent(constructor):
    size = zoo.input_size(constructor)
    images = np.random.default_rng(1).uniform(size=(4, size, size, 3)).astype(np.float32)
    result = zoo.check_application(constructor, images, synapse_factor=0.9, tolerance=1e-5)
    assert result.passes, result
    assert result.relative_difference <= 1e-5, result
    assert result.removed_fraction >= 0.35, result
