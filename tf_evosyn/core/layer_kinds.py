"""How the channel analysis treats each layer and each call of it: the kind of a layer (producer,
depthwise, batchnorm, element-wise, spatial, flatten, merge, concat, scatter, barrier) and the
checks on one call that can turn it into a barrier (several outputs, unknown channel counts,
a TF op with tensor operands, a Reshape or BatchNormalization off the channel axis, ...).

:mod:`tf_evosyn.graph.dependency` walks the graph with these kinds;
:mod:`tf_evosyn.compaction.plan` replays
them. A layer that owns channels has its kind from its rule in :mod:`tf_evosyn.core.kinds`;
a new channel-preserving layer type is one entry here.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.conv_kinds import (
    BINARY_OPS,
    RESHAPE,
    is_tf_elementwise_op,
    reshape_keeps_channels,
    tf_op_operands,
)
from tf_evosyn.core.kinds import BARRIER, DEPTHWISE, GROUPED, PRODUCER, rule_for
from tf_evosyn.models.lrn import CrossChannelLRN, WithinChannelLRN
from tf_evosyn.models.shortcut import PadShortcut

# Layer kinds, as the analysis (and compaction) treat them.
# PRODUCER (Conv*, Conv*Transpose, Dense, SeparableConv*, LSTM/GRU/SimpleRNN: new channels),
# GROUPED and DEPTHWISE (output channel c*m+j is tied to input channel c) come from the layer
# rules (tf_evosyn.core.kinds), which say which layer has which.
INPUT = "input"
BATCHNORM = "batchnorm"  # per-channel affine, channels pass through
ELEMENTWISE = "elementwise"  # activations, dropout, noise: channel-wise maps
SPATIAL = "spatial"  # pooling, padding, cropping, upsampling: channel-wise, spatial change
FLATTEN = "flatten"  # channels_last flatten: flat index i is channel i % C
MERGE = "merge"  # Add/Subtract/Multiply/Average/Maximum/Minimum: channel-by-channel coupling
CONCAT = "concat"  # Concatenate: offsets on the channel axis, coupling on any other axis
SCATTER = "scatter"  # PadShortcut: input channel i -> output channel positions[i], rest zeros

# Element-wise activations (by name). Anything else (softmax, custom callables) mixes channels
# or is unknown, so it is a barrier.
ELEMENTWISE_ACTIVATIONS = frozenset(
    {
        "linear",
        "relu",
        "relu6",
        "elu",
        "selu",
        "tanh",
        "sigmoid",
        "hard_sigmoid",
        "exponential",
        "softplus",
        "softsign",
        "gelu",
        "swish",
        "silu",
        "leaky_relu",
        "mish",
        "hard_silu",
        "hard_swish",
    }
)

_ELEMENTWISE_TYPES = (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.ThresholdedReLU,
    keras.layers.Dropout,  # includes SpatialDropout*: identity at inference
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
)
# Layers that are the identity at inference (no constant changes).
IDENTITY_AT_INFERENCE = (
    keras.layers.Dropout,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
)
_SPATIAL_TYPES = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
    keras.layers.UpSampling1D,
    keras.layers.UpSampling2D,
    keras.layers.UpSampling3D,
)
_MERGE_TYPES = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)


def activation_name(layer: keras.layers.Layer) -> str:
    """Name of a layer's activation function ('linear' when it has none)."""
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def _channels_last(layer: keras.layers.Layer) -> bool:
    return getattr(layer, "data_format", "channels_last") in ("channels_last", None)


def is_producer(layer: keras.layers.Layer) -> bool:
    """A layer whose rule (:func:`tf_evosyn.core.kinds.rule_for`, exact types only: a subclass
    may change the kernel's layout) makes it a producer: owns channels, reads every input."""
    return layer_kind(layer)[0] == PRODUCER


