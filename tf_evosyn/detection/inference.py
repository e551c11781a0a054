"""Detection for a user: images of any size in, boxes in their own pixels out.

A DetectNet sees one fixed canvas (e.g. 384x1248). Evaluation puts each KITTI image at the
canvas's top-left and zero-pads the bottom/right, never resizing (:func:`fit_to_input`);
:func:`predict` does the same for an image that fits, and scales a larger one down uniformly
(aspect ratio kept) until it fits, so nothing is cut off. Boxes are then mapped back to the
original image's pixels and clipped to it, in keras-cv's dict format (``boxes`` xyxy float32
[N, 4], ``classes`` [N], ``confidence`` [N]).

Pixels are RGB in [0, 255] (float or uint8), as the training data: the model normalises.
:func:`load_image` reads PNG/JPEG files and refuses, in one line naming the file and the fix,
what the detector cannot use (a missing file, other bytes, grey or RGBA images).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.data.errors import DataError
from tf_evosyn.data.png_check import PNG_SIGNATURE
from tf_evosyn.detection.decoding import DecodeSettings

_JPEG_SIGNATURE = b"\xff\xd8\xff"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# PNG IHDR colour type -> channels (3: palette, decoded to RGB).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


class GridDecoder(Protocol):
    """What ``predict`` needs of a task: e.g. :class:`tf_evosyn.tasks.DetectionTask`."""

    class_names: Sequence[str]

    def detect(self, coverage: np.ndarray, bbox: np.ndarray) -> list[dict[str, np.ndarray]]: ...


_DEFAULT_CLASSES = ("Car",)  # with DetectNet's stride 16 and clustering: DetectionTask's defaults
INPUT_NAME = "images"  # the exported SavedModel's input (tf_evosyn.hardware.latency.INPUT_NAME)
OUTPUT_NAMES = ("coverage", "bbox")
_CONVERT_HINT = "convert it to 3-channel RGB, e.g. PIL.Image.open(path).convert('RGB').save(new)"

PathLike = str | os.PathLike


def _is_path(value: Any) -> bool:
    return isinstance(value, str | os.PathLike)


def _channels_text(channels: int, kind: str = "") -> str:
    return {
        1: "is a greyscale image (1 channel)",
        2: "is a greyscale image with alpha (2 channels)",
        4: f"has 4 channels ({'CMYK' if kind == 'JPEG' else 'RGBA: colour plus alpha'})",
    }.get(channels, f"has {channels} channels")


class ImageInfo(NamedTuple):
    """What an image file's header says."""

    kind: str  # "PNG" or "JPEG"
    height: int
    width: int
    channels: int
    bit_depth: int


def inspect_image_file(path: PathLike) -> ImageInfo:
    """Kind, size and channels from an image file's header, without decoding it.

    Cheap, so a command can check every input before loading a model; raises
    :class:`DataError` for a missing file, other bytes, or a non-RGB image.
    """
    name = os.fspath(path)
    if not tf.io.gfile.exists(name) or tf.io.gfile.isdir(name):
        raise DataError(f"{name}: no such image file; check the path.")
    with tf.io.gfile.GFile(name, "rb") as f:
        head = f.read(33)
        if head.startswith(_JPEG_SIGNATURE):
            head += f.read()  # the frame header (SOF) may follow EXIF data
    if head.startswith(PNG_SIGNATURE):
        if len(head) < 26 or head[12:16] != b"IHDR":
            raise DataError(f"{name} is a truncated or corrupt PNG (no IHDR header); re-create it.")
        width, height = struct.unpack(">II", head[16:24])
        info = ImageInfo("PNG", height, width, _PNG_CHANNELS.get(head[25], 0), head[24])
    elif head.startswith(_JPEG_SIGNATURE):
        try:
            height, width, channels = (int(v) for v in tf.io.extract_jpeg_shape(head).numpy())
        except tf.errors.InvalidArgumentError:
            raise DataError(f"{name} is a truncated or corrupt JPEG; re-create it.") from None
        info = ImageInfo("JPEG", height, width, channels, 8)
    else:
        raise DataError(
            f"{name} is not a PNG or JPEG image (its first bytes are neither); give an RGB .png "
            "or .jpg file."
        )
    if info.channels != 3:
        raise DataError(
            f"{name} {_channels_text(info.channels, info.kind)}; the detector needs RGB "
            f"(3 channels): {_CONVERT_HINT}."
        )
    if height < 1 or width < 1:
        raise DataError(f"{name} is a {info.kind} of {height}x{width} pixels; give a real image.")
    return info


