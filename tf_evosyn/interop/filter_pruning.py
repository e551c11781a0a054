"""L1-norm filter pruning (Li et al. 2017, "Pruning Filters for Efficient ConvNets"), the
structured baseline a practitioner sets against evolution, built on this project's own pieces.

Why here and not as a separate tool: a fair comparison must count what evolution counts and
shrink networks the way evolution's offspring are shrunk. So the baseline is evolution's
machinery with a different rule for who dies:

* :func:`tf_evosyn.evolvable` gives the masks (``set_masks``), so a pruned filter is a dead
  cluster exactly like one evolution killed;
* :func:`tf_evosyn.graph.coupling.plan_coupling` gives the coupled channel groups: channels
  joined by residual additions (or depthwise channels) are one unit, kept or removed whole; a
  group that may not die (classifier outputs, barriers) is never pruned;
* the kernel rows that read a pruned group die with it (as in
  :mod:`tf_evosyn.synthesis.offspring`), so :func:`tf_evosyn.compact` removes the filter exactly
  even where BatchNorm turns a dead channel into a constant;
* MACs are the project's count (:func:`tf_evosyn.hardware.flops.count_flops`) of the compacted
  network, the lineage's ``flops`` field.

The rule (Li et al., section 3.1): in every prunable layer rank the filters by the L1 norm of
their kernel, sum |w| over all weights feeding the output channel, and remove the ``m`` smallest,
``m = floor(fraction x living filters)``, keeping at least one. Ties go to the lower channel
index, so the result is deterministic. A coupled group's norm is the sum of its members' norms
(the L1 norm of every kernel weight removing the channel removes).

Li et al. prune ResNet-56 only in the first convolution of each residual block (the layers that
feed no addition) and skip layers they found sensitive: ``skip_coupled=True`` (the default) keeps
every group with more than one producing layer, i.e. the residual streams (and depthwise
channels); ``skip_layers`` leaves named layers alone (:data:`LI_RESNET56_SENSITIVE` holds their
ResNet-56 choices). Only convolutions are pruned unless ``include_dense=True``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.convert import evolvable
from tf_evosyn.core.heredity import cluster_strengths
from tf_evosyn.core.layers import EvolvableMixin, evolvable_layers
from tf_evosyn.graph.coupling import CouplingPlan, plan_coupling, set_group
from tf_evosyn.hardware.flops import count_flops

_CONV_TYPES = (
    keras.layers.Conv1D,  # Conv1DTranspose too
    keras.layers.Conv2D,  # Conv2DTranspose too
    keras.layers.Conv3D,  # Conv3DTranspose too
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)
# Li et al.'s sensitive ResNet-56 layers (their conv index i: 1 = the stem, 2b and 2b + 1 = the
# convolutions of block b) under this project's layer names (tf_evosyn/models/resnet_cifar.py).
# "A": 16, 20, 38, 54 skipped, 10% pruned elsewhere; "B": 16, 18, 20, 34, 38, 54 skipped.
LI_RESNET56_SENSITIVE = {
    "A": (
        "stage1_block8_conv1",
        "stage2_block1_conv1",
        "stage3_block1_conv1",
        "stage3_block9_conv1",
    ),
    "B": (
        "stage1_block8_conv1",
        "stage1_block9_conv1",
        "stage2_block1_conv1",
        "stage2_block8_conv1",
        "stage3_block1_conv1",
        "stage3_block9_conv1",
    ),
}
_EPS = 1e-9  # k / n times n must floor to k despite float rounding


@dataclass(frozen=True)
class PrunableFamily:
    """Groups pruned together at one fraction: those of one layer, or of one coupled family."""

    layers: tuple[str, ...]
    groups: tuple[int, ...]  # living group indices, weakest first (L1 norm, then index)
    norms: tuple[float, ...]

    def count(self, fraction: float) -> int:
        """Groups ``fraction`` removes: floor(fraction x living), at least one kept."""
        return min(int(math.floor(fraction * len(self.groups) + _EPS)), len(self.groups) - 1)


@dataclass
class FilterPruning:
    """A pruned network: its masked evolvable model, the compacted one, and what it costs."""

    masked: keras.Model  # evolvable, pruned filters dead (synapses reading them too)
    compacted: keras.Model  # plain Keras, pruned filters physically gone
    fraction: float | None  # the uniform fraction (None: per-layer fractions)
    removed: dict[str, list[int]]  # layer -> pruned output channels
    macs: int  # of the compacted network (the lineage's "flops")
    params: int  # of the compacted network
    base_macs: int  # of the unpruned network, compacted
    base_params: int
    families: list[PrunableFamily] = field(default_factory=list, repr=False)

    @property
    def macs_fraction(self) -> float:
        return self.macs / self.base_macs if self.base_macs else 1.0


def _check_fraction(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"{what}={value}: a fraction of filters to prune must be in [0, 1), e.g. 0.1 prunes "
            "10% of each layer's filters (1 would remove every filter; one is always kept)."
        )
    return value


def filter_l1_norms(model: keras.Model) -> dict[str, np.ndarray]:
    """Per evolvable layer, the L1 norm of each output channel's living kernel weights."""
    return {
        layer.name: cluster_strengths(layer.matrix_kernel().numpy(), layer.living_synapse_mask())
        for layer in evolvable_layers(model)
    }


