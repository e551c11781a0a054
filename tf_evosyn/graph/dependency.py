"""Channel dependencies of a Keras model (DepGraph-style), so channels can be removed legally.

A channel cannot always be removed on its own: the two inputs of an ``Add`` must keep the same
channels, a ``DepthwiseConv2D`` output channel lives and dies with its input channel, and a
``Concatenate`` shifts the channels of its later inputs. :func:`analyze` walks the model's graph
once and groups the output channels of the layers that own channels (Conv2D, grouped Conv2D,
Dense, SeparableConv2D, DepthwiseConv2D and their evolvable twins; each layer's rule in
:mod:`tf_evosyn.core.kinds` gives its kind and couplings) into coupled groups: the channels of
one group must live or die together. For each group it records the (layer, channel) members
and every layer that reads it, with the input positions it reads (a Dense after a
channels-last ``Flatten`` reads channel ``c`` at rows ``c, c + C, c + 2C, ...``).

Anything the analysis does not understand is a barrier: channels that flow into it are never
removable, and are listed in ``graph.barriers``; channels it emits are opaque (not removable).
Model inputs and outputs are never removable either (a classifier keeps its classes).
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.conv_kinds import RESHAPE
from tf_evosyn.core.kinds import GROUPED, rule_for
from tf_evosyn.core.layer_kinds import (
    BARRIER,
    BATCHNORM,
    CONCAT,
    DEPTHWISE,
    ELEMENTWISE,
    ELEMENTWISE_ACTIVATIONS,
    FLATTEN,
    IDENTITY_AT_INFERENCE,
    INPUT,
    MERGE,
    PRODUCER,
    SCATTER,
    SPATIAL,
    activation_name,
    is_producer,
    layer_kind,
    node_kind,
)
from tf_evosyn.core.layers import EvolvableMixin
from tf_evosyn.graph.channel_grouping import UnionFind, collect_groups
from tf_evosyn.graph.dependency_graph import (
    Barrier,
    ChannelGroup,
    Consumer,
    DependencyGraph,
    NodeInfo,
)

# The names other modules import from here (the analysis' kinds and results live in
# layer_kinds, dependency_graph and channel_grouping; this module walks the graph).
__all__ = [
    "BARRIER",
    "BATCHNORM",
    "CONCAT",
    "DEPTHWISE",
    "ELEMENTWISE",
    "ELEMENTWISE_ACTIVATIONS",
    "FLATTEN",
    "GROUPED",
    "IDENTITY_AT_INFERENCE",
    "INPUT",
    "MERGE",
    "PRODUCER",
    "RESHAPE",
    "SCATTER",
    "SPATIAL",
    "Barrier",
    "ChannelGroup",
    "Consumer",
    "DependencyGraph",
    "NodeInfo",
    "activation_name",
    "analyze",
    "is_producer",
    "layer_kind",
]


def _check_model(model: keras.Model) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a tf_keras Model, got {type(model).__name__}.")
    if not getattr(model, "_is_graph_network", False):
        raise TypeError(
            f"{model.name} is not a Sequential/Functional model with known inputs; build it with "
            "keras.Input(...) (subclassed models cannot be analysed)."
        )


def _ordered_nodes(model: keras.Model):
    for depth in sorted(model._nodes_by_depth, reverse=True):
        yield from model._nodes_by_depth[depth]


def analyze(model: keras.Model) -> DependencyGraph:
    """Coupled channel groups, their readers and the barriers of a Sequential/Functional model."""
    _check_model(model)
    uf = UnionFind()
    atoms_of: dict[str, np.ndarray] = {}  # tensor id -> atom per last-axis position
    members: dict[int, list[tuple[str, int]]] = {}  # atom -> members (before union)
    producers: dict[int, list[tuple[str, int]]] = {}
    blocked: dict[int, list[str]] = {}  # atom -> reasons it cannot be removed
    reads: list[tuple[str, int, np.ndarray]] = []  # (layer, input index, atoms read)
    barriers: list[Barrier] = []
    nodes: list[NodeInfo] = []
    producer_atoms: dict[str, np.ndarray] = {}  # shared layers: one set of clusters
    first_inputs: dict[str, list[np.ndarray]] = {}  # shared weighted layers: couple inputs

    def block(atoms, reason):
        for atom in np.unique(atoms):
            blocked.setdefault(int(atom), []).append(reason)

    def fresh(count, reason):
        atoms = uf.new(count)
        block(atoms, reason)
        return atoms

    def channels(tensor) -> int:
        dim = tensor.shape[-1] if tensor.shape.rank else None
        return int(dim) if dim is not None else 0

    def add_barrier(layer, reason, inputs):
        barriers.append(Barrier(layer.name, type(layer).__name__, reason))
        for atoms in inputs:
            block(atoms, f"read by {layer.name} ({type(layer).__name__}): {reason}")

    for node in _ordered_nodes(model):
        layer = node.layer
        kind, reason = layer_kind(layer)
        input_ids = list(node.flat_input_ids)
        output_ids = list(node.flat_output_ids)
        outputs = node.outputs if isinstance(node.outputs, (list, tuple)) else [node.outputs]
        outputs = list(outputs)
        in_tensors = list(node.keras_inputs)
        info = NodeInfo(
            layer,
            kind,
            input_ids,
            output_ids,
            [tuple(t.shape) for t in in_tensors],
            node.call_args,
            node.call_kwargs or {},
        )
        nodes.append(info)
        if node.is_input:
            for tid, tensor in zip(output_ids, outputs, strict=True):
                atoms_of[tid] = fresh(channels(tensor), f"model input {layer.name}")
            continue
        inputs = [atoms_of[tid] for tid in input_ids]

        kind, reason = node_kind(
            layer, kind, reason, node, [len(a) for a in inputs], in_tensors, outputs
        )
        # Shared weighted layers: the same weight index must hold for every call.
        if kind in (PRODUCER, GROUPED, DEPTHWISE, BATCHNORM):
            if layer.name in first_inputs:
                for a, b in zip(first_inputs[layer.name][0], inputs[0], strict=True):
                    uf.union(a, b)
            else:
                first_inputs[layer.name] = inputs

        info.kind = kind
        if kind == BARRIER:
            add_barrier(layer, reason, inputs)
            for tid, tensor in zip(output_ids, outputs, strict=True):
                atoms_of[tid] = fresh(
                    channels(tensor), f"produced by {layer.name} ({type(layer).__name__})"
                )
            continue

        for index, atoms in enumerate(inputs):
            reads.append((layer.name, index, atoms))
        out_id = output_ids[0]
        if kind in (PRODUCER, GROUPED):
            if layer.name not in producer_atoms:
                atoms = uf.new(channels(outputs[0]))
                for channel, atom in enumerate(atoms):
                    members[int(atom)] = [(layer.name, channel)]
                    producers[int(atom)] = [(layer.name, channel)]
                producer_atoms[layer.name] = atoms
            atoms_of[out_id] = producer_atoms[layer.name]
            # A grouped convolution: each group's inputs and outputs live or die together.
            for a, b in rule_for(layer).coupled_atoms(layer, inputs[0], atoms_of[out_id]):
                uf.union(a, b)
        elif kind == DEPTHWISE:
            atoms = rule_for(layer).output_atoms(layer, inputs[0])
            if layer.name not in producer_atoms:
                evolvable = isinstance(layer, EvolvableMixin)  # its channels are clusters too
                for channel, atom in enumerate(atoms):
                    members.setdefault(int(atom), []).append((layer.name, channel))
                    if evolvable:
                        producers.setdefault(int(atom), []).append((layer.name, channel))
                producer_atoms[layer.name] = atoms
            atoms_of[out_id] = atoms
        elif kind in (BATCHNORM, ELEMENTWISE, SPATIAL, RESHAPE):
            atoms_of[out_id] = inputs[0]
        elif kind == FLATTEN:
            spatial = int(np.prod(in_tensors[0].shape[1:-1], dtype=np.int64))
            atoms_of[out_id] = np.tile(inputs[0], spatial)
        elif kind == SCATTER:
            # Channels that are always zero get atoms of their own: no producer decides them,
            # but an Add can couple them to a convolution's channels.
            positions = layer.resolved_positions(len(inputs[0]))
            atoms = np.empty(channels(outputs[0]), dtype=np.int64)
            zeros = np.ones(atoms.size, dtype=bool)
            zeros[positions] = False
            atoms[zeros] = uf.new(int(zeros.sum()))
            atoms[positions] = inputs[0]
            atoms_of[out_id] = atoms
        elif kind == MERGE:
            for other in inputs[1:]:
                for a, b in zip(inputs[0], other, strict=True):
                    uf.union(a, b)
            atoms_of[out_id] = inputs[0]
        elif kind == CONCAT:
            rank = in_tensors[0].shape.rank
            if layer.axis % rank == rank - 1:
                atoms_of[out_id] = np.concatenate(inputs)
            else:  # concatenation along space: channel c of every input is output channel c
                for other in inputs[1:]:
                    for a, b in zip(inputs[0], other, strict=True):
                        uf.union(a, b)
                atoms_of[out_id] = inputs[0]
        if kind in (PRODUCER, GROUPED, DEPTHWISE) and (
            activation_name(layer) not in ELEMENTWISE_ACTIVATIONS
        ):
            # Its inputs may still shrink, but its own channels cannot (e.g. softmax).
            reason = f"activation {activation_name(layer)!r} is not element-wise"
            barriers.append(Barrier(layer.name, type(layer).__name__, reason))
            block(atoms_of[out_id], f"output of {layer.name}: {reason}")

    # A shared layer that is a barrier in one call keeps its channels in every call.
    barrier_layers = {info.layer.name for info in nodes if info.kind == BARRIER}
    for info in nodes:
        if info.layer.name in barrier_layers and info.kind not in (BARRIER, INPUT):
            for tid in info.input_ids + info.output_ids:
                block(atoms_of[tid], f"{info.layer.name} is a barrier in another call")

    output_ids = [str(id(t)) for t in model.outputs]
    for tensor, tid in zip(model.outputs, output_ids, strict=True):
        layer = tensor._keras_history.layer
        barriers.append(Barrier(layer.name, type(layer).__name__, "model output"))
        block(atoms_of[tid], f"model output of {layer.name}")

    groups, tensor_groups = collect_groups(uf, members, producers, blocked, atoms_of, reads)
    return DependencyGraph(
        model=model,
        groups=groups,
        barriers=barriers,
        nodes=nodes,
        tensor_groups=tensor_groups,
        input_ids=[str(id(t)) for t in model.inputs],
        output_ids=output_ids,
    )
