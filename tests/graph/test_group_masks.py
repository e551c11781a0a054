"""set_group: killing a coupled group removes its filters in every member layer and the kernel
rows reading it; reviving gives back what the parent had, and needs the parent to say so."""

import numpy as np
import pytest

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.core.heredity import layer_heredity
from tf_evosyn.graph.coupling import group_alive, plan_coupling, set_group


def _residual_model() -> keras.Model:
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    stem = layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    branch = layers.Conv2D(4, 3, padding="same", name="branch")(stem)
    added = layers.Add(name="add")([stem, branch])
    outputs = layers.Conv2D(2, 1, name="reader")(added)
    return keras.Model(inputs, outputs)


def _setup():
    keras.utils.set_random_seed(0)
    model = tf_evosyn.evolvable(_residual_model())
    plan = plan_coupling(model)
    layers = {layer.name: layer for layer in tf_evosyn.evolvable_layers(model)}
    parents = {
        name: layer_heredity(
            name, layer.kernel.numpy(), layer.living_synapse_mask(), layer.living_cluster_mask()
        )
        for name, layer in layers.items()
    }
    # The parent had lost one synapse of the stem's channel 1: reviving must not bring it back.
    parents["stem"].synapse_alive[0, 0, 0, 1] = False
    masks = {name: (h.synapse_alive.copy(), h.cluster_alive.copy()) for name, h in parents.items()}
    group = plan.groups[plan.layer_groups["stem"][1]]
    return plan, parents, masks, group


def test_killing_a_coupled_group_removes_it_everywhere_and_reviving_restores_the_parent():
    plan, parents, masks, group = _setup()
    assert sorted(group.members) == [("branch", 1), ("stem", 1)]  # the add couples them
    set_group(group, False, plan, None, masks)  # killing needs no parent
    assert not group_alive(group, lambda name: masks[name][1])
    for name in ("stem", "branch"):
        assert not masks[name][1][1] and masks[name][1].sum() == 3
        assert not masks[name][0][..., 1].any()
    assert not masks["branch"][0][..., 1, :].any()  # the branch reads the stem's channel 1
    assert not masks["reader"][0][..., 1, :].any()  # and so does the reader, through the add
    assert masks["reader"][0][..., 0, :].all()

    set_group(group, True, plan, parents, masks)
    for name, heredity in parents.items():
        np.testing.assert_array_equal(masks[name][1], heredity.cluster_alive)
        np.testing.assert_array_equal(masks[name][0], heredity.synapse_alive)
    assert not masks["stem"][0][0, 0, 0, 1]


def test_reviving_without_the_parents_is_an_error():
    plan, _, masks, group = _setup()
    with pytest.raises(ValueError, match="by_name"):
        set_group(group, True, plan, None, masks)
