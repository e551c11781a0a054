"""What the channel analysis (:func:`tf_evosyn.graph.dependency.analyze`) returns: coupled channel
groups with their members and readers, the barriers, and the model's calls in topological order
(which compaction replays), plus a human-readable summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tf_evosyn._keras import keras


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
