"""Config -> data + model -> evolution: a whole paper experiment, as the binaries run it.

Kept apart from the absl binary so benchmarks and notebooks can run an experiment from Python.
Besides the evolution's run directory (see :mod:`tf_evosyn.evolution`) it writes ``config.json``
and ``runtime.json`` (strategy, replicas, devices, precision, XLA and batch sizes of each
session; see :mod:`tf_evosyn.distribute` for how runs scale).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import ml_collections
from absl import logging

from tf_evosyn import distribute as distribute_lib
from tf_evosyn import environment as environment_lib
from tf_evosyn import io_utils, models
from tf_evosyn import lineage as lineage_lib
from tf_evosyn._keras import keras, tf
from tf_evosyn.data import load_classification_data
from tf_evosyn.evolution import Evolution, EvolutionSettings
from tf_evosyn.model_io import load_model

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
SCHEDULES = ("constant", "cosine")
ENVIRONMENTS = ("constant", "synapse_budget", "layer_budget")

# Scale knobs, read with these defaults so configs and run directories older than them still work.
SCALE_DEFAULTS = {
    "distribute.strategy": "default",
    "distribute.tpu_address": "",
    "distribute.num_cpu_devices": 0,
    "train.mixed_precision": "float32",
    "train.jit_compile": False,
}
# Where the run executes may change when it is resumed (e.g. on other hardware); what it computes
# may not: a resumed run must use the same config apart from these keys.
RESUMABLE_CHANGES = ("distribute.",)
RUNTIME_FILENAME = "runtime.json"


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


@dataclass(frozen=True)
class ScaleSettings:
    """How a run executes: ``config.distribute.*``, ``train.mixed_precision``/``jit_compile``."""

    strategy: str = "default"
    tpu_address: str = ""
    num_cpu_devices: int = 0
    mixed_precision: str = "float32"
    jit_compile: bool = False


def _get(config: ml_collections.ConfigDict, dotted: str):
    node = config
    for part in dotted.split("."):
        if node is None or part not in node:
            return SCALE_DEFAULTS[dotted]
        node = node[part]
    return node


def scale_settings(config: ml_collections.ConfigDict) -> ScaleSettings:
    """The scale knobs of ``config`` (defaults for keys an older config does not have)."""
    return ScaleSettings(
        strategy=_get(config, "distribute.strategy"),
        tpu_address=_get(config, "distribute.tpu_address"),
        num_cpu_devices=_get(config, "distribute.num_cpu_devices"),
        mixed_precision=_get(config, "train.mixed_precision"),
        jit_compile=_get(config, "train.jit_compile"),
    )


def _validate_scale(config: ml_collections.ConfigDict) -> None:
    scale = scale_settings(config)
    try:
        distribute_lib.check_strategy_args(scale.strategy, scale.tpu_address, scale.num_cpu_devices)
        distribute_lib.check_precision(scale.mixed_precision)
    except distribute_lib.StrategyError as error:
        raise ConfigError(f"distribute: {error}") from error
    if not isinstance(scale.jit_compile, bool):
        raise ConfigError(f"train.jit_compile must be True or False, got {scale.jit_compile!r}.")
    if scale.jit_compile and config.get("deterministic", False):
        raise ConfigError(
            "train.jit_compile=True needs deterministic=False: TensorFlow's op determinism does "
            "not extend to XLA-compiled steps, and XLA refuses some gradients under it (e.g. "
            "MaxPool). Add --config.deterministic=False, or keep jit_compile=False."
        )


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
    _validate_scale(config)
    evo = config.evolution
    if evo.environment not in ENVIRONMENTS:
        raise ConfigError(f"evolution.environment={evo.environment!r}; use one of {ENVIRONMENTS}.")
    try:
        build_settings(config).validate()
    except (ValueError, AttributeError, KeyError) as error:
        raise ConfigError(f"evolution: {error}") from error


def build_environment(evo: ml_collections.ConfigDict) -> environment_lib.EnvironmentalFactor:
    if evo.environment == "constant":
        return environment_lib.ConstantFactor(evo.cluster_factor, evo.synapse_factor)
    if evo.environment == "layer_budget":
        overrides = evo.get("layer_budgets", None)
        return environment_lib.LayerBudget(
            cluster_fraction=evo.cluster_budget_fraction,
            synapse_fraction=evo.budget_fraction,
            max_factor=evo.budget_max_factor,
            overrides=overrides.to_dict() if overrides is not None else None,
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
        environment=build_environment(evo),
        accuracy_tolerance=evo.accuracy_tolerance,
        max_attempts=evo.max_attempts,
        reinitialize=evo.reinitialize,
        selection=evo.selection,
        seed=config.seed,
        fit_verbose=config.log.fit_verbose,
        tensorboard_fit_logs=config.log.tensorboard_fit_logs,
    )


def make_compile_fn(
    section: ml_collections.ConfigDict, epochs: int, steps_per_epoch: int, jit_compile: bool = False
):
    """Compile with a fresh optimizer of the configured kind (logits + integer labels).

    ``schedule='cosine'`` decays the learning rate to 0 over the ``epochs`` of one training
    (the ancestor's, or one generation's fine-tuning): the last epochs settle instead of
    bouncing at the peak rate, which is worth ~0.5 point on MNIST. ``jit_compile`` compiles the
    train/predict steps with XLA. Call the function inside the strategy's scope (the evolution
    loop does): the optimizer's variables are then distributed like the model's. Under
    ``mixed_float16`` Keras wraps the optimizer in a loss-scale optimizer by itself.
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
            jit_compile=jit_compile,
        )

    return compile_fn