def layer_kind(layer: keras.layers.Layer) -> tuple[str, str]:
    """(kind, reason): how the analysis treats ``layer``; reason explains a barrier."""
    name = type(layer).__name__
    if isinstance(layer, keras.layers.InputLayer):
        return INPUT, ""
    rule = rule_for(layer)
    if rule is not None:
        return rule.kind(layer)
    if type(layer) is keras.layers.BatchNormalization:
        return BATCHNORM, ""  # node_kind checks that it normalises the channel axis
    if type(layer) is keras.layers.Activation:
        if activation_name(layer) in ELEMENTWISE_ACTIVATIONS:
            return ELEMENTWISE, ""
        return BARRIER, f"activation {activation_name(layer)!r} is not known to be element-wise"
    if isinstance(layer, _ELEMENTWISE_TYPES) or is_tf_elementwise_op(layer):
        return ELEMENTWISE, ""  # a TF op also needs scalar other operands (see node_kind)
    if type(layer) is keras.layers.Reshape:
        return RESHAPE, ""  # if it keeps the channel axis (see node_kind)
    if isinstance(layer, _SPATIAL_TYPES):
        if not _channels_last(layer):
            return BARRIER, "channels_first is not supported"
        return SPATIAL, ""
    if type(layer) is keras.layers.Flatten:
        if not _channels_last(layer):
            return BARRIER, "channels_first is not supported"
        return FLATTEN, ""
    if isinstance(layer, _MERGE_TYPES):
        return MERGE, ""
    if type(layer) is keras.layers.Concatenate:
        return CONCAT, ""
    if type(layer) is PadShortcut:
        return SCATTER, ""
    if type(layer) is WithinChannelLRN:
        return SPATIAL, ""  # normalises each channel over space only
    if type(layer) is CrossChannelLRN:
        return BARRIER, "cross-channel LRN mixes neighbouring channels"
    if isinstance(layer, keras.Model):
        return BARRIER, "nested model"
    return BARRIER, f"layer type {name} is not understood by the channel analysis"


def node_kind(
    layer: keras.layers.Layer,
    kind: str,
    reason: str,
    node,
    input_widths: list[int],
    in_tensors: list,
    outputs: list,
) -> tuple[str, str]:
    """(kind, reason) of one call (``node``) of ``layer`` whose layer kind is ``kind``: a call
    the analysis cannot follow becomes a barrier, two-tensor TF ops become merges.
    ``input_widths``: channels of each input."""
    if kind != BARRIER and any(not t.shape.rank or t.shape[-1] is None for t in in_tensors):
        kind, reason = BARRIER, "input with an unknown channel count"
    if kind != BARRIER and len(outputs) != 1:
        kind, reason = BARRIER, "layers with several outputs are not supported"
    if kind == ELEMENTWISE and is_tf_elementwise_op(layer):
        tensors, scalars = tf_op_operands(node.call_args, node.call_kwargs or {})
        if tensors == 2 and scalars and layer.symbol in BINARY_OPS:
            kind = MERGE  # x + y, x * y of two tensors: like keras Add/Multiply
        elif tensors != 1 or not scalars:
            kind, reason = BARRIER, "TF op with non-scalar operands"
    single = (PRODUCER, GROUPED, DEPTHWISE, BATCHNORM, ELEMENTWISE, SPATIAL, FLATTEN, SCATTER)
    if kind in single + (RESHAPE,):
        if len(input_widths) != 1:
            kind, reason = BARRIER, f"{len(input_widths)} inputs where one is expected"
    if kind in (MERGE, CONCAT) and len(input_widths) < 2:
        kind, reason = BARRIER, "merge of fewer than two inputs"
    if kind == RESHAPE and not reshape_keeps_channels(
        tuple(in_tensors[0].shape), tuple(outputs[0].shape)
    ):
        kind, reason = BARRIER, "Reshape that changes the channel axis"
    if kind == FLATTEN and any(d is None for d in in_tensors[0].shape[1:]):
        kind, reason = BARRIER, "Flatten of a tensor with unknown dimensions"
    if kind == MERGE and len(set(input_widths)) != 1:
        kind, reason = BARRIER, "broadcasting merge (different channel counts)"
    if kind == BATCHNORM:
        rank = in_tensors[0].shape.rank
        if [int(a) % rank for a in np.ravel(layer.axis)] != [rank - 1]:
            kind, reason = BARRIER, f"normalises axis {layer.axis}, not the channel axis"
    if kind == CONCAT:
        ranks = {t.shape.rank for t in in_tensors}
        if len(ranks) != 1:
            kind, reason = BARRIER, "Concatenate of tensors of different ranks"
    return kind, reason
