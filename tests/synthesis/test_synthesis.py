"""Synthesis of offspring from a parent: determinism, monotonicity, dead-channel propagation."""

import numpy as np
import pytest

import tf_evosyn
from tf_evosyn.graph.coupling import plan_coupling
from tf_evosyn.models import lenet5


@pytest.fixture(scope="module")
def parent():
    return tf_evosyn.evolvable(lenet5())


def _masks(model):
    return {
        layer.name: (layer.living_synapse_mask(), layer.living_cluster_mask())
        for layer in tf_evosyn.evolvable_layers(model)
    }


def test_same_seed_generation_attempt_gives_same_offspring(parent):
    a, _ = tf_evosyn.synthesize(parent, seed=3, generation=2)
    b, _ = tf_evosyn.synthesize(parent, seed=3, generation=2)
    c, _ = tf_evosyn.synthesize(parent, seed=3, generation=2, attempt=1)
    for name, (synapses, clusters) in _masks(a).items():
        np.testing.assert_array_equal(synapses, _masks(b)[name][0])
        np.testing.assert_array_equal(clusters, _masks(b)[name][1])
    assert any((_masks(a)[n][0] != _masks(c)[n][0]).any() for n in _masks(a))


def test_parent_is_unchanged_and_offspring_is_smaller(parent):
    before = [w.copy() for w in parent.get_weights()]
    offspring, record = tf_evosyn.synthesize(parent, tf_evosyn.ConstantFactor(0.8), seed=1)
    kept = [w for w, v in zip(before, parent.weights, strict=True) if "heredity" not in v.name]
    now = [v.numpy() for v in parent.weights if "heredity" not in v.name]
    for a, b in zip(kept, now, strict=True):
        np.testing.assert_array_equal(a, b)
    counts = tf_evosyn.count_living(offspring)
    assert counts.synapses < 430_500 and counts.clusters < 580
    assert counts.layers[-1].clusters == 10  # classes are protected
    assert set(record.factors) == {"conv1", "conv2", "fc1", "fc2"}


def test_heredity_buffers_hold_the_formula(parent):
    tf_evosyn.compute_heredity(parent)
    layer = parent.get_layer("conv1")
    strengths = np.abs(layer.kernel.numpy()).reshape(-1, 20).sum(axis=0)
    np.testing.assert_allclose(
        layer.cluster_heredity.numpy(), np.exp(strengths / strengths.max() - 1), rtol=1e-5
    )
    assert parent.get_layer("fc2").cluster_heredity.numpy().min() == 1.0  # protected


def test_lineage_of_masks_is_monotone_and_consistent(parent):
    model = parent
    previous = _masks(model)
    for generation in range(1, 5):
        model, _ = tf_evosyn.synthesize(
            model, tf_evosyn.ConstantFactor(0.7, 0.9), seed=0, generation=generation
        )
        current = _masks(model)
        for name, (synapses, clusters) in current.items():
            assert not (synapses & ~previous[name][0]).any()
            assert not (clusters & ~previous[name][1]).any()
        previous = current
    # Synapses that read dead channels are dead: conv2 input channel c lives iff conv1 cluster c.
    conv1_alive = previous["conv1"][1]
    conv2_synapses = previous["conv2"][0]
    assert not conv2_synapses[:, :, ~conv1_alive, :].any()
    # fc1 reads flatten(4x4x50): input i is conv2 channel i % 50.
    conv2_alive = previous["conv2"][1]
    fc1_rows = previous["fc1"][0].any(axis=1)
    assert not fc1_rows[~np.tile(conv2_alive, 16)].any()
    # Every living conv cluster is read by some living synapse downstream.
    read_by_conv2 = conv2_synapses.any(axis=(0, 1, 3))
    np.testing.assert_array_equal(read_by_conv2, conv1_alive)


def test_lenet_groups_are_single_clusters_read_through_pool_and_flatten(parent):
    plan = plan_coupling(parent)
    assert plan.coupled_groups() == []
    conv1_group = plan.groups[plan.layer_groups["conv1"][3]]
    assert conv1_group.members == [("conv1", 3)]
    [(reader, rows)] = conv1_group.readers
    assert reader == "conv2"
    np.testing.assert_array_equal(rows, [3])
    # fc1 reads flatten(4x4x50): conv2 channel c at rows c, c + 50, ..., c + 750.
    [(reader, rows)] = plan.groups[plan.layer_groups["conv2"][7]].readers
    assert reader == "fc1"
    np.testing.assert_array_equal(rows, 7 + 50 * np.arange(16))
    assert all(g.may_die and g.readers_known for g in plan.groups if g.members[0][0] == "fc1")
    assert not any(g.may_die for g in plan.groups if g.members[0][0] == "fc2")


def test_reinitialize_gives_fresh_weights_with_the_same_masks(parent):
    inherit, _ = tf_evosyn.synthesize(parent, seed=5)
    fresh, _ = tf_evosyn.synthesize(parent, seed=5, reinitialize=True)
    for a, b in zip(
        tf_evosyn.evolvable_layers(inherit), tf_evosyn.evolvable_layers(fresh), strict=True
    ):
        np.testing.assert_array_equal(a.living_synapse_mask(), b.living_synapse_mask())
    assert not np.allclose(
        inherit.get_layer("fc1").kernel.numpy(), fresh.get_layer("fc1").kernel.numpy()
    )


def test_synthesize_rejects_a_plain_model():
    with pytest.raises(ValueError, match="evolvable"):
        tf_evosyn.synthesize(lenet5())
