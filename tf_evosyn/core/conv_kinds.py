"""Channel rules of the channel-preserving ops, for analysis and compaction.

The rules of the layers that own channels (convolutions, Dense, depthwise, separable,
transposed and recurrent layers) live with their layer kinds in :mod:`tf_evosyn.core.kinds`;
this module holds the rules of the ops that only pass channels through:

* ``Reshape`` that keeps the channel axis (kind ``RESHAPE``);
* ``TFOpLambda`` element-wise ops with scalar operands (``x + 3.0``, ``x * (1 / 6)`` in
  MobileNetV3's hard-swish), and binary ones of two same-width tensors (``x + y``), which
  combine channels one by one like keras ``Add``/``Multiply``.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.kinds import GROUPED

__all__ = [
    "BINARY_OPS",
    "ELEMENTWISE_OPS",
    "GROUPED",
    "RESHAPE",
    "apply_op",
    "exact_type",
    "is_tf_elementwise_op",
    "merge_values",
    "reshape_keeps_channels",
    "tf_op_operands",
]

RESHAPE = "reshape"  # Reshape that keeps the last axis: channels pass through

# TF ops (TFOpLambda symbols) that act element by element; with one tensor operand and scalar
# other operands they map each channel on its own.
ELEMENTWISE_OPS = frozenset(
    {
        "__operators__.add",
        "math.add",
        "math.subtract",
        "math.multiply",
        "math.truediv",
        "math.divide",
        "nn.relu",
        "nn.relu6",
        "nn.silu",
        "nn.swish",
        "math.sigmoid",
        "nn.gelu",
        "math.tanh",
        "math.negative",
    }
)


def exact_type(layer: keras.layers.Layer, types: tuple[type, ...]) -> bool:
    """``type(layer)`` is one of ``types`` (subclasses with other layouts do not count)."""
    return type(layer) in types


def is_tf_elementwise_op(layer: keras.layers.Layer) -> bool:
    return type(layer).__name__ == "TFOpLambda" and getattr(layer, "symbol", "") in ELEMENTWISE_OPS


# Binary TF ops that combine two same-width tensors channel by channel, like keras Add/Multiply.
BINARY_OPS = {
    "__operators__.add": np.add,
    "math.add": np.add,
    "math.subtract": np.subtract,
    "math.multiply": np.multiply,
}


def tf_op_operands(call_args: tuple, call_kwargs: dict) -> tuple[int, bool]:
    """(number of tensor operands, every other operand is a Python/NumPy scalar)."""
    flat = list(call_args) + [v for k, v in call_kwargs.items() if k != "name"]
    is_tensor = [hasattr(v, "shape") and not np.isscalar(v) for v in flat]
    others = [v for v, t in zip(flat, is_tensor, strict=True) if not t]
    return sum(is_tensor), all(isinstance(v, (int, float, np.number)) for v in others)


def merge_values(layer: keras.layers.Layer, stacked: np.ndarray) -> np.ndarray | None:
    """Per-channel constants of a binary TF op's output (None if ``layer`` is not one)."""
    op = BINARY_OPS.get(getattr(layer, "symbol", "")) if is_tf_elementwise_op(layer) else None
    return None if op is None else op(stacked[0], stacked[1])


def apply_op(layer: keras.layers.Layer, call_args: tuple, call_kwargs: dict, values: np.ndarray):
    """A TF element-wise op applied to per-channel ``values`` in place of its tensor operand."""

    def swap(value):
        if hasattr(value, "shape") and not np.isscalar(value):
            return tf.constant(values[None, :], dtype=tf.float32)
        return value

    args = [swap(v) for v in call_args]
    kwargs = {k: swap(v) for k, v in (call_kwargs or {}).items()}
    return np.asarray(layer.function(*args, **kwargs))[0]


def reshape_keeps_channels(in_shape: tuple, out_shape: tuple) -> bool:
    """Channels-last values keep their channel index when the last axis is unchanged."""
    return (
        len(in_shape) >= 2
        and len(out_shape) >= 2
        and in_shape[-1] is not None
        and in_shape[-1] == out_shape[-1]
    )
