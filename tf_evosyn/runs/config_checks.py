"""Checking an experiment config before anything runs, and reading its evolution section.

Every knob is checked cheaply, before any data is read or any training starts; a bad value
raises :class:`ConfigError` whose message names the key and the fix.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections

from tf_evosyn import models
from tf_evosyn.core.heredity import Heredity
from tf_evosyn.environments import alignment, flops_budget
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.cluster_floor import ClusterFloor
from tf_evosyn.environments.flops_budget import FlopsBudget
from tf_evosyn.environments.latency_budget import LatencyBudget
from tf_evosyn.loop.recipes import OPTIMIZERS, RECIPE_DEFAULTS, SCHEDULES, recipe
from tf_evosyn.loop.settings import EvolutionSettings
from tf_evosyn.models.lenet5 import CONV_ACTIVATIONS
from tf_evosyn.runs.errors import ConfigError, is_number
from tf_evosyn.runs.scale import validate_scale

ENVIRONMENTS = ("constant", "synapse_budget", "layer_budget", "flops_budget", "latency_budget")


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Cheap checks of every knob, before any data is read or any training starts."""
    if config.model.name not in models.names():
        raise ConfigError(f"model.name={config.model.name!r} unknown; use one of {models.names()}.")
    for section in ("train", "evolution"):
        name = config[section].optimizer
        if name not in OPTIMIZERS:
            raise ConfigError(
                f"{section}.optimizer={name!r} unknown; use one of {list(OPTIMIZERS)}."
            )
        if config[section].learning_rate <= 0:
            raise ConfigError(f"{section}.learning_rate must be > 0.")
        if config[section].schedule not in SCHEDULES:
            raise ConfigError(
                f"{section}.schedule={config[section].schedule!r}; use one of {SCHEDULES}."
            )
        _validate_recipe(config, section)
    _validate_weight_decay(config)
    _validate_conv_activation(config)
    if config.train.batch_size < 1:
        raise ConfigError("train.batch_size must be >= 1.")
    offspring_batch = config.evolution.get("batch_size", 0)
    if type(offspring_batch) is not int or offspring_batch < 0:  # bool is not a batch size
        raise ConfigError(
            f"evolution.batch_size={offspring_batch!r}: use an integer >= 1, or 0 for "
            "train.batch_size."
        )
    if config.train.epochs < 0:
        raise ConfigError("train.epochs must be >= 0 (0 = the ancestor is already trained).")
    if config.train.ancestor_path and not Path(config.train.ancestor_path).exists():
        raise ConfigError(f"train.ancestor_path={config.train.ancestor_path!r} does not exist.")
    validate_scale(config)
    evo = config.evolution
    _check_environment_choice(evo.environment)
    try:
        build_settings(config).validate()
    except (ValueError, AttributeError, KeyError) as error:
        raise ConfigError(f"evolution: {error}") from error


