"""The zoo's custom layers by name, for ``keras.utils.custom_object_scope`` when loading models."""

from tf_evosyn.models.box_coding import LogDistanceCorners
from tf_evosyn.models.lrn import CrossChannelLRN, WithinChannelLRN
from tf_evosyn.models.shortcut import PadShortcut


def custom_objects() -> dict[str, type]:
    """The zoo's custom layers, for ``keras.utils.custom_object_scope`` when loading models."""
    return {
        "CrossChannelLRN": CrossChannelLRN,
        "LogDistanceCorners": LogDistanceCorners,
        "PadShortcut": PadShortcut,
        "WithinChannelLRN": WithinChannelLRN,
    }
