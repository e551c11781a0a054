"""Coupled cluster groups for synthesis: evolution in groups.

Clusters whose channels must stay aligned (the inputs of an ``Add``, a residual stage, the
channels of a ``DepthwiseConv2D``) live or die together, so synthesis draws one decision per
coupled group (see :mod:`tf_evosyn.graph.dependency`). This module turns the dependency graph into
what
synthesis needs:

* per evolvable layer, the group of each output channel;
* per group, the evolvable layers that read it and at which kernel input rows (a dead group
  kills those synapses: they would only ever read zeros or a constant);
* whether a group may die (every producer is an evolvable, unprotected cluster, it is not a
  model output and no barrier pins it), and whether all of its readers are known (so an
  unread group may die too).

Group heredity generalises the per-layer formula: a group's strength is the mean over its
members of ``s_c / Z_l`` (each member normalised by its own layer's strongest cluster, so layers
with different weight scales count alike), and ``P(g) = exp(r_g / max r - 1)`` with the maximum
taken over the groups owned by the same set of layers (its *family*). For an uncoupled layer this
is exactly ``exp(s_c / Z_l - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.heredity import LayerHeredity
from tf_evosyn.core.layers import evolvable_layers
from tf_evosyn.graph.dependency import PRODUCER, analyze


@dataclass
class ClusterGroup:
    """One coupled group of evolvable clusters."""

    index: int
    members: list[tuple[str, int]] = field(default_factory=list)  # (evolvable layer, channel)
    readers: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (layer, kernel rows)
    may_die: bool = True
    readers_known: bool = True

    @property
    def family(self) -> tuple[str, ...]:
        return tuple(sorted({name for name, _ in self.members}))


@dataclass
class CouplingPlan:
    """Groups of a model's evolvable clusters, and which group each output channel is in."""

    groups: list[ClusterGroup]
    layer_groups: dict[str, np.ndarray]  # layer name -> group index of each output channel
    _reads: dict[str, list[tuple[int, np.ndarray]]] | None = field(default=None, repr=False)

    def reads(self, layer_name: str) -> list[tuple[int, np.ndarray]]:
        """(group, kernel input rows) for every group ``layer_name`` reads."""
        if self._reads is None:  # indexed once: synthesis asks for every layer
            self._reads = {}
            for group in self.groups:
                for reader, rows in group.readers:
                    self._reads.setdefault(reader, []).append((group.index, rows))
        return self._reads.get(layer_name, [])

    def coupled_groups(self) -> list[ClusterGroup]:
        """Groups with members in more than one layer."""
        return [group for group in self.groups if len(group.family) > 1]


def plan_coupling(model: keras.Model) -> CouplingPlan:
    """The coupled cluster groups of an evolvable Sequential/Functional model."""
    graph = analyze(model)
    evolvable = {layer.name: layer for layer in evolvable_layers(model)}
    output_groups = {int(g) for tid in graph.output_ids for g in graph.tensor_groups[tid]}
    groups: list[ClusterGroup] = []
    layer_groups = {name: np.full(layer.num_clusters, -1) for name, layer in evolvable.items()}
    kinds = {node.layer.name: node.kind for node in graph.nodes}
    for dependency_group in graph.groups:
        members = [(n, c) for n, c in dependency_group.producers if n in evolvable]
        if not members:
            continue
        group = ClusterGroup(len(groups), members)
        unprotected = all(evolvable[n].evolve_clusters for n, _ in members)
        # A group that compaction could not remove (a barrier such as a cross-channel LRN
        # reads it) never dies: its dead channels would stay in the compacted model.
        group.may_die = (
            len(members) == len(dependency_group.producers)
            and unprotected
            and dependency_group.index not in output_groups
            and dependency_group.removable
        )
        group.readers_known = dependency_group.removable
        for consumer in dependency_group.consumers:
            if kinds.get(consumer.layer_name) != PRODUCER:
                continue  # pass-through layers: their own readers are listed as well
            if consumer.layer_name in evolvable:
                reader = evolvable[consumer.layer_name]  # input channels -> kernel rows
                group.readers.append((consumer.layer_name, reader.kernel_rows(consumer.indices)))
            else:
                group.readers_known = False  # a plain layer reads it with living weights
        for name, channel in members:
            layer_groups[name][channel] = group.index
        groups.append(group)
    for name, assigned in layer_groups.items():
        if (assigned < 0).any():  # not analysable (e.g. a shared layer): its own groups
            for channel in np.flatnonzero(assigned < 0):
                group = ClusterGroup(len(groups), [(name, int(channel))], readers_known=False)
                group.may_die = evolvable[name].evolve_clusters
                assigned[channel] = group.index
                groups.append(group)
    return CouplingPlan(groups, layer_groups)


