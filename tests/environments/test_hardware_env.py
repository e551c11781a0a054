"""Hardware-aware environments: FlopsBudget keeps the asked share of MACs (expected and drawn),
ChannelAlignment keeps living channels at multiples of k through coupled groups, and both come
from config keys with clear errors."""

import ml_collections
import numpy as np
import pytest
from helpers import assert_compacts_exactly, residual

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.alignment import ChannelAlignment, aligned_count
from tf_evosyn.environments.flops_budget import FlopsBudget, MacsModel
from tf_evosyn.environments.latency_budget import LatencyBudget
from tf_evosyn.graph.coupling import plan_coupling
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.hardware.latency_model import LatencyTable
from tf_evosyn.models import build
from tf_evosyn.runs.config_checks import ConfigError, build_environment
from tf_evosyn.synthesis.offspring import compute_heredity, draw_masks, synthesis_rng
from tf_evosyn.zoo import randomize_batchnorm

DRAWS = 40


def macs_model(model, count="dense") -> MacsModel:
    plan = plan_coupling(model)
    return MacsModel(model, plan, compute_heredity(model, plan=plan), count)


def evolvable_lenet(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return tf_evosyn.evolvable(build("lenet5"))


@pytest.mark.parametrize("count", ["dense", "living"])
def test_flops_budget_expected_and_drawn_macs_agree(count):
    model = evolvable_lenet()
    budget = FlopsBudget(0.5, count=count, overrides={"conv1": {"fraction": 0.9}})
    macs = macs_model(model, count)
    factors = budget.solve(macs)
    parent = macs.parent_macs().sum()
    expected = macs.layer_macs(list(factors.values()))
    assert expected.sum() == pytest.approx(0.5 * parent, rel=1e-6)
    drawn = np.array(
        [macs.drawn_macs(draw_masks(model, budget, synthesis_rng(s, 1))[0]) for s in range(DRAWS)]
    )
    totals = drawn.sum(axis=1)
    error = 4 * totals.std() / np.sqrt(DRAWS)
    assert abs(totals.mean() - expected.sum()) < error + 0.01 * parent
    # per layer too: the closed form is right layer by layer, not only on the total
    np.testing.assert_allclose(drawn.mean(axis=0), expected, rtol=0.08)
    assert factors["conv1"] != factors["conv2"]  # the override pins conv1 on its own


def test_override_keeps_the_layers_share_of_its_own_and_caused_cost():
    model = evolvable_lenet()
    macs = macs_model(model)
    costs = macs.cluster_costs("conv1")
    # conv1's filter costs its own 24x24x25 MACs and conv2's 8x8x25x50 reading it
    np.testing.assert_allclose(costs, 24 * 24 * 25 + 8 * 8 * 25 * 50)
    factors = FlopsBudget(0.5, overrides={"conv1": {"fraction": 0.6}}).solve(macs)
    conv1 = macs.layers[macs.index["conv1"]].heredity
    kept = np.clip(conv1.cluster_probs * factors["conv1"][0], 0, 1) @ costs
    assert kept == pytest.approx(0.6 * costs.sum(), rel=1e-6)


def test_drawn_macs_are_what_the_compacted_offspring_computes():
    model = tf_evosyn.evolvable(residual())
    budget = FlopsBudget(0.4)
    offspring, _ = tf_evosyn.synthesize(model, budget, seed=3)
    masks = {
        layer.name: (layer.living_synapse_mask(), layer.living_cluster_mask())
        for layer in tf_evosyn.evolvable_layers(offspring)
    }
    drawn = macs_model(model).drawn_macs(masks).sum()
    assert drawn == count_flops(compact(offspring)).total_dense_macs
    assert drawn < 0.7 * count_flops(compact(model)).total_dense_macs


def test_flops_budget_through_coupled_groups_over_draws():
    model = tf_evosyn.evolvable(residual())
    macs = macs_model(model)
    budget = FlopsBudget(0.5)
    drawn = [
        macs.drawn_macs(draw_masks(model, budget, synthesis_rng(s, 1))[0]).sum()
        for s in range(DRAWS)
    ]
    parent = macs.parent_macs().sum()
    assert abs(np.mean(drawn) - 0.5 * parent) < 4 * np.std(drawn) / np.sqrt(DRAWS) + 0.01 * parent


@pytest.mark.parametrize(
    "current, parent, floor, rounding, expected",
    [
        (13, 16, 0, "nearest", 16),
        (11, 16, 0, "nearest", 8),
        (12, 16, 0, "nearest", 16),  # a tie keeps more
        (13, 16, 0, "down", 8),
        (9, 16, 0, "up", 16),
        (3, 16, 0, "nearest", 8),  # never below one block while the parent has it
        (11, 13, 0, "nearest", 13),  # the parent's own count is allowed
        (5, 6, 0, "down", 6),  # nothing allowed below: the parent's count
        (9, 24, 10, "down", 16),  # protected clusters set the floor
    ],
)
def test_aligned_count(current, parent, floor, rounding, expected):
    assert aligned_count(current, parent, floor, 8, rounding) == expected


def test_stochastic_rounding_keeps_the_drawn_count_in_expectation():
    rng = np.random.default_rng(0)
    counts = [aligned_count(13, 32, 0, 8, "stochastic", rng) for _ in range(4000)]
    assert set(counts) == {8, 16}
    assert np.mean(counts) == pytest.approx(13, abs=0.15)


def test_aligned_flops_budget_keeps_its_budget_on_average():
    model = tf_evosyn.evolvable(residual())
    macs = macs_model(model)
    budget = ChannelAlignment(FlopsBudget(0.5), multiple=8)
    drawn = []
    for seed in range(DRAWS):
        masks = draw_masks(model, budget, synthesis_rng(seed, 1))[0]
        assert all(m[1].sum() % 8 == 0 for name, m in masks.items() if name != "logits")
        drawn.append(macs.drawn_macs(masks).sum())
    parent = macs.parent_macs().sum()
    assert abs(np.mean(drawn) - 0.5 * parent) < 4 * np.std(drawn) / np.sqrt(DRAWS) + 0.02 * parent


def test_alignment_keeps_channels_multiples_of_k_and_compacts_exactly(cifar10_subset_file):
    with np.load(cifar10_subset_file) as data:
        images = data["x"][:16, 8:24, 8:24].astype(np.float32) / 255.0
    model = tf_evosyn.evolvable(residual())
    randomize_batchnorm(model, np.random.default_rng(0))
    environment = ChannelAlignment(environment_lib.ConstantFactor(0.8), 8, "nearest")
    changed = False
    for seed in range(4):
        offspring, _ = tf_evosyn.synthesize(model, environment, seed=seed)
        plain, _ = tf_evosyn.synthesize(model, environment.base, seed=seed)
        counts = {
            layer.name: int(layer.living_cluster_mask().sum())
            for layer in tf_evosyn.evolvable_layers(offspring)
        }
        plain_counts = {
            layer.name: int(layer.living_cluster_mask().sum())
            for layer in tf_evosyn.evolvable_layers(plain)
        }
        changed |= counts != plain_counts
        assert counts["logits"] == 10  # classes are never aligned away
        assert all(n % 8 == 0 for name, n in counts.items() if name != "logits"), counts
        assert counts["stem"] == counts["b1_conv2"]  # one family
        assert counts["b2_proj"] == counts["b2_conv2"]
        for layer in tf_evosyn.evolvable_layers(offspring):  # nothing reads a dead channel
            plan = plan_coupling(offspring)
            for group, rows in plan.reads(layer.name):
                members = plan.groups[group].members
                if not any(offspring.get_layer(n).living_cluster_mask()[c] for n, c in members):
                    assert not layer.living_synapse_mask()[..., rows, :].any()
        assert_compacts_exactly(offspring, images)
    assert changed, "alignment never changed a draw: the test would prove nothing"


def test_revived_clusters_keep_their_parent_synapses():
    model = tf_evosyn.evolvable(residual())
    environment = ChannelAlignment(environment_lib.ConstantFactor(0.8), 8, "up")
    offspring, _ = tf_evosyn.synthesize(model, environment, seed=1)
    for layer in tf_evosyn.evolvable_layers(offspring):
        clusters = layer.living_cluster_mask()
        assert clusters.sum() in (8, 16, 24, 32, 40, 10)
        synapses = layer.living_synapse_mask().reshape(-1, clusters.size)
        assert synapses[:, clusters].any(axis=0).all()  # every living cluster computes


def test_environments_round_trip_through_their_config():
    environment = ChannelAlignment(FlopsBudget(0.6, "living", overrides={"a": {"fraction": 0.9}}))
    restored = environment_lib.get(environment_lib.serialize(environment))
    assert isinstance(restored, ChannelAlignment) and isinstance(restored.base, FlopsBudget)
    assert restored.get_config() == environment.get_config()
    relieved = FlopsBudget(0.25, retry_relief=0.5).for_attempt(1)
    assert relieved.fraction == pytest.approx(0.5)


def _evolution_section(**values) -> ml_collections.ConfigDict:
    evo = {
        "environment": "flops_budget",
        "flops_fraction": 0.7,
        "flops_count": "dense",
        "flops_budgets": None,
        "align_channels": 0,
        "align_rounding": "nearest",
        "latency_fraction": 0.7,
        "latency_ms": None,
        "latency_threads": 1,
        "synapse_factor": 1.0,
        "budget_max_factor": 5.0,
        "retry_relief": 0.5,
    }
    evo.update(values)
    return ml_collections.ConfigDict(evo)


def test_config_keys_build_the_environments():
    environment = build_environment(_evolution_section(align_channels=8))
    assert isinstance(environment, ChannelAlignment) and environment.multiple == 8
    assert environment.base.get_config()["fraction"] == 0.7
    assert isinstance(build_environment(_evolution_section()), FlopsBudget)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"flops_fraction": 1.5}, "flops_fraction in"),
        ({"flops_count": "sparse"}, "flops_count"),
        ({"align_channels": -8}, "align_channels must be"),
        ({"align_channels": 8, "align_rounding": "ceil"}, "align_rounding"),
        ({"environment": "latency_budget", "latency_fraction": None}, "exactly one"),
        ({"environment": "latency_budget", "latency_threads": 0}, "latency_threads"),
    ],
)
def test_bad_config_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        build_environment(_evolution_section(**values))


