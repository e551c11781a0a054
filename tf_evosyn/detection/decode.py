"""From DetectNet outputs (coverage [B,H/s,W/s,C], bbox [B,H/s,W/s,4C]) to boxes.

Two decoders, one result structure (keras-cv's dict: ``boxes`` xyxy pixels, ``confidence``,
``classes``):

* ``cluster_detections``: DetectNet's own (python/caffe/layers/detectnet/clustering.py), NumPy on
  the host. Cells with coverage >= threshold propose ``offsets + (gx*s, gy*s)``; proposals are
  merged by OpenCV's ``groupRectangles`` (ported in ``group_rectangles``); clusters lower than
  ``min_height`` are dropped; confidence = log(number of proposals in the cluster), as DetectNet.
  Returns a list (one per image) of dicts of NumPy arrays.
* ``decode_nms``: keras-cv's ``NonMaxSuppression`` over all cells, pure TF and batched, for a
  SavedModel serving function. Returns dense tensors padded with -1 (keras-cv's format);
  ``detections_to_list`` turns them into the NumPy list form.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import tf

# param_str '1248, 352, 16, 0.6, 3, 0.02, 22, 1' of the cluster layer in
# examples/kitti/detectnet_network.prototxt.
DETECTNET_CLUSTERING = {
    "stride": 16,
    "threshold": 0.6,
    "rect_threshold": 3,
    "rect_eps": 0.02,
    "min_height": 22,
}


def _bounding_box():
    """keras-cv's bounding_box module (imported late: it is heavy and needs tf_keras selected)."""
    from keras_cv import bounding_box

    return bounding_box


def _check_outputs(coverage_shape, bbox_shape) -> int:
    """Refuse outputs that are not a coverage/bbox pair (NumPy or TF shapes; None = unknown,
    e.g. a serving signature's batch); returns the number of classes."""
    coverage, bbox = tuple(coverage_shape), tuple(bbox_shape)
    if len(coverage) != 4 or len(bbox) != 4:
        raise ValueError(
            f"coverage and bbox must be [B, H/s, W/s, C] and [B, H/s, W/s, 4C]; got "
            f"{coverage} and {bbox} (add a batch axis for one image)"
        )
    num_classes = coverage[-1]
    grids = zip(coverage[:3], bbox[:3], strict=True)
    same_grid = all(a is None or b is None or a == b for a, b in grids)
    if not same_grid or (num_classes is not None and bbox[-1] != 4 * num_classes):
        raise ValueError(
            f"bbox {bbox} does not match coverage {coverage}: bbox needs the same "
            f"grid and 4 * {num_classes} channels"
        )
    return num_classes


def _cell_origins(grid_h: int, grid_w: int, stride: int):
    """(x, y) pixel position of every cell's top-left corner, each [grid_h, grid_w]."""
    ys, xs = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    return xs * float(stride), ys * float(stride)