def _validate_recipe(config: ml_collections.ConfigDict, name: str) -> None:
    """Momentum, Nesterov, piecewise boundaries and warm-up of the ``train``/``evolution``
    section ``name``."""
    section = config[name]
    momentum = recipe(section, "momentum")
    if not is_number(momentum) or not 0.0 <= momentum < 1.0:
        raise ConfigError(
            f"{name}.momentum must be a number in [0, 1) (0 = plain SGD, 0.9 = the usual SGD "
            f"momentum), got {momentum!r}."
        )
    nesterov = recipe(section, "nesterov")
    if not isinstance(nesterov, bool):
        raise ConfigError(f"{name}.nesterov must be True or False, got {nesterov!r}.")
    if section.optimizer != "sgd" and (momentum > 0 or nesterov):
        raise ConfigError(
            f"{name}.momentum/nesterov apply to SGD only, but {name}.optimizer="
            f"{section.optimizer!r} (Adam's momentum is its beta_1); set "
            f"--config.{name}.optimizer=sgd or --config.{name}.momentum=0."
        )
    if nesterov and momentum == 0:
        raise ConfigError(
            f"{name}.nesterov=True needs {name}.momentum > 0 (e.g. --config.{name}.momentum=0.9)."
        )
    steps = recipe(section, "steps_per_execution")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(
            f"{name}.steps_per_execution must be an integer >= 1 (1 = one step per call; "
            f"larger values save dispatch time on TPUs and GPUs), got {steps!r}."
        )
    warmup = recipe(section, "warmup_epochs")
    if not is_number(warmup) or warmup < 0:
        raise ConfigError(
            f"{name}.warmup_epochs must be a number >= 0 (0 = no warm-up), got {warmup!r}."
        )
    if section.schedule == "exponential":
        factor = recipe(section, "decay_factor")
        if not is_number(factor) or not 0.0 < factor <= 1.0:
            raise ConfigError(
                f"{name}.decay_factor must be in (0, 1] for schedule='exponential' (the rate's "
                f"multiplier per epoch, e.g. 0.98), got {factor!r}."
            )
        return
    if section.schedule != "piecewise":
        return
    if section.get("boundaries_epochs", None) is None:
        raise ConfigError(
            f"{name}.schedule='piecewise' needs {name}.boundaries_epochs: the epochs at which the "
            f"learning rate is multiplied by {name}.decay_factor (default "
            f"{RECIPE_DEFAULTS['decay_factor']}), e.g. boundaries_epochs=(82, 123)."
        )
    boundaries = section.boundaries_epochs
    if isinstance(boundaries, str) or not isinstance(boundaries, list | tuple) or not boundaries:
        raise ConfigError(
            f"{name}.boundaries_epochs must be a non-empty list of epochs for "
            f"schedule='piecewise', e.g. (82, 123); got {boundaries!r}."
        )
    if not all(is_number(b) and b > 0 for b in boundaries):
        raise ConfigError(
            f"{name}.boundaries_epochs must hold positive numbers of epochs, got {boundaries!r}."
        )
    if any(b <= a for a, b in zip(boundaries, boundaries[1:], strict=False)):
        raise ConfigError(
            f"{name}.boundaries_epochs must be strictly increasing, got {boundaries!r}."
        )
    factor = recipe(section, "decay_factor")
    if not is_number(factor) or not 0.0 < factor <= 1.0:
        raise ConfigError(
            f"{name}.decay_factor must be in (0, 1] (0.1 divides the rate by 10), got {factor!r}."
        )


def weight_decay(config: ml_collections.ConfigDict):
    """``model.weight_decay`` (None when unset: the model builder's default applies)."""
    return config.model.get("weight_decay", None)


def _validate_weight_decay(config: ml_collections.ConfigDict) -> None:
    value = weight_decay(config)
    if value is None:
        return
    if not is_number(value) or value < 0:
        raise ConfigError(
            f"model.weight_decay must be a number >= 0 (the SGD weight decay; 0 = none), got "
            f"{value!r}."
        )
    if not models.accepts_keyword(config.model.name, "weight_decay"):
        raise ConfigError(
            f"model.weight_decay={value!r}, but model {config.model.name!r} takes no weight "
            "decay; leave model.weight_decay unset (None) for it."
        )


def _validate_conv_activation(config: ml_collections.ConfigDict) -> None:
    value = config.model.get("conv_activation", None)
    if value is None:
        return
    if value not in CONV_ACTIVATIONS:
        raise ConfigError(
            f"model.conv_activation={value!r}; use one of {CONV_ACTIVATIONS} (linear: Caffe's "
            "LeNet-5; activations with f(0) != 0 would make dead filters emit non-zero)."
        )
    if not models.accepts_keyword(config.model.name, "conv_activation"):
        raise ConfigError(
            f"model.conv_activation={value!r}, but model {config.model.name!r} has no such "
            "option; leave model.conv_activation unset (None) for it."
        )


