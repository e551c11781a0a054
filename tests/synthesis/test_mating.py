"""m-parent synthesis (tf_evosyn.synthesis.mating) on hand-computed tensors."""

import numpy as np
import pytest

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.core.heredity import expected_survivors
from tf_evosyn.environments.alignment import ChannelAlignment
from tf_evosyn.environments.base import ConstantFactor, LayerBudget
from tf_evosyn.models import lenet5
from tf_evosyn.synthesis.mating import (
    combined_strengths,
    heredity_model,
    inherited_kernel,
    synthesize_from_parents,
)
from tf_evosyn.synthesis.offspring import compute_heredity, synthesize

# fc: 2 inputs -> 3 units. Parent A is the fittest.
KERNEL_A = np.array([[0.4, -0.2, 0.0], [0.8, 0.1, 0.0]], np.float32)
ALIVE_A = np.array([[1, 1, 0], [1, 0, 0]], np.float32)  # unit 2 dead in A; w[1,1] dead
CLUSTERS_A = np.array([1, 1, 0], np.float32)
KERNEL_B = np.array([[-0.2, 0.6, 0.3], [0.0, 0.5, -0.9]], np.float32)
ALIVE_B = np.array([[1, 1, 1], [0, 1, 1]], np.float32)
CLUSTERS_B = np.array([1, 1, 1], np.float32)


def _parent(kernel, synapses, clusters):
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(3, name="fc"), keras.layers.Dense(2, name="out")]
    )
    model = tf_evosyn.evolvable(model)
    fc = model.get_layer("fc")
    fc.kernel.assign(kernel)
    fc.bias.assign(np.array([0.1, 0.2, 0.3], np.float32) * (1 if kernel is KERNEL_A else -1))
    fc.set_masks(synapses, clusters)
    return model


@pytest.fixture()
def parents():
    return [_parent(KERNEL_A, ALIVE_A, CLUSTERS_A), _parent(KERNEL_B, ALIVE_B, CLUSTERS_B)]


def test_combined_strengths_by_hand(parents):
    layers = [p.get_layer("fc") for p in parents]
    magnitude, alive, clusters = combined_strengths(layers)
    # mean over the 2 parents of |w| where alive (dead = 0)
    expected = np.array([[(0.4 + 0.2) / 2, (0.2 + 0.6) / 2, 0.3 / 2], [0.8 / 2, 0.5 / 2, 0.9 / 2]])
    np.testing.assert_allclose(magnitude, expected, rtol=1e-6)
    np.testing.assert_array_equal(alive, [[1, 1, 1], [1, 1, 1]])
    np.testing.assert_array_equal(clusters, [1, 1, 1])
    # weights: A's where alive in A, else B's
    np.testing.assert_allclose(inherited_kernel(layers), [[0.4, -0.2, 0.3], [0.8, 0.5, -0.9]])


def test_heredity_follows_the_single_parent_formula_on_combined_magnitudes(parents):
    fc = next(h for h in compute_heredity(heredity_model(parents), False) if h.name == "fc")
    magnitude = np.array([[0.3, 0.4, 0.15], [0.4, 0.25, 0.45]])
    strengths = magnitude.sum(axis=0)  # 0.7, 0.65, 0.6
    np.testing.assert_allclose(fc.cluster_probs, np.exp(strengths / 0.7 - 1), rtol=1e-5)
    np.testing.assert_allclose(fc.synapse_probs, np.exp(magnitude / 0.45 - 1), rtol=1e-5)


def test_offspring_inherits_from_the_fittest_parent_alive_there(parents):
    offspring, _ = synthesize_from_parents(parents, ConstantFactor(1.0, 1.0), seed=0)
    fc = offspring.get_layer("fc")
    living = fc.living_synapse_mask()
    np.testing.assert_allclose(
        fc.kernel.numpy()[living], np.array([[0.4, -0.2, 0.3], [0.8, 0.5, -0.9]])[living]
    )
    clusters = fc.living_cluster_mask()
    np.testing.assert_allclose(fc.bias.numpy()[clusters], np.array([0.1, 0.2, -0.3])[clusters])
    # a synapse dead in every parent stays dead
    dead_everywhere = _parent(KERNEL_A, ALIVE_A, CLUSTERS_A)
    twin = _parent(KERNEL_A, ALIVE_A, CLUSTERS_A)
    child, _ = synthesize_from_parents([dead_everywhere, twin], ConstantFactor(1.0, 1.0))
    assert not child.get_layer("fc").living_synapse_mask()[1, 1]
    assert not child.get_layer("fc").living_cluster_mask()[2]


def test_budgets_count_the_fittest_parent_not_the_union(parents):
    # A (fittest) has 2 living fc units and 3 living synapses; the union of A and B 3 and 6.
    budget = LayerBudget(cluster_fraction=0.5, synapse_fraction=0.5, max_factor=10.0)
    _, record = synthesize_from_parents(parents, budget, seed=0)
    union = {h.name: h for h in compute_heredity(heredity_model(parents), False)}
    synapses, clusters = expected_survivors(union["fc"], *record.factors["fc"])
    assert clusters == pytest.approx(0.5 * 2, rel=1e-4)  # not 0.5 * 3
    assert synapses == pytest.approx(0.5 * 3, rel=1e-4)  # not 0.5 * 6
    # The same budget on the fittest parent alone expects the same sizes.
    alone = {h.name: h for h in compute_heredity(parents[0], False)}
    own = budget.layer_factors(alone["fc"], 3)
    assert expected_survivors(alone["fc"], *own) == pytest.approx((synapses, clusters), rel=1e-4)


def test_one_parent_is_plain_synthesis(parents):
    a, _ = synthesize_from_parents(parents[:1], ConstantFactor(0.7, 0.8), seed=4, generation=2)
    b, _ = synthesize(parents[0], ConstantFactor(0.7, 0.8), seed=4, generation=2)
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_parents_must_align():
    other = tf_evosyn.evolvable(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, name="fc")])
    )
    with pytest.raises(ValueError, match="same evolvable layers|different kernel shapes"):
        synthesize_from_parents([_parent(KERNEL_A, ALIVE_A, CLUSTERS_A), other])


def test_anchored_draws_keep_the_environments_mask_edits():
    # Two LeNet-5 parents with different dead filters; alignment to 4 still applies after the
    # anchored draw (the environment is only bound to the fittest parent).
    parents = []
    for dead in (range(0, 20, 3), range(1, 20, 4)):
        parent = tf_evosyn.evolvable(lenet5())
        conv1 = parent.get_layer("conv1")
        clusters = np.ones(20, np.float32)
        clusters[list(dead)] = 0
        conv1.set_masks(np.ones(conv1.matrix_shape), clusters)
        parents.append(parent)
    environment = ChannelAlignment(LayerBudget(0.7, 0.7), multiple=4, rounding="nearest")
    for seed in range(3):
        offspring, _ = synthesize_from_parents(parents, environment, seed=seed)
        counts = {
            layer.name: int(layer.living_cluster_mask().sum())
            for layer in tf_evosyn.evolvable_layers(offspring)
        }
        assert counts["fc2"] == 10
        assert all(n % 4 == 0 for name, n in counts.items() if name != "fc2"), counts
