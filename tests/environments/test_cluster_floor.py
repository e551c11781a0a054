"""Cluster floors (``evolution.min_clusters``): named layers keep at least N living clusters
whatever the environment draws; the strongest dead clusters come back with their synapses and
their readers' synapses, other layers' draws are untouched, and bad floors fail before training.
"""

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_compacts_exactly, cifar_images, residual, small_evolution

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.alignment import ChannelAlignment
from tf_evosyn.environments.base import ConstantFactor, LayerBudget
from tf_evosyn.environments.cluster_floor import ClusterFloor
from tf_evosyn.models import build, lenet5
from tf_evosyn.runs.config_checks import ConfigError, build_environment, validate_config
from tf_evosyn.synthesis.offspring import compute_heredity

RELU_CONFIG = Path(__file__).parents[2] / "configs" / "lenet5_relu_mnist.py"
HARSH = ConstantFactor(0.05, 1.0)  # keeps ~1 of 20 conv1 filters, ~30 of 500 fc1 units


def _lenet(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return tf_evosyn.evolvable(build("lenet5", conv_activation="relu"))


def _clusters(model, name: str) -> np.ndarray:
    return model.get_layer(name).living_cluster_mask()


def test_floors_revive_the_strongest_clusters_with_their_and_their_readers_synapses():
    model = _lenet()
    floors = {"conv1": 7, "fc1": 40}
    drawn, _ = tf_evosyn.synthesize(model, HARSH, seed=0)
    floored, _ = tf_evosyn.synthesize(model, ClusterFloor(HARSH, floors), seed=0)
    heredity = {h.name: h for h in compute_heredity(model, write_buffers=False)}
    for name, floor in floors.items():
        before, after = _clusters(drawn, name), _clusters(floored, name)
        assert before.sum() < floor, "the floor must bind, or this test proves nothing"
        assert after.sum() == floor and after[before].all()  # drawn clusters all stay
        revived = after & ~before
        probs = heredity[name].cluster_probs
        assert probs[revived].min() >= probs[~after].max()  # strongest first
    # A revived conv1 filter computes again with all 25 of its (dense) parent synapses, and
    # every living conv2 filter reads it again.
    revived = _clusters(floored, "conv1") & ~_clusters(drawn, "conv1")
    assert floored.get_layer("conv1").living_synapse_mask()[..., revived].all()
    conv2 = floored.get_layer("conv2").living_synapse_mask()
    assert conv2[:, :, revived][..., _clusters(floored, "conv2")].all()
    # Layers without a floor keep exactly what was drawn (floors draw no random numbers).
    for name in ("conv2", "fc2"):
        np.testing.assert_array_equal(_clusters(floored, name), _clusters(drawn, name))


def test_floors_that_never_bind_change_nothing():
    model = _lenet()
    base = LayerBudget(0.8, 0.6)
    plain, _ = tf_evosyn.synthesize(model, base, seed=3, generation=2)
    floors = ClusterFloor(base, {"conv1": 2, "fc1": 5})
    floored, _ = tf_evosyn.synthesize(model, floors, seed=3, generation=2)
    for a, b in zip(
        tf_evosyn.evolvable_layers(plain), tf_evosyn.evolvable_layers(floored), strict=True
    ):
        np.testing.assert_array_equal(a.living_synapse_mask(), b.living_synapse_mask())
        np.testing.assert_array_equal(a.living_cluster_mask(), b.living_cluster_mask())


def test_a_layer_below_its_floor_never_regains_what_its_parent_lost():
    parent, _ = tf_evosyn.synthesize(_lenet(), ClusterFloor(HARSH, {"conv1": 7}), seed=0)
    higher = ClusterFloor(HARSH, {"conv1": 12})
    child, _ = tf_evosyn.synthesize(parent, higher, seed=0, generation=2)
    kept, had = _clusters(child, "conv1"), _clusters(parent, "conv1")
    assert kept.sum() == 7 and not (kept & ~had).any()


def test_coupled_layers_share_the_floor_and_it_wins_over_alignment(datasets_dir):
    model = tf_evosyn.evolvable(residual())
    aligned = ChannelAlignment(HARSH, 8, "down")
    environment = ClusterFloor(aligned, {"b1_conv2": 12})
    offspring, _ = tf_evosyn.synthesize(model, environment, seed=1)
    stem, block = _clusters(offspring, "stem"), _clusters(offspring, "b1_conv2")
    assert block.sum() == 12  # not a multiple of 8: the floor is a requirement
    np.testing.assert_array_equal(stem, block)  # one family: the Add's inputs live together
    assert_compacts_exactly(offspring, cifar_images(datasets_dir, 16, 16))


def test_floors_round_trip_and_build_from_the_config():
    environment = ClusterFloor(LayerBudget(0.8, 0.6), {"conv1": 7})
    restored = environment_lib.get(environment_lib.serialize(environment))
    assert isinstance(restored, ClusterFloor) and isinstance(restored.base, LayerBudget)
    assert restored.get_config() == environment.get_config()
    evo = load_config_file(str(RELU_CONFIG)).evolution
    assert isinstance(build_environment(evo), LayerBudget)  # empty: no wrapper
    evo.min_clusters.conv1 = 7
    evo.min_clusters.fc1 = 10
    built = build_environment(evo)
    assert isinstance(built, ClusterFloor) and built.floors == {"conv1": 7, "fc1": 10}


@pytest.mark.parametrize(
    "floors, message",
    [
        ({"conv1": 0}, r"min_clusters\['conv1'\] must be an integer >= 1"),
        ({"conv1": True}, "must be an integer"),
        ({"conv1": "7"}, "must be an integer"),
        ({"conv1": 2.5}, "must be an integer"),
        ([("conv1", 7)], "must map layer names to counts"),
    ],
)
def test_bad_floors_name_the_fix(floors, message):
    with pytest.raises(ValueError, match=message):
        ClusterFloor(HARSH, floors)


def test_bad_floor_in_a_config_fails_validation():
    config = load_config_file(str(RELU_CONFIG))
    config.evolution.min_clusters.conv1 = 0  # a new key: the section is an open ConfigDict
    with pytest.raises(ConfigError, match=r"evolution: min_clusters\['conv1'\]"):
        validate_config(config)


# Environments that name a layer LeNet-5 lacks ("fc9"), and the key each names in its error.
UNKNOWN_LAYER = [
    (ClusterFloor(HARSH, {"fc9": 3}), "min_clusters"),
    (LayerBudget(overrides={"fc9": {"cluster_fraction": 0.5}}), "layer_budgets"),
    (tf_evosyn.FlopsBudget(0.5, overrides={"fc9": {"fraction": 0.5}}), "flops_budgets"),
    (ChannelAlignment(LayerBudget(overrides={"fc9": {}}), 4), "layer_budgets"),
]


@pytest.mark.parametrize("environment, what", UNKNOWN_LAYER)
def test_synthesize_refuses_unknown_layer_names_before_drawing(environment, what):
    """A direct ``synthesize`` call (the Python API, no Evolution) gets the same clear error; a
    misspelt LayerBudget override used to be ignored silently there."""
    with pytest.raises(ValueError, match=rf"{what}.* names \['fc9'\].*use some of \['conv1'"):
        tf_evosyn.synthesize(_lenet(), environment, seed=0)


@pytest.mark.parametrize("environment, what", UNKNOWN_LAYER[:3])
def test_unknown_layer_names_fail_before_the_ancestor_trains(
    tmp_path, mnist_small, environment, what
):
    evolution = small_evolution(tmp_path, mnist_small, environment=environment)
    with pytest.raises(ValueError, match=rf"{what}.* names \['fc9'\].*use some of \['conv1'"):
        evolution.run(lenet5(), ancestor_epochs=1)
    assert evolution.lineage.last_generation < 0  # nothing was trained or written
