"""Compacted fine-tuning (``evolution.compact_offspring``): an offspring physically compacted into
smaller evolvable layers computes what the masked offspring computes, keeps its masks through
training, and is reported against the ancestor; the loop runs and resumes with it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cifar_images, random_bn, small_evolution, without_timing

from tf_evosyn import EvolutionSettings
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.convert import evolvable
from tf_evosyn.core.layers import EvolvableMixin, evolvable_layers
from tf_evosyn.core.measures import count_living
from tf_evosyn.core.model_io import load_model, save_model
from tf_evosyn.environments.alignment import ChannelAlignment
from tf_evosyn.environments.base import ConstantFactor, LayerBudget
from tf_evosyn.environments.flops_budget import FlopsBudget
from tf_evosyn.interop.tfmot import to_tfmot
from tf_evosyn.loop import records as records_lib
from tf_evosyn.loop.candidates import CandidateDrawer
from tf_evosyn.models import lenet5, resnet_cifar
from tf_evosyn.runs.config_checks import ConfigError, validate_config
from tf_evosyn.synthesis.offspring import synthesize

TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _deterministic_weights():
    keras.utils.set_random_seed(0)


def _offspring(model: keras.Model, generations: int = 2) -> keras.Model:
    """A masked offspring several generations down, with many dead clusters."""
    for generation in range(1, generations + 1):
        model, _ = synthesize(model, ConstantFactor(0.6, 0.8), seed=3, generation=generation)
    return model


def _assert_compacted_twin(masked: keras.Model, compacted: keras.Model, images) -> None:
    """Same function, same evolvable layer types and names, same living counts, smaller."""
    expected = masked(images, training=False).numpy()
    assert np.abs(expected).max() > 1e-3  # a real, non-trivial output
    np.testing.assert_allclose(compacted(images, training=False), expected, rtol=0, atol=TOLERANCE)
    before, after = evolvable_layers(masked), evolvable_layers(compacted)
    assert [(type(a).__name__, a.name) for a in after] == [
        (type(b).__name__, b.name) for b in before
    ]
    living = [(c.name, c.synapses, c.clusters) for c in count_living(compacted).layers]
    assert living == [(c.name, c.synapses, c.clusters) for c in count_living(masked).layers]
    assert sum(a.synapse_count() for a in after) < sum(b.synapse_count() for b in before)
    assert compacted.name == masked.name


def test_compacted_lenet5_is_the_masked_offspring_in_smaller_evolvable_layers(mnist_images):
    masked = _offspring(evolvable(lenet5()))
    compacted = compact(masked, keep_evolvable=True)
    _assert_compacted_twin(masked, compacted, mnist_images)
    for layer in evolvable_layers(compacted):
        assert layer.living_cluster_mask().all(), layer.name  # every dead cluster is gone
        original = masked.get_layer(layer.name)
        living = original.living_cluster_mask()
        np.testing.assert_array_equal(
            layer.cluster_heredity.numpy(), original.cluster_heredity.numpy()[living]
        )
    fc2 = compacted.get_layer("fc2")
    assert fc2.num_clusters == 10 and not fc2.evolve_clusters  # class outputs stay protected
    # Compacting again removes nothing more (export compacts the best offspring once more).
    again = compact(compacted, keep_evolvable=True)
    assert [a.matrix_shape for a in evolvable_layers(again)] == [
        c.matrix_shape for c in evolvable_layers(compacted)
    ]
    plain_masked, plain_compacted = compact(masked), compact(compacted)
    assert plain_compacted.count_params() == plain_masked.count_params()
    np.testing.assert_allclose(
        plain_compacted(mnist_images), plain_masked(mnist_images), rtol=0, atol=TOLERANCE
    )


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_compacted_resnet_with_add_and_batchnorm_keeps_its_outputs(datasets_dir, shortcut):
    images = cifar_images(datasets_dir, count=16, size=16)
    model = evolvable(resnet_cifar(8, input_shape=(16, 16, 3), shortcut=shortcut))
    random_bn(model, np.random.default_rng(1))  # dead channels become non-zero constants
    masked = _offspring(model)
    compacted = compact(masked, keep_evolvable=True)
    _assert_compacted_twin(masked, compacted, images)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in compacted.layers)


def _separable_model() -> keras.Model:
    """Conv2D, DepthwiseConv2D (coupled with its input channels), BatchNorm, SeparableConv2D
    (with its shared depthwise taps) and Dense."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu", name="stem")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.SeparableConv2D(24, 3, name="sep")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="out")(x))


def test_compacted_depthwise_and_separable_layers_keep_their_outputs(datasets_dir):
    images = cifar_images(datasets_dir, count=16, size=16)
    model = evolvable(_separable_model())
    random_bn(model, np.random.default_rng(2))
    masked = _offspring(model)
    compacted = compact(masked, keep_evolvable=True)
    _assert_compacted_twin(masked, compacted, images)
    sep, original = compacted.get_layer("sep"), masked.get_layer("sep")
    assert sep.living_depthwise_mask().sum() == original.living_depthwise_mask().sum()
    assert compacted.get_layer("dw").num_clusters < 32


