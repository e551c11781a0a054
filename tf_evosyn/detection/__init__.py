"""DetectNet's detection maths: ground-truth targets, losses, decoders and KITTI/DIGITS metrics.

Model outputs follow DetectNet: ``coverage`` [B, H/16, W/16, C] in [0, 1] and ``bbox``
[B, H/16, W/16, 4C] corner offsets in pixels from each cell's top-left corner (see targets.py).
"""

from tf_evosyn.detection.bootstrap import APInterval, bootstrap_ap, format_interval, resampled_ap
from tf_evosyn.detection.decode import (
    DETECTNET_CLUSTERING,
    cluster_detections,
    decode_nms,
    detections_to_list,
    ground_truth_from_targets,
    group_rectangles,
)
from tf_evosyn.detection.digits_metrics import digits_metrics, score_detections
from tf_evosyn.detection.inference import load_image, predict
from tf_evosyn.detection.kitti_eval import evaluate_kitti
from tf_evosyn.detection.kitti_results import draw_detections, write_kitti_results
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
    "APInterval",
    "BboxLoss",
    "CoverageLoss",
    "bootstrap_ap",
    "class_channel_table",
    "cluster_detections",
    "corners_from_target",
    "decode_nms",
    "detections_to_list",
    "digits_metrics",
    "draw_detections",
    "encode",
    "evaluate_kitti",
    "format_interval",
    "ground_truth_from_targets",
    "group_rectangles",
    "load_image",
    "predict",
    "resampled_ap",
    "score_detections",
    "split_bbox_target",
    "write_kitti_results",
]