def prunable_families(
    model: keras.Model,
    plan: CouplingPlan | None = None,
    *,
    skip_coupled: bool = True,
    skip_layers: Iterable[str] = (),
    include_dense: bool = False,
) -> list[PrunableFamily]:
    """What filter pruning may remove in an evolvable ``model``, weakest first per family."""
    plan = plan or plan_coupling(model)
    layers = {layer.name: layer for layer in evolvable_layers(model)}
    skip = set(skip_layers)
    unknown = sorted(skip - set(layers))
    if unknown:
        raise ValueError(
            f"skip_layers names {unknown}, not evolvable layers of {model.name}; "
            f"use names from {sorted(layers)}."
        )
    norms = filter_l1_norms(model)
    alive = {name: layer.living_cluster_mask() for name, layer in layers.items()}
    members: dict[tuple[str, ...], list[tuple[float, int]]] = {}
    for group in plan.groups:
        family = group.family
        if not group.may_die or (skip_coupled and len(family) > 1):
            continue
        if any(n in skip or not _prunable_type(layers[n], include_dense) for n in family):
            continue
        if not any(alive[name][channel] for name, channel in group.members):
            continue
        norm = float(sum(norms[name][channel] for name, channel in group.members))
        members.setdefault(family, []).append((norm, group.index))
    families = []
    for family, entries in members.items():
        if len(entries) < 2:
            continue  # one living filter: nothing to prune (the last one is always kept)
        entries.sort()  # weakest first; equal norms: the lower group (channel) index first
        families.append(
            PrunableFamily(family, tuple(g for _, g in entries), tuple(n for n, _ in entries))
        )
    return families


def _prunable_type(layer: EvolvableMixin, include_dense: bool) -> bool:
    return isinstance(layer, _CONV_TYPES) or (
        include_dense and isinstance(layer, keras.layers.Dense)
    )


class _Pruner:
    """One working copy of the model: applies a pruning (fresh weights each time) and measures
    its compacted MACs; the measures are cached by the removed counts, the networks are not (a
    caller keeps the one it will return: memory holds one extra network, not one per step)."""

    def __init__(self, model: keras.Model, **options):
        if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", False):
            raise ValueError(
                "filter pruning needs a built Sequential or Functional Keras model; build it "
                "(e.g. call it on an input) or wrap a subclassed model in keras.Model(inputs, ...)."
            )
        self.model = evolvable(model)  # an independent evolvable clone (masks kept if any)
        if not evolvable_layers(self.model):
            raise ValueError(
                f"{model.name} has no prunable layer: filter pruning removes the filters of "
                "Conv layers (and Dense units with include_dense=True); pass a model with them."
            )
        self.plan = plan_coupling(self.model)
        self.families = prunable_families(self.model, self.plan, **options)
        if not self.families:
            raise ValueError(
                f"{model.name} has no prunable filter: every group of filters is coupled, "
                "protected, skipped or a single filter. Pass skip_coupled=False to prune residual "
                "streams as whole groups, include_dense=True to prune Dense units, or leave "
                "layers out of skip_layers."
            )
        self.layers = {layer.name: layer for layer in evolvable_layers(self.model)}
        self.saved = {name: layer.get_weights() for name, layer in self.layers.items()}
        self.cache: dict[tuple[int, ...], tuple[int, int]] = {}
        self.base_macs, self.base_params = self.measure(tuple(0 for _ in self.families))

    def apply(self, counts: tuple[int, ...]) -> dict[str, list[int]]:
        """Prune the ``counts`` weakest groups of each family; returns the removed channels."""
        masks = {}
        for name, layer in self.layers.items():
            layer.set_weights(self.saved[name])  # the unpruned weights and masks
            masks[name] = (layer.living_synapse_mask(), layer.living_cluster_mask())
        removed: dict[str, list[int]] = {}
        for family, count in zip(self.families, counts, strict=True):
            for index in family.groups[:count]:
                group = self.plan.groups[index]
                for name, channel in group.members:
                    removed.setdefault(name, []).append(int(channel))
                # Its filters die, and the synapses reading it with them (the parents' masks
                # are only read to revive a group).
                set_group(group, False, self.plan, None, masks)
        for name, (synapses, clusters) in masks.items():
            self.layers[name].set_masks(synapses & clusters, clusters)
        return {name: sorted(channels) for name, channels in removed.items()}

    def measure(self, counts: tuple[int, ...]) -> tuple[int, int]:
        """(MACs, parameters) of the compacted network for ``counts``."""
        if counts not in self.cache:
            self.compacted(counts)
        return self.cache[counts]

    def compacted(self, counts: tuple[int, ...]) -> keras.Model:
        """The compacted network for ``counts``; its measures go to the cache."""
        self.apply(counts)
        compacted = compact(self.model)
        self.cache[counts] = (count_flops(compacted).total_macs, compacted.count_params())
        return compacted

    def counts(self, fraction: float) -> tuple[int, ...]:
        return tuple(family.count(fraction) for family in self.families)

    def result(
        self,
        counts: tuple[int, ...],
        fraction: float | None,
        compacted: keras.Model | None = None,
    ) -> FilterPruning:
        """The pruning ``counts``; ``compacted``: its compacted network, if already built."""
        if compacted is None:
            compacted = self.compacted(counts)
        macs, params = self.cache[counts]
        removed = self.apply(counts)  # the working copy holds this pruning's masks
        return FilterPruning(
            masked=self.model,
            compacted=compacted,
            fraction=fraction,
            removed=removed,
            macs=macs,
            params=params,
            base_macs=self.base_macs,
            base_params=self.base_params,
            families=self.families,
        )