def prepare_workdir(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Write config.json, or check that a resumed run uses the same config."""
    resolved = json.loads(config.to_json_best_effort(sort_keys=True))
    path = workdir / "config.json"
    if path.exists():
        previous = _comparable(io_utils.read_json(path))
        current = _comparable(resolved)
        if previous != current:
            changed = sorted(
                key
                for key in previous.keys() | current.keys()
                if previous.get(key) != current.get(key)
            )
            raise ConfigError(
                f"{workdir} holds a run with a different config (changed: {', '.join(changed)}). "
                "Resume with the same config, or use a new --workdir."
            )
        return
    workdir.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_write_json(path, resolved)


def _comparable(tree: dict) -> dict:
    """Flattened config for the resume check: missing scale keys take their defaults, and the
    keys that may change on resume (where the run executes) are left out."""
    flat = {**SCALE_DEFAULTS, **_flatten(tree)}
    return {k: v for k, v in flat.items() if not k.startswith(RESUMABLE_CHANGES)}


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _worker_workdir(workdir: Path, strategy: tf.distribute.Strategy) -> Path:
    """The chief writes the run directory; every other worker of a multi-worker run keeps a
    private copy under ``workers/`` (all workers run every step, only the chief's files count).
    """
    if distribute_lib.is_chief(strategy):
        return workdir
    resolver = strategy.cluster_resolver
    return workdir / "workers" / f"{resolver.task_type}_{resolver.task_id}"


def write_runtime(
    workdir: Path, strategy: tf.distribute.Strategy, scale: ScaleSettings, batch_size: int
) -> dict:
    """Record how this invocation runs in ``DIR/runtime.json`` (latest session at the top
    level, earlier sessions of a resumed run under ``previous_sessions``). Kept out of the
    lineage and config.json, whose formats do not depend on the hardware."""
    path = workdir / RUNTIME_FILENAME
    previous = io_utils.read_json(path) if path.exists() else None
    history = []
    if previous:
        history = previous.pop("previous_sessions", [])
        history.append(previous)
    replicas = int(strategy.num_replicas_in_sync)
    session = {
        **distribute_lib.describe(strategy),
        "mixed_precision": scale.mixed_precision,
        "jit_compile": scale.jit_compile,
        "global_batch_size": batch_size,
        "per_replica_batch_size": batch_size // replicas,
        "tensorflow": tf.__version__,
        # -1: a fresh run; otherwise this session resumes after that generation.
        "resumed_after_generation": lineage_lib.Lineage(
            workdir / lineage_lib.LINEAGE_FILENAME
        ).last_generation,
        "previous_sessions": history,
    }
    io_utils.atomic_write_json(path, session)
    return session


def run_classification(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    strategy: tf.distribute.Strategy | None = None,
) -> list[dict]:
    """Run (or resume) a classification evolution experiment; returns the lineage records.

    ``strategy``: a ready ``tf.distribute`` strategy; default: the one ``config.distribute``
    names, made here first thing (before TensorFlow initialises devices, which splitting the
    CPU into logical devices needs). Every model is built, loaded, cloned and compiled inside
    its scope. ``config.train.batch_size`` is the global batch: each of the N replicas trains on
    ``batch_size / N`` examples per step.
    """
    workdir = Path(workdir)
    validate_config(config)
    scale = scale_settings(config)
    if strategy is None:
        try:
            strategy = distribute_lib.make_strategy(
                scale.strategy, scale.tpu_address, scale.num_cpu_devices
            )
        except distribute_lib.StrategyError as error:
            raise ConfigError(f"distribute: {error}") from error
    try:
        distribute_lib.check_jit_compile(strategy, scale.jit_compile)
    except distribute_lib.StrategyError as error:
        raise ConfigError(f"train: {error}") from error
    replicas = int(strategy.num_replicas_in_sync)
    batch_size = config.train.batch_size
    if batch_size % replicas:
        raise ConfigError(
            f"train.batch_size={batch_size} is the global batch and must split evenly over the "
            f"{replicas} replicas; use a multiple of {replicas}."
        )
    previous_policy = keras.mixed_precision.global_policy()
    distribute_lib.set_precision(scale.mixed_precision)
    try:
        return _run(config, _worker_workdir(workdir, strategy), strategy, scale)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _run(
    config: ml_collections.ConfigDict,
    workdir: Path,
    strategy: tf.distribute.Strategy,
    scale: ScaleSettings,
) -> list[dict]:
    data = load_classification_data(config.data)  # validates files before any training
    prepare_workdir(config, workdir)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    batch_size = config.train.batch_size
    runtime = write_runtime(workdir, strategy, scale, batch_size)
    logging.info(
        "Strategy %s: %d replica(s), global batch %d (%d per replica), %s%s.",
        runtime["strategy"],
        runtime["num_replicas"],
        batch_size,
        runtime["per_replica_batch_size"],
        scale.mixed_precision,
        ", XLA" if scale.jit_compile else "",
    )
    steps_per_epoch = -(-len(data.train_labels) // batch_size)
    test_data = data.test_dataset(batch_size=max(batch_size, 256))

    ancestor, ancestor_epochs = None, 0
    if not (workdir / "lineage.jsonl").exists():
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():  # every variable, masks and heredity buffers too, is mirrored
            if config.train.ancestor_path:
                ancestor = load_model(config.train.ancestor_path)
            else:
                ancestor = models.build(
                    config.model.name, input_shape=data.input_shape, num_classes=data.num_classes
                )
                ancestor_epochs = config.train.epochs
            # Mixed precision: every layer in the policy, float32 logits.
            ancestor = distribute_lib.with_precision(ancestor, scale.mixed_precision)
    evolution = Evolution(
        workdir,
        compile_fn=make_compile_fn(
            config.evolution,
            config.evolution.epochs_per_generation,
            steps_per_epoch,
            jit_compile=scale.jit_compile,
        ),
        train_data=lambda seed: data.train_dataset(batch_size=batch_size, seed=seed),
        test_data=test_data,
        settings=build_settings(config),
        ancestor_compile_fn=make_compile_fn(
            config.train, config.train.epochs, steps_per_epoch, jit_compile=scale.jit_compile
        ),
        strategy=strategy,
    )
    return evolution.run(ancestor, ancestor_epochs=ancestor_epochs)
