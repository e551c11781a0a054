"""Channel rules for convolution variants and channel-preserving ops, for analysis and compaction.

The channel analysis (:mod:`tf_evosyn.graph.dependency`) and compaction
(:mod:`tf_evosyn.compaction.plan`)
treat each layer by its *kind*. This module holds the rules of the kinds that need more than a
one-line rule there:

* SeparableConv2D is a producer whose input channel ``c`` is read through depthwise channels
  ``c * m + j`` and pointwise rows ``c * m + j``; removing an input channel slices both kernels,
  and a dead input's constant folds through both into the bias.
* A grouped Conv2D (``groups > 1``) couples every input channel of a group with the group's
  output channels (kind ``GROUPED``): a group lives, or dies and is removed whole, so the
  remaining groups stay equally wide as Keras requires.
* DepthwiseConv2D (plain or evolvable) keeps its channel-to-input coupling.
* LSTM/GRU/SimpleRNN are producers whose units are their channels; their weights compact by
  :func:`tf_evosyn.core.recurrent.recurrent_weights` (the coupling rule is written there).
* Conv1DTranspose/Conv2DTranspose are producers whose kernels Keras stores as ``(..., filters,
  inputs)``: every rule here works on the matrix view ``(..., inputs, filters)``
  (:meth:`tf_evosyn.core.layers.EvolvableMixin.matrix_view`). A transposed convolution spreads
  each input pixel over a window that overlaps its neighbours' unevenly (stride, cropping), so
  a constant input channel does not give a constant output: compaction never folds one.
* ``Reshape`` that keeps the channel axis (kind ``RESHAPE``) and ``TFOpLambda`` element-wise ops
  with scalar operands (``x + 3.0``, ``x * (1 / 6)`` in MobileNetV3's hard-swish) pass channels
  through.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.layers import (
    EvoConv1D,
    EvoConv1DTranspose,
    EvoConv2D,
    EvoConv2DTranspose,
    EvoConv3D,
    EvoDense,
    EvoDepthwiseConv2D,
    EvolvableMixin,
    EvoSeparableConv2D,
    matrix_kernel_of,
    twin_of,
)
from tf_evosyn.core.recurrent import (
    RECURRENT_TYPES,
    EvoGRU,
    EvoLSTM,
    EvoSimpleRNN,
    recurrent_weights,
)

GROUPED = "grouped"  # grouped Conv2D: group g's inputs and outputs are coupled
RESHAPE = "reshape"  # Reshape that keeps the last axis: channels pass through

TRANSPOSED_TYPES = (
    keras.layers.Conv2DTranspose,
    EvoConv2DTranspose,
    keras.layers.Conv1DTranspose,
    EvoConv1DTranspose,
)
CONV_TYPES = (
    keras.layers.Conv2D,
    EvoConv2D,
    keras.layers.Conv1D,
    EvoConv1D,
    keras.layers.Conv3D,
    EvoConv3D,
    *TRANSPOSED_TYPES,
)
DENSE_TYPES = (keras.layers.Dense, EvoDense)
SEPARABLE_TYPES = (keras.layers.SeparableConv2D, EvoSeparableConv2D)
DEPTHWISE_TYPES = (keras.layers.DepthwiseConv2D, EvoDepthwiseConv2D)
RNN_TYPES = (*RECURRENT_TYPES, EvoLSTM, EvoGRU, EvoSimpleRNN)

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


def grouped_atoms(groups: int, input_atoms: np.ndarray, output_atoms: np.ndarray):
    """(atoms, atoms) pairs to couple: every input and output channel of one convolution group."""
    gin, gout = len(input_atoms) // groups, len(output_atoms) // groups
    for g in range(groups):
        block = np.concatenate(
            [input_atoms[g * gin : (g + 1) * gin], output_atoms[g * gout : (g + 1) * gout]]
        )
        yield from ((block[0], atom) for atom in block[1:])


# -- weights ----------------------------------------------------------------------------------
def folds_constants(layer: keras.layers.Layer) -> bool:
    """Whether a constant input channel reaches every output position with the same weight sum
    (so removing it can move its contribution into the bias); transposed convolutions do not."""
    return not exact_type(layer, TRANSPOSED_TYPES)


def masked_weights(layer: keras.layers.Layer) -> dict[str, np.ndarray]:
    """The layer's plain weights by attribute, masks applied for evolvable layers; ``kernel``
    in the matrix-kernel layout ``(..., inputs, clusters)``."""
    if isinstance(layer, EvolvableMixin):
        attrs = [a for a in layer.weight_attrs if a != "bias" or layer.use_bias]
        weights = dict(zip(attrs, layer.plain_weights(), strict=True))
    else:
        names = ("kernel", "depthwise_kernel", "pointwise_kernel", "bias")
        weights = {
            n: getattr(layer, n).numpy() for n in names if getattr(layer, n, None) is not None
        }
    if exact_type(layer, TRANSPOSED_TYPES):
        weights["kernel"] = twin_of(layer).matrix_view(weights["kernel"])
    return weights


def _bias(weights: dict[str, np.ndarray], clusters: int) -> np.ndarray:
    return weights.get("bias", np.zeros(clusters, dtype=np.float32)).astype(np.float64)


def reads_input(layer: keras.layers.Layer) -> np.ndarray:
    """Per input channel of a producer: does any living synapse read it? (A channel read only by
    dead synapses contributes nothing, whatever it holds.)"""
    if exact_type(layer, RNN_TYPES):  # input row c of the kernel, every gate of every unit
        evolved = isinstance(layer, EvolvableMixin)
        matrix = layer.masked_kernel().numpy() if evolved else matrix_kernel_of(layer)
        return np.any(matrix[:, : layer.cell.kernel.shape[0]] != 0, axis=(0, 2))
    weights = masked_weights(layer)
    if exact_type(layer, SEPARABLE_TYPES):
        depthwise = weights["depthwise_kernel"]  # (kh, kw, C, m)
        rows = np.any(weights["pointwise_kernel"][0, 0] != 0, axis=-1)  # (C * m,)
        taps = np.any(depthwise != 0, axis=(0, 1))  # (C, m)
        return np.any(rows.reshape(taps.shape) & taps, axis=-1)
    kernel = weights["kernel"]
    return np.any(kernel.reshape(-1, *kernel.shape[-2:]) != 0, axis=(0, 2))


def producer_weights(
    layer: keras.layers.Layer,
    config: dict,
    in_keep: np.ndarray,
    out_keep: np.ndarray,
    constants: np.ndarray,
) -> list[np.ndarray]:
    """Compacted weights of a Conv2D/Dense/SeparableConv2D (``config`` is updated in place).

    Removed input channels hold the constants ``constants[~in_keep]`` (NaN counts as 0: such a
    channel is only removed when no living synapse reads it); their contribution moves into the
    bias.
    """
    if exact_type(layer, RNN_TYPES):
        return recurrent_weights(layer, config, in_keep, out_keep, constants)
    weights = masked_weights(layer)
    gone = ~in_keep
    k = np.nan_to_num(constants[gone]).astype(np.float64)
    if exact_type(layer, SEPARABLE_TYPES):
        depthwise, pointwise = weights["depthwise_kernel"], weights["pointwise_kernel"]
        m = depthwise.shape[-1]
        bias = _bias(weights, pointwise.shape[-1])
        if gone.any():
            # depthwise channel (c, j) emits k_c * sum(taps); the pointwise row c*m+j reads it
            emitted = k[:, None] * depthwise[:, :, gone, :].sum(axis=(0, 1))  # (gone, m)
            rows = pointwise[0, 0].reshape(-1, m, pointwise.shape[-1])[gone]  # (gone, m, F)
            bias = bias + np.einsum("gmf,gm->f", rows.astype(np.float64), emitted)
        row_keep = np.repeat(in_keep, m)
        new = [depthwise[:, :, in_keep, :], pointwise[:, :, row_keep, :][..., out_keep]]
    else:
        kernel = weights["kernel"]
        bias = _bias(weights, kernel.shape[-1])
        if gone.any():
            part = kernel[..., gone, :].astype(np.float64)
            part = part.reshape(-1, *part.shape[-2:])  # (spatial taps, inputs, outputs)
            bias = bias + np.einsum("sio,i->o", part, k)
        new = [kernel[..., in_keep, :][..., out_keep]]
        if exact_type(layer, TRANSPOSED_TYPES):  # back to Keras' (..., filters, inputs)
            new = [twin_of(layer).matrix_view(new[0])]
    bias = bias[out_keep].astype(np.float32)
    config["filters" if "filters" in config else "units"] = int(out_keep.sum())
    if not config.get("use_bias", True) and np.any(bias != 0):
        config["use_bias"] = True
    return new + [bias] if config.get("use_bias", True) else new


def grouped_weights(
    layer: keras.layers.Layer, config: dict, in_keep: np.ndarray, out_keep: np.ndarray
) -> list[np.ndarray]:
    """Compacted weights of a grouped Conv2D: whole groups go (their inputs with them)."""
    weights = masked_weights(layer)
    groups = int(layer.groups)
    in_groups = in_keep.reshape(groups, -1)
    out_groups = out_keep.reshape(groups, -1)
    whole = (in_groups.all(axis=1) | ~in_groups.any(axis=1)) & (
        out_groups.all(axis=1) | ~out_groups.any(axis=1)
    )
    if not whole.all() or not np.array_equal(in_groups.all(axis=1), out_groups.all(axis=1)):
        raise ValueError(
            f"{layer.name}: grouped convolution would lose part of a group; the channel analysis "
            "couples whole groups, so this is a bug in tf_evosyn."
        )
    kept = int(out_groups.all(axis=1).sum())
    config["groups"] = kept
    config["filters"] = int(out_keep.sum())
    new = [weights["kernel"][..., out_keep]]
    if "bias" in weights:
        new.append(weights["bias"][out_keep])
    return new


def depthwise_weights(layer: keras.layers.Layer, keep: np.ndarray) -> list[np.ndarray]:
    """Compacted weights of a DepthwiseConv2D: the kept input channels (and their m outputs)."""
    weights = masked_weights(layer)
    new = [weights["depthwise_kernel"][:, :, keep, :]]
    if "bias" in weights:
        m = weights["depthwise_kernel"].shape[-1]
        new.append(weights["bias"].reshape(-1, m)[keep].reshape(-1))
    return new


def depthwise_constants(layer: keras.layers.Layer, k: np.ndarray, pads: bool) -> np.ndarray:
    """Output constants of a DepthwiseConv2D (before its activation) for input constants ``k``.

    A channel whose taps are all zero (dead in an evolvable layer) emits its bias whatever it
    reads; with zero padding other channels are constant only where the input is exactly 0.
    """
    weights = masked_weights(layer)
    kernel = weights["depthwise_kernel"]  # (kh, kw, C, m)
    m = kernel.shape[-1]
    bias = weights.get("bias", np.zeros(kernel.shape[2] * m)).astype(np.float64)
    ks = np.repeat(k, m)
    sums = kernel.sum(axis=(0, 1)).reshape(-1).astype(np.float64)
    silent = ~np.any(kernel != 0, axis=(0, 1)).reshape(-1)
    if pads:
        out = np.where(ks == 0, bias, np.nan)
    else:
        out = ks * sums + bias
    return np.where(silent, bias, out)
