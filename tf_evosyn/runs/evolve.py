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

from tf_evosyn import models
from tf_evosyn._keras import keras, tf
from tf_evosyn.core.model_io import load_model
from tf_evosyn.loop import distribute as distribute_lib
from tf_evosyn.loop.evolution import Evolution
from tf_evosyn.loop.fine_tuning import TrainData
from tf_evosyn.loop.learning_curve import LEARNING_CURVE_FILE, LearningCurve
from tf_evosyn.loop.recipes import make_compile_fn
from tf_evosyn.runs.common import check_selection_of_run, prepare_workdir, select_on, write_runtime
from tf_evosyn.runs.config_checks import build_settings, offspring_batch_size
from tf_evosyn.runs.scale import ScaleSettings
from tf_evosyn.storage import fs
from tf_evosyn.tasks import Task


@dataclass
class TaskData:
    """What the shared part needs of a task's data and model."""

    task: Task
    description: str
    num_train: int
    input_shape: tuple[int, ...]
    num_classes: int
    train_data: Callable[[int, int], tf.data.Dataset]  # (batch, seed) -> what the loss reads
    test_data: Callable[[], tf.data.Dataset]
    validation_data: Callable[[], tf.data.Dataset]  # made only when decisions need it
    model_kwargs: dict = field(default_factory=dict)  # extra arguments of models.build
    # (teacher, batch) -> (seed -> batches labelled (label, teacher logits)) or None: see
    # Evolution
    soft_target_data: Callable[[keras.Model, int], TrainData | None] | None = None
    # () -> unaugmented training batches the task evaluates (the learning curve's train side)
    train_eval_data: Callable[[], tf.data.Dataset] | None = None


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
    workers = scale.workers
    prepare_workdir(config, workdir, workers)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    batch_size, offspring_batch = config.train.batch_size, offspring_batch_size(config)
    if workers.count > 1:
        logging.info(
            "Population worker %d of %d: draws candidates k with k %% %d == %d%s.",
            workers.index,
            workers.count,
            workers.count,
            workers.index,
            "; writes the run directory" if workers.leads else "; writes its candidates only",
        )
    runtime = write_runtime(
        workdir, strategy, scale, batch_size, offspring_batch, write=workers.leads
    )
    logging.info(
        "Strategy %s: %d replica(s), global batch %d (%d per replica; offspring %d), %s%s; "
        "data: %s",
        runtime["strategy"],
        runtime["num_replicas"],
        batch_size,
        runtime["per_replica_batch_size"],
        offspring_batch,
        scale.mixed_precision,
        ", XLA" if scale.jit_compile else "",
        data.description,
    )

    ancestor, ancestor_epochs = None, 0
    if workers.leads and not fs.exists(fs.join(workdir, "lineage.jsonl")):
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

    def compile_fn(section: ml_collections.ConfigDict, epochs: int, batch: int):
        steps_per_epoch = -(-data.num_train // batch)  # the schedules count steps
        return make_compile_fn(
            section, epochs, steps_per_epoch, jit_compile=scale.jit_compile, task=data.task
        )

    soft_target_data = None
    if data.soft_target_data is not None:

        def soft_target_data(teacher: keras.Model) -> TrainData | None:
            return data.soft_target_data(teacher, offspring_batch)

    evolution = Evolution(
        workdir,
        compile_fn=compile_fn(
            config.evolution, config.evolution.epochs_per_generation, offspring_batch
        ),
        train_data=lambda seed: data.train_data(offspring_batch, seed),
        ancestor_train_data=lambda seed: data.train_data(batch_size, seed),
        test_data=data.test_data(),
        settings=build_settings(config),
        ancestor_compile_fn=compile_fn(config.train, config.train.epochs, batch_size),
        strategy=strategy,
        task=data.task,
        validation_data=validation_data,
        soft_target_data=soft_target_data,
        ancestor_callbacks=_learning_curve(config, workdir, data),
        workers=workers,
        calibration_data=None if data.train_eval_data is None else _unaugmented(data),
    )
    return evolution.run(ancestor, ancestor_epochs=ancestor_epochs)


def _unaugmented(data: TaskData) -> Callable[[int], tf.data.Dataset]:
    """The unaugmented training batches as the ``seed -> dataset`` the loop takes."""
    return lambda seed: data.train_eval_data()


def _learning_curve(
    config: ml_collections.ConfigDict, workdir: fs.RunPath, data: TaskData
) -> list[keras.callbacks.Callback]:
    """``log.learning_curve_every`` > 0: the ancestor's train/validation score every that many
    epochs, in ``learning_curve.json`` (needs the task's unaugmented training batches)."""
    every = config.log.get("learning_curve_every", 0)
    if not every or data.train_eval_data is None:
        return []
    return [
        LearningCurve(
            data.task,
            data.train_eval_data,
            data.validation_data,
            every=int(every),
            path=fs.join(workdir, LEARNING_CURVE_FILE),
        )
    ]
