"""Landing on the stop target (``evolution.land_on_stop_target``): the draw that would overshoot
the target is eased so the expected offspring keeps the target's totals; draws that do not
reach it are unchanged; environments that cannot ease are refused before any training."""

import numpy as np
import pytest
from helpers import small_evolution

import tf_evosyn
from tf_evosyn import EvolutionSettings
from tf_evosyn._keras import keras
from tf_evosyn.core.measures import count_living
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.base import ConstantFactor, LayerBudget
from tf_evosyn.environments.cluster_floor import ClusterFloor
from tf_evosyn.environments.landing import TargetLanding, expected_totals, landing_totals
from tf_evosyn.graph.coupling import plan_coupling
from tf_evosyn.models import build
from tf_evosyn.synthesis.offspring import compute_heredity

BUDGET = LayerBudget(0.5, 0.5, max_factor=50.0)


def _lenet() -> keras.Model:
    keras.utils.set_random_seed(0)
    return tf_evosyn.evolvable(build("lenet5", conv_activation="relu"))


def _bound(environment, model):
    heredities = compute_heredity(model, write_buffers=False)
    return environment.bind(model, plan_coupling(model), heredities), heredities


def test_landing_totals_are_the_most_that_still_reach_the_targets():
    ancestor = {"clusters": 580, "synapses": 430500}
    targets = {"cluster_efficiency": 14.0, "synaptic_efficiency": 150.0}
    assert landing_totals(targets, ancestor) == (41, 2870)  # 580 / 41 = 14.15x, 150.0x
    assert landing_totals({"cluster_efficiency": 2.0}, ancestor) == (290, 0)


def test_a_draw_that_would_overshoot_is_eased_onto_the_target():
    model = _lenet()  # 580 clusters, 430,500 synapses
    plain, heredities = _bound(BUDGET, model)
    clusters, _ = expected_totals(plain, heredities)
    assert clusters == pytest.approx(0.5 * 570 + 10, rel=0.02)  # fc2's 10 classes stay
    landed, _ = _bound(TargetLanding(BUDGET, min_clusters=400), model)
    clusters, synapses = expected_totals(landed, heredities)
    assert 400 <= clusters < 402  # the largest easing that keeps the target
    drawn = [
        count_living(tf_evosyn.synthesize(model, TargetLanding(BUDGET, 400), seed=s)[0]).clusters
        for s in range(6)
    ]
    assert abs(np.mean(drawn) - 400) < 10, drawn  # drawn counts hold it in expectation


def test_a_draw_short_of_the_target_is_left_alone():
    model = _lenet()
    plain, heredities = _bound(BUDGET, model)
    landed, _ = _bound(TargetLanding(ClusterFloor(BUDGET, {"conv1": 5}), 100, 1000), model)
    assert expected_totals(landed, heredities) == pytest.approx(expected_totals(plain, heredities))
    first = tf_evosyn.synthesize(model, BUDGET, seed=3)[0]
    second = tf_evosyn.synthesize(model, TargetLanding(BUDGET, 100, 1000), seed=3)[0]
    assert count_living(first) == count_living(second)


def test_serialised_round_trip_and_refusals():
    landing = TargetLanding(BUDGET, 41, 2870)
    again = environment_lib.get(environment_lib.serialize(landing))
    assert again.get_config() == landing.get_config()
    with pytest.raises(ValueError, match="layer_budget"):
        TargetLanding(ConstantFactor(0.8), 41)
    with pytest.raises(ValueError, match="stop_at.cluster_efficiency"):
        EvolutionSettings(land_on_stop_target=True, environment=BUDGET).validate()
    with pytest.raises(ValueError, match="cannot ease"):
        EvolutionSettings(
            land_on_stop_target=True, stop_at={"cluster_efficiency": 2.0}
        ).validate()  # the default environment is a ConstantFactor


@pytest.mark.slow  # trains a short evolution: the full tier only
def test_the_loop_lands_on_its_cluster_target(tmp_path, mnist_small):
    """stop_at 1.5x clusters with a budget halving them: without landing generation 1 jumps to
    ~2x; with it, it lands near 1.5x and the run stops there."""
    evolution = small_evolution(
        tmp_path,
        mnist_small,
        generations=3,
        environment=BUDGET,
        stop_at={"cluster_efficiency": 1.5},
        land_on_stop_target=True,
    )
    records = evolution.run(_lenet(), ancestor_epochs=1)
    first = records[1]
    assert 1.45 <= first["cluster_efficiency"] <= 1.56, first["cluster_efficiency"]