def model_kwargs(config: ml_collections.ConfigDict) -> dict:
    """Extra keyword arguments of ``models.build`` from ``config.model``."""
    kwargs = {}
    decay = weight_decay(config)
    if decay is not None:
        kwargs["weight_decay"] = float(decay)
    if config.model.get("conv_activation", None) is not None:
        kwargs["conv_activation"] = str(config.model.conv_activation)
    return kwargs


def build_environment(evo: ml_collections.ConfigDict) -> environment_lib.EnvironmentalFactor:
    """The environment the ``evolution`` section asks for: aligned when ``align_channels`` > 1,
    then held at ``min_clusters`` floors (which win over alignment: a floor is a requirement)."""
    environment = _aligned_environment(evo)
    floors = _plain(evo.get("min_clusters", None))
    return ClusterFloor(environment, floors) if floors else environment


def _aligned_environment(evo: ml_collections.ConfigDict) -> environment_lib.EnvironmentalFactor:
    environment = _base_environment(evo)
    multiple = evo.get("align_channels", 0)
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 0:
        raise ConfigError(
            f"evolution.align_channels must be an integer >= 0 (0 or 1 = off, 8 = keep every "
            f"layer's living channels a multiple of 8), got {multiple!r}."
        )
    if multiple <= 1:
        return environment
    rounding = evo.get("align_rounding", "stochastic")
    if rounding not in alignment.ROUNDINGS:
        raise ConfigError(
            f"evolution.align_rounding={rounding!r}; use one of {alignment.ROUNDINGS}."
        )
    return alignment.ChannelAlignment(environment, multiple, rounding)


def _flops_budget(evo: ml_collections.ConfigDict) -> FlopsBudget:
    fraction = evo.get("flops_fraction", None)
    if not is_number(fraction) or not 0.0 < fraction <= 1.0:
        raise ConfigError(
            "evolution.environment='flops_budget' needs evolution.flops_fraction in (0, 1]: the "
            f"share of the parent's MACs each offspring keeps (e.g. 0.7), got {fraction!r}."
        )
    count = evo.get("flops_count", "dense")
    if count not in flops_budget.COUNTS:
        raise ConfigError(f"evolution.flops_count={count!r}; use one of {flops_budget.COUNTS}.")
    return FlopsBudget(
        fraction,
        count=count,
        synapse_factor=evo.synapse_factor,
        max_factor=evo.budget_max_factor,
        overrides=_plain(evo.get("flops_budgets", None)),
        retry_relief=evo.get("retry_relief", 0.0),
    )


