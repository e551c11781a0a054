"""A classification experiment from its config: data + model -> the evolution loop.

``run_classification(config, workdir)`` is what ``evosyn-classify`` runs; benchmarks and
notebooks call it from Python. Besides the evolution's run directory (see
:mod:`tf_evosyn.loop.run_dir`) it writes ``config.json`` and ``runtime.json`` (see
:mod:`tf_evosyn.runs.common`).
"""

from __future__ import annotations

from pathlib import Path

import ml_collections

from tf_evosyn._keras import tf
from tf_evosyn.data import load_classification_data
from tf_evosyn.runs.common import run_with_strategy, select_on
from tf_evosyn.runs.config_checks import model_kwargs, validate_config
from tf_evosyn.runs.evolve import TaskData, evolve_task
from tf_evosyn.runs.export_spec import ExportSpec
from tf_evosyn.runs.scale import ScaleSettings
from tf_evosyn.storage import fs
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
    batch_size = config.train.batch_size
    eval_batch = max(batch_size, 256)
    return evolve_task(
        config,
        workdir,
        strategy,
        scale,
        TaskData(
            task=ClassificationTask(),
            description=data.description,
            num_train=len(data.train_labels),
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            train_data=lambda batch, seed: data.train_dataset(batch_size=batch, seed=seed),
            test_data=lambda: data.test_dataset(batch_size=eval_batch),
            validation_data=lambda: data.validation_dataset(eval_batch),
            model_kwargs=model_kwargs(config),
            soft_target_data=data.soft_target_train_data,
        ),
    )


def classification_export_spec(config: ml_collections.ConfigDict, num_images: int):
    """Real test images, preprocessed as the model was fed them; logits need no decoding."""
    data = load_classification_data(config.data)
    return ExportSpec(
        task="classification",
        images=data.preprocess(data.test_images[:num_images]),
        description=data.description,
        decoding="outputs: class logits [N, classes]; argmax is the predicted class",
    )
