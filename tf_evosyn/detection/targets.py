"""DetectNet's ground-truth transform (``coverage_rectangular``), in pure TensorFlow ops.

Ported from NVIDIA/caffe ``src/caffe/util/detectnet_coverage_rectangular.cpp`` (DIGITS'
DetectNet) so targets can be built inside ``tf.data`` ``map`` (graph mode, vectorised over boxes).

The rule, per object whose type maps to a coverage channel (``class_ids``):

* coverage rectangle: centred on the box centre, each side ``scale_cvg`` (0.4) of the box side,
  then ``GRIDBOX_MIN``: at least ``min_cvg_len`` (20 px) but never more than the box side itself.
* a grid cell ``[gx*s, (gx+1)*s) x [gy*s, (gy+1)*s)`` is covered when its intersection with the
  coverage rectangle, as a fraction of the cell area, exceeds ``_FLT_EPSILON`` (so any overlap).
* covered cells get coverage 1 in the object's channel and the corner targets
  ``x1 - gx*s, y1 - gy*s, x2 - gx*s, y2 - gy*s``: pixel offsets of the box corners from the
  cell's *top-left* corner (positive = right/down). A decoder adds ``(gx*s, gy*s)`` back.
* size norms ``1/w, 1/h`` (box width and height in pixels) and ``obj_norm = s*s / area of the
  coverage rectangle`` (DetectNet's ``objectNormValue``: one over the rectangle's area in grid
  cells, a fractional count; with ``obj_norm=False`` it is ``max(1, that)``).
* overlaps: objects are written in list order and a later object overwrites every field of the
  cells it covers, so the *last* row wins.

Target tensors (one image; a leading batch axis is kept if the inputs have one):
``coverage`` [H/s, W/s, C] and ``bbox`` [H/s, W/s, 8*C]; class c owns bbox channels
``8c .. 8c+7`` laid out as the constants below (all zero outside cells of class c). For C = 1 this
is DetectNet's label blob minus its duplicate coverage channel.
"""

from __future__ import annotations

from collections.abc import Sequence

from tf_evosyn._keras import tf
from tf_evosyn.detection.kitti_types import KITTI_TYPES

_FLT_EPSILON = 1.1920928955078125e-07  # C's FLT_EPSILON, DetectNet's "covered" cut-off

# Layout of the 8 bbox-target channels of one class.
TARGET_X1, TARGET_Y1, TARGET_X2, TARGET_Y2 = 0, 1, 2, 3
_TARGET_MASK = 4  # 1 in cells covered by an object of this class (DetectNet's foreground label)
TARGET_INV_W, TARGET_INV_H = 5, 6  # 1/w and 1/h of the box, pixels^-1
_TARGET_OBJ_NORM = 7  # stride^2 / coverage-rectangle area
TARGET_CHANNELS_PER_CLASS = 8

# detectnet_groundtruth_param of examples/kitti/detectnet_network.prototxt.
DETECTNET_GROUNDTRUTH = {"stride": 16, "scale_cvg": 0.4, "min_cvg_len": 20.0, "obj_norm": True}

_ClassIds = Sequence[int | Sequence[int]]


def class_channel_table(class_ids: _ClassIds, num_types: int = len(KITTI_TYPES)) -> list[int]:
    """Type index -> coverage channel (-1: not encoded), like DetectNet's object_class src->dst.

    ``class_ids[c]`` is a type index, or several (e.g. ``(0, 1)`` = Car and Van in one channel).
    """
    if not class_ids:
        raise ValueError("class_ids is empty: give at least one KITTI type index, e.g. (0,) = Car")
    table = [-1] * num_types
    for channel, ids in enumerate(class_ids):
        for type_id in (ids,) if isinstance(ids, int) else tuple(ids):
            if not 0 <= int(type_id) < num_types:
                raise ValueError(
                    f"class_ids[{channel}] has type index {type_id}, outside 0..{num_types - 1} "
                    f"(indices into {KITTI_TYPES})"
                )
            if table[type_id] != -1:
                raise ValueError(f"type index {type_id} appears twice in class_ids={class_ids}")
            table[type_id] = channel
    return table