def test_compacted_grouped_convolution_loses_a_whole_group(datasets_dir):
    images = cifar_images(datasets_dir, count=16, size=16)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="stem")(inputs)
    x = keras.layers.Conv2D(8, 3, groups=4, activation="relu", name="grouped")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = evolvable(keras.Model(inputs, keras.layers.Dense(10, name="out")(x)))
    rng = np.random.default_rng(0)
    # Group 0 (stem channels 0-1 and grouped filters 0-1) dies; a few synapses die elsewhere.
    for name, dead_clusters in (("stem", [0, 1]), ("grouped", [0, 1])):
        layer = model.get_layer(name)
        clusters = np.ones(layer.num_clusters)
        clusters[dead_clusters] = 0
        synapses = rng.random(layer.matrix_shape) > 0.2
        layer.set_masks(synapses * clusters, clusters)
    out = model.get_layer("out")
    synapses = np.ones(out.matrix_shape)
    synapses[[0, 1]] = 0
    out.set_masks(synapses, np.ones(out.num_clusters))
    compacted = compact(model, keep_evolvable=True)
    _assert_compacted_twin(model, compacted, images)
    grouped = compacted.get_layer("grouped")
    assert (grouped.groups, grouped.num_clusters, grouped.matrix_shape[-2]) == (3, 6, 2)
    np.testing.assert_array_equal(
        grouped.synapse_mask.numpy(), model.get_layer("grouped").synapse_mask.numpy()[..., 2:]
    )


def test_training_a_compacted_offspring_never_revives_masked_synapses(mnist_small, tmp_path):
    masked = _offspring(evolvable(lenet5()))
    compacted = compact(masked, keep_evolvable=True)
    save_model(compacted, tmp_path / "m")  # the loop saves and reloads every offspring
    compacted = load_model(tmp_path / "m")
    masks = {layer.name: layer.living_synapse_mask() for layer in evolvable_layers(compacted)}
    dead = sum(int((~m).sum()) for m in masks.values())
    assert dead > 0  # the compacted layers still carry dead synapses
    compacted.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = compacted.get_weights()
    compacted.fit(mnist_small.train_dataset(batch_size=64, seed=0).take(3), verbose=0)
    assert any(
        not np.array_equal(a, b) for a, b in zip(before, compacted.get_weights(), strict=True)
    )
    for layer in evolvable_layers(compacted):
        np.testing.assert_array_equal(layer.living_synapse_mask(), masks[layer.name])
        kernel = layer.matrix_kernel().numpy()
        assert not kernel[~masks[layer.name]].any(), layer.name
        assert kernel[masks[layer.name]].any(), layer.name


def test_records_of_a_compacted_offspring_are_against_the_ancestor():
    ancestor = evolvable(lenet5())
    ancestor_record = records_lib.network_fields(ancestor, None)
    masked = _offspring(ancestor)
    compacted = compact(masked, keep_evolvable=True)
    fields = records_lib.network_fields(compacted, ancestor_record)
    assert fields == records_lib.network_fields(masked, ancestor_record)
    totals = [(r["name"], r["total_synapses"], r["total_clusters"]) for r in fields["layers"]]
    assert totals == [
        ("conv1", 500, 20),
        ("conv2", 25_000, 50),
        ("fc1", 400_000, 500),
        ("fc2", 5_000, 10),
    ]
    assert fields["cluster_efficiency"] == pytest.approx(580 / fields["clusters"])


@pytest.mark.parametrize(
    "environment",
    [
        LayerBudget(0.8, 0.6, overrides={"conv1": {"cluster_fraction": 1.0}}),
        FlopsBudget(0.6),
        ChannelAlignment(ConstantFactor(0.8, 0.9), multiple=4, rounding="nearest"),
    ],
    ids=["layer_budget", "flops_budget", "alignment"],
)
def test_environments_see_the_same_parent_when_it_is_compacted(environment):
    masked = _offspring(evolvable(lenet5()))
    compacted = compact(masked, keep_evolvable=True)
    _, from_masked = synthesize(masked, environment, seed=4, generation=3)
    offspring, from_compacted = synthesize(compacted, environment, seed=4, generation=3)
    # Budgets are solved from living counts and heredity, which compaction keeps. (Synapse
    # factors after conv1 also depend on which inputs this draw killed upstream: the masked and
    # compacted draws use different random numbers, so only conv1's is comparable.)
    assert from_compacted.factors.keys() == from_masked.factors.keys()
    for name, factors in from_masked.factors.items():
        compared = slice(None) if name == "conv1" else slice(0, 1)
        np.testing.assert_allclose(
            from_compacted.factors[name][compared], factors[compared], rtol=1e-5, err_msg=name
        )
    if isinstance(environment, LayerBudget):  # a budget keyed by name still protects conv1
        conv1 = [count_living(m).layers[0].clusters for m in (offspring, compacted)]
        assert conv1[0] == conv1[1]
    assert count_living(offspring).synapses < count_living(compacted).synapses
    if isinstance(environment, ChannelAlignment):
        parent_counts = {c.name: c.clusters for c in count_living(compacted).layers}
        for count in count_living(offspring).layers[:-1]:  # fc2's class outputs never die
            assert count.clusters % 4 == 0 or count.clusters == parent_counts[count.name]


