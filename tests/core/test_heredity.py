"""Heredity probabilities against hand-computed values, and the statistics of sampling."""

import math

import numpy as np
import pytest

from tf_evosyn.core import heredity
from tf_evosyn.environments.base import ConstantFactor, LayerBudget, SynapseBudget, get, serialize

E = math.e

# A 2x2 "kernel" with 3 clusters (last axis). Column sums of |w|: 1+2+0+1=4, 2+2+2+2=8, 1+0+0+1=2.
WEIGHTS = np.array([[[1.0, -2.0, 1.0], [2.0, 2.0, 0.0]], [[0.0, -2.0, 0.0], [-1.0, 2.0, -1.0]]])
ALIVE = np.ones_like(WEIGHTS, dtype=bool)


def test_cluster_strengths_sum_absolute_living_weights():
    np.testing.assert_allclose(heredity.cluster_strengths(WEIGHTS, ALIVE), [4.0, 8.0, 2.0])
    dead = ALIVE.copy()
    dead[0, 1, 1] = False  # a dead synapse counts as 0
    np.testing.assert_allclose(heredity.cluster_strengths(WEIGHTS, dead), [4.0, 6.0, 2.0])


def test_cluster_heredity_matches_formula():
    probs = heredity.cluster_heredity(np.array([4.0, 8.0, 2.0]), np.ones(3, bool))
    np.testing.assert_allclose(probs, [math.exp(0.5 - 1), 1.0, math.exp(0.25 - 1)])


def test_synapse_heredity_matches_formula_and_dead_is_zero():
    alive = ALIVE.copy()
    alive[1, 0, 0] = False
    probs = heredity.synapse_heredity(WEIGHTS, alive)
    expected = np.exp(np.abs(WEIGHTS) / 2.0 - 1.0)
    expected[1, 0, 0] = 0.0
    np.testing.assert_allclose(probs, expected)
    assert probs.max() == pytest.approx(1.0)


def test_weakest_living_cluster_gets_about_one_over_e():
    probs = heredity.cluster_heredity(np.array([1e-9, 5.0, 10.0]), np.ones(3, bool))
    assert probs[0] == pytest.approx(1 / E, rel=1e-6)
    assert probs[2] == 1.0


def test_dead_cluster_has_zero_probability_and_max_is_over_living():
    probs = heredity.cluster_heredity(np.array([4.0, 8.0, 2.0]), np.array([True, False, True]))
    np.testing.assert_allclose(probs, [1.0, 0.0, math.exp(0.5 - 1)])


def test_layer_heredity_ignores_synapses_of_dead_clusters():
    layer = heredity.layer_heredity("l", WEIGHTS, ALIVE, np.array([True, False, True]))
    assert not layer.synapse_alive[..., 1].any()
    np.testing.assert_allclose(layer.cluster_probs, [1.0, 0.0, math.exp(0.5 - 1)])


def _layer(weights, evolve_clusters=True, alive=None, clusters_alive=None):
    alive = np.ones_like(weights, bool) if alive is None else alive
    clusters_alive = np.ones(weights.shape[-1], bool) if clusters_alive is None else clusters_alive
    return heredity.layer_heredity("l", weights, alive, clusters_alive, evolve_clusters)


def test_stronger_clusters_survive_more_often():
    rng = np.random.default_rng(0)
    weights = np.stack([np.full((25,), s) for s in (0.1, 0.4, 0.7, 1.0)], axis=-1)
    layer = _layer(weights)
    survivals = np.zeros(4)
    draws = 4000
    for _ in range(draws):
        survivals += heredity.sample_layer(layer, 1.0, 1.0, rng)[1]
    rates = survivals / draws
    assert np.all(np.diff(rates) > 0), rates
    # Expected rates exp(s/Z - 1); 4000 draws give a standard error below 0.008.
    np.testing.assert_allclose(rates[:3], np.exp(np.array([0.1, 0.4, 0.7]) - 1), atol=0.03)


