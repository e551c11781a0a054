"""How a detector's grid outputs become boxes: the decoder settings and the one dispatch.

Kept in :mod:`tf_evosyn.detection` (not in the task) so that inference
(:func:`tf_evosyn.detection.predict`) decodes without knowing the task layer above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf_evosyn.detection.decode import (
    DETECTNET_CLUSTERING,
    cluster_detections,
    decode_nms,
    detections_to_list,
)

DECODERS = ("cluster", "nms")


@dataclass(frozen=True)
class DecodeSettings:
    """How grid outputs become boxes (defaults: DetectNet's KITTI clustering parameters)."""

    method: str = "cluster"  # DetectNet's groupRectangles clustering, or "nms" (keras-cv)
    threshold: float = DETECTNET_CLUSTERING["threshold"]
    rect_threshold: int = DETECTNET_CLUSTERING["rect_threshold"]
    rect_eps: float = DETECTNET_CLUSTERING["rect_eps"]
    min_height: float = DETECTNET_CLUSTERING["min_height"]
    nms_iou: float = 0.5
    max_detections: int = 100

    def __post_init__(self) -> None:
        if self.method not in DECODERS:
            raise ValueError(f"decode method {self.method!r} unknown; use one of {DECODERS}.")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"the coverage threshold must be in (0, 1), got {self.threshold}.")

    def detect(
        self, coverage: np.ndarray, bbox: np.ndarray, stride: int
    ) -> list[dict[str, np.ndarray]]:
        """Boxes per image (``boxes`` xyxy px, ``confidence``, ``classes``) from grid outputs."""
        if self.method == "nms":
            raw = decode_nms(
                coverage,
                bbox,
                threshold=self.threshold,
                stride=stride,
                max_detections=self.max_detections,
                iou_threshold=self.nms_iou,
                min_height=self.min_height,
            )
            return detections_to_list(raw)
        return cluster_detections(
            coverage,
            bbox,
            stride=stride,
            threshold=self.threshold,
            rect_threshold=self.rect_threshold,
            rect_eps=self.rect_eps,
            min_height=self.min_height,
        )
