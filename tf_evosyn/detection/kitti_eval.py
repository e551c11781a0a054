"""KITTI 2D object detection AP, as the official devkit (``cpp/evaluate_object.cpp``) computes it.

Per class and difficulty (Easy / Moderate / Hard: min box height 40/25/25 px, max occlusion
0/1/2, max truncation 0.15/0.30/0.50):

* ground truth of the class outside the difficulty, and of the neighbouring class (Van for Car,
  Person_sitting for Pedestrian), is *ignored*: neither TP nor FN, and a detection it takes is
  neither TP nor FP.
* detections lower than the min height (``int(|y2 - y1|)``, the devkit truncates) are ignored.
* a detection not matched to ground truth whose intersection with a DontCare box, over the
  *detection's* area, exceeds the class IoU threshold is ignored (not a FP).
* matching needs IoU > threshold (Car 0.7, Pedestrian/Cyclist 0.5; strict ``>``): the
  highest-scoring candidate when collecting TP scores, the highest-overlap one when counting.
* score thresholds are picked from the TP scores at 41 evenly spaced recalls (``getThresholds``);
  precision is made monotone (max over higher recalls);
  AP|R40 = mean of precision at recall 1/40 .. 1, the 11-point AP = mean at recall 0, 0.1, .., 1
  (every 4th of the 41 points), both as fractions in [0, 1].

IoU comes from ``keras_cv.bounding_box.compute_iou`` (xyxy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tf_evosyn.detection.kitti_types import KITTI_TYPES

DIFFICULTIES = ("easy", "moderate", "hard")
_MIN_HEIGHT = {"easy": 40, "moderate": 25, "hard": 25}
_MAX_OCCLUSION = {"easy": 0, "moderate": 1, "hard": 2}
_MAX_TRUNCATION = {"easy": 0.15, "moderate": 0.3, "hard": 0.5}
_MIN_OVERLAP = {"car": 0.7, "pedestrian": 0.5, "cyclist": 0.5}  # devkit, 2D image metric
_NEIGHBOUR_CLASSES = {"car": ("van",), "pedestrian": ("person_sitting",)}
N_SAMPLE_PTS = 41


def _type_names(types) -> list[str]:
    """Lower-case names of ``types`` given as KITTI_TYPES indices or strings; '' for padding."""
    names = []
    for value in np.asarray(types).reshape(-1).tolist():
        if isinstance(value, bytes | str):
            names.append(value.decode() if isinstance(value, bytes) else value)
        elif int(value) < 0:
            names.append("")
        else:
            names.append(KITTI_TYPES[int(value)])
    return [name.lower() for name in names]


def _iou(det_boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """[D, G] IoU by keras-cv (xyxy)."""
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return np.zeros((len(det_boxes), len(gt_boxes)))
    from keras_cv import bounding_box

    iou = bounding_box.compute_iou(
        det_boxes.astype(np.float32), gt_boxes.astype(np.float32), bounding_box_format="xyxy"
    )
    return np.asarray(iou, np.float64)


def _intersection_over_detection(det_boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """[D, R] intersection area / detection area: the devkit's DontCare criterion (not an IoU)."""
    if len(det_boxes) == 0 or len(regions) == 0:
        return np.zeros((len(det_boxes), len(regions)))
    d, r = det_boxes[:, None, :], regions[None, :, :]
    inter_w = np.minimum(d[..., 2], r[..., 2]) - np.maximum(d[..., 0], r[..., 0])
    inter_h = np.minimum(d[..., 3], r[..., 3]) - np.maximum(d[..., 1], r[..., 1])
    inter = np.where((inter_w > 0) & (inter_h > 0), inter_w * inter_h, 0.0)
    area = (d[..., 2] - d[..., 0]) * (d[..., 3] - d[..., 1])
    return np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)