def test_synapse_survival_rate_matches_probability_times_factor():
    rng = np.random.default_rng(1)
    weights = np.tile(np.linspace(0.05, 1.0, 20)[:, None], (1, 50))
    layer = _layer(weights, evolve_clusters=False)
    total = np.zeros_like(weights)
    draws = 400
    for _ in range(draws):
        total += heredity.sample_layer(layer, 1.0, 0.8, rng)[0]
    observed = total.mean(axis=1) / draws
    expected = 0.8 * np.exp(np.linspace(0.05, 1.0, 20) - 1)
    np.testing.assert_allclose(observed[:-1], expected[:-1], atol=0.03)


def test_masks_are_monotone():
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(3, 3, 4, 8))
    alive = rng.random(weights.shape) < 0.5
    clusters_alive = rng.random(8) < 0.6
    clusters_alive[0] = True
    layer = _layer(weights, alive=alive, clusters_alive=clusters_alive)
    for _ in range(200):
        synapses, clusters = heredity.sample_layer(layer, 1.0, 1.0, rng)
        assert not (clusters & ~clusters_alive).any()
        assert not (synapses & ~(alive & clusters_alive)).any()
        assert not (synapses & ~clusters).any()


def test_last_cluster_of_a_layer_never_dies():
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(5, 4))
    layer = _layer(weights)
    strongest = np.argmax(np.abs(weights).sum(axis=0))
    for _ in range(300):
        synapses, clusters = heredity.sample_layer(layer, 1e-6, 1e-6, rng)
        assert clusters.sum() >= 1
        assert clusters[strongest]
        # every surviving cluster keeps at least one synapse
        assert synapses[:, clusters].any(axis=0).all()


def test_protected_clusters_all_survive():
    rng = np.random.default_rng(4)
    weights = rng.normal(size=(30, 10))
    layer = _layer(weights, evolve_clusters=False)
    for _ in range(100):
        synapses, clusters = heredity.sample_layer(layer, 0.1, 0.1, rng)
        assert clusters.all()
        assert synapses.any(axis=0).all()


def test_expected_survivors_matches_monte_carlo():
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(40, 12))
    layer = _layer(weights)
    expected_synapses, expected_clusters = heredity.expected_survivors(layer, 0.8, 0.9)
    draws = [heredity.sample_layer(layer, 0.8, 0.9, rng) for _ in range(1500)]
    assert np.mean([s.sum() for s, _ in draws]) == pytest.approx(expected_synapses, rel=0.05)
    assert np.mean([c.sum() for _, c in draws]) == pytest.approx(expected_clusters, rel=0.05)


def test_constant_factor_validation_and_config_round_trip():
    with pytest.raises(ValueError, match="cluster_factor"):
        ConstantFactor(cluster_factor=1.5)
    env = ConstantFactor(0.7, 0.9)
    rebuilt = get(serialize(env))
    assert isinstance(rebuilt, ConstantFactor) and rebuilt.get_config() == env.get_config()


def test_synapse_budget_hits_the_expected_fraction():
    rng = np.random.default_rng(6)
    layers = [_layer(rng.normal(size=(50, 20))), _layer(rng.normal(size=(3, 3, 8, 16)))]
    env = SynapseBudget(fraction=0.3, level="both")
    for layer, factors in zip(layers, env.factors(layers), strict=True):
        expected, _ = heredity.expected_survivors(layer, *factors)
        assert expected == pytest.approx(0.3 * layer.synapse_alive.sum(), rel=1e-3)
    assert get(serialize(env)).get_config() == env.get_config()
    with pytest.raises(ValueError, match="level"):
        SynapseBudget(0.5, level="everything")


