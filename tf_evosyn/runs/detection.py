"""A detection experiment from its config: KITTI + DetectNet -> the evolution loop.

``run_detection(config, workdir)`` is what ``evosyn-detect`` runs. The loop, run directory,
resume, strategy and precision are the classification experiment's (:mod:`tf_evosyn.runs`);
what differs is the task (:class:`tf_evosyn.tasks.detection.DetectionTask`), the data
(:func:`tf_evosyn.data.kitti.load_kitti_data`) and the model (``models.build("detectnet")``).
"""

from __future__ import annotations

from pathlib import Path

import ml_collections
import numpy as np

from tf_evosyn import models
from tf_evosyn._keras import tf
from tf_evosyn.data.kitti import load_kitti_data
from tf_evosyn.detection import KITTI_TYPES, decode_nms
from tf_evosyn.detection.decoding import DECODERS, DecodeSettings
from tf_evosyn.models.detectnet_mobilenetv2 import resolve_weights
from tf_evosyn.runs.common import (
    run_with_strategy,
    select_on,
)
from tf_evosyn.runs.config_checks import model_kwargs, validate_config
from tf_evosyn.runs.errors import ConfigError
from tf_evosyn.runs.evolve import TaskData, evolve_task
from tf_evosyn.runs.export_spec import ExportSpec
from tf_evosyn.runs.scale import ScaleSettings
from tf_evosyn.storage import fs
from tf_evosyn.tasks.detection import DetectionTask

# Keys of config.model passed to the model builder when it takes them (DetectNet's width and
# normalisation; the MobileNetV2 trunk's cut, head and box coding).
MODEL_KEYS = (
    "width",
    "normalization",
    "backbone_weights",
    "trunk_end",
    "dropout",
    "bbox_hidden",
    "box_coding",
    "bbox_scale",
    "freeze_batchnorm",
)
STRIDE = 16  # DetectNet: GoogLeNet without pool4


def detection_task(config: ml_collections.ConfigDict) -> DetectionTask:
    """The task a detection config describes (classes, input size, decoder)."""
    det = config.detection
    return DetectionTask(
        class_names=tuple(config.data.classes),
        image_shape=(int(config.data.image_height), int(config.data.image_width)),
        stride=STRIDE,
        decode=DecodeSettings(
            method=det.decoder,
            threshold=float(det.coverage_threshold),
            rect_threshold=int(det.rect_threshold),
            rect_eps=float(det.rect_eps),
            min_height=float(det.min_height),
            nms_iou=float(det.nms_iou),
        ),
        coverage_positive_weight=float(det.get("coverage_positive_weight", 1.0)),
        bbox_loss_weight=det.get("bbox_loss_weight", None),
    )


def validate_detection_config(config: ml_collections.ConfigDict) -> None:
    """The shared checks plus what only detection has, before any data is read."""
    validate_config(config)
    select_on(config)
    data = config.data
    if data.name != "kitti":
        raise ConfigError(f"data.name={data.name!r}: evosyn-detect reads 'kitti'.")
    classes = list(data.classes)
    bad = [c for c in classes if c not in KITTI_TYPES or c == "DontCare"]
    if not classes or bad:
        raise ConfigError(
            f"data.classes={classes!r}: give KITTI types to detect, e.g. ('Car',); valid: "
            f"{[t for t in KITTI_TYPES if t != 'DontCare']}."
        )
    for key in ("image_height", "image_width"):
        value = data[key]
        if not isinstance(value, int) or value < STRIDE or value % STRIDE:
            raise ConfigError(
                f"data.{key}={value!r} must be a positive multiple of DetectNet's stride "
                f"{STRIDE} (the paper: 384 x 1248)."
            )
    if config.detection.decoder not in DECODERS:
        raise ConfigError(f"detection.decoder={config.detection.decoder!r}; use one of {DECODERS}.")
    if not 0.0 < config.detection.coverage_threshold < 1.0:
        raise ConfigError("detection.coverage_threshold must be in (0, 1) (DetectNet: 0.6).")
    _check_model_keys(config.model)
    weights = config.model.get("backbone_weights", "")
    if config.model.name == "detectnet_mobilenetv2":
        try:
            resolve_weights(weights)
        except FileNotFoundError as error:
            raise ConfigError(f"model.backbone_weights={weights!r}: {error}") from None
    elif weights and not Path(weights).exists():
        raise ConfigError(
            f"model.backbone_weights={weights!r} does not exist; give the path of trunk weights "
            "(e.g. a converted ImageNet GoogLeNet) or leave it empty to train from scratch."
        )


