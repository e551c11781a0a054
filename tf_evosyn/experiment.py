"""Config -> data + model -> evolution: a whole paper experiment, as the binaries run it.

Kept apart from the absl binary so benchmarks and notebooks can run an experiment from Python.
Besides the evolution's run directory (see :mod:`tf_evosyn.evolution`) it writes ``config.json``
and ``runtime.json`` (strategy, replicas, devices, precision, XLA and batch sizes of each
session; see :mod:`tf_evosyn.distribute` for how runs scale).
"""

from __future__ import annotations

import json
import math
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
SCHEDULES = ("constant", "cosine", "piecewise")
ENVIRONMENTS = ("constant", "synapse_budget", "layer_budget")

# Scale knobs, read with these defaults so configs and run directories older than them still work.
SCALE_DEFAULTS = {
    "distribute.strategy": "default",
    "distribute.tpu_address": "",
    "distribute.num_cpu_devices": 0,
    "train.mixed_precision": "float32",
    "train.jit_compile": False,
}
# Training-recipe knobs of the ``train`` and ``evolution`` sections and the model's weight decay,
# read with these defaults (the behaviour before they existed) so older configs and run
# directories keep working. See :func:`learning_rate_schedule` for their meaning.
RECIPE_DEFAULTS = {
    "momentum": 0.0,  # SGD momentum (0 = plain SGD)
    "nesterov": False,  # Nesterov momentum (SGD with momentum > 0 only)
    "boundaries_epochs": (),  # piecewise: epochs at which the rate is multiplied by decay_factor
    "decay_factor": 0.1,  # piecewise: the multiplier at each boundary
    "warmup_epochs": 0.0,  # linear warm-up from ~0 to the schedule's rate over these epochs
}
RECIPE_SECTIONS = ("train", "evolution")
# Other keys added after run directories existed, with the value that means "as before":
# model.weight_decay None = the model builder's own default (ResNets 1e-4, AlexNet 0.004; LeNet-5
# has none; a value is passed to models.build as weight_decay=...); data.normalize_style, see
# tf_evosyn.data.registry.NORMALIZE_STYLES.
OPTIONAL_DEFAULTS = {"model.weight_decay": None, "data.normalize_style": "standardize"}

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
        _validate_recipe(config, section)
    _validate_weight_decay(config)
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


def recipe(section: ml_collections.ConfigDict, key: str):
    """``section.key`` of a training-recipe knob, or its default from :data:`RECIPE_DEFAULTS`."""
    value = section.get(key, None)
    return RECIPE_DEFAULTS[key] if value is None else value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validate_recipe(config: ml_collections.ConfigDict, name: str) -> None:
    """Momentum, Nesterov, piecewise boundaries and warm-up of the ``train``/``evolution``
    section ``name``."""
    section = config[name]
    momentum = recipe(section, "momentum")
    if not _is_number(momentum) or not 0.0 <= momentum < 1.0:
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
    warmup = recipe(section, "warmup_epochs")
    if not _is_number(warmup) or warmup < 0:
        raise ConfigError(
            f"{name}.warmup_epochs must be a number >= 0 (0 = no warm-up), got {warmup!r}."
        )
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
    if not all(_is_number(b) and b > 0 for b in boundaries):
        raise ConfigError(
            f"{name}.boundaries_epochs must hold positive numbers of epochs, got {boundaries!r}."
        )
    if any(b <= a for a, b in zip(boundaries, boundaries[1:], strict=False)):
        raise ConfigError(
            f"{name}.boundaries_epochs must be strictly increasing, got {boundaries!r}."
        )
    factor = recipe(section, "decay_factor")
    if not _is_number(factor) or not 0.0 < factor <= 1.0:
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
    if not _is_number(value) or value < 0:
        raise ConfigError(
            f"model.weight_decay must be a number >= 0 (the SGD weight decay; 0 = none), got "
            f"{value!r}."
        )
    if not models.accepts_keyword(config.model.name, "weight_decay"):
        raise ConfigError(
            f"model.weight_decay={value!r}, but model {config.model.name!r} takes no weight "
            "decay; leave model.weight_decay unset (None) for it."
        )


def model_kwargs(config: ml_collections.ConfigDict) -> dict:
    """Extra keyword arguments of ``models.build`` from ``config.model``."""
    value = weight_decay(config)
    return {} if value is None else {"weight_decay": float(value)}


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
        distill_temperature=evo.get("distill_temperature", 0.0),
        distill_alpha=evo.get("distill_alpha", 0.1),
    )


