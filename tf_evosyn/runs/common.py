"""What every experiment run shares: the run directory's config and runtime records, the
``tf.distribute`` strategy and the precision policy around the task-specific part.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable

import ml_collections

from tf_evosyn._keras import keras, tf
from tf_evosyn.data.transforms import CIFAR_PAD
from tf_evosyn.loop import distribute as distribute_lib
from tf_evosyn.loop import lineage as lineage_lib
from tf_evosyn.loop.recipes import RECIPE_DEFAULTS, RECIPE_SECTIONS
from tf_evosyn.loop.run_dir import RunDirectory
from tf_evosyn.loop.workers import PopulationWorkers
from tf_evosyn.runs.config_checks import offspring_batch_size
from tf_evosyn.runs.errors import ConfigError
from tf_evosyn.runs.scale import (
    SCALE_DEFAULTS,
    ScaleSettings,
    scale_settings,
)
from tf_evosyn.storage import fs, io_utils

# What a non-chief worker's private copy leaves out: the chief's logs, never read back.
_WORKER_COPY_SKIP = ("tensorboard",)

# Other keys added after run directories existed, with the value that means "as before":
# model.weight_decay None = the model builder's own default (ResNets 1e-4, AlexNet 0.004; LeNet-5
# has none; a value is passed to models.build as weight_decay=...); data.normalize_style, see
# tf_evosyn.data.registry.NORMALIZE_STYLES.
_OPTIONAL_DEFAULTS = {
    "model.weight_decay": None,
    "model.conv_activation": "linear",  # LeNet-5 as Caffe has it (other models: no such key)
    "data.normalize_style": "standardize",
    "data.augment_pad": CIFAR_PAD,
    "data.augment_flip": True,
    "data.validation_size": None,  # None: the dataset's default (data/validation.py)
    "evolution.select_on": "validation",
    "evolution.population": 1,
    "evolution.parents": 1,
    "evolution.efficiency_weight": 0.005,
    "evolution.compact_offspring": False,
    "evolution.rematch_batchnorm_images": 0,
    "evolution.epochs_per_doubling": 0.0,
    "evolution.max_epochs_per_generation": 0,
    "evolution.final_epochs": 0,
    "evolution.stop_at": None,  # no efficiency targets (stop_targets.py)
    "evolution.land_on_stop_target": False,
    "evolution.min_clusters": None,  # no cluster floors (cluster_floor.py)
    "evolution.batch_size": 0,  # 0: train.batch_size
    "evolution.score_tolerance": None,
    "evolution.relative_tolerance": None,
    "detection.coverage_positive_weight": 1.0,
    # Hardware-aware environments (read only by the environment that names them; alignment
    # off = as before).
    "evolution.align_channels": 0,
    "evolution.align_rounding": "stochastic",
    "evolution.flops_fraction": 0.7,
    "evolution.flops_count": "dense",
    "evolution.flops_budgets": None,
    "evolution.latency_fraction": 0.7,
    "evolution.latency_ms": None,
    "evolution.latency_threads": 1,
    "evolution.synapse_sharpness": 1.0,  # the papers' heredity (heredity.py)
    "evolution.cluster_sharpness": 1.0,
}
_SELECT_ON = ("validation", "test")

# Where the run executes may change when it is resumed (e.g. on other hardware), and how long
# it goes on (more generations or higher stop_at targets continue a finished run, a final
# fine-tuning follows it: earlier ones are not affected); what it computes may not: a resumed
# run must use the same config apart from these keys.
_RESUMABLE_CHANGES = (
    "distribute.",
    "evolution.generations",
    "evolution.stop_at",
    "evolution.final_epochs",
    "log.",
)
_RUNTIME_FILENAME = "runtime.json"


def prepare_workdir(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike[str],
    workers: PopulationWorkers | None = None,
) -> None:
    """Write config.json, or check that a resumed run uses the same config. A population
    worker that helps the leader (``workers``) only checks it, once the leader wrote it."""
    resolved = json.loads(config.to_json_best_effort(sort_keys=True))
    path = fs.join(workdir, "config.json")
    if workers is not None and not workers.leads:
        workers.wait_for(lambda: fs.exists(path) or None, f"{path} (the leader writes it first)")
    if fs.exists(path):
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
    fs.makedirs(workdir)
    io_utils.atomic_write_json(path, resolved)


def task_name(config) -> str:
    """``config.task``; for configs without it, "detection" when it has a detection section."""
    if "task" in config:
        return str(config["task"])
    return "detection" if "detection" in config else "classification"


def _comparable(tree: dict) -> dict:
    """Flattened config for the resume check: missing scale keys take their defaults, and the
    keys that may change on resume (where the run executes) are left out."""
    flat = {
        **SCALE_DEFAULTS,
        **_recipe_defaults(tree),
        **_OPTIONAL_DEFAULTS,
        "task": task_name(tree),
        **_flatten(tree),
    }
    return {k: v for k, v in flat.items() if not k.startswith(_RESUMABLE_CHANGES)}


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


@contextlib.contextmanager
def _worker_workdir(workdir: fs.RunPath, strategy: tf.distribute.Strategy):
    """The directory this process writes: the run directory for the chief; for any other
    worker of a multi-worker run a private local copy that is deleted when the run ends, so it
    never writes into the run directory (Keras' rule for non-chief workers).

    Every worker runs every step; only the chief's files count. The copy starts from the run
    directory as it stands (the chief's committed generations, read before any collective
    step), so a restarted cluster resumes every worker from the same generation; this needs
    the run directory to be readable by every worker (a shared folder or gs://).
    """
    if distribute_lib.is_chief(strategy):
        yield workdir
        return
    resolver = strategy.cluster_resolver
    private = tempfile.mkdtemp(prefix=f"evosyn_{resolver.task_type}_{resolver.task_id}_")
    try:
        if fs.isdir(workdir):
            fs.copy_tree(workdir, private, skip=_WORKER_COPY_SKIP)
        yield fs.path(private)
    finally:
        fs.rmtree(private)


def write_runtime(
    workdir: str | os.PathLike[str],
    strategy: tf.distribute.Strategy,
    scale: ScaleSettings,
    batch_size: int,
    offspring_batch_size: int,
    write: bool = True,
) -> dict:
    """Record how this invocation runs in ``DIR/runtime.json`` (latest session at the top
    level, earlier sessions of a resumed run under ``previous_sessions``). Kept out of the
    lineage and config.json, whose formats do not depend on the hardware. ``write=False``
    (a helping population worker): only return it."""
    path = fs.join(workdir, _RUNTIME_FILENAME)
    previous = io_utils.read_json(path) if fs.exists(path) else None
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
        "offspring_global_batch_size": offspring_batch_size,
        "tensorflow": tf.__version__,
        # -1: a fresh run; otherwise this session resumes after that generation.
        "resumed_after_generation": lineage_lib.Lineage(
            fs.join(workdir, lineage_lib.LINEAGE_FILENAME)
        ).last_generation,
        "previous_sessions": history,
    }
    if write:
        io_utils.atomic_write_json(path, session)
    return session


def run_with_strategy(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike[str],
    strategy: tf.distribute.Strategy | None,
    body: Callable[[fs.RunPath, tf.distribute.Strategy, ScaleSettings], list[dict]],
) -> list[dict]:
    """Make the strategy and precision policy ``config`` asks for and run ``body`` under them.

    ``strategy``: a ready ``tf.distribute`` strategy; default: the one ``config.distribute``
    names, made here first thing (before TensorFlow initialises devices, which splitting the
    CPU into logical devices needs). ``config.train.batch_size`` is the global batch: each of
    the N replicas trains on ``batch_size / N`` examples per step. ``workdir`` may be any
    filesystem TensorFlow knows (see :mod:`tf_evosyn.storage.fs`).
    """
    workdir = fs.path(workdir)
    scale = scale_settings(config)
    if strategy is None:
        try:
            strategy = distribute_lib.make_strategy(
                scale.strategy,
                scale.tpu_address,
                scale.num_cpu_devices,
                collective_timeout_seconds=scale.collective_timeout_seconds,
            )
        except distribute_lib.StrategyError as error:
            raise ConfigError(f"distribute: {error}") from error
    try:
        distribute_lib.check_jit_compile(strategy, scale.jit_compile)
    except distribute_lib.StrategyError as error:
        raise ConfigError(f"train: {error}") from error
    replicas = int(strategy.num_replicas_in_sync)
    for key, batch_size in (
        ("train.batch_size", config.train.batch_size),
        ("evolution.batch_size", offspring_batch_size(config)),
    ):
        if batch_size % replicas:
            raise ConfigError(
                f"{key}={batch_size} is the global batch and must split evenly over the "
                f"{replicas} replicas; use a multiple of {replicas}."
            )
    previous_policy = keras.mixed_precision.global_policy()
    distribute_lib.set_precision(scale.mixed_precision)
    try:
        with _worker_workdir(workdir, strategy) as own_workdir:
            # Locked (the chief; with population workers the leader only) and its format
            # checked before config.json is written.
            writer = distribute_lib.is_chief(strategy) and scale.workers.leads
            with RunDirectory(own_workdir).writing(writer):
                with distribute_lib.naming_lost_workers(strategy, workdir):
                    return body(own_workdir, strategy, scale)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def select_on(config: ml_collections.ConfigDict) -> str:
    """Which split decides (``evolution.select_on``): validation (default) or test."""
    value = config.evolution.get("select_on", None) or "validation"
    if value not in _SELECT_ON:
        raise ConfigError(
            f"evolution.select_on={value!r}; use 'validation' (decide on the held-out "
            "validation split) or 'test' (the papers' protocol: decide on the test split)."
        )
    return value


def check_selection_of_run(workdir: str | os.PathLike[str], split: str) -> None:
    """A run started with one selection split cannot resume with the other (its earlier
    decisions were made on it); runs from before validation selection decided on test."""
    lineage = lineage_lib.Lineage(fs.join(workdir, lineage_lib.LINEAGE_FILENAME))
    if not lineage.records:
        return
    before = lineage.records[0].get("selection_split", "test")
    if before != split:
        raise ConfigError(
            f"{workdir} was evolved with decisions on the {before} split; resume it with "
            f"--config.evolution.select_on={before}"
            + (" --config.data.validation_size=0" if before == "test" else "")
            + ", or start a new --workdir."
        )
