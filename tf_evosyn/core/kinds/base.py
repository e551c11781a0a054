"""The rule of one layer kind, and the registry that finds a layer's rule.

A :class:`LayerRule` holds what tf_evosyn needs to know about one Keras layer type wherever it
needs it: the evolvable twin (whose masks are its clusters and synapses), the channel kind the
analysis gives it, how compaction slices it, its MACs, its latency-model entry and its TF-MOT
kernels. The generic modules (:mod:`tf_evosyn.graph.dependency`, :mod:`tf_evosyn.compaction.plan`,
:mod:`tf_evosyn.hardware.flops`, ...) ask :func:`rule_for` instead of testing types, in the manner
of Torch-Pruning's ``PrunerBox`` and TF-MOT's ``prune_registry``.

The base rule is a *producer*: it owns channels (the last axis of its matrix kernel, see
:class:`tf_evosyn.core.evolvable_base.EvolvableMixin`) and reads input channel ``c`` through
kernel row ``c``, with weights ``kernel`` (and ``bias``) as Conv1D/2D/3D and Dense store them.
A family whose layout differs overrides what differs (one module per family in this package).

Two look-ups: :func:`rule_for` matches the exact type (the plain layer or its twin), which is
what the channel analysis, compaction and conversion need, since a subclass may lay out its
kernel differently; :func:`nearest_rule` walks the type's MRO, for costs and reports that
already counted subclasses as their base (a custom Conv2D subclass costs what a Conv2D costs).
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import EvolvableMixin
from tf_evosyn.core.layer_shape import LayerShape

# Channel kinds a layer rule can give (the analysis has more: tf_evosyn.core.layer_kinds).
PRODUCER = "producer"  # Conv*, Conv*Transpose, Dense, SeparableConv*, LSTM/GRU/SimpleRNN
GROUPED = "grouped"  # grouped Conv: group g's inputs and outputs are coupled
DEPTHWISE = "depthwise"  # output channel c*m+j is tied to input channel c
BARRIER = "barrier"


def positions(shape) -> int:
    """Product of the spatial dimensions (all but batch and channels)."""
    dims = tuple(shape)[1:-1]
    if any(d is None for d in dims):
        raise ValueError(f"cannot count MACs for a shape with unknown dimensions: {shape}")
    return int(np.prod(dims, dtype=np.int64))


def spatial_axes(kernel: np.ndarray) -> tuple[int, ...]:
    """The kernel axes before ``(inputs, outputs)``: the taps of a convolution."""
    return tuple(range(kernel.ndim - 2))


def finish_producer(
    layer: keras.layers.Layer,
    config: dict,
    new: list[np.ndarray],
    bias: np.ndarray,
    out_keep: np.ndarray,
) -> list[np.ndarray]:
    """``new`` kernels plus the kept bias, with ``config``'s width (and ``use_bias``) updated."""
    del layer
    bias = bias[out_keep].astype(np.float32)
    config["filters" if "filters" in config else "units"] = int(out_keep.sum())
    if not config.get("use_bias", True) and np.any(bias != 0):
        config["use_bias"] = True
    return new + [bias] if config.get("use_bias", True) else new