def prune_filters(
    model: keras.Model,
    fraction: float = 0.1,
    *,
    fractions: Mapping[str, float] | None = None,
    skip_coupled: bool = True,
    skip_layers: Iterable[str] = (),
    include_dense: bool = False,
) -> FilterPruning:
    """Prune ``fraction`` of every prunable layer's filters, smallest L1 norm first.

    ``model`` (plain or evolvable) is left unchanged. ``fractions`` maps layer names to their
    own fraction (Li et al.'s per-stage rates); a coupled family takes the fraction of its first
    member named there. See the module docstring for what is prunable.
    """
    fraction = _check_fraction(fraction, "fraction")
    pruner = _Pruner(
        model, skip_coupled=skip_coupled, skip_layers=skip_layers, include_dense=include_dense
    )
    per_layer = {k: _check_fraction(v, f"fractions[{k!r}]") for k, v in (fractions or {}).items()}
    prunable = {name for family in pruner.families for name in family.layers}
    unknown = sorted(set(per_layer) - prunable)
    if unknown:
        raise ValueError(
            f"fractions names {unknown}, which are not prunable layers of {model.name} "
            f"(skipped, coupled or not convolutions); prunable: {sorted(prunable)}."
        )
    counts = []
    for family in pruner.families:
        named = [per_layer[n] for n in family.layers if n in per_layer]
        counts.append(family.count(named[0] if named else fraction))
    return pruner.result(tuple(counts), None if per_layer else fraction)


def prune_to_macs(
    model: keras.Model,
    target_macs_fraction: float,
    *,
    skip_coupled: bool = True,
    skip_layers: Iterable[str] = (),
    include_dense: bool = False,
) -> FilterPruning:
    """The least uniform L1 pruning whose compacted MACs are at most ``target_macs_fraction`` of
    the unpruned network's, e.g. an evolved offspring's MACs over its ancestor's.

    Bisection over the fractions at which some layer loses one more filter (k / n for a family
    of n filters): MACs only fall as the fraction grows, so the result is within one such step
    of the target: one step less pruning would exceed it.
    """
    target = float(target_macs_fraction)
    if not 0.0 < target <= 1.0:
        raise ValueError(
            f"target_macs_fraction={target}: pass the pruned network's MACs over the unpruned "
            "network's, in (0, 1], e.g. offspring MACs / ancestor MACs."
        )
    pruner = _Pruner(
        model, skip_coupled=skip_coupled, skip_layers=skip_layers, include_dense=include_dense
    )
    steps = sorted(
        {k / len(f.groups) for f in pruner.families for k in range(len(f.groups))}
    )  # 0 first; the last step keeps one filter per family
    budget = target * pruner.base_macs

    answer: keras.Model | None = None  # the compacted network of the last step that fit

    def fits(index: int) -> bool:
        nonlocal answer
        counts = pruner.counts(steps[index])
        compacted = pruner.compacted(counts)
        if pruner.cache[counts][0] > budget + _EPS:
            return False
        answer = compacted  # the bisection sets high = index next
        return True

    if not fits(len(steps) - 1):
        smallest = pruner.measure(pruner.counts(steps[-1]))[0] / pruner.base_macs
        raise ValueError(
            f"target_macs_fraction={target}: L1 pruning of {model.name} reaches at most "
            f"{smallest:.4f} of its MACs (one filter left per prunable layer). Pass "
            "skip_coupled=False to prune the residual streams too, fewer skip_layers, or a "
            "larger target."
        )
    low, high = 0, len(steps) - 1  # invariant: steps[high] fits
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return pruner.result(pruner.counts(steps[high]), steps[high], answer)
