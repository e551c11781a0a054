"""KITTI object types, as the detection maths uses them: the one definition lives with the
KITTI label reader (``tf_evosyn.data.kitti_labels``); ``types`` tensors hold indices into it."""

from tf_evosyn.data.kitti_labels import KITTI_TYPES

KITTI_TYPE_INDEX: dict[str, int] = {name: i for i, name in enumerate(KITTI_TYPES)}

__all__ = ["KITTI_TYPES", "KITTI_TYPE_INDEX"]
