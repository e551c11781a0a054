"""Bootstrap intervals for KITTI AP|R40 over test images.

With ~20 test images one AP number says little: resampling the images with replacement shows how
much it would move on another draw of images like them. Re-running :func:`evaluate_kitti` per
resample is far too slow, so each image's contribution is computed once:

* first pass (collecting TP scores): an image's TP scores and its count of non-ignored ground
  truth do not depend on the other images;
* thresholds: ``getThresholds`` picks *ranks* of the sorted pooled TP scores, and which ranks
  depends only on the number of TP scores and of ground truth (``_threshold_ranks``);
* second pass (counting at a threshold): an image's tp / fp depend only on which of its own
  detections score >= the threshold, so they are step functions of it; every threshold is a TP
  score of the full set, so they are tabulated once at those scores.

A resample is then image multiplicities: pooled counts are weighted sums of the tables, which is
exact (``tests/detection/test_detection_bootstrap.py`` checks it against ``evaluate_kitti`` on the
materialised resampled lists).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tf_evosyn.detection.kitti_eval import (
    DIFFICULTIES,
    N_SAMPLE_PTS,
    _Image,
    _prepare,
    _statistics,
    _threshold_ranks,
)

_CHUNK = 500  # resamples evaluated at once: bounds the [resamples, TPs] working arrays


class APInterval(NamedTuple):
    """A point value and its bootstrap percentile interval, fractions in [0, 1]."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class _Curve:
    """One class and difficulty, reduced to per-image tables."""

    n_gt: np.ndarray  # [I] non-ignored ground truth per image
    n_tp: np.ndarray  # [I] first-pass TP scores per image
    tp_image: np.ndarray  # [E] image of each first-pass TP, by descending score
    tp_column: np.ndarray  # [E] column of its score in tp / fp
    tp: np.ndarray  # [I, C] second-pass TPs of image i at threshold = column c's score
    fp: np.ndarray  # [I, C] second-pass FPs likewise


def _curve(images: Sequence[_Image], cls: str, difficulty: str, min_overlap: float) -> _Curve:
    """The tables of one curve, mirroring ``kitti_eval.precision_curve``'s two passes."""
    cleaned = [image.clean(cls, difficulty) for image in images]
    n_gt = np.array([int(np.sum(ignored_gt == 0)) for ignored_gt, _ in cleaned], np.int64)
    scores = [
        np.asarray(_statistics(image, ignored_gt, ignored_det, min_overlap, False)[3], np.float64)
        for image, (ignored_gt, ignored_det) in zip(images, cleaned, strict=True)
    ]
    all_scores = np.concatenate([np.zeros(0), *scores])
    columns = np.unique(all_scores)  # every threshold any resample can pick, ascending
    tp = np.zeros((len(images), len(columns)), np.int64)
    fp = np.zeros_like(tp)
    for i, (image, (ignored_gt, ignored_det)) in enumerate(zip(images, cleaned, strict=True)):
        # Detections of other classes never count, so the included set is fixed by how many of
        # the image's own-class scores are >= the threshold: one _statistics call per such set.
        own = np.sort(image.scores[ignored_det != -1])
        included = len(own) - np.searchsorted(own, columns, side="left")
        for count in np.unique(included):
            at = included == count
            thresh = float(columns[np.argmax(at)])
            stats = _statistics(image, ignored_gt, ignored_det, min_overlap, True, thresh)
            tp[i, at], fp[i, at] = stats[0], stats[1]
    image_of = np.concatenate(
        [np.zeros(0, np.int64)] + [np.full(len(s), i) for i, s in enumerate(scores)]
    )
    order = np.argsort(-all_scores, kind="stable")
    return _Curve(
        n_gt=n_gt,
        n_tp=np.array([len(s) for s in scores], np.int64),
        tp_image=image_of[order],
        tp_column=np.searchsorted(columns, all_scores[order]),
        tp=tp,
        fp=fp,
    )


def _ap_r40(curve: _Curve, weights: np.ndarray, ranks_cache: dict) -> np.ndarray:
    """AP|R40 per row of ``weights`` [R, I] (each image's multiplicity in a resample)."""
    n_rows = len(weights)
    n_gt, n_tp = weights @ curve.n_gt, weights @ curve.n_tp
    ranks = np.full((n_rows, N_SAMPLE_PTS), -1, np.int64)
    for r in range(n_rows):
        if n_gt[r] == 0:
            continue  # precision_curve: all zero
        key = (int(n_tp[r]), int(n_gt[r]))
        if key not in ranks_cache:
            ranks_cache[key] = _threshold_ranks(*key)
        ranks[r, : len(ranks_cache[key])] = ranks_cache[key]
    valid = ranks >= 0
    n_entries = len(curve.tp_image)
    if n_entries == 0 or not valid.any():
        return np.zeros(n_rows)
    # The TP entry at rank k of a resample: the first whose cumulative multiplicity exceeds k.
    # Offsetting each row by more than any row's total makes one sorted array for searchsorted.
    cumulative = np.cumsum(weights[:, curve.tp_image], axis=1)
    offset = (int(n_tp.max()) + 1) * np.arange(n_rows)[:, None]
    entry = (
        np.searchsorted(
            (cumulative + offset).ravel(),
            (np.where(valid, ranks, 0) + offset).ravel(),
            side="right",
        ).reshape(n_rows, N_SAMPLE_PTS)
        - n_entries * np.arange(n_rows)[:, None]
    )
    column = curve.tp_column[np.clip(entry, 0, n_entries - 1)]
    tp = np.take_along_axis(weights @ curve.tp, column, axis=1)
    fp = np.take_along_axis(weights @ curve.fp, column, axis=1)
    counted = valid & (tp + fp > 0)
    precision = np.where(counted, tp / np.where(counted, tp + fp, 1), 0.0)
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    return np.array([row[1:].sum() / 40.0 for row in precision])  # the 1-D sum evaluate_kitti does