def test_unbound_flops_budget_and_unknown_override_say_what_to_do():
    model = evolvable_lenet()
    with pytest.raises(RuntimeError, match="bind"):
        FlopsBudget(0.5).factors(compute_heredity(model))
    with pytest.raises(ValueError, match="unknown evolvable layers"):
        FlopsBudget(0.5, overrides={"conv9": {"fraction": 0.5}}).solve(macs_model(model))


def small_convnet() -> keras.Model:
    """Two convolutions and a classifier: a handful of layer geometries to time."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(24, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


@pytest.mark.slow
def test_latency_budget_measures_once_and_tightens_with_the_budget(tmp_path):
    model = tf_evosyn.evolvable(small_convnet())
    plan = plan_coupling(model)
    heredities = compute_heredity(model, plan=plan)
    budget = LatencyBudget(fraction=0.5, cache_dir=str(tmp_path))
    macs, layers = budget.cost_model(model, plan, heredities)
    cache = LatencyTable(1, tmp_path)
    measured = dict(cache.times)
    assert len(measured) >= 6 and cache.path.is_file()
    assert set(layers) == {"c1", "c2", "logits"}
    for layer in layers.values():  # a larger layer is never predicted faster
        assert np.all(np.diff(layer.times, axis=0) >= 0) and np.all(np.diff(layer.times) >= 0)
    budget.cost_model(model, plan, heredities)
    assert LatencyTable(1, tmp_path).times == measured  # cached: nothing measured again
    kept = {}
    for fraction in (0.3, 0.9):
        bound = LatencyBudget(fraction=fraction, cache_dir=str(tmp_path)).bind(
            model, plan, heredities
        )
        kept[fraction] = np.mean(
            [
                macs.drawn_macs(draw_masks(model, bound, synthesis_rng(s, 1))[0]).sum()
                for s in range(10)
            ]
        )
    assert kept[0.3] < kept[0.9] <= macs.parent_macs().sum()
    # The fraction applies to what shrinking can remove: above the smallest offspring's time.
    n = len(macs.layers)
    parent_ms = budget.predicted_ms(macs, layers, [(1e9, 1e9)] * n)
    floor_ms = budget.predicted_ms(macs, layers, [(0.0, 1.0)] * n)
    assert 0 < floor_ms < parent_ms
    factor = budget.bind(model, plan, heredities).factors(heredities)[0][0]
    solved_ms = budget.predicted_ms(macs, layers, [(factor, 1.0)] * n)
    assert solved_ms == pytest.approx(floor_ms + 0.5 * (parent_ms - floor_ms), rel=1e-3)
    # The synapse factor is constant (as FlopsBudget's 'dense' count): it reaches every layer.
    generous = LatencyBudget(fraction=0.5, cache_dir=str(tmp_path), synapse_factor=2.5)
    factors = generous.bind(model, plan, heredities).factors(heredities)
    assert {synapse for _, synapse in factors} == {2.5}
    assert LatencyBudget(**generous.get_config()).synapse_factor == 2.5
    with pytest.raises(ValueError, match="exactly one"):
        LatencyBudget(fraction=0.5, milliseconds=2.0)
    with pytest.raises(ValueError, match="synapse_factor"):
        LatencyBudget(fraction=0.5, synapse_factor=20.0)


class _TiledTable:
    """A stand-in measured table: time linear in inputs, a step per 16 output channels, and
    a slow path for a single output channel (as XNNPACK has)."""

    def latency(self, shape):
        tiles = -(-shape.out_channels // 16)
        slow_single_output = 5.0 if shape.out_channels == 1 else 0.0
        return shape.in_channels * tiles + slow_single_output


def test_layer_latency_is_smooth_in_the_expected_output_count():
    from tf_evosyn.environments.latency_budget import LayerLatency
    from tf_evosyn.hardware.latency_model import LayerShape

    layer = LayerLatency(LayerShape("conv", 8, 8, 20, 21, 3), _TiledTable())
    assert layer.inputs[0] == 1 and layer.outputs[0] == 1  # the grid reaches down to 1
    # capped by larger layers: the 1-output slow path does not lift the table
    assert layer(20, 1) == layer(20, 16) == 20.0
    assert layer(4, 16) == 4.0  # below the grid's 8: still linear, not 0
    assert layer(20, 21) == 40.0 and layer(20, 17) == 40.0  # a count is a step
    # A drawn count around 16.5 lands on either side of the tile boundary: its expected time
    # is between the two steps and falls steadily with the mean.
    means = np.linspace(21, 12, 10)
    expected = [layer(20, m, 1.5) for m in means]
    assert 20.0 < layer(20, 16.5, 1.5) < 40.0
    assert np.all(np.diff(expected) < 0)
