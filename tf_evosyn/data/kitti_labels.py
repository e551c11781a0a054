"""KITTI object-detection labels and folder layout: strict parsing and whole-folder validation.

Everything here is cheap (text files and the first 24 bytes of each PNG), so a whole folder is
checked before any training: a bad line or a missing file fails in seconds with a message naming
the file, the line and the fix. PNGs are not decoded here; a PNG that fails to decode later raises
a :class:`DataError` naming the file (see :mod:`tf_evosyn.data.kitti`).

Label format (KITTI object devkit readme): one object per line, 15 space-separated fields:
type, truncated, occluded, alpha, bbox left top right bottom (pixels, 0-based), dimensions
height width length (m), location x y z (m, camera coordinates), rotation_y. Result files add a
16th field, the score (accepted only with ``allow_score=True``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from tf_evosyn.data.errors import DataError
from tf_evosyn.data.png_check import check_png

KITTI_TYPES = (
    "Car",
    "Van",
    "Truck",
    "Pedestrian",
    "Person_sitting",
    "Cyclist",
    "Tram",
    "Misc",
    "DontCare",
)
_LABEL_FIELDS = (
    "type",
    "truncated",
    "occluded",
    "alpha",
    "x1",
    "y1",
    "x2",
    "y2",
    "height",
    "width",
    "length",
    "x",
    "y",
    "z",
    "rotation_y",
)
DEFAULT_MAX_BOXES = 64

_LAYOUT_HINT = (
    "Expected layout: <dir>/training/image_2/NNNNNN.png and <dir>/training/label_2/NNNNNN.txt "
    "(the KITTI object benchmark's data_object_image_2.zip and data_object_label_2.zip, "
    "unpacked). Point at <dir> with $EVOSYN_DATA_DIR (which must hold kitti/) or "
    "--config.data.data_dir=<dir>."
)


@dataclasses.dataclass(frozen=True)
class KittiObject:
    """One label line, all 15 fields (plus the score of result files)."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    x1: float
    y1: float
    x2: float
    y2: float
    height: float
    width: float
    length: float
    x: float
    y: float
    z: float
    rotation_y: float
    score: float | None = None

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) in image pixels."""
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def type_id(self) -> int:
        """Index of ``type`` in :data:`KITTI_TYPES`."""
        return KITTI_TYPES.index(self.type)


@dataclasses.dataclass(frozen=True)
class KittiRecord:
    """One image of a local KITTI folder: its ID, files, size (from the PNG header), objects."""

    image_id: str
    image_path: Path
    label_path: Path
    height: int
    width: int
    objects: tuple[KittiObject, ...]


def class_ids(names) -> list[int]:
    """Indices into :data:`KITTI_TYPES` of the class ``names`` (e.g. ("Car",) -> [0])."""
    if isinstance(names, str):
        names = (names,)
    ids = []
    for name in names:
        if name not in KITTI_TYPES:
            raise DataError(
                f"Unknown KITTI class {name!r}; use names from {', '.join(KITTI_TYPES)} "
                "(case-sensitive)."
            )
        ids.append(KITTI_TYPES.index(name))
    if len(set(ids)) != len(ids):
        raise DataError(f"KITTI class names repeat in {list(names)}; list each class once.")
    return ids


def _number(value: str, where: str, field: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
        bad = True
    else:
        bad = not math.isfinite(number)
    if bad:
        raise DataError(
            f"{where}: field {field!r} is {value!r}, not a finite number. Fix that line of the "
            "label file (or re-extract data_object_label_2.zip)."
        )
    return number


def parse_label_line(line: str, where: str, allow_score: bool = False) -> KittiObject:
    """One label line -> :class:`KittiObject`; ``where`` ("file, line N") prefixes errors."""
    fields = line.split()
    allowed = (15, 16) if allow_score else (15,)
    if len(fields) not in allowed:
        expected = "15 (16 with a trailing score)" if allow_score else "15"
        raise DataError(
            f"{where}: {len(fields)} fields, expected {expected} (type truncated occluded alpha "
            "x1 y1 x2 y2 h w l x y z rotation_y). Fix or remove that line."
        )
    name = fields[0]
    if name not in KITTI_TYPES:
        raise DataError(
            f"{where}: unknown object type {name!r}; KITTI types are {', '.join(KITTI_TYPES)}. "
            "Fix the type name on that line."
        )
    values = [_number(v, where, f) for v, f in zip(fields[1:15], _LABEL_FIELDS[1:], strict=True)]
    if not values[1].is_integer():
        raise DataError(
            f"{where}: field 'occluded' is {fields[2]!r}; it must be an integer "
            "(0 visible, 1 partly, 2 largely occluded, 3 unknown, -1 DontCare)."
        )
    x1, y1, x2, y2 = values[3:7]
    if x2 < x1 or y2 < y1:
        raise DataError(
            f"{where}: bbox ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has x2 < x1 or y2 < y1; the fields "
            "are left top right bottom. Fix that line."
        )
    score = _number(fields[15], where, "score") if len(fields) == 16 else None
    return KittiObject(name, values[0], int(values[1]), *values[2:], score=score)


def parse_label_file(path: str | Path, allow_score: bool = False) -> list[KittiObject]:
    """All objects of one label file (blank lines are skipped; an empty file has none)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"Cannot read KITTI label file {path}: {e}. Re-extract it.") from e
    return [
        parse_label_line(line, f"{path}, line {number}", allow_score)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _ids(folder: Path, suffix: str) -> dict[str, Path]:
    files = {}
    for path in folder.glob(f"*{suffix}"):
        if not path.stem.isdigit():
            raise DataError(
                f"{path}: KITTI file names are numeric IDs (NNNNNN{suffix}); rename or remove it."
            )
        files[path.stem] = path
    return files


def scan_kitti_folder(root: str | Path, max_boxes: int = DEFAULT_MAX_BOXES) -> list[KittiRecord]:
    """Validate a whole KITTI folder and return its records sorted by numeric ID.

    Checks: the layout, that every image has a label file and every label file an image, every
    label line, that no image has more than ``max_boxes`` objects, and that each PNG is complete
    (every chunk and its CRC, up to IEND: png_check.py).
    """
    root = Path(root)
    images_dir = root / "training" / "image_2"
    labels_dir = root / "training" / "label_2"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            hint = ""
            if (root / "image_2").is_dir():
                hint = f" {root} looks like the training/ folder itself: point at its parent."
            raise DataError(f"KITTI folder {folder} not found.{hint} {_LAYOUT_HINT}")
    images, labels = _ids(images_dir, ".png"), _ids(labels_dir, ".txt")
    if not images:
        raise DataError(f"No KITTI images (*.png) in {images_dir}. {_LAYOUT_HINT}")
    for missing, have, kind, other in (
        (sorted(set(images) - set(labels)), images, "image", f"label file in {labels_dir}"),
        (sorted(set(labels) - set(images)), labels, "label file", f"image in {images_dir}"),
    ):
        if missing:
            shown = ", ".join(str(have[i]) for i in missing[:3])
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise DataError(
                f"KITTI {kind} {shown}{more} has no matching {other}; add the missing file or "
                f"remove the unmatched {kind}s."
            )
    records = []
    for image_id in sorted(images, key=int):
        objects = tuple(parse_label_file(labels[image_id]))
        if len(objects) > max_boxes:
            raise DataError(
                f"{labels[image_id]} has {len(objects)} objects, more than data.max_boxes="
                f"{max_boxes}; raise --config.data.max_boxes to at least {len(objects)}."
            )
        height, width = check_png(images[image_id])
        records.append(
            KittiRecord(image_id, images[image_id], labels[image_id], height, width, objects)
        )
    return records


def split_by_id_blocks(
    records: list[KittiRecord], validation_fraction: float
) -> tuple[list[KittiRecord], list[KittiRecord]]:
    """(train, validation): validation is the last ``validation_fraction`` of the numeric IDs.

    Never random: nearby KITTI IDs often show the same drive, so a contiguous block keeps most
    scenes on one side. This is NOT KITTI's benchmark split.
    """
    fraction = validation_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise DataError(
            f"data.validation_fraction must be a number in (0, 1), got {validation_fraction!r}."
        )
    ordered = sorted(records, key=lambda r: int(r.image_id))
    num_validation = max(1, round(len(ordered) * fraction))
    if num_validation >= len(ordered):
        raise DataError(
            f"data.validation_fraction={fraction:g} leaves no training images out of "
            f"{len(ordered)}; lower it or add images."
        )
    return ordered[:-num_validation], ordered[-num_validation:]


def padded_arrays(records: list[KittiRecord], max_boxes: int) -> dict[str, np.ndarray]:
    """Ground truth of ``records`` as fixed-size numpy arrays (rows past the objects: padding).

    ``boxes`` [N, max_boxes, 4] float32 (x1, y1, x2, y2, zeros when padded), ``types`` int32
    (index into KITTI_TYPES, -1 when padded), ``truncated`` float32, ``occluded`` int32,
    ``image_size`` [N, 2] int32 (height, width), ``image_id`` [N] str.
    """
    n = len(records)
    out = {
        "boxes": np.zeros((n, max_boxes, 4), np.float32),
        "types": np.full((n, max_boxes), -1, np.int32),
        "truncated": np.zeros((n, max_boxes), np.float32),
        "occluded": np.zeros((n, max_boxes), np.int32),
        "image_size": np.array([(r.height, r.width) for r in records], np.int32).reshape(n, 2),
        "image_id": np.array([r.image_id for r in records], dtype=object),
    }
    for i, record in enumerate(records):
        if len(record.objects) > max_boxes:
            raise DataError(
                f"{record.label_path} has {len(record.objects)} objects, more than "
                f"data.max_boxes={max_boxes}; raise --config.data.max_boxes."
            )
        for j, obj in enumerate(record.objects):
            out["boxes"][i, j] = obj.bbox
            out["types"][i, j] = obj.type_id
            out["truncated"][i, j] = obj.truncated
            out["occluded"][i, j] = obj.occluded
    return out
