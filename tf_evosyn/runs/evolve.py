"""The part of an experiment every task shares: run directory, ancestor, the evolution loop.

A task's run module (:mod:`tf_evosyn.runs.classification`, :mod:`tf_evosyn.runs.detection`)
loads its data and builds its :class:`tf_evosyn.tasks.Task`, then hands them to
:func:`evolve_task` as a :class:`TaskData`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ml_collections
from absl import logging

from tf_evosyn import distribute as distribute_lib
from tf_evosyn import fs, models
from tf_evosyn._keras import keras, tf
from tf_evosyn.config_checks import ScaleSettings, build_settings
from tf_evosyn.evolution import Evolution
from tf_evosyn.fine_tuning import SoftTargetData
from tf_evosyn.model_io import load_model
from tf_evosyn.recipes import make_compile_fn
from tf_evosyn.runs.common import check_selection_of_run, prepare_workdir, select_on, write_runtime
from tf_evosyn.tasks import Task


@dataclass
class TaskData:
    """What the shared part needs of a task's data and model."""

    task: Task
    description: str
    num_train: int
    input_shape: tuple[int, ...]
    num_classes: int
    train_data: Callable[[int], tf.data.Dataset]  # seed -> batches the task's loss reads
    test_data: Callable[[], tf.data.Dataset]
    validation_data: Callable[[], tf.data.Dataset]  # made only when decisions need it
    model_kwargs: dict = field(default_factory=dict)  # extra arguments of models.build
    # teacher -> (seed -> batches labelled (label, teacher logits)) or None: see Evolution
    soft_target_data: SoftTargetData | None = None


def evolve_task(
    config: ml_collections.ConfigDict,
    workdir: fs.RunPath,
    strategy: tf.distribute.Strategy,
    scale: ScaleSettings,
    data: TaskData,
) -> list[dict]:
    """Check and record the run directory, build (or load) the ancestor in the strategy's
    scope, and run or resume the evolution; returns the lineage records."""
    split = select_on(config)
    validation_data = data.validation_data() if split == "validation" else None
    check_selection_of_run(workdir, split)
    prepare_workdir(config, workdir)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    batch_size = config.train.batch_size
    runtime = write_runtime(workdir, strategy, scale, batch_size)
    logging.info(
        "Strategy %s: %d replica(s), global batch %d (%d per replica), %s%s; data: %s",
        runtime["strategy"],
        runtime["num_replicas"],
        batch_size,
        runtime["per_replica_batch_size"],
        scale.mixed_precision,
        ", XLA" if scale.jit_compile else "",
        data.description,
    )
    steps_per_epoch = -(-data.num_train // batch_size)

    ancestor, ancestor_epochs = None, 0
    if not fs.exists(fs.join(workdir, "lineage.jsonl")):
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():  # every variable, masks and heredity buffers too, is mirrored
            if config.train.ancestor_path:
                ancestor = load_model(config.train.ancestor_path)
            else:
                ancestor = models.build(
                    config.model.name,
                    input_shape=data.input_shape,
                    num_classes=data.num_classes,
                    **data.model_kwargs,
                )
                ancestor_epochs = config.train.epochs
            # Mixed precision: every layer in the policy, float32 outputs.
            ancestor = distribute_lib.with_precision(ancestor, scale.mixed_precision)

    def compile_fn(section: ml_collections.ConfigDict, epochs: int):
        return make_compile_fn(
            section, epochs, steps_per_epoch, jit_compile=scale.jit_compile, task=data.task
        )

    evolution = Evolution(
        workdir,
        compile_fn=compile_fn(config.evolution, config.evolution.epochs_per_generation),
        train_data=data.train_data,
        test_data=data.test_data(),
        settings=build_settings(config),
        ancestor_compile_fn=compile_fn(config.train, config.train.epochs),
        strategy=strategy,
        task=data.task,
        validation_data=validation_data,
        soft_target_data=data.soft_target_data,
    )
    return evolution.run(ancestor, ancestor_epochs=ancestor_epochs)
