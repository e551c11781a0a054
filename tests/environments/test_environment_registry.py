"""Environments chosen by config through the public registry: the built-ins by name, a user's
own after ``tf_evosyn.environments.register``, and bad choices refused before any work."""

from pathlib import Path

import ml_collections
import pytest

from tf_evosyn import environments as environment_lib
from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.environments.base import ConstantFactor, EnvironmentalFactor, LayerBudget
from tf_evosyn.runs.config_checks import ConfigError, build_settings, validate_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "lenet5_mnist.py"


@environment_lib.register(name="halving")
class Halving(EnvironmentalFactor):
    """A user's environment: every layer keeps clusters and synapses at ``factor``."""

    def __init__(self, factor: float = 0.5):
        self.factor = float(factor)

    def layer_factors(self, layer, parent_synapses):
        return self.factor, self.factor

    def get_config(self) -> dict:
        return {"factor": self.factor}


def _config_choosing(environment) -> ml_collections.ConfigDict:
    config = load_config_file(str(CONFIG))
    config.evolution.min_clusters = ml_collections.ConfigDict()  # no floors: the bare choice
    del config.evolution["environment"]  # a str field: replaced by the dict form
    config.evolution.environment = ml_collections.ConfigDict(environment)
    return config


def test_snake_case_names_of_the_built_ins():
    assert environment_lib.snake_name("LayerBudget") == "layer_budget"
    assert {"layer_budget", "constant_factor", "flops_budget", "latency_budget"} <= set(
        environment_lib.registered_names()
    )


def test_a_builtin_by_name_with_its_arguments():
    config = _config_choosing({"name": "layer_budget", "cluster_fraction": 0.6})
    validate_config(config)
    environment = build_settings(config).environment
    assert isinstance(environment, LayerBudget) and environment.cluster_fraction == 0.6
    config = _config_choosing({"name": "ConstantFactor", "cluster_factor": 0.7})
    assert build_settings(config).environment.get_config()["cluster_factor"] == 0.7


def test_a_users_registered_environment_round_trips_through_serialization():
    config = _config_choosing({"name": "halving", "factor": 0.25})
    validate_config(config)
    environment = build_settings(config).environment
    assert isinstance(environment, Halving) and environment.factor == 0.25
    again = environment_lib.get(environment_lib.serialize(environment))  # a run directory's form
    assert isinstance(again, Halving) and again.factor == 0.25


def test_unknown_names_and_arguments_stop_in_validation_naming_the_fix():
    with pytest.raises(ConfigError, match=r"environment.name='halfing'; use one of \[.*halving"):
        validate_config(_config_choosing({"name": "halfing"}))
    with pytest.raises(ConfigError, match="environment 'halving'.*unexpected keyword.*fraction"):
        validate_config(_config_choosing({"name": "halving", "fraction": 0.5}))
    with pytest.raises(ConfigError, match="or dict\\(name=<registered environment>"):
        config = load_config_file(str(CONFIG))
        config.evolution.environment = "halving_budget"
        validate_config(config)


def test_register_refuses_a_non_environment_and_a_taken_name():
    with pytest.raises(TypeError, match="EnvironmentalFactor subclass"):
        environment_lib.register(dict)
    with pytest.raises(ValueError, match="'halving' is taken by Halving"):

        @environment_lib.register(name="halving")
        class Other(ConstantFactor):
            pass