class _Prepared:
    """The per-image tables of every class and difficulty of one evaluation."""

    def __init__(
        self,
        ground_truth,
        detections,
        class_names: Sequence[str],
        detection_class_names: Sequence[str] | None,
        min_overlap: Mapping[str, float] | None,
        difficulties: Sequence[str],
    ):
        images, overlaps = _prepare(
            ground_truth, detections, class_names, detection_class_names, min_overlap, difficulties
        )
        if not images:
            raise ValueError("no images to evaluate")
        self.n_images = len(images)
        self.curves = {
            f"{name.lower()}_{difficulty}_ap_r40": _curve(
                images, name.lower(), difficulty, overlaps[name.lower()]
            )
            for name in class_names
            for difficulty in difficulties
        }

    def ap(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        caches: dict[str, dict] = {key: {} for key in self.curves}
        out = {key: [] for key in self.curves}
        for start in range(0, len(weights), _CHUNK):
            chunk = weights[start : start + _CHUNK]
            for key, curve in self.curves.items():
                out[key].append(_ap_r40(curve, chunk, caches[key]))
        return {key: np.concatenate(parts) for key, parts in out.items()}

    def weights(self, indices: np.ndarray) -> np.ndarray:
        """[R, I] multiplicities from [R, m] image indices."""
        n_rows = len(indices)
        flat = (indices + self.n_images * np.arange(n_rows)[:, None]).ravel()
        return np.bincount(flat, minlength=n_rows * self.n_images).reshape(n_rows, -1)


def resampled_ap(
    ground_truth,
    detections,
    indices,
    class_names: Sequence[str] = ("Car",),
    *,
    detection_class_names: Sequence[str] | None = None,
    min_overlap: Mapping[str, float] | None = None,
    difficulties: Sequence[str] = DIFFICULTIES,
) -> dict[str, np.ndarray]:
    """AP|R40 of each resample: row r of ``indices`` [R, m] lists the images (repeats allowed)
    it holds; equals ``evaluate_kitti`` on those images. Reusing one ``indices`` for two models
    gives paired resamples, e.g. to bootstrap an AP difference."""
    prepared = _Prepared(
        ground_truth, detections, class_names, detection_class_names, min_overlap, difficulties
    )
    indices = np.asarray(indices)
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be a 2-D integer array [resamples, m], got {indices!r}")
    if indices.size and (indices.min() < 0 or indices.max() >= prepared.n_images):
        raise ValueError(f"indices must lie in [0, {prepared.n_images}) (the images)")
    return prepared.ap(prepared.weights(indices.astype(np.int64)))


def bootstrap_ap(
    ground_truth,
    detections,
    class_names: Sequence[str] = ("Car",),
    *,
    detection_class_names: Sequence[str] | None = None,
    min_overlap: Mapping[str, float] | None = None,
    difficulties: Sequence[str] = DIFFICULTIES,
    resamples: int = 1000,
    confidence: float = 0.9,
    seed: int = 0,
) -> dict[str, APInterval]:
    """Per AP|R40 key of ``evaluate_kitti`` (e.g. ``car_moderate_ap_r40``): its value on all
    images and the ``confidence`` percentile interval over ``resamples`` resamples of the images
    with replacement (the same resamples for every key). Arguments as ``evaluate_kitti``."""
    if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    if isinstance(confidence, bool) or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    prepared = _Prepared(
        ground_truth, detections, class_names, detection_class_names, min_overlap, difficulties
    )
    n = prepared.n_images
    point = prepared.ap(np.ones((1, n), np.int64))
    indices = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    values = prepared.ap(prepared.weights(indices))
    tail = 50.0 * (1.0 - float(confidence))
    result = {}
    for key, samples in values.items():
        low, high = np.percentile(samples, [tail, 100.0 - tail])
        result[key] = APInterval(float(point[key][0]), float(low), float(high))
    return result


def format_interval(value: float, low: float, high: float, digits: int = 1) -> str:
    """``41.2 [30.5, 52.0]``: fractions shown as percent, for tables and logs."""
    return f"{100 * value:.{digits}f} [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"