class _Image:
    """One image's boxes and overlaps, shared by every class and difficulty."""

    def __init__(self, gt: Mapping, det: Mapping, detection_class_names: Sequence[str]):
        gt_types = _type_names(gt["types"])
        keep = np.array([bool(name) for name in gt_types], bool)
        self.gt_types = [name for name in gt_types if name]
        self.gt_boxes = np.asarray(gt["boxes"], np.float64).reshape(-1, 4)[keep]
        self.truncated = np.asarray(gt["truncated"], np.float64).reshape(-1)[keep]
        self.occluded = np.asarray(gt["occluded"], np.int64).reshape(-1)[keep]
        classes = np.asarray(det["classes"]).reshape(-1).astype(np.int64)
        valid = classes >= 0
        self.det_boxes = np.asarray(det["boxes"], np.float64).reshape(-1, 4)[valid]
        self.scores = np.asarray(det["confidence"], np.float64).reshape(-1)[valid]
        self.det_types = [detection_class_names[c].lower() for c in classes[valid]]
        self.iou = _iou(self.det_boxes, self.gt_boxes)
        dontcare = np.array([name == "dontcare" for name in self.gt_types], bool)
        self.dontcare_overlap = _intersection_over_detection(
            self.det_boxes, self.gt_boxes[dontcare]
        )

    def clean(self, cls: str, difficulty: str) -> tuple[np.ndarray, np.ndarray]:
        """The devkit's cleanData: ignored_gt (0 valid, 1 ignored, -1 other class) and
        ignored_det (0 valid, 1 too small, -1 other class)."""
        height = self.gt_boxes[:, 3] - self.gt_boxes[:, 1]
        own = np.array([t == cls for t in self.gt_types], bool)
        neighbour = np.array([t in _NEIGHBOUR_CLASSES.get(cls, ()) for t in self.gt_types], bool)
        ignore = (
            (self.occluded > _MAX_OCCLUSION[difficulty])
            | (self.truncated > _MAX_TRUNCATION[difficulty])
            | (height < _MIN_HEIGHT[difficulty])
        )
        ignored_gt = np.where(own & ~ignore, 0, np.where(neighbour | (own & ignore), 1, -1))
        det_height = np.abs(self.det_boxes[:, 1] - self.det_boxes[:, 3]).astype(np.int64)
        det_own = np.array([t == cls for t in self.det_types], bool)
        ignored_det = np.where(det_height < _MIN_HEIGHT[difficulty], 1, np.where(det_own, 0, -1))
        return ignored_gt.astype(np.int64), ignored_det.astype(np.int64)


def _statistics(
    image: _Image,
    ignored_gt,
    ignored_det,
    min_overlap: float,
    compute_fp: bool,
    thresh: float = 0.0,
) -> tuple[int, int, int, list[float]]:
    """The devkit's computeStatistics for one image: (tp, fp, fn, TP scores)."""
    tp = fp = fn = 0
    tp_scores: list[float] = []
    assigned = np.zeros(len(image.scores), bool)
    below = (image.scores < thresh) if compute_fp else np.zeros(len(image.scores), bool)
    for i in np.flatnonzero(ignored_gt != -1):
        overlap = image.iou[:, i]
        candidate = (ignored_det != -1) & ~assigned & ~below & (overlap > min_overlap)
        chosen = -1
        if not compute_fp:
            if candidate.any():  # highest score, first one on ties
                chosen = int(np.flatnonzero(candidate)[np.argmax(image.scores[candidate])])
        else:
            valid = candidate & (ignored_det == 0)
            if valid.any():  # greatest overlap among valid detections
                chosen = int(np.flatnonzero(valid)[np.argmax(overlap[valid])])
            elif candidate.any():  # else the first (too small, ignored) overlapping detection
                chosen = int(np.flatnonzero(candidate)[0])
        if chosen < 0:
            fn += int(ignored_gt[i] == 0)
        elif ignored_gt[i] == 1 or ignored_det[chosen] == 1:
            assigned[chosen] = True
        else:
            tp += 1
            tp_scores.append(float(image.scores[chosen]))
            assigned[chosen] = True
    if compute_fp:
        countable = (ignored_det == 0) & ~below
        fp = int(np.sum(countable & ~assigned))
        for region in range(image.dontcare_overlap.shape[1]):
            stuff = countable & ~assigned & (image.dontcare_overlap[:, region] > min_overlap)
            assigned |= stuff
            fp -= int(stuff.sum())
    return tp, fp, fn, tp_scores


def _threshold_ranks(n_scores: int, n_gt: int) -> list[int]:
    """Which ranks (0 = highest) of the sorted TP scores getThresholds picks: they depend on the
    counts only, not on the scores, so a bootstrap can reuse them (bootstrap.py)."""
    ranks, current_recall = [], 0.0
    for i in range(n_scores):
        left = (i + 1) / n_gt
        right = (i + 2) / n_gt if i < n_scores - 1 else left
        if (right - current_recall) < (current_recall - left) and i < n_scores - 1:
            continue
        ranks.append(i)
        current_recall += 1.0 / (N_SAMPLE_PTS - 1.0)
    return ranks