def _latency_budget(evo: ml_collections.ConfigDict) -> LatencyBudget:
    fraction = evo.get("latency_fraction", None)
    milliseconds = evo.get("latency_ms", None)
    if (fraction is None) == (milliseconds is None):
        raise ConfigError(
            "evolution.environment='latency_budget' needs exactly one of "
            "evolution.latency_fraction (share of the parent's measured latency, e.g. 0.7) and "
            "evolution.latency_ms (a per-offspring budget in ms); set the other to None."
        )
    if fraction is not None and (not is_number(fraction) or not 0.0 < fraction <= 1.0):
        raise ConfigError(f"evolution.latency_fraction must be in (0, 1], got {fraction!r}.")
    if milliseconds is not None and (not is_number(milliseconds) or milliseconds <= 0):
        raise ConfigError(f"evolution.latency_ms must be a number > 0, got {milliseconds!r}.")
    threads = evo.get("latency_threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"evolution.latency_threads must be an integer >= 1, got {threads!r}.")
    return LatencyBudget(
        fraction,
        milliseconds,
        threads,
        max_factor=evo.budget_max_factor,
        synapse_factor=evo.synapse_factor,
    )


def _check_environment_choice(choice) -> None:
    """``evolution.environment``: one of the named recipes, or dict(name=..., **kwargs)."""
    if isinstance(choice, ml_collections.ConfigDict | dict):
        name = dict(choice).get("name")
        if name not in environment_lib.registered_names() and name not in environment_lib._REGISTRY:
            raise ConfigError(
                f"evolution.environment.name={name!r}; use one of "
                f"{environment_lib.registered_names()} (tf_evosyn.environments.register adds "
                "your own)."
            )
        return
    if choice not in ENVIRONMENTS:
        raise ConfigError(
            f"evolution.environment={choice!r}; use one of {ENVIRONMENTS}, or "
            "dict(name=<registered environment>, **its arguments)."
        )


def _base_environment(evo: ml_collections.ConfigDict) -> environment_lib.EnvironmentalFactor:
    if isinstance(evo.environment, ml_collections.ConfigDict | dict):
        kwargs = (
            _plain(evo.environment)
            if not isinstance(evo.environment, dict)
            else dict(evo.environment)
        )
        return environment_lib.build(kwargs.pop("name"), **kwargs)
    if evo.environment == "latency_budget":
        return _latency_budget(evo)
    if evo.environment == "flops_budget":
        return _flops_budget(evo)
    if evo.environment == "constant":
        return environment_lib.ConstantFactor(evo.cluster_factor, evo.synapse_factor)
    if evo.environment == "layer_budget":
        return environment_lib.LayerBudget(
            cluster_fraction=evo.cluster_budget_fraction,
            synapse_fraction=evo.budget_fraction,
            max_factor=evo.budget_max_factor,
            overrides=_plain(evo.get("layer_budgets", None)),
            retry_relief=evo.get("retry_relief", 0.0),
        )
    return environment_lib.SynapseBudget(
        evo.budget_fraction,
        evo.budget_level,
        max_factor=evo.budget_max_factor,
        cluster_factor=evo.cluster_factor,
        synapse_factor=evo.synapse_factor,
    )


def build_settings(config: ml_collections.ConfigDict) -> EvolutionSettings:
    evo = config.evolution
    return EvolutionSettings(
        generations=evo.generations,
        epochs_per_generation=evo.epochs_per_generation,
        epochs_per_doubling=evo.get("epochs_per_doubling", 0.0),
        max_epochs_per_generation=evo.get("max_epochs_per_generation", 0),
        final_epochs=evo.get("final_epochs", 0),
        stop_at=_plain(evo.get("stop_at", None)) or {},
        land_on_stop_target=evo.get("land_on_stop_target", False),
        environment=build_environment(evo),
        accuracy_tolerance=evo.get("accuracy_tolerance", 0.01),
        score_tolerance=evo.get("score_tolerance", None),
        relative_tolerance=evo.get("relative_tolerance", None),
        population=evo.get("population", 1),
        parents=evo.get("parents", 1),
        efficiency_weight=evo.get("efficiency_weight", 0.005),
        max_attempts=evo.max_attempts,
        reinitialize=evo.reinitialize,
        heredity=Heredity(
            synapse_sharpness=evo.get("synapse_sharpness", 1.0),
            cluster_sharpness=evo.get("cluster_sharpness", 1.0),
        ),
        compact_offspring=evo.get("compact_offspring", False),
        rematch_batchnorm_images=evo.get("rematch_batchnorm_images", 0),
        selection=evo.selection,
        seed=config.seed,
        fit_verbose=config.log.fit_verbose,
        tensorboard_fit_logs=config.log.tensorboard_fit_logs,
        distill_temperature=evo.get("distill_temperature", 0.0),
        distill_alpha=evo.get("distill_alpha", 0.1),
    )


def _plain(value):
    """A ConfigDict section as a plain dict; other values (None, ...) as they are, for the
    environment or settings that take them to check."""
    return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def offspring_batch_size(config: ml_collections.ConfigDict) -> int:
    """The global batch offspring fine-tune on: ``evolution.batch_size``, or (0, absent) the
    ancestor's ``train.batch_size``."""
    return config.evolution.get("batch_size", 0) or config.train.batch_size