def group_cluster_probs(
    plan: CouplingPlan, heredities: list[LayerHeredity], sharpness: float = 1.0
) -> dict[str, np.ndarray]:
    """Cluster heredity per layer with one probability per coupled group (module docstring).

    ``sharpness`` is the heredity family's cluster gamma, the one the layers' probabilities were
    made with: a group gets exp(gamma (r_g / max r - 1)) as a single layer's cluster does.
    """
    by_name = {h.name: h for h in heredities}
    ratio = np.zeros(len(plan.groups))
    alive = np.zeros(len(plan.groups), dtype=bool)
    for group in plan.groups:
        values = []
        for name, channel in group.members:
            heredity = by_name[name]
            if heredity.cluster_alive[channel]:
                values.append(_strength_ratio(heredity, sharpness)[channel])
        alive[group.index] = bool(values)
        ratio[group.index] = float(np.mean(values)) if values else 0.0
    probs = np.zeros(len(plan.groups))
    families: dict[tuple[str, ...], list[int]] = {}
    for group in plan.groups:
        families.setdefault(group.family, []).append(group.index)
    for indices in families.values():
        indices = np.asarray(indices)
        living = indices[alive[indices]]
        peak = ratio[living].max() if living.size else 0.0
        if peak > 0:
            probs[living] = np.exp(sharpness * (ratio[living] / peak - 1.0))
        else:
            probs[living] = np.exp(-sharpness)  # all-zero weights: every group equally weak
    for group in plan.groups:
        if not group.may_die and alive[group.index]:
            probs[group.index] = 1.0
    return {
        name: np.where(by_name[name].cluster_alive, probs[groups], 0.0)
        for name, groups in plan.layer_groups.items()
    }


def _strength_ratio(heredity: LayerHeredity, sharpness: float = 1.0) -> np.ndarray:
    """s_c / Z_l from the layer's cluster heredity: P = exp(gamma (s/Z - 1)), so
    s/Z = log(P) / gamma + 1 for living clusters."""
    with np.errstate(divide="ignore"):
        ratio = np.log(heredity.cluster_probs) / float(sharpness) + 1.0
        return np.where(heredity.cluster_alive, ratio, 0.0)


# Mask operations on a plan's groups: alignment, cluster floors and L1 filter pruning kill and
# revive whole groups through these.


def group_alive(group, cluster_mask) -> bool:
    """Does any member channel of ``group`` live under ``cluster_mask`` (layer name -> mask)?"""
    return any(bool(cluster_mask(name)[channel]) for name, channel in group.members)


def group_strength(group, by_name) -> float:
    """The group's heredity: its strongest member cluster's probability (revival order)."""
    return max(float(by_name[name].cluster_probs[channel]) for name, channel in group.members)


def _input_alive(name: str, plan, masks) -> np.ndarray:
    """(I,) bool: False where ``name`` reads a group whose clusters are all dead."""
    alive = np.ones(masks[name][0].shape[-2], dtype=bool)
    for group_index, rows in plan.reads(name):
        group = plan.groups[group_index]
        if not any(masks[n][1][c] for n, c in group.members):
            alive[rows] = False
    return alive


def set_group(group, alive: bool, plan, by_name, masks) -> None:
    """Kill or revive ``group`` with its own synapses and the synapses reading it.

    ``by_name`` (layer name -> the parent's Heredity) says what a revived group may get back;
    killing needs no parent, so it may be None then.
    """
    if alive and by_name is None:
        raise ValueError("Reviving a group needs the parents' heredities (by_name), not None.")
    for name, channel in group.members:
        synapses, clusters = (m.copy() for m in masks[name])
        clusters[channel] = alive and bool(by_name[name].cluster_alive[channel])
        if alive:
            parent = by_name[name].synapse_alive[..., channel]
            synapses[..., channel] = parent & _input_alive(name, plan, masks)
        else:
            synapses[..., channel] = False
        masks[name] = (synapses, clusters)
    for reader, rows in group.readers:
        synapses, clusters = (m.copy() for m in masks[reader])
        if alive:
            parent = by_name[reader].synapse_alive[..., rows, :]
            synapses[..., rows, :] = parent & clusters
        else:
            synapses[..., rows, :] = False
        masks[reader] = (synapses, clusters)
