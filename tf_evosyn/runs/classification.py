"""A classification experiment from its config: data + model -> the evolution loop.

``run_classification(config, workdir)`` is what ``evosyn-classify`` runs; benchmarks and
notebooks call it from Python. Besides the evolution's run directory (see
:mod:`tf_evosyn.run_dir`) it writes ``config.json`` and ``runtime.json`` (see
:mod:`tf_evosyn.runs.common`).
"""

from __future__ import annotations

from pathlib import Path

import ml_collections
from absl import logging

from tf_evosyn import distribute as distribute_lib
from tf_evosyn import fs, models
from tf_evosyn._keras import keras, tf
from tf_evosyn.config_checks import ScaleSettings, build_settings, model_kwargs, validate_config
from tf_evosyn.data import load_classification_data
from tf_evosyn.evolution import Evolution
from tf_evosyn.model_io import load_model
from tf_evosyn.recipes import make_compile_fn
from tf_evosyn.runs.common import (
    check_selection_of_run,
    prepare_workdir,
    run_with_strategy,
    select_on,
    write_runtime,
)
from tf_evosyn.tasks import ClassificationTask


def run_classification(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    strategy: tf.distribute.Strategy | None = None,
) -> list[dict]:
    """Run (or resume) a classification evolution experiment; returns the lineage records.

    ``strategy``: a ready ``tf.distribute`` strategy (default: the one ``config.distribute``
    names, see :func:`tf_evosyn.runs.common.run_with_strategy`). Every model is built, loaded,
    cloned and compiled inside its scope.
    """
    validate_config(config)
    select_on(config)
    return run_with_strategy(
        config, workdir, strategy, lambda wd, st, scale: _run(config, wd, st, scale)
    )


def _run(
    config: ml_collections.ConfigDict,
    workdir: fs.RunPath,
    strategy: tf.distribute.Strategy,
    scale: ScaleSettings,
) -> list[dict]:
    data = load_classification_data(config.data)  # validates files before any training
    split = select_on(config)
    eval_batch = max(config.train.batch_size, 256)
    validation_data = data.validation_dataset(eval_batch) if split == "validation" else None
    check_selection_of_run(workdir, split)
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
    test_data = data.test_dataset(batch_size=eval_batch)
    task = ClassificationTask()

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
            task=task,
        ),
        train_data=lambda seed: data.train_dataset(batch_size=batch_size, seed=seed),
        test_data=test_data,
        settings=build_settings(config),
        ancestor_compile_fn=make_compile_fn(
            config.train,
            config.train.epochs,
            steps_per_epoch,
            jit_compile=scale.jit_compile,
            task=task,
        ),
        strategy=strategy,
        task=task,
        validation_data=validation_data,
    )
    return evolution.run(ancestor, ancestor_epochs=ancestor_epochs)


def classification_export_spec(config: ml_collections.ConfigDict, num_images: int):
    """Real test images, preprocessed as the model was fed them; logits need no decoding."""
    from tf_evosyn.runs import ExportSpec

    data = load_classification_data(config.data)
    return ExportSpec(
        task="classification",
        images=data.preprocess(data.test_images[:num_images]),
        description=data.description,
        decoding="outputs: class logits [N, classes]; argmax is the predicted class",
    )
