"""DetectNet's detection maths: ground-truth targets, losses, decoders and KITTI/DIGITS metrics.

Model outputs follow DetectNet: ``coverage`` [B, H/16, W/16, C] in [0, 1] and ``bbox``
[B, H/16, W/16, 4C] corner offsets in pixels from each cell's top-left corner (see targets.py).
"""

from tf_evosyn.detection.decode import (
    DETECTNET_CLUSTERING,
    cluster_detections,
    decode_nms,
    detections_to_list,
    ground_truth_from_targets,
    group_rectangles,
)
from tf_evosyn.detection.digits_metrics import digits_metrics, score_detections
from tf_evosyn.detection.kitti_eval import evaluate_kitti
from tf_evosyn.detection.kitti_types import KITTI_TYPES
from tf_evosyn.detection.losses import DETECTNET_LOSS_WEIGHTS, BboxLoss, CoverageLoss
from tf_evosyn.detection.targets import (
    DETECTNET_GROUNDTRUTH,
    TARGET_CHANNELS_PER_CLASS,
    class_channel_table,
    corners_from_target,
    encode,
    split_bbox_target,
)

__all__ = [
    "DETECTNET_CLUSTERING",
    "DETECTNET_GROUNDTRUTH",
    "DETECTNET_LOSS_WEIGHTS",
    "KITTI_TYPES",
    "TARGET_CHANNELS_PER_CLASS",
    "BboxLoss",
    "CoverageLoss",
    "class_channel_table",
    "cluster_detections",
    "corners_from_target",
    "decode_nms",
    "detections_to_list",
    "digits_metrics",
    "encode",
    "evaluate_kitti",
    "ground_truth_from_targets",
    "group_rectangles",
    "score_detections",
    "split_bbox_target",
]
