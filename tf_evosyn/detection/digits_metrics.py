"""DIGITS' DetectNet validation metrics (python/caffe/layers/detectnet/mean_ap.py).

Not KITTI's AP: per image, each ground-truth box (in list order) takes the first still unmatched
detection (in list order, scores unused) with IoU >= 0.7; then over all images
precision = TP / (TP + FP), recall = TP / (TP + missed), both in percent, and DIGITS' "mAP" =
precision * recall / 100. DIGITS' ground truth is every box of the encoded classes (DontCare and
other types are not there), which ``decode.ground_truth_from_targets`` reproduces exactly from
targets; all-zero boxes are dropped on both sides, as DIGITS does. Use these numbers to compare
with the DetectNet papers' mAP; use ``kitti_eval`` for KITTI's own AP.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_DIGITS_IOU_THRESHOLD = 0.7


def _nonzero_boxes(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return boxes[np.any(boxes != 0, axis=1)]


def score_detections(
    gt_boxes, det_boxes, iou_threshold: float = _DIGITS_IOU_THRESHOLD
) -> tuple[int, int, int]:
    """DIGITS' score_det for one image: (true positives, false positives, missed)."""
    from keras_cv import bounding_box

    gt, det = _nonzero_boxes(gt_boxes), _nonzero_boxes(det_boxes)
    if len(gt) == 0 or len(det) == 0:
        return 0, len(det), len(gt)
    iou = np.asarray(bounding_box.compute_iou(det, gt, bounding_box_format="xyxy"))
    det_matched = np.zeros(len(det), bool)
    for i in range(len(gt)):
        free = np.flatnonzero(~det_matched & (iou[:, i] >= iou_threshold))
        if len(free):
            det_matched[free[0]] = True
    tp = int(det_matched.sum())
    return tp, len(det) - tp, len(gt) - tp


def digits_metrics(
    ground_truth: Sequence, detections: Sequence, iou_threshold: float = _DIGITS_IOU_THRESHOLD
) -> dict[str, float]:
    """{"precision", "recall", "mAP"} in percent, DIGITS-style, over a list of images.

    Each element is an [N, 4] xyxy array or a dict with ``boxes`` (e.g. the list form of the
    decoders). Give one class's boxes only: DIGITS scores each class separately.
    """
    if len(ground_truth) != len(detections):
        raise ValueError(f"{len(ground_truth)} ground-truth images, {len(detections)} detected")
    tp = fp = missed = 0
    for gt, det in zip(ground_truth, detections, strict=True):
        gt_boxes = gt["boxes"] if isinstance(gt, dict) else gt
        det_boxes = det["boxes"] if isinstance(det, dict) else det
        counts = score_detections(gt_boxes, det_boxes, iou_threshold)
        tp, fp, missed = tp + counts[0], fp + counts[1], missed + counts[2]
    precision = 100.0 * tp / (tp + fp) if tp + fp else 0.0
    recall = 100.0 * tp / (tp + missed) if tp + missed else 0.0
    return {"precision": precision, "recall": recall, "mAP": precision * recall / 100.0}