def test_synapse_budget_with_a_constant_cluster_factor_and_generous_environment():
    rng = np.random.default_rng(7)
    layer = _layer(rng.normal(size=(200, 30)))
    # Heredity alone keeps roughly half; a 0.8 budget needs a factor above 1 at synapse level.
    env = SynapseBudget(fraction=0.8, level="synapse", max_factor=5.0, cluster_factor=0.9)
    [(cluster_factor, synapse_factor)] = env.factors([layer])
    assert cluster_factor == 0.9 and synapse_factor > 1.0
    expected, _ = heredity.expected_survivors(layer, cluster_factor, synapse_factor)
    assert expected == pytest.approx(0.8 * layer.synapse_alive.sum(), rel=1e-3)
    # A budget beyond reach (all clusters at 0.9 cannot keep 99%) saturates at max_factor.
    [(_, capped)] = SynapseBudget(0.99, "synapse", 5.0, cluster_factor=0.5).factors([layer])
    assert capped == 5.0


def test_layer_budget_hits_cluster_then_synapse_targets_per_layer():
    rng = np.random.default_rng(8)
    conv = heredity.layer_heredity(
        "conv", rng.normal(size=(5, 5, 1, 20)), np.ones((5, 5, 1, 20), bool), np.ones(20, bool)
    )
    dense = heredity.layer_heredity(
        "fc", rng.normal(size=(400, 100)), np.ones((400, 100), bool), np.ones(100, bool)
    )
    env = LayerBudget(0.7, 0.5, overrides={"conv": {"cluster_fraction": 0.9}})
    (conv_cf, conv_sf), (fc_cf, fc_sf) = env.factors([conv, dense])
    synapses, clusters = heredity.expected_survivors(dense, fc_cf, fc_sf)
    assert clusters == pytest.approx(70.0, rel=1e-3)
    assert synapses == pytest.approx(0.5 * 400 * 100, rel=1e-3)
    synapses, clusters = heredity.expected_survivors(conv, conv_cf, conv_sf)
    assert clusters == pytest.approx(18.0, rel=1e-3)  # the override, not the default 0.7
    assert synapses == pytest.approx(0.5 * 500, rel=1e-3)
    assert conv_cf > fc_cf  # less pressure where fewer clusters may die
    assert get(serialize(env)).get_config() == env.get_config()


def test_layer_budget_keeps_everything_at_fraction_one_and_rejects_bad_overrides():
    rng = np.random.default_rng(9)
    layer = heredity.layer_heredity(
        "fc", rng.normal(size=(30, 12)), np.ones((30, 12), bool), np.ones(12, bool)
    )
    [(cluster_factor, synapse_factor)] = LayerBudget(1.0, 1.0).factors([layer])
    probs = heredity.apply_factor(layer.cluster_probs, cluster_factor)
    assert np.all(probs == 1.0)
    assert np.all(heredity.apply_factor(layer.synapse_probs, synapse_factor) == 1.0)
    with pytest.raises(ValueError, match="unknown keys"):
        LayerBudget(overrides={"fc": {"fraction": 0.5}})
    with pytest.raises(ValueError, match="cluster_fraction"):
        LayerBudget(cluster_fraction=0.0)


def test_layer_budget_eases_its_step_on_redraws():
    env = LayerBudget(0.64, 0.25, overrides={"fc": {"cluster_fraction": 0.36}}, retry_relief=0.5)
    assert env.for_attempt(0) is env
    first_retry, second_retry = env.for_attempt(1), env.for_attempt(2)
    assert first_retry.fractions("conv") == pytest.approx((0.8, 0.5))
    assert first_retry.fractions("fc") == pytest.approx((0.6, 0.5))
    assert second_retry.fractions("conv") == pytest.approx((0.64**0.25, 0.25**0.25))
    assert LayerBudget(0.5, 0.5).for_attempt(3).fractions("x") == (0.5, 0.5)  # no relief
    assert get(serialize(first_retry)).get_config() == first_retry.get_config()
    with pytest.raises(ValueError, match="retry_relief"):
        LayerBudget(retry_relief=1.0)
