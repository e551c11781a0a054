"""KITTI object types, in the order the KITTI reader numbers them (``types`` holds indices).

Kept in its own tiny module so the lead can replace it by the one definition in
``tf_evosyn/data/kitti.py`` when both branches land.
"""

KITTI_TYPES: tuple[str, ...] = (
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
"""Index i of ``types`` means ``KITTI_TYPES[i]``; -1 marks a padding row."""

KITTI_TYPE_INDEX: dict[str, int] = {name: i for i, name in enumerate(KITTI_TYPES)}