def test_tfmot_twin_of_a_compacted_offspring_computes_the_same(mnist_images):
    compacted = compact(_offspring(evolvable(lenet5())), keep_evolvable=True)
    twin = to_tfmot(compacted)
    np.testing.assert_allclose(twin(mnist_images), compacted(mnist_images), rtol=0, atol=TOLERANCE)


def test_compact_offspring_with_several_parents_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="evolution.parents=1"):
        EvolutionSettings(compact_offspring=True, population=2, parents=2).validate()
    from tf_evosyn.bin.config_cli import load_config_file

    config = load_config_file(str(Path(__file__).parents[2] / "configs" / "lenet5_mnist.py"))
    config.evolution.compact_offspring = True
    validate_config(config)  # one parent: fine
    config.evolution.population = 2
    config.evolution.parents = 2
    with pytest.raises(ConfigError, match="compact_offspring"):
        validate_config(config)


# -- the loop ---------------------------------------------------------------------------------
def _evolution(workdir, data):
    return small_evolution(
        workdir, data, environment=ConstantFactor(0.6, 0.8), compact_offspring=True
    )


@pytest.fixture(scope="module")
def compacted_run(tmp_path_factory, mnist_small):
    keras.utils.set_random_seed(0)
    workdir = tmp_path_factory.mktemp("compacted_run")
    return workdir, _evolution(workdir, mnist_small).run(lenet5(), ancestor_epochs=1)


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_compacted_evolution_reports_against_the_ancestor(compacted_run):
    workdir, records = compacted_run
    assert [r["generation"] for r in records] == [0, 1, 2]

    def totals(record):
        return [(r["name"], r["total_synapses"], r["total_clusters"]) for r in record["layers"]]

    for record in records:
        assert record["seconds_per_epoch"] > 0
        assert totals(record) == totals(records[0])
        assert record["cluster_efficiency"] == pytest.approx(580 / record["clusters"])
    parent = load_model(workdir / "generations" / "gen_0002")
    assert all(isinstance(layer, EvolvableMixin) for layer in evolvable_layers(parent))
    assert parent.get_layer("fc1").num_clusters < 500  # the saved offspring is physically smaller
    assert count_living(parent).synapses == records[2]["synapses"]


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_a_killed_compacted_run_resumes_to_the_same_lineage(
    tmp_path, mnist_small, compacted_run, monkeypatch
):
    original = CandidateDrawer.draw

    def killed(self, parents, generation, index, *args):
        if generation == 2:
            raise KeyboardInterrupt("killed in generation 2")
        return original(self, parents, generation, index, *args)

    monkeypatch.setattr(CandidateDrawer, "draw", killed)
    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        _evolution(tmp_path, mnist_small).run(lenet5(), ancestor_epochs=1)
    monkeypatch.setattr(CandidateDrawer, "draw", original)
    records = _evolution(tmp_path, mnist_small).run()
    assert without_timing(records) == without_timing(compacted_run[1])


@pytest.mark.slow  # a subprocess: the binary mirrored over two logical CPUs
def test_compacted_offspring_under_a_mirrored_strategy(tmp_path, datasets_dir):
    repo = Path(__file__).resolve().parents[2]
    command = [
        sys.executable,
        "-m",
        "tf_evosyn.bin.evolve_classification",
        f"--config={repo / 'configs' / 'lenet5_mnist_smoke.py'}",
        f"--workdir={tmp_path}",
        "--config.data.train_limit=256",
        "--config.data.test_limit=128",
        "--config.data.validation_size=64",
        "--config.evolution.generations=1",
        "--config.evolution.compact_offspring=True",
        "--strategy=mirrored",
        "--config.distribute.num_cpu_devices=2",
    ]
    env = dict(os.environ, EVOSYN_DATA_DIR=str(datasets_dir), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command, env=env, cwd=repo, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    records = [json.loads(line) for line in (tmp_path / "lineage.jsonl").read_text().splitlines()]
    assert json.loads((tmp_path / "runtime.json").read_text())["num_replicas"] == 2
    offspring = load_model(tmp_path / "generations" / "gen_0001")
    assert count_living(offspring).synapses == records[1]["synapses"] < 430_500
    assert sum(layer.num_clusters for layer in evolvable_layers(offspring)) < 580
    assert [layer["total_clusters"] for layer in records[1]["layers"]] == [20, 50, 500, 10]