def group_rectangles(
    rects_xywh: np.ndarray, group_threshold: int, eps: float, integer_rects: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``cv::groupRectangles`` (objdetect/cascadedetect.cpp), returning (rects, weights).

    Rectangles are similar when all four sides differ by at most
    ``eps * (min(w1, w2) + min(h1, h2)) / 2``; similarity is closed transitively (union-find,
    ``cv::partition``); each class is averaged; classes with ``<= group_threshold`` members are
    dropped, as are classes nested in a bigger, better-supported class. ``integer_rects`` mimics
    OpenCV's ``cv::Rect`` (inputs truncated to int, averages rounded); False keeps floats.
    """
    rects = np.asarray(rects_xywh, dtype=np.float64).reshape(-1, 4)
    if integer_rects:
        rects = np.trunc(rects)
    if group_threshold <= 0 or len(rects) == 0:
        return rects, np.ones(len(rects), dtype=np.int64)
    x, y, w, h = rects.T
    delta = eps * (np.minimum(w[:, None], w[None]) + np.minimum(h[:, None], h[None])) * 0.5
    similar = (
        (np.abs(x[:, None] - x[None]) <= delta)
        & (np.abs(y[:, None] - y[None]) <= delta)
        & (np.abs((x + w)[:, None] - (x + w)[None]) <= delta)
        & (np.abs((y + h)[:, None] - (y + h)[None]) <= delta)
    )
    parent = np.arange(len(rects))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(similar, 1)), strict=True):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[rj] = ri
    roots = np.array([root(i) for i in range(len(rects))])
    # Classes numbered by first member, as cv::partition does (sets the output order).
    _, first, labels = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    labels = rank[labels]
    counts = np.bincount(labels)
    means = np.stack([np.bincount(labels, weights=rects[:, k]) for k in range(4)], 1)
    means /= counts[:, None]
    if integer_rects:
        means = np.rint(means)  # saturate_cast<int> rounds to nearest (even)

    kept, weights = [], []
    for i, (r1, n1) in enumerate(zip(means, counts, strict=True)):
        if n1 <= group_threshold:
            continue
        nested = False
        for j, (r2, n2) in enumerate(zip(means, counts, strict=True)):
            if j == i or n2 <= group_threshold:
                continue
            dx, dy = r2[2] * eps, r2[3] * eps
            if integer_rects:
                dx, dy = np.rint(dx), np.rint(dy)
            if (
                r1[0] >= r2[0] - dx
                and r1[1] >= r2[1] - dy
                and r1[0] + r1[2] <= r2[0] + r2[2] + dx
                and r1[1] + r1[3] <= r2[1] + r2[3] + dy
                and (n2 > max(3, n1) or n1 < 3)
            ):
                nested = True
                break
        if not nested:
            kept.append(r1)
            weights.append(n1)
    return np.reshape(np.array(kept, dtype=np.float64), (-1, 4)), np.array(weights, np.int64)


def cluster_detections(
    coverage,
    bbox,
    stride: int = 16,
    threshold: float = 0.6,
    rect_threshold: int = 3,
    rect_eps: float = 0.02,
    min_height: float = 22,
    integer_rects: bool = True,
) -> list[dict[str, np.ndarray]]:
    """DetectNet's ClusterDetections: per image and class, threshold, groupRectangles, min height.

    Defaults are DetectNet's KITTI settings (``DETECTNET_CLUSTERING``).
    """
    coverage, bbox = np.asarray(coverage, np.float32), np.asarray(bbox, np.float32)
    batch, num_classes = coverage.shape[0], _check_outputs(coverage.shape, bbox.shape)
    convert_format = _bounding_box().convert_format
    origin_x, origin_y = _cell_origins(coverage.shape[1], coverage.shape[2], stride)
    origins = np.stack([origin_x, origin_y, origin_x, origin_y], axis=-1)
    results = []
    for image in range(batch):
        boxes, scores, classes = [], [], []
        for cls in range(num_classes):
            proposed = coverage[image, ..., cls] >= threshold
            if not proposed.any():
                continue
            corners = bbox[image, ..., 4 * cls : 4 * cls + 4][proposed] + origins[proposed]
            xywh = np.asarray(convert_format(corners, source="xyxy", target="xywh"))
            grouped, weights = group_rectangles(xywh, rect_threshold, rect_eps, integer_rects)
            tall = grouped[:, 3] >= min_height
            if tall.any():
                boxes.append(np.asarray(convert_format(grouped[tall], "xywh", "xyxy")))
                scores.append(np.log(weights[tall].astype(np.float64)))
                classes.append(np.full(int(tall.sum()), cls, np.int64))
        results.append(_detections(boxes, scores, classes))
    return results


def _detections(boxes: list, scores: list, classes: list) -> dict[str, np.ndarray]:
    if not boxes:
        return {
            "boxes": np.zeros((0, 4), np.float32),
            "confidence": np.zeros((0,), np.float32),
            "classes": np.zeros((0,), np.int64),
        }
    return {
        "boxes": np.concatenate(boxes).astype(np.float32),
        "confidence": np.concatenate(scores).astype(np.float32),
        "classes": np.concatenate(classes),
    }


def decode_nms(
    coverage,
    bbox,
    threshold: float = 0.6,
    stride: int = 16,
    max_detections: int = 100,
    iou_threshold: float = 0.5,
    min_height: float = 0.0,
    class_agnostic: bool = False,
) -> dict[str, tf.Tensor]:
    """Every cell's box scored by its coverage, through keras-cv's ``NonMaxSuppression``.

    Returns keras-cv's dense dict: ``boxes`` [B, M, 4] xyxy pixels, ``confidence`` [B, M],
    ``classes`` [B, M], ``num_detections`` [B]; rows past ``num_detections`` are -1. keras-cv's
    NMS is class-agnostic; unless ``class_agnostic`` each class's boxes are shifted to their own
    far-away region before NMS (and back after), so classes never suppress each other.
    Boxes scoring <= ``threshold`` (TF's score_threshold) or lower than ``min_height`` are dropped.
    """
    from keras_cv.layers import NonMaxSuppression

    coverage = tf.convert_to_tensor(coverage, tf.float32)
    bbox = tf.convert_to_tensor(bbox, tf.float32)
    num_classes = _check_outputs(coverage.shape, bbox.shape)
    grid = tf.shape(coverage)
    grid_h, grid_w = grid[1], grid[2]
    cell_y, cell_x = tf.meshgrid(
        tf.range(grid_h, dtype=tf.float32), tf.range(grid_w, dtype=tf.float32), indexing="ij"
    )
    origins = tf.stack([cell_x, cell_y, cell_x, cell_y], axis=-1) * float(stride)
    corners = tf.reshape(bbox, tf.concat([grid[:3], [num_classes, 4]], 0))
    corners = corners + origins[:, :, None, :]  # [B, gh, gw, C, 4]
    class_id = tf.broadcast_to(tf.range(num_classes, dtype=tf.float32), tf.shape(coverage))
    tall = corners[..., 3] - corners[..., 1] >= min_height
    scores = tf.where(tall, coverage, 0.0)
    # Shift for per-class NMS: larger than any box extent on the image.
    shift = 0.0 if class_agnostic else 4.0 * stride * tf.cast(grid_h + grid_w, tf.float32)
    offset = (class_id * shift)[..., None]
    boxes = tf.reshape(corners + offset, [grid[0], -1, 4])
    class_scores = tf.reshape(
        tf.one_hot(tf.cast(class_id, tf.int32), num_classes) * scores[..., None],
        [grid[0], -1, num_classes],
    )
    nms = NonMaxSuppression(
        bounding_box_format="xyxy",
        from_logits=False,
        iou_threshold=iou_threshold,
        confidence_threshold=threshold,
        max_detections=max_detections,
    )
    result = nms(boxes, class_scores)
    valid = result["classes"] >= 0
    unshift = tf.cast(tf.maximum(result["classes"], 0), tf.float32)[..., None] * shift
    result["boxes"] = tf.where(valid[..., None], result["boxes"] - unshift, -1.0)
    return result


def detections_to_list(detections: dict) -> list[dict[str, np.ndarray]]:
    """keras-cv's dense -1-padded dict (``decode_nms``) -> the list form of
    ``cluster_detections``: one dict of NumPy arrays per image, padding removed."""
    counts = np.asarray(detections["num_detections"])
    results = []
    for image, count in enumerate(counts):
        results.append(
            {
                "boxes": np.asarray(detections["boxes"][image][:count], np.float32),
                "confidence": np.asarray(detections["confidence"][image][:count], np.float32),
                "classes": np.asarray(detections["classes"][image][:count]).astype(np.int64),
            }
        )
    return results


def ground_truth_from_targets(coverage_target, bbox_corners, stride: int = 16) -> list:
    """DIGITS' ClusterGroundtruth: the distinct boxes written in covered cells of the targets.

    This is the ground truth DIGITS scores against (objects entirely overwritten by later ones
    vanish). Returns the list form with confidence 0.
    """
    coverage, bbox = np.asarray(coverage_target), np.asarray(bbox_corners)
    batch, num_classes = coverage.shape[0], _check_outputs(coverage.shape, bbox.shape)
    origin_x, origin_y = _cell_origins(coverage.shape[1], coverage.shape[2], stride)
    origins = np.stack([origin_x, origin_y, origin_x, origin_y], axis=-1)
    results = []
    for image in range(batch):
        boxes, scores, classes = [], [], []
        for cls in range(num_classes):
            covered = coverage[image, ..., cls] > 0
            corners = bbox[image, ..., 4 * cls : 4 * cls + 4][covered] + origins[covered]
            unique = np.unique(corners, axis=0)
            boxes.append(unique)
            scores.append(np.zeros(len(unique)))
            classes.append(np.full(len(unique), cls, np.int64))
        results.append(_detections(boxes, scores, classes))
    return results
