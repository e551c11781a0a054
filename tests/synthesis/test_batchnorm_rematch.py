"""Re-matching frozen BatchNorm statistics (tf_evosyn.synthesis.batchnorm_rematch)."""

import numpy as np
import pytest

import tf_evosyn
from tf_evosyn._keras import keras, tf
from tf_evosyn.environments.base import ConstantFactor
from tf_evosyn.synthesis.batchnorm_rematch import (
    calibration_inputs,
    frozen_batchnorm_layers,
    rematch_batchnorm,
)
from tf_evosyn.synthesis.offspring import synthesize

RNG = np.random.default_rng(0)
IMAGES = RNG.normal(size=(12, 8, 8, 3)).astype(np.float32)


def _chain(seed: int = 0) -> keras.Model:
    """conv -> frozen BN -> relu -> conv -> frozen BN -> pooled dense, BN statistics not 0/1."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    for name in ("bn1", "bn2"):
        layer = model.get_layer(name)
        channels = layer.moving_mean.shape[0]
        layer.set_weights(
            [
                RNG.uniform(0.5, 2.0, channels) * RNG.choice([-1, 1], channels),  # gamma
                RNG.normal(size=channels),  # beta
                RNG.normal(size=channels),  # moving mean
                RNG.uniform(0.5, 3.0, channels),  # moving variance
            ]
        )
        layer.trainable = False
    return model


def _statistics(model: keras.Model) -> list[np.ndarray]:
    return [
        w.numpy()
        for bn in frozen_batchnorm_layers(model)
        for w in (bn.moving_mean, bn.moving_variance)
    ]


def _copy(model: keras.Model) -> keras.Model:
    twin = _chain()
    twin.set_weights(model.get_weights())
    return twin


def test_an_unchanged_network_keeps_its_statistics():
    parent = _chain()
    offspring = _copy(parent)
    assert rematch_batchnorm(parent, offspring, IMAGES) == 2
    for ours, theirs in zip(_statistics(offspring), _statistics(parent), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_a_rescaled_input_is_undone_layer_by_layer():
    """conv1's filters scaled by positive factors and shifted: after the re-match bn1's output,
    and so everything after it (bn2 included), equals the parent's. Re-matching bn2 on its
    input before bn1 was re-matched would set it wrong."""
    parent = _chain()
    offspring = _copy(parent)
    conv = offspring.get_layer("conv1")
    kernel, bias = conv.get_weights()
    factors = np.array([0.3, 2.0, 5.0, 1.0, 0.7, 1.5], np.float32)
    conv.set_weights([kernel * factors, bias * factors + 0.4])
    assert not np.allclose(offspring(IMAGES).numpy(), parent(IMAGES).numpy(), atol=1e-3)
    rematch_batchnorm(parent, offspring, IMAGES)
    np.testing.assert_allclose(offspring(IMAGES).numpy(), parent(IMAGES).numpy(), atol=1e-4)
    bn2 = (offspring.get_layer("bn2"), parent.get_layer("bn2"))
    np.testing.assert_allclose(bn2[0].moving_mean.numpy(), bn2[1].moving_mean.numpy(), atol=1e-4)


def test_hand_computed_statistics():
    """One channel, input values 1 and 3 (mean 2, std 1); the parent's output has mean 5 and
    std 2 (gamma -4, beta 1): sqrt(var' + eps) = 4 * 1 / 2 = 2, mean' = 2 + (5 - 1) * 1 / 2 = 4."""

    def one_bn(mean, variance):
        inputs = keras.Input((1,))
        bn = keras.layers.BatchNormalization(epsilon=0.01, name="bn")
        model = keras.Model(inputs, bn(inputs))
        bn.set_weights([np.array([-4.0]), np.array([1.0]), np.array([mean]), np.array([variance])])
        bn.trainable = False
        return model

    # Parent: input 1, 3 normalised with mean 4 -> output -4 (x - 4) / sqrt(var + eps) + 1; with
    # var + eps = 4 the outputs are 7 and 3 (mean 5, std 2).
    parent = one_bn(4.0, 3.99)
    offspring = one_bn(0.0, 1.0)
    inputs = np.array([[1.0], [3.0]], np.float32)
    rematch_batchnorm(parent, offspring, inputs)
    bn = offspring.layers[-1]
    np.testing.assert_allclose(bn.moving_mean.numpy(), [4.0], rtol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), [4.0 - 0.01], rtol=1e-6)


def test_trainable_batchnorm_is_left_alone_and_mismatched_pairs_are_refused():
    parent = _chain()
    offspring = _copy(parent)
    offspring.get_layer("bn2").trainable = True
    before = offspring.get_layer("bn2").moving_mean.numpy()
    with pytest.raises(ValueError, match="different frozen BatchNorm layers"):
        rematch_batchnorm(parent, offspring, IMAGES)
    parent.get_layer("bn2").trainable = True
    offspring.get_layer("conv1").set_weights(
        [w * 2 for w in offspring.get_layer("conv1").get_weights()]
    )
    assert rematch_batchnorm(parent, offspring, IMAGES) == 1
    np.testing.assert_array_equal(offspring.get_layer("bn2").moving_mean.numpy(), before)


def test_a_drawn_offspring_is_rematched_and_its_dead_channels_keep_their_statistics():
    parent = tf_evosyn.evolvable(_chain())
    offspring, _ = synthesize(
        parent, ConstantFactor(cluster_factor=0.6, synapse_factor=0.8), seed=3
    )
    conv1 = offspring.get_layer("conv1")
    dead = np.flatnonzero(conv1.cluster_mask.numpy() == 0)
    assert dead.size, "the draw should kill a conv1 filter"
    before = offspring.get_layer("bn1").moving_mean.numpy()
    assert rematch_batchnorm(parent, offspring, IMAGES) == 2
    after = offspring.get_layer("bn1").moving_mean.numpy()
    np.testing.assert_array_equal(after[dead], before[dead])
    assert not np.allclose(np.delete(after, dead), np.delete(before, dead))


def test_calibration_inputs_take_the_first_images_of_a_batched_dataset():
    labels = np.zeros((12,), np.int32)
    data = tf.data.Dataset.from_tensor_slices((IMAGES, labels)).batch(5)
    taken = calibration_inputs(lambda seed: data, 7).numpy()
    np.testing.assert_array_equal(taken, IMAGES[:7])
    with pytest.raises(ValueError, match="at least 1"):
        calibration_inputs(data, 0)
