"""DetectNet's coverage and bbox heads on an ImageNet-pretrained MobileNetV2 trunk.

No GoogLeNet weights can be had here, and DetectNet trained from scratch on a few KITTI images
finds no car; a pretrained trunk does. The network is a plain (flat) Functional model:

- ``Rescaling(1/127.5, offset=-1)``: raw RGB in [0, 255] -> MobileNetV2's [-1, 1];
- ``keras.applications.MobileNetV2(alpha=1.0, include_top=False)`` built on that tensor (so its
  layers sit in this model's graph, not nested: every depthwise convolution and residual add
  evolves through the channel analysis), cut at ``trunk_end`` (default ``block_13_expand_relu``:
  total stride 16 as DetectNet's GoogLeNet without pool4, 576 channels);
- ``Dropout``, then DetectNet's two 1x1 heads: ``coverage`` (sigmoid, ``num_classes`` maps) and
  ``bbox`` (``4 * num_classes`` corner offsets in pixels from the cell's top-left corner, the
  targets of :mod:`tf_evosyn.detection.targets`).

By default the regressor predicts log distances from the cell centre to the box sides
(:mod:`tf_evosyn.models.box_coding`), after a 3x3 depthwise + 1x1 hidden layer when
``bbox_hidden`` > 0. ``box_coding="linear"`` keeps DetectNet's plain regressor, its output
multiplied by ``bbox_scale`` (a fixed ``Rescaling``) so its weights learn offsets of ~100 pixels
as values of ~1 (without it they must grow to ~100 under Adam steps of ~1e-4: measured, the
boxes never got there).

BatchNorm layers of the trunk are frozen by default (``trainable=False``: they normalise with
the ImageNet statistics); with batches of 4 images their batch statistics would be noise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tf_evosyn._keras import keras
from tf_evosyn.models import googlenet
from tf_evosyn.models.box_coding import LogDistanceCorners

WEIGHTS_FILE = "mobilenet_v2_1.0_224_no_top.h5"
_WEIGHTS_ENV = "EVOSYN_DATA_DIR"  # the shared weights sit beside it: $EVOSYN_DATA_DIR/../weights
_DEFAULT_TRUNK_END = "block_13_expand_relu"
_BOX_CODINGS = ("log_distance", "linear")


def _default_weights_path() -> Path | None:
    """``$EVOSYN_DATA_DIR/../weights/mobilenet_v2_1.0_224_no_top.h5`` if that variable is set."""
    data_dir = os.environ.get(_WEIGHTS_ENV, "")
    return Path(data_dir).expanduser() / ".." / "weights" / WEIGHTS_FILE if data_dir else None


def resolve_weights(backbone_weights: str | Path | None) -> Path | None:
    """The trunk weights to load: an explicit path, ``"default"`` (the shared file), or None
    (random init). Raises FileNotFoundError naming the fix when the file is missing."""
    if backbone_weights in (None, ""):
        return None
    if str(backbone_weights) == "default":
        path = _default_weights_path()
        if path is None:
            raise FileNotFoundError(
                f"model.backbone_weights='default' reads ${_WEIGHTS_ENV}/../weights/{WEIGHTS_FILE}"
                f", but ${_WEIGHTS_ENV} is not set: set it, or give the weights file's path."
            )
    else:
        path = Path(os.path.expandvars(str(backbone_weights))).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"MobileNetV2 trunk weights {path} do not exist: give the path of "
            f"{WEIGHTS_FILE} (keras.applications.MobileNetV2(alpha=1.0, include_top=False) "
            "weights), or '' to start from random weights."
        )
    return path.resolve()


def detectnet_mobilenetv2(
    input_shape: Sequence[int] = (384, 1248, 3),
    num_classes: int = 1,
    backbone_weights: str | Path | None = "default",
    trunk_end: str = _DEFAULT_TRUNK_END,
    dropout: float = 0.3,
    bbox_scale: float = 64.0,
    freeze_batchnorm: bool = True,
    box_coding: str = "log_distance",
    bbox_hidden: int = 0,
) -> keras.Model:
    """DetectNet heads on MobileNetV2: raw RGB in [0, 255] -> {coverage, bbox} at stride 16.

    Args:
      input_shape: (height, width, 3), multiples of 16 (KITTI: 384 x 1248).
      num_classes: coverage maps (cars: 1).
      backbone_weights: ``"default"`` (``$EVOSYN_DATA_DIR/../weights/`` + WEIGHTS_FILE), a path
        to MobileNetV2 1.0 no-top weights (.h5), or ``None``/``""`` for random weights.
      trunk_end: the MobileNetV2 layer whose output feeds the heads (must be at stride 16).
      dropout: rate before the heads.
      bbox_scale: fixed multiplier of the bbox regressor's output (see the module docstring).
      freeze_batchnorm: keep the trunk's BatchNorm layers in inference mode with their
        pretrained statistics.
      box_coding: ``"log_distance"`` (the regressor predicts log distances to the box sides,
        :class:`tf_evosyn.models.box_coding.LogDistanceCorners`) or ``"linear"`` (DetectNet's
        plain regressor times ``bbox_scale``).
      bbox_hidden: > 0 puts a 3x3 depthwise and a 1x1 ReLU layer of this many filters before the
        bbox regressor (more context per cell: measured, a 1x1 regressor on the trunk's features
        leaves corners ~22% of the box width off even on the training images); 0 = none.
    """
    shape = googlenet.check_input_shape(input_shape)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    if not bbox_scale > 0:
        raise ValueError(f"bbox_scale must be > 0, got {bbox_scale!r}.")
    if box_coding not in _BOX_CODINGS:
        raise ValueError(f"box_coding must be one of {_BOX_CODINGS}, got {box_coding!r}.")
    if not isinstance(bbox_hidden, int) or bbox_hidden < 0:
        raise ValueError(f"bbox_hidden must be an integer >= 0 (filters), got {bbox_hidden!r}.")
    weights = resolve_weights(backbone_weights)

    inputs = keras.Input(shape, name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenet_preprocess")(inputs)
    trunk = keras.applications.MobileNetV2(
        input_tensor=x, alpha=1.0, include_top=False, weights=None
    )
    if weights is not None:
        trunk.load_weights(str(weights))
    names = [layer.name for layer in trunk.layers]
    if trunk_end not in names:
        raise ValueError(
            f"trunk_end={trunk_end!r} is not a MobileNetV2 layer; stride-16 ends are e.g. "
            "'block_12_add', 'block_13_expand_relu'."
        )
    features = trunk.get_layer(trunk_end).output
    stride = shape[0] // int(features.shape[1])
    if stride != 16:
        raise ValueError(
            f"trunk_end={trunk_end!r} is at stride {stride}; DetectNet's heads need stride 16 "
            "(e.g. 'block_13_expand_relu')."
        )
    if freeze_batchnorm:
        for layer in trunk.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    x = keras.layers.Dropout(dropout, name="head_dropout")(features)
    coverage = keras.layers.Conv2D(num_classes, 1, name="cvg_classifier")(x)
    coverage = keras.layers.Activation("sigmoid", name="coverage")(coverage)
    if bbox_hidden:
        x = keras.layers.DepthwiseConv2D(3, padding="same", name="bbox_context")(x)
        x = keras.layers.Conv2D(bbox_hidden, 1, activation="relu", name="bbox_hidden")(x)
    bbox = keras.layers.Conv2D(
        4 * num_classes, 1, kernel_initializer="zeros", name="bbox_regressor"
    )(x)
    if box_coding == "log_distance":
        bbox = LogDistanceCorners(stride, name="bbox")(bbox)
    else:
        bbox = keras.layers.Rescaling(float(bbox_scale), name="bbox")(bbox)
    return keras.Model(inputs, [coverage, bbox], name="detectnet_mobilenetv2")
