"""The heredity family P = exp(gamma (v / max v - 1)): the papers' model at gamma = 1, sharper
draws above it, budgets that still hold in expectation, and the config keys that choose it."""

import math
from pathlib import Path

import numpy as np
import pytest

from tf_evosyn import evolvable, synthesize
from tf_evosyn._keras import keras
from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.core.heredity import (
    PAPERS_HEREDITY,
    Heredity,
    cluster_heredity,
    expected_survivors,
    layer_heredity,
    sample_layer,
    synapse_heredity,
)
from tf_evosyn.core.measures import count_living
from tf_evosyn.environments.base import LayerBudget
from tf_evosyn.runs.config_checks import ConfigError, build_settings, validate_config

# Column sums of |w|: 4, 8, 2 (see test_heredity.py); max |w| = 2.
WEIGHTS = np.array([[[1.0, -2.0, 1.0], [2.0, 2.0, 0.0]], [[0.0, -2.0, 0.0], [-1.0, 2.0, -1.0]]])
ALIVE = np.ones_like(WEIGHTS, dtype=bool)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_gamma_one_is_the_papers_formula_exactly():
    layer = layer_heredity("l", WEIGHTS, ALIVE, np.ones(3, bool), heredity=Heredity(1.0, 1.0))
    np.testing.assert_array_equal(layer.synapse_probs, np.exp(np.abs(WEIGHTS) / 2.0 - 1.0))
    np.testing.assert_array_equal(
        layer.cluster_probs, [math.exp(4 / 8 - 1), 1.0, math.exp(2 / 8 - 1)]
    )
    default = layer_heredity("l", WEIGHTS, ALIVE, np.ones(3, bool))
    np.testing.assert_array_equal(default.synapse_probs, layer.synapse_probs)
    assert PAPERS_HEREDITY == Heredity()


def test_sharper_heredity_against_hand_computed_values():
    np.testing.assert_allclose(
        cluster_heredity(np.array([4.0, 8.0, 2.0]), np.ones(3, bool), sharpness=3.0),
        [math.exp(-1.5), 1.0, math.exp(-2.25)],
    )
    alive = ALIVE.copy()
    alive[1, 0, 0] = False
    probs = synapse_heredity(WEIGHTS, alive, sharpness=2.0)
    assert probs[0, 0, 0] == pytest.approx(math.exp(2.0 * (0.5 - 1.0)))  # |w| = 1
    assert probs[0, 0, 1] == 1.0 and probs[1, 0, 0] == 0.0  # strongest; dead
    assert probs[0, 1, 2] == pytest.approx(math.exp(-2.0))  # |w| = 0, alive: exp(-gamma)
    # The two sharpnesses act on their own level only.
    mixed = layer_heredity("l", WEIGHTS, ALIVE, np.ones(3, bool), heredity=Heredity(2.0, 1.0))
    np.testing.assert_array_equal(mixed.cluster_probs, cluster_heredity([4.0, 8.0, 2.0], [1] * 3))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "2"])
def test_bad_sharpness_is_refused_naming_the_papers_value(bad):
    with pytest.raises(ValueError, match=r"synapse_sharpness must be a finite number > 0 \(1.0"):
        Heredity(synapse_sharpness=bad)


def test_heredity_config_round_trips():
    sharp = Heredity(synapse_sharpness=4.0, cluster_sharpness=2.5)
    assert Heredity.from_config(sharp.get_config()) == sharp


def _dense_model() -> keras.Model:
    """One Dense layer whose synapse magnitudes are 1..64 (row i, column j: 8 i + j + 1)."""
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(8, name="fc")(inputs)
    model = keras.Model(inputs, outputs)
    magnitudes = np.arange(1, 65, dtype=np.float32).reshape(8, 8)
    signs = np.where(np.arange(64).reshape(8, 8) % 3 == 0, -1.0, 1.0)
    model.get_layer("fc").set_weights([magnitudes * signs, np.zeros(8, np.float32)])
    return evolvable(model)


BUDGET = LayerBudget(cluster_fraction=1.0, synapse_fraction=0.5, max_factor=50.0)


def _draws(sharpness: float, seeds: int = 20):
    """Offspring under a synapse budget of 50% (all 8 clusters kept by a 100% cluster budget)."""
    model = _dense_model()
    kernel = np.abs(model.get_layer("fc").kernel.numpy())
    strengths, records = [], []
    for seed in range(seeds):
        offspring, record = synthesize(
            model, BUDGET, seed=seed, heredity=Heredity(synapse_sharpness=sharpness)
        )
        alive = offspring.get_layer("fc").living_synapse_mask().astype(bool)
        strengths.append(kernel[alive].mean())
        records.append(record)
    return np.array(strengths), records, offspring


def test_a_larger_gamma_keeps_stronger_synapses_at_the_same_budget():
    papers_strength, _, _ = _draws(1.0)
    sharp_strength, _, offspring = _draws(6.0)
    # Same budget, stronger survivors: the papers' model keeps a mean |w| near the middle (32.5).
    assert sharp_strength.mean() > papers_strength.mean() + 6.0
    assert papers_strength.mean() < 40.0
    # The heredity the offspring was drawn from is the sharp one (written to the buffers).
    kernel = np.abs(_dense_model().get_layer("fc").kernel.numpy())
    written = offspring.get_layer("fc").synapse_heredity.numpy()
    np.testing.assert_allclose(written, np.exp(6.0 * (kernel / 64.0 - 1.0)), rtol=1e-5)
    assert count_living(offspring).clusters == 8


@pytest.mark.parametrize("sharpness", [1.0, 6.0])
def test_the_budget_holds_in_expectation_for_every_member(sharpness):
    """The environment solves its factors on the family's probabilities: expected = budget, and
    400 draws at those factors average to it (within 3 standard errors)."""
    _, (record, *_), _ = _draws(sharpness, seeds=1)
    kernel = _dense_model().get_layer("fc").kernel.numpy()
    layer = layer_heredity(
        "fc", kernel, np.ones_like(kernel, bool), np.ones(8, bool), heredity=Heredity(sharpness)
    )
    expected_synapses, expected_clusters = expected_survivors(layer, *record.factors["fc"])
    assert (expected_synapses, expected_clusters) == (pytest.approx(32.0, abs=1e-6), 8.0)
    drawn = [
        sample_layer(layer, *record.factors["fc"], np.random.default_rng(seed))[0].sum()
        for seed in range(400)
    ]
    assert abs(np.mean(drawn) - expected_synapses) < 3 * np.std(drawn) / math.sqrt(len(drawn))


def test_config_keys_choose_the_family_and_bad_values_stop_before_work():
    config = load_config_file(str(CONFIGS / "lenet5_mnist.py"))
    assert build_settings(config).heredity == PAPERS_HEREDITY  # the paper's config: gamma = 1
    config.evolution.synapse_sharpness = 4.0
    config.evolution.cluster_sharpness = 2.0
    assert build_settings(config).heredity == Heredity(4.0, 2.0)
    config.evolution.cluster_sharpness = 0.0
    with pytest.raises(ConfigError, match="cluster_sharpness must be a finite number > 0"):
        validate_config(config)