class LayerRule:
    """What one layer type (plain ``plain`` and its evolvable ``twin``) needs everywhere.

    Class attributes a family sets: ``channel_kind`` (how the analysis couples its channels),
    ``folds_constants`` (a removed constant input channel can move into the bias),
    ``macs_per_input`` (MACs counted per input position: transposed convolutions, time steps),
    ``tfmot_prunes`` (TF-MOT's prune registry prunes its kernels), ``static_batch_export``
    (TFLite needs a fixed batch) and ``latency_kind`` (its entry in the latency model, or None).
    """

    channel_kind = PRODUCER
    folds_constants = True
    macs_per_input = False
    tfmot_prunes = False
    static_batch_export = False
    latency_kind: str | None = None

    def __init__(self, plain: type, twin: type[EvolvableMixin] | None = None):
        self.plain = plain
        self.twin = twin

    def __repr__(self) -> str:
        twin = self.twin.__name__ if self.twin else None
        return f"{type(self).__name__}({self.plain.__name__}, {twin})"

    @property
    def types(self) -> tuple[type, ...]:
        return (self.plain,) if self.twin is None else (self.plain, self.twin)

    # -- conversion and the channel analysis ----------------------------------------------------
    def unsupported_reason(self, layer: keras.layers.Layer) -> str | None:
        """Why ``layer`` cannot become its evolvable twin (None: it can)."""
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return "channels_first"
        return None

    def kind(self, layer: keras.layers.Layer) -> tuple[str, str]:
        """(channel kind, reason) of ``layer`` for the analysis; reason explains a barrier."""
        if self.twin is None:
            name = type(layer).__name__
            return BARRIER, f"layer type {name} is not understood by the channel analysis"
        if getattr(layer, "data_format", "channels_last") not in ("channels_last", None):
            return BARRIER, "channels_first is not supported"
        return self.channel_kind, ""

    def coupled_atoms(self, layer: keras.layers.Layer, input_atoms, output_atoms):
        """(input atom, output atom) pairs that live or die together: none for a producer,
        whose clusters are its own (a grouped convolution couples each group)."""
        return ()

    def output_atoms(self, layer: keras.layers.Layer, input_atoms: np.ndarray) -> np.ndarray:
        """The atoms of the output channels of a kind whose channels follow its inputs."""
        raise NotImplementedError(f"{type(layer).__name__}'s channels are its own.")

    def matrix_kernel(self, layer: keras.layers.Layer) -> np.ndarray:
        """The matrix kernel ``(..., inputs, clusters)`` of a plain or evolvable layer."""
        return self.twin.plain_matrix_kernel(layer)

    # -- compaction -----------------------------------------------------------------------------
    def masked_weights(self, layer: keras.layers.Layer) -> dict[str, np.ndarray]:
        """The plain layer's weights by attribute (Keras' layouts), masks applied if evolvable."""
        if isinstance(layer, EvolvableMixin):
            attrs = [a for a in layer.weight_attrs if a != "bias" or layer.use_bias]
            return dict(zip(attrs, layer.plain_weights(), strict=True))
        names = ("kernel", "depthwise_kernel", "pointwise_kernel", "bias")
        return {n: getattr(layer, n).numpy() for n in names if getattr(layer, n, None) is not None}

    def matrix_weights(self, layer: keras.layers.Layer) -> dict[str, np.ndarray]:
        """:meth:`masked_weights`, ``kernel`` in the matrix layout ``(..., inputs, outputs)``."""
        return self.masked_weights(layer)

    def from_matrix(self, kernel: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`matrix_weights` for a (sliced) kernel."""
        return kernel

    def reads_input(self, layer: keras.layers.Layer) -> np.ndarray:
        """Per input channel: does any living synapse read it? (A channel read only by dead
        synapses contributes nothing, whatever it holds.)"""
        kernel = self.matrix_weights(layer)["kernel"]
        return np.any(kernel.reshape(-1, *kernel.shape[-2:]) != 0, axis=(0, 2))

    def compact_weights(
        self,
        layer: keras.layers.Layer,
        config: dict,
        in_keep: np.ndarray,
        out_keep: np.ndarray,
        constants: np.ndarray,
    ) -> list[np.ndarray]:
        """The compacted plain weights (``config`` is updated in place).

        Removed input channels hold the constants ``constants[~in_keep]`` (NaN counts as 0:
        such a channel is only removed when no living synapse reads it); their contribution
        moves into the bias.
        """
        weights = self.matrix_weights(layer)
        gone = ~in_keep
        k = np.nan_to_num(constants[gone]).astype(np.float64)
        kernel = weights["kernel"]
        bias = weights.get("bias", np.zeros(kernel.shape[-1], np.float32)).astype(np.float64)
        if gone.any():
            part = kernel[..., gone, :].astype(np.float64)
            part = part.reshape(-1, *part.shape[-2:])  # (spatial taps, inputs, outputs)
            bias = bias + np.einsum("sio,i->o", part, k)
        new = [self.from_matrix(kernel[..., in_keep, :][..., out_keep])]
        return finish_producer(layer, config, new, bias, out_keep)

    def output_constants(self, layer: keras.layers.Layer, k: np.ndarray, pads: bool):
        """Per output channel constants (before the activation) for input constants ``k``, for
        kinds whose channels follow their inputs (depthwise); producers emit activation(0) from
        dead clusters, which the plan handles."""
        raise NotImplementedError(f"{type(layer).__name__} has no channel-following outputs.")

    def kept_rows_and_clusters(
        self, layer: EvolvableMixin, in_keep: np.ndarray, out_keep: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """(surviving matrix-kernel rows or None = all, surviving clusters) of an evolvable
        layer that compaction slices, for its masks and heredity buffers."""
        return layer.kept_rows(in_keep, out_keep), out_keep

    def carry_shared_masks(
        self, source: EvolvableMixin, target: EvolvableMixin, in_keep: np.ndarray
    ) -> None:
        """Slice buffers of masks shared by every cluster (separable depthwise taps)."""

    # -- reports and costs ----------------------------------------------------------------------
    def output_channels(self, layer: keras.layers.Layer) -> int:
        return int(layer.kernel.shape[-1])

    def mac_weights(self, layer: keras.layers.Layer) -> int:
        """Kernel weights one position (output position, or input with ``macs_per_input``)
        multiplies."""
        return int(np.prod(layer.kernel.shape))

    def mac_positions(self, in_shape: tuple, out_shape: tuple) -> int:
        return positions(in_shape if self.macs_per_input else out_shape)

    def dense_macs(self, layer: keras.layers.Layer, in_shape: tuple, out_shape: tuple) -> int:
        """MACs of one call with every kernel weight computed."""
        return self.mac_positions(in_shape, out_shape) * self.mac_weights(layer)

    def living_macs(self, layer: EvolvableMixin, in_shape: tuple, out_shape: tuple) -> int:
        """MACs of one call of an evolvable layer counting living synapses only."""
        return layer.living_synapse_count() * self.mac_positions(in_shape, out_shape)

    def latency_shape(self, layer: keras.layers.Layer) -> LayerShape | None:
        """The latency model's shape of ``layer`` (None: not timed)."""
        return None

    def timed_layer(self, shape: LayerShape) -> keras.layers.Layer:
        """A fresh layer of ``shape`` (this rule's ``latency_kind``) to time alone."""
        raise NotImplementedError(f"{self!r} has no latency entry.")

    # -- TF-MOT ---------------------------------------------------------------------------------
    def weights_owner(self, layer: keras.layers.Layer) -> keras.layers.Layer:
        """The object holding the weights by their plain names (a recurrent layer's cell)."""
        return layer

    def pruned_kernels(self, layer: keras.layers.Layer) -> list:
        """The variables TF-MOT prunes (masks), in the order :meth:`kernels_to_matrix` reads."""
        return [layer.kernel]

    def kernels_to_matrix(self, layer: keras.layers.Layer, values: list[np.ndarray]) -> np.ndarray:
        """Per-kernel arrays (Keras' layouts) as one matrix view."""
        return self.twin.matrix_view(values[0])

    def matrix_to_kernels(self, layer: keras.layers.Layer, matrix: np.ndarray, shapes) -> list:
        """The inverse of :meth:`kernels_to_matrix`."""
        return [self.twin.matrix_view(matrix, tuple(shapes[0]))]

    def bias_variable(self, layer: keras.layers.Layer):
        return layer.bias

    def bias_alive(self, layer: keras.layers.Layer, clusters: np.ndarray) -> np.ndarray:
        """Which bias entries belong to living clusters."""
        return np.asarray(clusters, bool)


_RULES: dict[type, LayerRule] = {}


def register(rule: LayerRule) -> LayerRule:
    """Add ``rule`` to the registry (a type has one rule); returns it."""
    for cls in rule.types:
        if cls in _RULES and _RULES[cls] is not rule:
            raise ValueError(f"{cls.__name__} already has a rule: {_RULES[cls]!r}.")
    for cls in rule.types:
        _RULES[cls] = rule
    return rule


def rule_for(layer: keras.layers.Layer | type) -> LayerRule | None:
    """The rule of ``layer``'s exact type (or of the type itself); None if it has none."""
    return _RULES.get(layer if isinstance(layer, type) else type(layer))


def nearest_rule(layer: keras.layers.Layer | type) -> LayerRule | None:
    """The rule of the nearest registered type in ``layer``'s MRO (subclasses count)."""
    cls = layer if isinstance(layer, type) else type(layer)
    for base in cls.__mro__:
        if base in _RULES:
            return _RULES[base]
    return None


def rules() -> list[LayerRule]:
    """Every registered rule, in registration order."""
    return list(dict.fromkeys(_RULES.values()))


def latency_rule(kind: str) -> LayerRule:
    """The rule whose latency entry is ``kind`` (a :class:`LayerShape`'s kind)."""
    for rule in rules():
        if rule.latency_kind == kind:
            return rule
    raise KeyError(f"no layer rule times latency kind {kind!r}")