def _check_model_keys(model: ml_collections.ConfigDict) -> None:
    """A model key the chosen builder does not take is a typo or the wrong model: say so."""
    for key in MODEL_KEYS:
        value = model.get(key, None)
        if value not in (None, "") and not models.accepts_keyword(model.name, key):
            raise ConfigError(
                f"model.{key}={value!r} is not an argument of model {model.name!r}; remove it "
                "or choose a model that takes it."
            )


def detection_model_kwargs(config: ml_collections.ConfigDict) -> dict:
    kwargs = model_kwargs(config)
    for key in MODEL_KEYS:
        value = config.model.get(key, None)
        if value not in (None, "") and models.accepts_keyword(config.model.name, key):
            kwargs[key] = value
    return kwargs


def run_detection(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    strategy: tf.distribute.Strategy | None = None,
) -> list[dict]:
    """Run (or resume) a detection evolution experiment; returns the lineage records."""
    validate_detection_config(config)
    return run_with_strategy(
        config, workdir, strategy, lambda wd, st, scale: _run(config, wd, st, scale)
    )


def _run(
    config: ml_collections.ConfigDict,
    workdir: fs.RunPath,
    strategy: tf.distribute.Strategy,
    scale: ScaleSettings,
) -> list[dict]:
    data = load_kitti_data(config.data)  # validates the whole folder before any training
    task = detection_task(config)
    batch_size = config.train.batch_size
    return evolve_task(
        config,
        workdir,
        strategy,
        scale,
        TaskData(
            task=task,
            description=data.description,
            num_train=data.num_train,
            input_shape=data.input_shape,
            num_classes=len(task.class_names),
            train_data=lambda batch, seed: task.training_pairs(data.train_dataset(batch, seed)),
            test_data=lambda: data.test_dataset(batch_size),
            validation_data=lambda: data.validation_dataset(batch_size),
            model_kwargs=detection_model_kwargs(config),
            train_eval_data=lambda: data.train_dataset(batch_size, config.seed, augment=False),
        ),
    )


DECODING_DOC = (
    "coverage [N, H/16, W/16, C] (sigmoid) and bbox [N, H/16, W/16, 4C]: for a cell (row r, "
    "column c) whose coverage >= detection.coverage_threshold, the box of class k is "
    "(16c + bbox[..., 4k], 16r + bbox[..., 4k+1], 16c + bbox[..., 4k+2], 16r + bbox[..., 4k+3]) "
    "in input pixels (x1, y1, x2, y2); cluster these candidates (DetectNet: groupRectangles, "
    "tf_evosyn.detection.cluster_detections) or suppress them (tf_evosyn.detection.decode_nms). "
    "The SavedModel's serving signature returns NMS-decoded boxes, confidence, classes and "
    "num_detections beside the raw maps."
)
PAPER_INPUT_SHAPE = (384, 1248, 3)


def detection_export_spec(config: ml_collections.ConfigDict, num_images: int):
    """Real validation images (raw pixels, padded) and the in-graph NMS decoder."""
    data = load_kitti_data(config.data)
    task = detection_task(config)
    images = []
    for batch, _ in data.validation_dataset(batch_size=8):
        images.append(batch.numpy())
        if sum(len(b) for b in images) >= num_images:
            break
    d = task.decode

    def postprocess(outputs: dict) -> dict:
        return decode_nms(
            outputs["coverage"],
            outputs["bbox"],
            threshold=d.threshold,
            stride=task.stride,
            max_detections=d.max_detections,
            iou_threshold=d.nms_iou,
            min_height=d.min_height,
        )

    return ExportSpec(
        task="detection",
        images=np.concatenate(images)[:num_images].astype(np.float32),
        description=data.description,
        postprocess=postprocess,
        decoding=DECODING_DOC,
        paper_input_shape=PAPER_INPUT_SHAPE,
    )
