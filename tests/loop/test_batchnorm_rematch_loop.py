"""``rematch_batchnorm_images``: the loop re-matches a drawn offspring's frozen BatchNorm to its
parent before fine-tuning (and leaves it alone when the setting is 0)."""

import numpy as np
import pytest
from helpers import small_evolution

from tf_evosyn import EvolutionSettings
from tf_evosyn._keras import keras
from tf_evosyn.core.convert import evolvable
from tf_evosyn.environments.base import ConstantFactor


def _frozen_bn_net() -> keras.Model:
    """A small MNIST convnet whose BatchNorm is frozen, as a pretrained trunk's is."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 5, strides=2, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return evolvable(keras.Model(inputs, keras.layers.Dense(10, name="logits")(x)))


def _bn_statistics(model: keras.Model) -> np.ndarray:
    layers = [model.get_layer(name) for name in ("bn1", "bn2")]
    return np.concatenate(
        [w.numpy() for bn in layers for w in (bn.moving_mean, bn.moving_variance)]
    )


def _run(tmp_path, data, images: int) -> tuple[np.ndarray, np.ndarray]:
    ancestor = _frozen_bn_net()
    workdir = tmp_path / f"images_{images}"
    evolution = small_evolution(
        workdir,
        data,
        generations=1,
        environment=ConstantFactor(0.7, 0.9),
        rematch_batchnorm_images=images,
    )
    for name in ("bn1", "bn2"):  # statistics of another data set, frozen
        bn = ancestor.get_layer(name)
        bn.moving_mean.assign(np.linspace(-0.5, 0.5, 8))
        bn.moving_variance.assign(np.linspace(0.5, 2.0, 8))
        bn.trainable = False
    evolution.run(ancestor, ancestor_epochs=1)
    parent, offspring = evolution.run_dir.load_generation(0), evolution.run_dir.load_generation(1)
    return _bn_statistics(parent), _bn_statistics(offspring)


@pytest.mark.slow  # two short evolutions: the full tier only
def test_frozen_batchnorm_is_rematched_only_when_asked(tmp_path, mnist_small):
    parent, plain = _run(tmp_path, mnist_small, images=0)
    np.testing.assert_array_equal(plain, parent)  # frozen: fine-tuning never touches them
    parent, rematched = _run(tmp_path, mnist_small, images=32)
    assert not np.allclose(rematched, parent, atol=1e-4)


def test_a_negative_image_count_is_refused():
    with pytest.raises(ValueError, match="rematch_batchnorm_images must be >= 0"):
        EvolutionSettings(rematch_batchnorm_images=-1).validate()
