"""Detections as the KITTI object devkit reads them, and as a picture for a person.

A KITTI result file (``<image id>.txt``, one per image, empty when nothing was found) has one
line per detection with the 15 label fields plus a score (devkit readme.txt); a 2D detector
knows only the type, the box and the score, so the rest carry the devkit's "not estimated"
values: truncated -1, occluded -1, alpha -10, dimensions -1 -1 -1, location -1000 -1000 -1000,
rotation_y -10. :func:`tf_evosyn.data.kitti_labels.parse_label_file` with ``allow_score=True``
reads them back. Files are written atomically (:mod:`tf_evosyn.storage.io_utils`), so an interrupted
run never leaves half a file for the devkit to misread.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np

from tf_evosyn.detection.inference import check_image
from tf_evosyn.storage import io_utils

# Fields 2-4 and 9-15 of a result line: what a 2D detector does not estimate (devkit readme).
_NOT_TRUNCATED_OCCLUDED_ALPHA = "-1 -1 -10"
_NOT_3D = "-1 -1 -1 -1000 -1000 -1000 -10"
_BOX_COLOUR = (255, 40, 40)


def _arrays(detections: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = {"boxes", "classes", "confidence"} - set(detections)
    if missing:
        raise ValueError(
            f"detections lack {sorted(missing)}; give one image's dict from "
            "tf_evosyn.detection.predict (boxes, classes, confidence)."
        )
    boxes = np.asarray(detections["boxes"], np.float64).reshape(-1, 4)
    classes = np.asarray(detections["classes"]).reshape(-1).astype(np.int64)
    scores = np.asarray(detections["confidence"], np.float64).reshape(-1)
    if not len(boxes) == len(classes) == len(scores):
        raise ValueError(
            f"detections have {len(boxes)} boxes, {len(classes)} classes and {len(scores)} "
            "scores; they must be the same number."
        )
    return boxes, classes, scores


def _result_lines(detections: dict, class_names: Sequence[str]) -> list[str]:
    """One KITTI result line per detection (boxes rounded to 0.01 px, as KITTI's labels)."""
    boxes, classes, scores = _arrays(detections)
    if len(classes) and (classes.min() < 0 or classes.max() >= len(class_names)):
        raise ValueError(
            f"detection classes {sorted(set(classes.tolist()))} do not index class_names "
            f"{list(class_names)}; pass the task's class names."
        )
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError("detections have NaN or infinite boxes or scores; the model diverged.")
    lines = []
    for (x1, y1, x2, y2), cls, score in zip(boxes, classes, scores, strict=True):
        name = class_names[cls]
        if " " in name or not name:
            raise ValueError(f"class name {name!r} cannot be a KITTI type (one word).")
        lines.append(
            f"{name} {_NOT_TRUNCATED_OCCLUDED_ALPHA} {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
            f"{_NOT_3D} {score:.6f}"
        )
    return lines


def write_kitti_results(
    path: str | os.PathLike[str], detections: dict, class_names: Sequence[str]
) -> str:
    """Write one image's detections as a KITTI result file (``<image id>.txt``), atomically.

    ``detections`` is one image's dict from :func:`tf_evosyn.detection.predict` (boxes in that
    image's pixels); ``classes`` index ``class_names`` (e.g. ``("Car",)``). Returns the path.
    """
    lines = _result_lines(detections, class_names)
    text = "".join(line + "\n" for line in lines)
    return str(io_utils.atomic_write_text(path, text))


def draw_detections(
    image,
    detections: dict,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    colour: tuple[int, int, int] = _BOX_COLOUR,
) -> str:
    """Save ``image`` (H x W x 3, pixels in [0, 255]) as a PNG with each box and its class and
    score drawn, atomically; returns the path. For a person to look at, not for scoring."""
    from PIL import Image, ImageDraw, ImageFont

    pixels = np.clip(np.rint(check_image(image)), 0, 255).astype(np.uint8)
    boxes, classes, scores = _arrays(detections)
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    size = max(10, round(min(pixels.shape[:2]) / 30))
    try:
        font = ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        font = ImageFont.load_default()
    width = max(1, round(min(pixels.shape[:2]) / 200))
    for (x1, y1, x2, y2), cls, score in zip(boxes, classes, scores, strict=True):
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        label = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        text_y = y1 - (bottom - top) - 2 if y1 >= bottom - top + 2 else y1
        draw.rectangle([x1, text_y, x1 + right - left + 2, text_y + bottom - top + 2], fill=colour)
        draw.text((x1 + 1, text_y - top + 1), label, fill=(255, 255, 255), font=font)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return str(io_utils.atomic_write_bytes(path, buffer.getvalue()))
