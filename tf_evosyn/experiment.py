"""Config -> data + model -> evolution: a whole paper experiment, as the binaries run it.

Kept apart from the absl binary so benchmarks and notebooks can run an experiment from Python.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections

from tf_evosyn import environment as environment_lib
from tf_evosyn import io_utils, models
from tf_evosyn._keras import keras, tf
from tf_evosyn.data import load_classification_data
from tf_evosyn.evolution import Evolution, EvolutionSettings
from tf_evosyn.model_io import load_model

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
SCHEDULES = ("constant", "cosine")
ENVIRONMENTS = ("constant", "synapse_budget")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


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
    if config.train.batch_size < 1:
        raise ConfigError("train.batch_size must be >= 1.")
    if config.train.epochs < 0:
        raise ConfigError("train.epochs must be >= 0 (0 = the ancestor is already trained).")
    if config.train.ancestor_path and not Path(config.train.ancestor_path).exists():
        raise ConfigError(f"train.ancestor_path={config.train.ancestor_path!r} does not exist.")
    evo = config.evolution
    if evo.environment not in ENVIRONMENTS:
        raise ConfigError(f"evolution.environment={evo.environment!r}; use one of {ENVIRONMENTS}.")
    try:
        build_settings(config).validate()
    except ValueError as error:
        raise ConfigError(f"evolution: {error}") from error


def build_environment(evo: ml_collections.ConfigDict) -> environment_lib.EnvironmentalFactor:
    if evo.environment == "constant":
        return environment_lib.ConstantFactor(evo.cluster_factor, evo.synapse_factor)
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
        environment=build_environment(evo),
        accuracy_tolerance=evo.accuracy_tolerance,
        max_attempts=evo.max_attempts,
        reinitialize=evo.reinitialize,
        selection=evo.selection,
        seed=config.seed,
        fit_verbose=config.log.fit_verbose,
        tensorboard_fit_logs=config.log.tensorboard_fit_logs,
    )


def make_compile_fn(section: ml_collections.ConfigDict, epochs: int, steps_per_epoch: int):
    """Compile with a fresh optimizer of the configured kind (logits + integer labels).

    ``schedule='cosine'`` decays the learning rate to 0 over the ``epochs`` of one training
    (the ancestor's, or one generation's fine-tuning): the last epochs settle instead of
    bouncing at the peak rate, which is worth ~0.5 point on MNIST.
    """

    def compile_fn(model: keras.Model) -> None:
        learning_rate = section.learning_rate
        if section.schedule == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(
                learning_rate, decay_steps=max(1, epochs * steps_per_epoch)
            )
        optimizer = OPTIMIZERS[section.optimizer](learning_rate=learning_rate)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )

    return compile_fn


def prepare_workdir(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Write config.json, or check that a resumed run uses the same config."""
    resolved = json.loads(config.to_json_best_effort(sort_keys=True))
    path = workdir / "config.json"
    if path.exists():
        previous = io_utils.read_json(path)
        if previous != resolved:
            changed = sorted(
                key
                for key in _flatten(previous).keys() | _flatten(resolved).keys()
                if _flatten(previous).get(key) != _flatten(resolved).get(key)
            )
            raise ConfigError(
                f"{workdir} holds a run with a different config (changed: {', '.join(changed)}). "
                "Resume with the same config, or use a new --workdir."
            )
        return
    workdir.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_write_json(path, resolved)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_classification(config: ml_collections.ConfigDict, workdir: str | Path) -> list[dict]:
    """Run (or resume) a classification evolution experiment; returns the lineage records."""
    workdir = Path(workdir)
    validate_config(config)
    data = load_classification_data(config.data)  # validates files before any training
    prepare_workdir(config, workdir)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    batch_size = config.train.batch_size
    steps_per_epoch = -(-len(data.train_labels) // batch_size)
    test_data = data.test_dataset(batch_size=max(batch_size, 256))

    ancestor, ancestor_epochs = None, 0
    if not (workdir / "lineage.jsonl").exists():
        keras.utils.set_random_seed(config.seed)
        if config.train.ancestor_path:
            ancestor = load_model(config.train.ancestor_path)
        else:
            ancestor = models.build(
                config.model.name, input_shape=data.input_shape, num_classes=data.num_classes
            )
            ancestor_epochs = config.train.epochs
    evolution = Evolution(
        workdir,
        compile_fn=make_compile_fn(
            config.evolution, config.evolution.epochs_per_generation, steps_per_epoch
        ),
        train_data=lambda seed: data.train_dataset(batch_size=batch_size, seed=seed),
        test_data=test_data,
        settings=build_settings(config),
        ancestor_compile_fn=make_compile_fn(config.train, config.train.epochs, steps_per_epoch),
    )
    return evolution.run(ancestor, ancestor_epochs=ancestor_epochs)
