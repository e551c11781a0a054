"""Channel dependencies of a Keras model (DepGraph-style), so channels can be removed legally.

A channel cannot always be removed on its own: the two inputs of an ``Add`` must keep the same
channels, a ``DepthwiseConv2D`` output channel lives and dies with its input channel, and a
``Concatenate`` shifts the channels of its later inputs. :func:`analyze` walks the model's graph
once and groups the output channels of the layers that own channels (Conv2D, grouped Conv2D,
Dense, SeparableConv2D, DepthwiseConv2D and their evolvable twins; rules in
:mod:`tf_evosyn.conv_kinds`) into coupled groups: the channels of one group must live or die
together. For each group it records the (layer, channel) members and every layer
that reads it, with the input positions it reads (a Dense after a channels-last ``Flatten``
reads channel ``c`` at rows ``c, c + C, c + 2C, ...``).

Anything the analysis does not understand is a barrier: channels that flow into it are never
removable, and are listed in ``graph.barriers``; channels it emits are opaque (not removable).
Model inputs and outputs are never removable either (a classifier keeps its classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.conv_kinds import (
    BINARY_OPS,
    CONV_TYPES,
    DENSE_TYPES,
    DEPTHWISE_TYPES,
    GROUPED,
    RESHAPE,
    SEPARABLE_TYPES,
    exact_type,
    grouped_atoms,
    is_tf_elementwise_op,
    reshape_keeps_channels,
    tf_op_operands,
)
from tf_evosyn.layers import EvolvableMixin
from tf_evosyn.models.lrn import CrossChannelLRN, WithinChannelLRN
from tf_evosyn.models.shortcut import PadShortcut

# Layer kinds, as the analysis (and compaction) treat them.
INPUT = "input"
PRODUCER = "producer"  # Conv2D/Dense: new output channels, reads all input channels
DEPTHWISE = "depthwise"  # output channel c*m+j is tied to input channel c
BATCHNORM = "batchnorm"  # per-channel affine, channels pass through
ELEMENTWISE = "elementwise"  # activations, dropout, noise: channel-wise maps
SPATIAL = "spatial"  # pooling, padding, cropping, upsampling: channel-wise, spatial change
FLATTEN = "flatten"  # channels_last flatten: flat index i is channel i % C
MERGE = "merge"  # Add/Subtract/Multiply/Average/Maximum/Minimum: channel-by-channel coupling
CONCAT = "concat"  # Concatenate: offsets on the channel axis, coupling on any other axis
SCATTER = "scatter"  # PadShortcut: input channel i -> output channel positions[i], rest zeros
BARRIER = "barrier"

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
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
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
    """Conv2D/Dense/SeparableConv2D (plain, exact type, or evolvable): owns channels, reads
    every input channel. Exact types only: Conv2DTranspose ... subclass Conv2D with other layouts.
    """
    return layer_kind(layer)[0] == PRODUCER


def layer_kind(layer: keras.layers.Layer) -> tuple[str, str]:
    """(kind, reason): how the analysis treats ``layer``; reason explains a barrier."""
    name = type(layer).__name__
    if isinstance(layer, keras.layers.InputLayer):
        return INPUT, ""
    if exact_type(layer, CONV_TYPES + DENSE_TYPES + SEPARABLE_TYPES + DEPTHWISE_TYPES):
        if not _channels_last(layer):
            return BARRIER, "channels_first is not supported"
        if exact_type(layer, DEPTHWISE_TYPES):
            return DEPTHWISE, ""
        return (GROUPED if getattr(layer, "groups", 1) != 1 else PRODUCER), ""
    if type(layer) is keras.layers.BatchNormalization:
        return BATCHNORM, ""  # the node loop checks that it normalises the channel axis
    if type(layer) is keras.layers.Activation:
        if activation_name(layer) in ELEMENTWISE_ACTIVATIONS:
            return ELEMENTWISE, ""
        return BARRIER, f"activation {activation_name(layer)!r} is not known to be element-wise"
    if isinstance(layer, _ELEMENTWISE_TYPES) or is_tf_elementwise_op(layer):
        return ELEMENTWISE, ""  # a TF op also needs scalar other operands (see analyze)
    if type(layer) is keras.layers.Reshape:
        return RESHAPE, ""  # if it keeps the channel axis (see analyze)
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


@dataclass(frozen=True)
class Barrier:
    """A place where channels stop being removable, and why."""

    layer_name: str
    layer_type: str
    reason: str


@dataclass
class Consumer:
    """Layer ``layer_name`` reads the group at ``indices`` of the last axis of input
    ``input_index`` (several indices for a Flatten, a repeated Concatenate, ...)."""

    layer_name: str
    input_index: int
    indices: np.ndarray


@dataclass
class ChannelGroup:
    """Channels that must live or die together.

    ``members``: every (layer, output channel) in the group. ``producers``: the members whose
    cluster decides whether the group is alive (Conv2D/Dense; a DepthwiseConv2D channel only
    follows its input). ``removable``: removing the group is legal for the model's structure;
    ``reasons`` says why not otherwise.
    """

    index: int
    members: list[tuple[str, int]] = field(default_factory=list)
    producers: list[tuple[str, int]] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    removable: bool = True
    reasons: list[str] = field(default_factory=list)


@dataclass
class NodeInfo:
    """One call of a layer in the model, in topological order (tensor ids as Keras keys them)."""

    layer: keras.layers.Layer
    kind: str
    input_ids: list[str]
    output_ids: list[str]
    input_shapes: list[tuple]
    call_args: tuple
    call_kwargs: dict


@dataclass
class DependencyGraph:
    """Result of :func:`analyze`. ``tensor_groups[tensor_id][i]`` is the group of channel ``i``
    (last axis position) of that tensor; compaction replays ``nodes`` with it."""

    model: keras.Model
    groups: list[ChannelGroup]
    barriers: list[Barrier]
    nodes: list[NodeInfo]
    tensor_groups: dict[str, np.ndarray]
    input_ids: list[str]
    output_ids: list[str]
    _owners: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)

    def group_of(self, layer_name: str, channel: int) -> ChannelGroup:
        """The group that owns output channel ``channel`` of ``layer_name``."""
        if not self._owners:
            for group in self.groups:
                for member in group.members:
                    self._owners[member] = group.index
        try:
            return self.groups[self._owners[(layer_name, int(channel))]]
        except KeyError:
            raise KeyError(f"{layer_name}:{channel} owns no channel group") from None

    def layer_output_groups(self, layer_name: str) -> np.ndarray:
        for node in self.nodes:
            if node.layer.name == layer_name:
                return self.tensor_groups[node.output_ids[0]]
        raise KeyError(layer_name)

    def layer_input_groups(self, layer_name: str) -> list[np.ndarray]:
        for node in self.nodes:
            if node.layer.name == layer_name:
                return [self.tensor_groups[i] for i in node.input_ids]
        raise KeyError(layer_name)

    def describe(self) -> str:
        """Human-readable summary: channel groups by the layers that own them, and barriers."""
        removable = sum(g.removable for g in self.groups)
        lines = [
            f"Channel dependency graph of {self.model.name}: {len(self.groups)} groups, "
            f"{removable} removable, {len(self.barriers)} barriers"
        ]
        patterns: dict[tuple, list[ChannelGroup]] = {}
        for group in self.groups:
            if group.members:
                owners = tuple(sorted({layer for layer, _ in group.members}))
                patterns.setdefault(owners, []).append(group)
        lines.append("  channel groups by owning layers (removable/total):")
        for owners, groups in patterns.items():
            ok = sum(g.removable for g in groups)
            line = f"    {' + '.join(owners)}: {ok}/{len(groups)}"
            if len(owners) > 1:
                example = groups[0]
                members = ", ".join(f"{layer}:{channel}" for layer, channel in example.members)
                readers = ", ".join(sorted({c.layer_name for c in example.consumers}))
                line += f" coupled, e.g. [{members}] read by {readers or '-'}"
            lines.append(line)
        reasons: dict[str, int] = {}
        for group in self.groups:
            if group.members and not group.removable:
                for reason in group.reasons:
                    reasons[reason] = reasons.get(reason, 0) + 1
        if reasons:
            lines.append("  why groups are kept (groups):")
            lines.extend(f"    {reason} ({count})" for reason, count in reasons.items())
        if self.barriers:
            lines.append("  barriers:")
            for barrier in self.barriers:
                lines.append(f"    {barrier.layer_name} ({barrier.layer_type}): {barrier.reason}")
        return "\n".join(lines)


class _UnionFind:
    def __init__(self):
        self.parent: list[int] = []

    def new(self, count: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        return np.arange(start, start + count)

    def find(self, atom: int) -> int:
        root = atom
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[atom] != root:
            self.parent[atom], atom = root, self.parent[atom]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


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
    uf = _UnionFind()
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
            if len(inputs) != 1:
                kind, reason = BARRIER, f"{len(inputs)} inputs where one is expected"
        if kind in (MERGE, CONCAT) and len(inputs) < 2:
            kind, reason = BARRIER, "merge of fewer than two inputs"
        if kind == RESHAPE and not reshape_keeps_channels(
            tuple(in_tensors[0].shape), tuple(outputs[0].shape)
        ):
            kind, reason = BARRIER, "Reshape that changes the channel axis"
        if kind == FLATTEN and any(d is None for d in in_tensors[0].shape[1:]):
            kind, reason = BARRIER, "Flatten of a tensor with unknown dimensions"
        if kind == MERGE and len({len(a) for a in inputs}) != 1:
            kind, reason = BARRIER, "broadcasting merge (different channel counts)"
        if kind == BATCHNORM:
            rank = in_tensors[0].shape.rank
            if [int(a) % rank for a in np.ravel(layer.axis)] != [rank - 1]:
                kind, reason = BARRIER, f"normalises axis {layer.axis}, not the channel axis"
        if kind == CONCAT:
            ranks = {t.shape.rank for t in in_tensors}
            if len(ranks) != 1:
                kind, reason = BARRIER, "Concatenate of tensors of different ranks"

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
            if kind == GROUPED:  # a group's inputs and outputs live or die together
                for a, b in grouped_atoms(layer.groups, inputs[0], atoms_of[out_id]):
                    uf.union(a, b)
        elif kind == DEPTHWISE:
            multiplier = int(layer.depth_multiplier)
            atoms = np.repeat(inputs[0], multiplier)
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

    # Number the groups by first appearance of their root atom.
    group_index: dict[int, int] = {}
    groups: list[ChannelGroup] = []

    def group_for(atom: int) -> int:
        root = uf.find(int(atom))
        if root not in group_index:
            group_index[root] = len(groups)
            groups.append(ChannelGroup(len(groups)))
        return group_index[root]

    atom_group = np.empty(len(uf.parent), dtype=np.int64)  # looked up once per atom
    for atom in range(len(uf.parent)):
        atom_group[atom] = group_for(atom)
        group = groups[atom_group[atom]]
        group.members.extend(members.get(atom, []))
        group.producers.extend(producers.get(atom, []))
        for why in blocked.get(atom, []):
            if why not in group.reasons:
                group.reasons.append(why)
    tensor_groups = {
        tid: atom_group[np.asarray(atoms, dtype=np.int64)] for tid, atoms in atoms_of.items()
    }
    consumers: dict[tuple[int, str, int], list[np.ndarray]] = {}
    for layer_name, input_index, atoms in reads:
        positions = atom_group[np.asarray(atoms, dtype=np.int64)]
        order = np.argsort(positions, kind="stable")
        gids, starts = np.unique(positions[order], return_index=True)
        for gid, chunk in zip(gids, np.split(order, starts[1:]), strict=True):
            consumers.setdefault((int(gid), layer_name, input_index), []).append(chunk)
    for (gid, layer_name, input_index), index_lists in consumers.items():
        indices = np.unique(np.concatenate(index_lists))
        groups[gid].consumers.append(Consumer(layer_name, input_index, indices))
    for group in groups:
        group.members.sort(key=lambda m: (m[0], m[1]))
        if not group.producers and not group.reasons:
            group.reasons.append("no Conv2D/Dense channel decides its life")
        group.removable = not group.reasons
    return DependencyGraph(
        model=model,
        groups=groups,
        barriers=barriers,
        nodes=nodes,
        tensor_groups=tensor_groups,
        input_ids=[str(id(t)) for t in model.inputs],
        output_ids=output_ids,
    )
