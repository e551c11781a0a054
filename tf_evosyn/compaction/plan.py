"""Physical compaction: turn an evolved (masked) model into a smaller plain Keras model.

Evolution only masks weights, so an offspring is as large and as slow as its ancestor. ``compact``
removes every dead cluster whose whole coupled channel group (see :mod:`tf_evosyn.graph.dependency`)
is dead and not pinned by a barrier, slices the layers that read it (Conv2D input channels, Dense
rows, BatchNormalization parameters, DepthwiseConv2D channels, Add/Concatenate inputs follow
automatically) and writes masked kernels, so dead synapses become plain zeros.

A dead channel is not always zero downstream: after a BatchNormalization, a bias or an activation
with f(0) != 0 it is a constant ``k``. Removing it is then exact only if its contribution can be
folded into the reading layer's bias: always for a Dense (also after Flatten or global pooling)
and for a convolution without padding; a zero-padded ('same', kernel > 1) convolution or a
ZeroPadding layer sees ``k`` inside and 0 on the border, and a transposed convolution sums
uneven numbers of taps per output position, so such a channel is kept unless ``k == 0``.
The result computes the same function as the masked model up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.compaction.evolvable import carry_evolvable_state
from tf_evosyn.core.conv_kinds import RESHAPE, apply_op, is_tf_elementwise_op, merge_values
from tf_evosyn.core.evolvable_base import EvolvableMixin
from tf_evosyn.core.kinds import GROUPED, rule_for
from tf_evosyn.graph.dependency import (
    BARRIER,
    BATCHNORM,
    CONCAT,
    DEPTHWISE,
    ELEMENTWISE,
    FLATTEN,
    IDENTITY_AT_INFERENCE,
    INPUT,
    MERGE,
    PRODUCER,
    SCATTER,
    SPATIAL,
    DependencyGraph,
    NodeInfo,
    analyze,
)
from tf_evosyn.models.lrn import WithinChannelLRN


@dataclass
class CompactionPlan:
    """Which channel groups :func:`compact` removes, and why dead ones are kept.

    ``dead[g]``: every producer of group g is an evolvable cluster with mask 0.
    ``removed[g]``: g is removed. ``kept_dead``: dead group index -> reason it stays.
    ``constants[tensor_id]``: value of each channel of a tensor that is constant (dead groups),
    NaN elsewhere.
    """

    graph: DependencyGraph
    dead: np.ndarray
    removed: np.ndarray
    kept_dead: dict[int, str] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)

    def keep(self, tensor_id: str) -> np.ndarray:
        """Boolean mask of the channels of a tensor that survive compaction."""
        return ~self.removed[self.graph.tensor_groups[tensor_id]]


def _as_float(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _activate(fn, values: np.ndarray) -> np.ndarray:
    if fn is None:
        return values
    return _as_float(fn(tf.constant(values, dtype=tf.float32)))


def _conv_pads(layer: keras.layers.Layer, input_shape: tuple) -> bool:
    """True if the convolution zero-pads its input (so a constant channel is not constant)."""
    if getattr(layer, "padding", "valid") == "valid":
        return False
    spatial = input_shape[1:-1]
    for size, k, s, d in zip(
        spatial, layer.kernel_size, layer.strides, layer.dilation_rate, strict=True
    ):
        extent = (k - 1) * d + 1
        if size is None:
            if extent > 1:
                return True
            continue
        out = math.ceil(size / s)
        if max((out - 1) * s + extent - size, 0) > 0:
            return True
    return False


def _node_constants(node: NodeInfo, inputs: list[np.ndarray], dead_out: np.ndarray) -> np.ndarray:
    """Constant value of each output channel given the inputs' constants (NaN: not constant)."""
    layer, kind = node.layer, node.kind
    if kind in (PRODUCER, GROUPED):
        # A dead cluster emits activation(0): its masked kernel and bias are zero.
        out = np.full(dead_out.shape, np.nan)
        if dead_out.any():
            out[dead_out] = _activate(layer.activation, np.zeros(int(dead_out.sum())))
        return out
    k = inputs[0] if inputs else None
    if kind == DEPTHWISE:
        pads = _conv_pads(layer, node.input_shapes[0])
        return _activate(layer.activation, rule_for(layer).output_constants(layer, k, pads))
    if kind == BATCHNORM:
        mean = layer.moving_mean.numpy()
        var = layer.moving_variance.numpy()
        gamma = layer.gamma.numpy() if layer.scale else 1.0
        beta = layer.beta.numpy() if layer.center else 0.0
        return (k - mean) / np.sqrt(var + layer.epsilon) * gamma + beta
    if kind == ELEMENTWISE:
        if isinstance(layer, IDENTITY_AT_INFERENCE):
            return k
        if isinstance(layer, keras.layers.Activation):
            return _activate(layer.activation, k)
        if is_tf_elementwise_op(layer):
            return _as_float(apply_op(layer, node.call_args, node.call_kwargs, k))
        return _as_float(layer.call(tf.constant(k[None, :], dtype=tf.float32)))[0]
    if kind == RESHAPE:
        return k
    if kind == SPATIAL:
        zero_padding = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D)
        if isinstance(layer, (*zero_padding, keras.layers.ZeroPadding3D, WithinChannelLRN)):
            # Borders see zeros: a constant stays one only if it is 0.
            return np.where(k == 0, k, np.nan)
        return k  # pooling (TF ignores padding), cropping, upsampling keep a constant
    if kind == FLATTEN:
        return np.tile(k, dead_out.size // max(k.size, 1))
    if kind == MERGE:
        stacked = np.stack(inputs)
        if (values := merge_values(layer, stacked)) is not None:
            return values
        if isinstance(layer, keras.layers.Add):
            return stacked.sum(axis=0)
        if isinstance(layer, keras.layers.Subtract):
            return stacked[0] - stacked[1]
        if isinstance(layer, keras.layers.Multiply):
            return stacked.prod(axis=0)
        if isinstance(layer, keras.layers.Average):
            return stacked.mean(axis=0)
        if isinstance(layer, keras.layers.Maximum):
            return stacked.max(axis=0)
        return stacked.min(axis=0)
    if kind == SCATTER:
        out = np.zeros(dead_out.shape)
        out[layer.resolved_positions(k.size)] = k
        return out
    if kind == CONCAT:
        rank = len(node.input_shapes[0])
        if layer.axis % rank == rank - 1:
            return np.concatenate(inputs)
        # Concatenated along space: constant only if every input has the same constant.
        stacked = np.stack(inputs)
        return np.where((stacked == stacked[0]).all(axis=0), stacked[0], np.nan)
    return np.full(dead_out.shape, np.nan)


def _is_dead_group(graph: DependencyGraph, group, clusters: dict[str, np.ndarray]) -> bool:
    if not group.producers:
        return False
    for name, channel in group.producers:
        layer = graph.model.get_layer(name)
        if not isinstance(layer, EvolvableMixin):
            return False
        if name not in clusters:
            clusters[name] = layer.living_cluster_mask()
        if clusters[name][channel]:
            return False
    return True


def plan_compaction(model: keras.Model, graph: DependencyGraph | None = None) -> CompactionPlan:
    """Decide which dead channel groups can be removed exactly (see the module docstring)."""
    graph = graph or analyze(model)
    clusters: dict[str, np.ndarray] = {}
    dead = np.array([_is_dead_group(graph, g, clusters) for g in graph.groups], dtype=bool)
    kept: dict[int, str] = {}
    for group in graph.groups:
        if dead[group.index] and not group.removable:
            kept[group.index] = "; ".join(group.reasons)

    # Propagate the constants of dead channels; note where folding them would be inexact.
    constants: dict[str, np.ndarray] = {}
    folds: dict[str, np.ndarray] = {}  # producer -> constant read at each input position
    for node in graph.nodes:
        groups_out = [graph.tensor_groups[t] for t in node.output_ids]
        if node.kind in (INPUT, BARRIER):
            for tid, g in zip(node.output_ids, groups_out, strict=True):
                constants[tid] = np.full(g.shape, np.nan)
            continue
        inputs = [constants[t] for t in node.input_ids]
        if node.kind == PRODUCER:
            in_groups = graph.tensor_groups[node.input_ids[0]]
            k = inputs[0]
            dead_in = dead[in_groups]
            name = node.layer.name
            pads = getattr(node.layer, "kernel_size", None) is not None and _conv_pads(
                node.layer, node.input_shapes[0]
            )
            rule = rule_for(node.layer)
            uneven = not rule.folds_constants
            # A dead channel read only by dead synapses contributes nothing, whatever it holds.
            reads = rule.reads_input(node.layer)
            for position in np.flatnonzero(dead_in & (k != 0) & reads):
                gid = int(in_groups[position])
                if not np.isfinite(k[position]):
                    kept.setdefault(
                        gid, f"not a constant (zero padding or a barrier) where {name} reads it"
                    )
                elif pads or uneven:
                    how = "transposed convolution" if uneven else "zero-padded"
                    kept.setdefault(
                        gid, f"constant {k[position]:.4g} read by {how} {name}: not foldable"
                    )
            if name in folds:
                previous = folds[name]
                differ = dead_in & ~((previous == k) | (np.isnan(previous) & np.isnan(k)))
                for gid in np.unique(in_groups[differ]):
                    kept.setdefault(int(gid), f"{name} is shared and reads different constants")
            else:
                folds[name] = k
        out = _node_constants(node, inputs, dead[groups_out[0]])
        constants[node.output_ids[0]] = np.where(dead[groups_out[0]], out, np.nan)

    removed = dead.copy()
    removed[list(kept)] = False
    # Never empty a tensor: keep the first group of a tensor that would lose every channel.
    changed = True
    while changed:
        changed = False
        for groups in graph.tensor_groups.values():
            if groups.size and removed[groups].all():
                removed[groups[0]] = False
                kept[int(groups[0])] = "last channel of a tensor"
                changed = True
    return CompactionPlan(graph, dead, removed, {g: kept[g] for g in kept if dead[g]}, constants)


def _new_config(layer: keras.layers.Layer, keep_evolvable: bool) -> tuple[type, dict]:
    if isinstance(layer, EvolvableMixin) and not keep_evolvable:
        return layer.plain_type, layer.plain_config()
    return type(layer), layer.get_config()


def compact(
    model: keras.Model, graph: DependencyGraph | None = None, keep_evolvable: bool = False
) -> keras.Model:
    """A plain Keras model without masks in which removable dead channels are physically gone.

    Numerically equivalent to the masked ``model`` (inference mode). A Sequential model gives a
    Sequential model, anything else a Functional one; layer names are kept. ``keep_evolvable``:
    the same evolvable layers, masks sliced, same model name (:mod:`.evolvable_compaction`).
    """
    plan = plan_compaction(model, graph)
    graph = plan.graph
    first_node: dict[str, NodeInfo] = {}
    for node in graph.nodes:
        first_node.setdefault(node.layer.name, node)

    # New layers with their new widths; weights are written once the model is built.
    new_layers: dict[str, keras.layers.Layer] = {}
    weights: dict[str, list[np.ndarray] | dict[str, np.ndarray]] = {}
    evolvable: dict[str, tuple] = {}  # name -> (layer, kind, in_keep, out_keep)
    for name, node in first_node.items():
        layer = node.layer
        if node.kind == INPUT:
            continue
        cls, config = _new_config(layer, keep_evolvable)
        in_keep = plan.keep(node.input_ids[0]) if node.input_ids else None
        if node.kind in (PRODUCER, GROUPED, DEPTHWISE):  # the layer's rule slices it
            out_keep, constants = plan.keep(node.output_ids[0]), plan.constants[node.input_ids[0]]
            rule = rule_for(layer)
            weights[name] = rule.compact_weights(layer, config, in_keep, out_keep, constants)
        elif node.kind == RESHAPE:
            config["target_shape"] = (*config["target_shape"][:-1], int(in_keep.sum()))
            weights[name] = []
        elif node.kind == BATCHNORM:
            keep = plan.keep(node.input_ids[0])
            weights[name] = {
                attr: getattr(layer, attr).numpy()[keep]
                for attr in ("gamma", "beta", "moving_mean", "moving_variance")
                if getattr(layer, attr, None) is not None
            }
        elif node.kind == SCATTER:
            in_keep, out_keep = plan.keep(node.input_ids[0]), plan.keep(node.output_ids[0])
            new_index = np.cumsum(out_keep) - 1  # old output channel -> new output channel
            positions = np.asarray(layer.resolved_positions(in_keep.size))
            config["positions"] = [int(p) for p in new_index[positions[in_keep]]]
            config["out_channels"] = int(out_keep.sum())
            weights[name] = []
        else:
            weights[name] = layer.get_weights()
        if keep_evolvable and isinstance(layer, EvolvableMixin):
            evolvable[name] = (layer, node.kind, in_keep, plan.keep(node.output_ids[0]))
        new_layers[name] = cls.from_config(config)

    if isinstance(model, keras.Sequential):
        spec = model.inputs[0]
        compacted = keras.Sequential(
            [keras.Input(tuple(spec.shape[1:]), dtype=spec.dtype)]
            + [new_layers[node.layer.name] for node in graph.nodes if node.kind != INPUT],
            name=model.name if keep_evolvable else f"{model.name}_compact",
        )
    else:
        compacted = _replay(model, graph, new_layers, keep_evolvable)

    for name, values in weights.items():
        target = compacted.get_layer(name)
        if name in evolvable:
            carry_evolvable_state(evolvable[name][0], target, *evolvable[name][1:], values)
        elif isinstance(values, dict):
            for attr, value in values.items():
                getattr(target, attr).assign(value)
        else:
            target.set_weights(values)
    return compacted


def _replay(
    model: keras.Model, graph: DependencyGraph, new_layers: dict, keep_name: bool
) -> keras.Model:
    """Rebuild the functional graph with the new layers, call by call."""
    tensors: dict[str, object] = {}
    for node in graph.nodes:
        if node.kind != INPUT:
            continue
        spec = node.layer.output
        tensors[node.output_ids[0]] = keras.Input(
            tuple(spec.shape[1:]), dtype=spec.dtype, name=node.layer.name
        )

    def swap(value):
        return tensors.get(str(id(value)), value) if hasattr(value, "shape") else value

    for node in graph.nodes:
        if node.kind == INPUT:
            continue
        args = tf.nest.map_structure(swap, node.call_args)
        kwargs = tf.nest.map_structure(swap, dict(node.call_kwargs))
        outputs = new_layers[node.layer.name](*args, **kwargs)
        for tid, out in zip(node.output_ids, tf.nest.flatten(outputs), strict=True):
            tensors[tid] = out
    inputs = [tensors[t] for t in graph.input_ids]
    outputs = [tensors[t] for t in graph.output_ids]
    return keras.Model(
        tf.nest.pack_sequence_as(model._nested_inputs, inputs),
        tf.nest.pack_sequence_as(model._nested_outputs, outputs),
        name=model.name if keep_name else f"{model.name}_compact",
    )