def load_image(path: PathLike) -> np.ndarray:
    """An RGB PNG/JPEG file as float32 [H, W, 3] in [0, 255] (what :func:`predict` takes).

    Raises :class:`DataError` (a ``ValueError``), one line naming the file and the fix, for a
    missing file, a file that is no PNG/JPEG or does not decode, and grey or RGBA images.
    """
    name = os.fspath(path)
    info = inspect_image_file(name)
    data = tf.io.read_file(name)
    scale = 255.0 / 65535.0 if info.bit_depth == 16 else 1.0
    try:
        if info.kind == "PNG":
            dtype = tf.uint16 if info.bit_depth == 16 else tf.uint8
            image = tf.io.decode_png(data, channels=3, dtype=dtype)
        else:
            image = tf.io.decode_jpeg(data, channels=3)
    except tf.errors.InvalidArgumentError as error:
        detail = (error.message or "").strip().splitlines()[:1]
        raise DataError(
            f"{name} cannot be decoded as a {info.kind}{f' ({detail[0]})' if detail else ''}; "
            "the file is truncated or corrupt: re-create it."
        ) from None
    if tuple(image.shape[:2]) != (info.height, info.width):
        raise DataError(
            f"{name} decodes to {tuple(image.shape[:2])} pixels but its header says "
            f"{(info.height, info.width)}; the file is corrupt: re-create it."
        )
    return image.numpy().astype(np.float32) * np.float32(scale)


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """An in-memory image (array or tensor) as float32 [H, W, 3]; :class:`DataError` if it is
    not an RGB image with finite pixels."""
    array = np.asarray(image)
    shape = tuple(array.shape)
    if array.ndim == 2 or (array.ndim == 3 and shape[-1] in (1, 2, 4)):
        channels = 1 if array.ndim == 2 else shape[-1]
        raise DataError(
            f"{name} (shape {shape}) {_channels_text(channels)}; the detector needs RGB: give "
            "H x W x 3 (grey: np.repeat(image[..., None], 3, -1); RGBA: image[..., :3])."
        )
    if array.ndim != 3 or shape[-1] != 3 or 0 in shape:
        raise DataError(
            f"{name} has shape {shape}; an image must be a non-empty H x W x 3 RGB array "
            "(pixels in [0, 255]); pass several as a list or an N x H x W x 3 array."
        )
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"{name} has dtype {array.dtype}; give uint8 or float RGB pixels.")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{name} has NaN or infinite pixels; give finite values in [0, 255].")
    return array


def _runner(model: Any):
    """(function images -> {coverage, bbox} NumPy arrays, (H, W) of its input or Nones)."""
    if isinstance(model, keras.Model):
        if len(model.inputs) != 1:
            raise ValueError(f"{model.name} has {len(model.inputs)} inputs; give a 1-image model.")
        shape = tuple(model.input_shape)
        if len(shape) != 4 or shape[-1] not in (3, None):
            raise ValueError(f"{model.name} takes inputs of shape {shape}, not [B, H, W, 3].")
        names = list(model.output_names)
        if not set(OUTPUT_NAMES) <= set(names):
            raise ValueError(
                f"{model.name} has outputs {names}; a DetectNet-style detector has 'coverage' "
                "and 'bbox'."
            )

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            outputs = model(batch, training=False)
            if not isinstance(outputs, dict):
                outputs = dict(zip(names, outputs, strict=True))
            return {k: np.asarray(outputs[k]) for k in OUTPUT_NAMES}

        return run, shape[1:3]
    signature = getattr(model, "signatures", {}).get("serving_default", model)
    inputs = getattr(signature, "structured_input_signature", None)
    if inputs is None or INPUT_NAME not in inputs[1]:
        raise ValueError(
            f"{type(model).__name__} is neither a Keras model nor a SavedModel serving signature "
            f"with an {INPUT_NAME!r} input (tf_evosyn.export.artifacts writes one)."
        )
    outputs = set(signature.structured_outputs)
    if not set(OUTPUT_NAMES) <= outputs:
        raise ValueError(
            f"the SavedModel returns {sorted(outputs)}; a detector returns 'coverage' and 'bbox'."
        )

    def run_signature(batch: np.ndarray) -> dict[str, np.ndarray]:
        result = signature(**{INPUT_NAME: tf.constant(batch, tf.float32)})
        return {k: result[k].numpy() for k in OUTPUT_NAMES}

    return run_signature, tuple(inputs[1][INPUT_NAME].shape)[1:3]


def _input_size(model_hw: Sequence[int | None], input_shape: Sequence[int] | None):
    """(height, width) of the canvas: the model's fixed input, else ``input_shape``."""
    if input_shape is not None:
        wanted = tuple(int(v) for v in tuple(input_shape)[:2])
        if len(wanted) != 2 or min(wanted) < 1:
            raise ValueError(f"input_shape={input_shape!r}: give (height, width) in pixels.")
        fixed = [(m, w) for m, w in zip(model_hw, wanted, strict=True) if m is not None]
        if any(m != w for m, w in fixed):
            raise ValueError(
                f"input_shape={tuple(input_shape)} differs from the model's input "
                f"{tuple(model_hw)}; leave input_shape out."
            )
        return wanted
    if None in tuple(model_hw):
        raise ValueError(
            f"the model takes any input size ({tuple(model_hw)}); pass input_shape=(H, W), e.g. "
            "its training size (multiples of the stride, 16)."
        )
    return int(model_hw[0]), int(model_hw[1])