def _thresholds(scores: list[float], n_gt: int) -> list[float]:
    """The devkit's getThresholds: TP scores closest to 41 evenly spaced recall levels."""
    scores = sorted(scores, reverse=True)
    return [scores[i] for i in _threshold_ranks(len(scores), n_gt)]


def precision_curve(images: Sequence[_Image], cls: str, difficulty: str, min_overlap: float):
    """The devkit's eval_class: monotone precision at the 41 recall sample points."""
    cleaned = [image.clean(cls, difficulty) for image in images]
    n_gt = sum(int(np.sum(ignored_gt == 0)) for ignored_gt, _ in cleaned)
    scores: list[float] = []
    for image, (ignored_gt, ignored_det) in zip(images, cleaned, strict=True):
        scores += _statistics(image, ignored_gt, ignored_det, min_overlap, False)[3]
    precision = np.zeros(N_SAMPLE_PTS)
    if n_gt == 0:
        return precision
    thresholds = _thresholds(scores, n_gt)
    for t, thresh in enumerate(thresholds):
        tp = fp = 0
        for image, (ignored_gt, ignored_det) in zip(images, cleaned, strict=True):
            stats = _statistics(image, ignored_gt, ignored_det, min_overlap, True, thresh)
            tp, fp = tp + stats[0], fp + stats[1]
        precision[t] = tp / (tp + fp) if tp + fp else 0.0
    for t in range(len(thresholds)):
        precision[t] = precision[t:].max()
    return precision


def _as_image_list(records) -> list[Mapping]:
    """A list of per-image dicts, or one dict of batched arrays split along axis 0."""
    if isinstance(records, Mapping):
        arrays = {key: np.asarray(value) for key, value in records.items()}
        batch = len(next(iter(arrays.values())))
        return [{key: value[i] for key, value in arrays.items()} for i in range(batch)]
    return list(records)


def _prepare(
    ground_truth,
    detections,
    class_names: Sequence[str],
    detection_class_names: Sequence[str] | None,
    min_overlap: Mapping[str, float] | None,
    difficulties: Sequence[str],
) -> tuple[list[_Image], dict[str, float]]:
    """Checked arguments of :func:`evaluate_kitti`: the images and the IoU threshold per class."""
    gts, dets = _as_image_list(ground_truth), _as_image_list(detections)
    if len(gts) != len(dets):
        raise ValueError(f"{len(gts)} ground-truth images but {len(dets)} detection images")
    overlaps = {**_MIN_OVERLAP, **{k.lower(): v for k, v in (min_overlap or {}).items()}}
    for name in class_names:
        if name.lower() not in overlaps:
            raise ValueError(f"no IoU threshold for class {name!r}: pass min_overlap={{name: ..}}")
    for difficulty in difficulties:
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown difficulty {difficulty!r}; use some of {DIFFICULTIES}")
    detection_class_names = tuple(detection_class_names or class_names)
    images = [_Image(g, d, detection_class_names) for g, d in zip(gts, dets, strict=True)]
    return images, overlaps


def evaluate_kitti(
    ground_truth,
    detections,
    class_names: Sequence[str] = ("Car",),
    detection_class_names: Sequence[str] | None = None,
    min_overlap: Mapping[str, float] | None = None,
    difficulties: Sequence[str] = DIFFICULTIES,
) -> dict[str, float]:
    """KITTI 2D AP|R40 and 11-point AP per class and difficulty, e.g. ``car_moderate_ap_r40``.

    ground_truth: per image ``boxes`` [N,4] xyxy px, ``types`` (KITTI_TYPES indices, -1 padding,
    or names), ``truncated``, ``occluded`` (all objects, DontCare included), as a list of dicts or
    one dict of batched arrays. detections: per image ``boxes``, ``confidence``, ``classes``
    (indices into ``detection_class_names``, default ``class_names``; -1 padding), e.g. the
    output of ``cluster_detections`` or ``detections_to_list(decode_nms(...))``.
    """
    images, overlaps = _prepare(
        ground_truth, detections, class_names, detection_class_names, min_overlap, difficulties
    )
    results = {}
    for name in class_names:
        cls = name.lower()
        for difficulty in difficulties:
            precision = precision_curve(images, cls, difficulty, overlaps[cls])
            results[f"{cls}_{difficulty}_ap_r40"] = float(precision[1:].sum() / 40.0)
            results[f"{cls}_{difficulty}_ap_11"] = float(precision[::4].sum() / 11.0)
    return results
