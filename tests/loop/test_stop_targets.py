"""Efficiency targets (``evolution.stop_at``): the loop stops after the first accepted offspring
that reaches them, records why, and goes on when a resumed run raises them."""

import json
from pathlib import Path

import pytest
from helpers import small_evolution, without_timing

from tf_evosyn import EvolutionSettings
from tf_evosyn._keras import keras
from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.loop.stop_targets import active_targets, reached
from tf_evosyn.models import lenet5
from tf_evosyn.runs.common import prepare_workdir
from tf_evosyn.runs.config_checks import ConfigError, validate_config

CONFIG = Path(__file__).parents[2] / "configs" / "lenet5_mnist.py"
ANCESTOR = {"generation": 0, "synapses": 1000, "clusters": 100, "flops": 50_000}


def _record(generation, synaptic, cluster, flops):
    return {
        "generation": generation,
        "synaptic_efficiency": synaptic,
        "cluster_efficiency": cluster,
        "flops": flops,
    }


def test_every_target_must_be_reached():
    targets = {"cluster_efficiency": 10, "flops_efficiency": 4.0, "synaptic_efficiency": 0}
    short_of_flops = _record(5, 90.0, 12.5, 12_600)  # 50,000 / 12,600 = 3.97x
    assert reached(targets, short_of_flops, ANCESTOR) is None
    why = reached(targets, _record(6, 95.0, 12.5, 12_500), ANCESTOR)  # exactly 4x
    assert why == (
        "generation 6 reached the targets (cluster_efficiency 12.50x >= 10x, "
        "flops_efficiency 4.00x >= 4x)"
    )
    assert reached({}, _record(6, 95.0, 12.5, 1), ANCESTOR) is None  # no target, no stop
    assert reached({"cluster_efficiency": 0}, _record(6, 95.0, 12.5, 1), ANCESTOR) is None


@pytest.mark.parametrize(
    "stop_at, message",
    [
        ({"clusters": 14}, "unknown measure 'clusters'; use one of synaptic_efficiency"),
        ({"cluster_efficiency": -2}, "must be an efficiency >= 1"),
        ({"cluster_efficiency": 0.5}, "must be an efficiency >= 1"),
        ({"cluster_efficiency": True}, "must be an efficiency >= 1"),
        ({"cluster_efficiency": "14"}, "must be an efficiency >= 1"),
        (14, "stop_at maps measures to efficiencies"),
    ],
)
def test_bad_targets_are_refused_with_the_fix(stop_at, message):
    with pytest.raises(ValueError, match=message):
        active_targets(stop_at)
    with pytest.raises(ValueError, match=message):
        EvolutionSettings(stop_at=stop_at).validate()


def test_the_config_key_is_checked_before_any_work_and_may_change_on_resume(tmp_path):
    config = load_config_file(str(CONFIG))
    assert dict(config.evolution.stop_at) == {
        "synaptic_efficiency": 0.0,
        "cluster_efficiency": 0.0,
        "flops_efficiency": 0.0,
    }
    validate_config(config)
    config.evolution.stop_at.cluster_efficiency = 0.5
    with pytest.raises(ConfigError, match="evolution: stop_at.cluster_efficiency must be"):
        validate_config(config)
    config.evolution.stop_at.cluster_efficiency = 14.0
    prepare_workdir(config, tmp_path)
    config.evolution.stop_at.cluster_efficiency = 20.0  # how long it goes on: resumable
    prepare_workdir(config, tmp_path)
    config.evolution.max_attempts = 5  # what it computes: not
    with pytest.raises(ConfigError, match="changed: evolution.max_attempts"):
        prepare_workdir(config, tmp_path)


def _evolve(workdir, data, **settings):
    keras.utils.set_random_seed(0)
    evolution = small_evolution(workdir, data, max_attempts=1, **settings)
    return evolution.run(lenet5(), ancestor_epochs=1)


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_evolution_stops_at_the_first_generation_that_reaches_the_targets(tmp_path, mnist_small):
    """A 3-generation lineage, then the same seed with room for 6 generations and generation
    2's efficiencies as targets: it stops right after generation 2, with the same records, the
    final fine-tuning still follows, and a resumed run with higher targets goes on."""
    free = _evolve(tmp_path / "free", mnist_small, generations=3)
    assert all(r["accepted"] for r in free)
    gen2 = free[2]
    assert free[1]["cluster_efficiency"] < gen2["cluster_efficiency"]  # generation 1 falls short
    targets = {
        "cluster_efficiency": gen2["cluster_efficiency"],
        "synaptic_efficiency": gen2["synaptic_efficiency"],
    }

    workdir = tmp_path / "targeted"
    targeted = _evolve(workdir, mnist_small, generations=6, stop_at=targets, final_epochs=1)
    *evolved, final = targeted
    assert without_timing(evolved) == without_timing(free[:3])
    assert final["final"] and final["parent"] == 2
    status = json.loads((workdir / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["reason"].startswith("generation 2 reached the targets (cluster_efficiency")
    assert status["reason"].endswith("; generation 3 is the final fine-tuning of 2")

    raised = {"cluster_efficiency": 1e6}  # out of reach: generations (4) is the cap again
    resumed = small_evolution(workdir, mnist_small, generations=4, max_attempts=1, stop_at=raised)
    records = resumed.run()
    assert [r["generation"] for r in records] == [0, 1, 2, 3, 4]
    assert json.loads((workdir / "status.json").read_text())["reason"] == "reached generation 4"