def _grid_shape(image_shape: Sequence[int], stride: int) -> tuple[int, int]:
    """(H/s, W/s); the image must be padded to a multiple of the stride (DetectNet: 384x1248)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    if height % stride or width % stride:
        raise ValueError(
            f"image_shape {height}x{width} is not a multiple of stride {stride}: pad the images "
            f"(bottom/right) to a multiple of {stride}, as DetectNet pads KITTI to 384x1248"
        )
    return height // stride, width // stride


def encode(
    boxes,
    types,
    class_ids: _ClassIds = (0,),
    image_shape: Sequence[int] = (384, 1248),
    stride: int = 16,
    scale_cvg: float = 0.4,
    min_cvg_len: float = 20.0,
    obj_norm: bool = True,
    crop_to_image: bool = False,
) -> dict[str, tf.Tensor]:
    """DetectNet targets from boxes [N,4] (x1,y1,x2,y2 px) and types [N] (-1 = padding).

    Also accepts a batch ([B,N,4], [B,N]) and returns a leading batch axis then.
    ``crop_to_image`` clips boxes to the image first (DetectNet's ``crop_bboxes``, on in its
    training transform, off in validation).
    """
    table = class_channel_table(class_ids)
    num_classes = len(class_ids)
    grid_h, grid_w = _grid_shape(image_shape, stride)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    types = tf.convert_to_tensor(types, tf.int32)
    if boxes.shape.rank not in (2, 3) or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [N, 4] or [B, N, 4] x1,y1,x2,y2; got {boxes.shape}")
    if types.shape.rank != boxes.shape.rank - 1:
        raise ValueError(f"types must be [N] or [B, N] to match boxes; got {types.shape}")
    batched = boxes.shape.rank == 3
    if not batched:
        boxes, types = boxes[None], types[None]
    # One invalid row at the end keeps every gather in range when an image has no rows.
    boxes = tf.concat([boxes, tf.zeros_like(boxes[:, :1])], axis=1)
    types = tf.concat([types, -tf.ones_like(types[:, :1])], axis=1)

    channel = tf.where(
        types >= 0,
        tf.gather(tf.constant(table, tf.int32), tf.clip_by_value(types, 0, len(table) - 1)),
        -1,
    )
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)  # each [B, N]
    if crop_to_image:
        x1, x2 = (tf.clip_by_value(v, 0.0, float(image_shape[1])) for v in (x1, x2))
        y1, y2 = (tf.clip_by_value(v, 0.0, float(image_shape[0])) for v in (y1, y2))
    width, height = x2 - x1, y2 - y1
    valid = (channel >= 0) & (width > 0) & (height > 0) & (width * height >= _FLT_EPSILON)

    # Coverage rectangle (GRIDBOX_MIN), centred on the box.
    cover_w = tf.minimum(width, tf.maximum(min_cvg_len, width * scale_cvg))
    cover_h = tf.minimum(height, tf.maximum(min_cvg_len, height * scale_cvg))
    centre_x, centre_y = (x1 + x2) * 0.5, (y1 + y2) * 0.5
    cell_area = float(stride * stride)
    norm = cell_area / tf.maximum(cover_w * cover_h, _FLT_EPSILON)
    if not obj_norm:
        norm = tf.maximum(norm, 1.0)

    # Covered fraction of every cell by every object: [B, N, grid_h, grid_w].
    cell_x0 = tf.range(grid_w, dtype=tf.float32) * stride
    cell_y0 = tf.range(grid_h, dtype=tf.float32) * stride
    overlap_x = tf.nn.relu(
        tf.minimum((centre_x + cover_w * 0.5)[..., None], cell_x0 + stride)
        - tf.maximum((centre_x - cover_w * 0.5)[..., None], cell_x0)
    )
    overlap_y = tf.nn.relu(
        tf.minimum((centre_y + cover_h * 0.5)[..., None], cell_y0 + stride)
        - tf.maximum((centre_y - cover_h * 0.5)[..., None], cell_y0)
    )
    covered_fraction = overlap_y[..., :, None] * overlap_x[..., None, :] / cell_area
    covered = (covered_fraction > _FLT_EPSILON) & valid[:, :, None, None]

    # The last object covering a cell wins it (DetectNet writes objects in order).
    row = tf.range(tf.shape(boxes)[1], dtype=tf.int32)[None, :, None, None]
    winner = tf.reduce_max(tf.where(covered, row, -1), axis=1)  # [B, grid_h, grid_w]
    occupied = winner >= 0
    winner = tf.maximum(winner, 0)

    def at_winner(values):
        return tf.gather(values, winner, batch_dims=1)

    fields = tf.stack(
        [
            at_winner(x1) - cell_x0[None, None, :],
            at_winner(y1) - cell_y0[None, :, None],
            at_winner(x2) - cell_x0[None, None, :],
            at_winner(y2) - cell_y0[None, :, None],
            tf.ones_like(at_winner(x1)),
            1.0 / at_winner(tf.where(valid, width, 1.0)),
            1.0 / at_winner(tf.where(valid, height, 1.0)),
            at_winner(norm),
        ],
        axis=-1,
    )  # [B, grid_h, grid_w, 8]
    cell_class = tf.where(occupied, at_winner(channel), -1)
    coverage = tf.one_hot(cell_class, num_classes, dtype=tf.float32)  # zeros where -1
    bbox = coverage[..., :, None] * fields[..., None, :]  # [B, grid_h, grid_w, C, 8]
    bbox = tf.reshape(bbox, [-1, grid_h, grid_w, num_classes * TARGET_CHANNELS_PER_CLASS])
    if not batched:
        coverage, bbox = coverage[0], bbox[0]
    return {"coverage": coverage, "bbox": bbox}


def split_bbox_target(bbox_target: tf.Tensor) -> dict[str, tf.Tensor]:
    """Named views of a bbox target [..., 8*C]: corners [..., C, 4], mask/inv_w/inv_h/obj_norm
    [..., C]. The losses and decoders read targets only through this."""
    channels = bbox_target.shape[-1]
    if channels is None or channels % TARGET_CHANNELS_PER_CLASS:
        raise ValueError(
            f"bbox target has {channels} channels; expected 8 per class (see targets.py layout)"
        )
    num_classes = channels // TARGET_CHANNELS_PER_CLASS
    shape = tf.concat([tf.shape(bbox_target)[:-1], [num_classes, TARGET_CHANNELS_PER_CLASS]], 0)
    per_class = tf.reshape(bbox_target, shape)
    return {
        "corners": per_class[..., TARGET_X1 : TARGET_Y2 + 1],
        "mask": per_class[..., _TARGET_MASK],
        "inv_w": per_class[..., TARGET_INV_W],
        "inv_h": per_class[..., TARGET_INV_H],
        "obj_norm": per_class[..., _TARGET_OBJ_NORM],
    }


def with_corners(bbox_target: tf.Tensor, corners: tf.Tensor) -> tf.Tensor:
    """``bbox_target`` [..., 8*C] with its corners replaced by ``corners`` [..., 4*C] (e.g. a
    teacher's prediction), keeping the ground truth's mask and normalisation."""
    bbox_target = tf.convert_to_tensor(bbox_target)
    num_classes = bbox_target.shape[-1] // TARGET_CHANNELS_PER_CLASS
    shape = tf.concat([tf.shape(bbox_target)[:-1], [num_classes, TARGET_CHANNELS_PER_CLASS]], 0)
    per_class = tf.reshape(bbox_target, shape)
    corners = tf.reshape(tf.cast(corners, bbox_target.dtype), tf.concat([shape[:-1], [4]], 0))
    replaced = tf.concat(
        [per_class[..., :TARGET_X1], corners, per_class[..., TARGET_Y2 + 1 :]], axis=-1
    )
    return tf.reshape(replaced, tf.shape(bbox_target))


def corners_from_target(bbox_target) -> tf.Tensor:
    """The 4*C corner channels of a bbox target: what a perfect model's ``bbox`` output is."""
    corners = split_bbox_target(tf.convert_to_tensor(bbox_target, tf.float32))["corners"]
    return tf.reshape(corners, tf.concat([tf.shape(corners)[:-2], [-1]], 0))