@keras.utils.register_keras_serializable(package="tf_evosyn")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule``'s rate, scaled by ``(step + 1) / warmup_steps`` during the first
    ``warmup_steps`` steps (Goyal et al. 2017's gradual warm-up). The wrapped schedule runs
    on the same step counter, so its boundaries stay where they were configured."""

    def __init__(self, schedule, warmup_steps: int):
        super().__init__()
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            rate = tf.cast(self.schedule(step), tf.float32)
        else:
            rate = tf.constant(float(self.schedule), tf.float32)
        ramp = tf.minimum(1.0, (step + 1.0) / float(max(1, self.warmup_steps)))
        return rate * ramp

    def get_config(self):
        schedule = self.schedule
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            schedule = keras.optimizers.schedules.serialize(schedule)
        return {"schedule": schedule, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(**config)


def piecewise_boundary_steps(boundaries_epochs, steps_per_epoch: int) -> list[int]:
    """Keras ``PiecewiseConstantDecay`` boundaries for epoch boundaries: the rate changes at the
    first step of epoch ``b`` (step ``round(b * steps_per_epoch)``, counting from 0), like
    Caffe's ``multistep`` policy (``iter >= stepvalue``). Keras switches *after* a boundary
    step, hence the ``- 1``."""
    return [max(0, round(float(b) * steps_per_epoch) - 1) for b in boundaries_epochs]


def learning_rate_schedule(
    section: ml_collections.ConfigDict, epochs: int, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate (a float or a Keras schedule) that ``section`` describes.

    ``schedule``: ``constant``; ``cosine`` decays to 0 over the ``epochs`` of one training (the
    ancestor's, or one generation's fine-tuning); ``piecewise`` multiplies the rate by
    ``decay_factor`` from each of ``boundaries_epochs`` on (e.g. He et al.'s /10 at 32k and 48k
    iterations: ``(82, 123)`` at 391 steps per epoch). Boundaries are counted from the start of
    each training, so for ``evolution`` they are epochs of one generation; a boundary at or after
    ``epochs`` never takes effect. ``warmup_epochs`` > 0 ramps the rate up linearly over that
    many epochs first (:class:`LinearWarmup`).
    """
    learning_rate = float(section.learning_rate)
    if section.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, epochs * steps_per_epoch)
        )
    elif section.schedule == "piecewise":
        boundaries = list(recipe(section, "boundaries_epochs"))
        factor = float(recipe(section, "decay_factor"))
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            piecewise_boundary_steps(boundaries, steps_per_epoch),
            [learning_rate * factor**i for i in range(len(boundaries) + 1)],
        )
    warmup_steps = round(float(recipe(section, "warmup_epochs")) * steps_per_epoch)
    if warmup_steps > 0:
        learning_rate = LinearWarmup(learning_rate, warmup_steps)
    return learning_rate


def make_optimizer(
    section: ml_collections.ConfigDict, epochs: int, steps_per_epoch: int
) -> keras.optimizers.Optimizer:
    """A fresh optimizer of ``section.optimizer`` with its schedule (and SGD momentum)."""
    learning_rate = learning_rate_schedule(section, epochs, steps_per_epoch)
    if section.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate,
            momentum=float(recipe(section, "momentum")),
            nesterov=bool(recipe(section, "nesterov")),
        )
    return OPTIMIZERS[section.optimizer](learning_rate=learning_rate)


def make_compile_fn(
    section: ml_collections.ConfigDict, epochs: int, steps_per_epoch: int, jit_compile: bool = False
):
    """Compile with a fresh optimizer of the configured kind (logits + integer labels).

    The learning rate follows :func:`learning_rate_schedule` (``schedule='cosine'`` decays it to
    0 over the ``epochs`` of one training: the last epochs settle instead of bouncing at the
    peak rate, which is worth ~0.5 point on MNIST); SGD takes ``momentum``/``nesterov``.
    ``jit_compile`` compiles the train/predict steps with XLA. Call the function inside the
    strategy's scope (the evolution loop does): the optimizer's variables are then distributed
    like the model's. Under ``mixed_float16`` Keras wraps the optimizer in a loss-scale
    optimizer by itself. Weight decay is part of the model (L2 kernel regularizers, see
    ``model.weight_decay``), so it is in the training loss.
    """

    def compile_fn(model: keras.Model) -> None:
        model.compile(
            optimizer=make_optimizer(section, epochs, steps_per_epoch),
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
    flat = {**SCALE_DEFAULTS, **_recipe_defaults(tree), **OPTIONAL_DEFAULTS, **_flatten(tree)}
    return {k: v for k, v in flat.items() if not k.startswith(RESUMABLE_CHANGES)}


def _recipe_defaults(tree: dict) -> dict:
    """The recipe knobs' defaults for the sections a resolved config has (JSON form)."""
    return {
        f"{section}.{key}": list(value) if isinstance(value, tuple) else value
        for section in RECIPE_SECTIONS
        if section in tree
        for key, value in RECIPE_DEFAULTS.items()
    }


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
                    config.model.name,
                    input_shape=data.input_shape,
                    num_classes=data.num_classes,
                    **model_kwargs(config),
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