def fit_image(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, tuple[float, float]]:
    """``image`` on a ``height`` x ``width`` zero canvas at the top-left, scaled down first
    (uniformly) if it does not fit; returns (canvas, (x_scale, y_scale) applied)."""
    h, w = image.shape[:2]
    if h > height or w > width:
        scale = min(height / h, width / w)
        new_h = min(height, max(1, round(h * scale)))
        new_w = min(width, max(1, round(w * scale)))
        image = tf.image.resize(image, (new_h, new_w), method="bilinear", antialias=True)
        image = np.clip(image.numpy(), 0.0, 255.0)
    else:
        new_h, new_w = h, w
    canvas = np.zeros((height, width, 3), np.float32)
    canvas[:new_h, :new_w] = image
    return canvas, (new_w / w, new_h / h)


def _to_original_pixels(
    detections: dict[str, np.ndarray], scale: tuple[float, float], size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Canvas-pixel detections -> pixels of the original ``size`` (height, width) image:
    undo ``scale``, clip to the image and drop boxes left without area (e.g. in the padding)."""
    sx, sy = scale
    boxes = np.asarray(detections["boxes"], np.float32).reshape(-1, 4)
    boxes = boxes / np.array([sx, sy, sx, sy], np.float32)
    h, w = size
    boxes = np.clip(boxes, 0.0, np.array([w, h, w, h], np.float32))
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return {
        "boxes": boxes[keep].astype(np.float32),
        "classes": np.asarray(detections["classes"])[keep],
        "confidence": np.asarray(detections["confidence"], np.float32)[keep],
    }


def _as_image_list(images: Any) -> tuple[list[tuple[str, Any]], bool]:
    """[(name for errors, path or array)] and whether a single image was given."""
    if _is_path(images):
        return [(os.fspath(images), images)], True
    if isinstance(images, list | tuple):
        return [
            (os.fspath(x) if _is_path(x) else f"images[{i}]", x) for i, x in enumerate(images)
        ], False
    array = images if isinstance(images, np.ndarray) else np.asarray(images)
    if array.ndim == 4:
        return [(f"images[{i}]", a) for i, a in enumerate(array)], False
    return [("image", array)], True


def _checked(name: str, item: Any) -> Any:
    """A path whose header is fine (decoded later), or a checked float32 array."""
    if _is_path(item):
        inspect_image_file(item)
        return item
    return check_image(item, name)


def predict(
    model: Any,
    images: Any,
    task: GridDecoder | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    batch_size: int = 4,
) -> dict[str, np.ndarray] | list[dict[str, np.ndarray]]:
    """Detect objects in ``images`` and return boxes in each image's own pixels.

    Args:
      model: a DetectNet-style Keras model (outputs ``coverage``, ``bbox``) or the
        ``serving_default`` signature (or loaded object) of a SavedModel tf_evosyn exported.
      images: one H x W x 3 RGB array/tensor (pixels in [0, 255]), an N x H x W x 3 array, a
        path to a PNG/JPEG, or a list of arrays and/or paths; any sizes.
      task: decodes the grid outputs (its ``decode`` settings and ``class_names``); default
        ``DetectionTask(class_names=("Car",))`` at the model's input size.
      input_shape: (H, W) canvas for a model whose input size is None (fully convolutional).
      batch_size: canvases per model call (memory, not results).

    Returns keras-cv's dict ``{"boxes": float32 [N, 4] xyxy, "classes": int [N],
    "confidence": float32 [N]}`` for a single image, else a list of them in input order.
    ``classes`` index ``task.class_names``. Images that fit the canvas are padded as at
    evaluation; larger ones are scaled down to fit (so boxes smaller than the decoder's
    ``min_height`` after scaling are missed).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    items, single = _as_image_list(images)
    # Every input is checked before the model runs, so a bad one fails fast; files are
    # decoded a batch at a time (a folder of images need not fit in memory).
    checked = [_checked(name, item) for name, item in items]
    run, model_hw = _runner(model)
    height, width = _input_size(model_hw, input_shape)
    class_names = tuple(task.class_names) if task is not None else _DEFAULT_CLASSES
    detect = task.detect if task is not None else _default_detect
    results: list[dict[str, np.ndarray]] = []
    for start in range(0, len(checked), batch_size):
        chunk = [load_image(x) if _is_path(x) else x for x in checked[start : start + batch_size]]
        fitted = [fit_image(image, height, width) for image in chunk]
        outputs = run(np.stack([canvas for canvas, _ in fitted]))
        channels = outputs["coverage"].shape[-1]
        if channels != len(class_names):
            raise ValueError(
                f"the model predicts {channels} classes but the task names "
                f"{list(class_names)}; pass task=DetectionTask(class_names=...) with the "
                "model's classes (its run's config.data.classes)."
            )
        detections = detect(outputs["coverage"], outputs["bbox"])
        for (_, scale), image, found in zip(fitted, chunk, detections, strict=True):
            results.append(_to_original_pixels(found, scale, image.shape[:2]))
    return results[0] if single else results


def _default_detect(coverage: np.ndarray, bbox: np.ndarray) -> list[dict[str, np.ndarray]]:
    """What ``DetectionTask()`` decodes with: DetectNet's clustering at stride 16."""
    return DecodeSettings().detect(coverage, bbox, stride=16)
