"""FlopsBudget: an environment that keeps a fraction of the parent's multiply-accumulates.

A user who needs "half the FLOPs" should not have to guess factors. The expected MACs of the
offspring's evolvable layers are written in closed form from the heredity and the factors,

    E[MACs_l] = positions_l * sum_{i, c} P(input channel i lives) * P(cluster c lives) * w_ic

(``w_ic`` = kernel taps of the (i, c) pair for ``count='dense'``, the compacted network's MACs;
their expected surviving synapses for ``count='living'``), where an input channel lives when the
coupled group producing it does. So a cluster costs its own MACs *and* the MACs it causes in the
layers reading it, through coupled groups, and one factor solved by bisection over all layers
makes the expected offspring keep ``fraction`` of the parent's MACs.

``overrides`` pins single layers as in :class:`~tf_evosyn.environments.base.LayerBudget`: layer
``l``
keeps ``fraction_l`` of its clusters' cost (own plus caused MACs, weighted per cluster); the
other layers share the factor that meets the global budget given the pinned ones.

The model is needed to count, so synthesis calls :meth:`FlopsBudget.bind` with the parent before
drawing (the base environment's ``bind`` returns itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf_evosyn.core.heredity import LayerHeredity, apply_factor
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.base import EnvironmentalFactor, _check_fraction, solve_factor
from tf_evosyn.hardware.flops import count_flops

COUNTS = ("dense", "living")
_ALL = 1e9  # a factor that keeps every living cluster and synapse (probabilities >= 1/e)


@dataclass
class _LayerCost:
    """What the expected MACs of one evolvable layer depend on."""

    heredity: LayerHeredity
    positions: int
    taps: np.ndarray  # (I, C): kernel taps (dense) or living synapses' probs are used instead
    input_groups: np.ndarray  # (I,) group producing each input row, -1 = always alive
    groups: np.ndarray  # (C,) group of each output channel
    decides: np.ndarray  # (C,) bool: this layer draws the channel's group (first member)


class MacsModel:
    """Expected MACs of the offspring as a function of each layer's (cluster, synapse) factors."""

    def __init__(self, model, plan, heredities: list[LayerHeredity], count: str = "dense"):
        if count not in COUNTS:
            raise ValueError(f"count must be one of {COUNTS}, got {count!r}.")
        self.count = count
        self.plan = plan
        report = count_flops(model)
        self.layers: list[_LayerCost] = []
        decided: set[int] = set()
        for heredity in heredities:
            shape = heredity.synapse_alive.shape
            matrix = heredity.synapse_alive.reshape(-1, *shape[-2:])
            positions = report.layer(heredity.name).dense_macs // max(int(np.prod(shape)), 1)
            input_groups = np.full(shape[-2], -1)
            for group, rows in plan.reads(heredity.name):
                input_groups[rows] = group
            groups = np.asarray(plan.layer_groups[heredity.name])
            decides = np.array([int(g) not in decided for g in groups])
            decided.update(int(g) for g in groups)
            taps = np.full(shape[-2:], float(matrix.shape[0]))
            self.layers.append(
                _LayerCost(heredity, int(positions), taps, input_groups, groups, decides)
            )
        self.index = {cost.heredity.name: i for i, cost in enumerate(self.layers)}

    def group_probs(self, factors: list[tuple[float, float]]) -> np.ndarray:
        """P(group lives) for every coupled group, drawn at its first member."""
        probs = np.zeros(len(self.plan.groups))
        for cost, (cluster_factor, _) in zip(self.layers, factors, strict=True):
            heredity = cost.heredity
            p = apply_factor(heredity.cluster_probs, cluster_factor)
            if not heredity.evolve_clusters:
                p = heredity.cluster_alive.astype(np.float64)
            for channel in np.flatnonzero(cost.decides):
                group = self.plan.groups[int(cost.groups[channel])]
                alive = heredity.cluster_alive[channel]
                probs[group.index] = float(alive) if not group.may_die else p[channel] * alive
        return probs

    def layer_macs(self, factors: list[tuple[float, float]]) -> np.ndarray:
        """Expected MACs of every evolvable layer under ``factors`` (one pair per layer)."""
        group_p = self.group_probs(factors)
        out = np.zeros(len(self.layers))
        for i, (cost, (_, synapse_factor)) in enumerate(zip(self.layers, factors, strict=True)):
            inputs = np.where(cost.input_groups >= 0, group_p[cost.input_groups], 1.0)
            clusters = group_p[cost.groups] * cost.heredity.cluster_alive
            if self.count == "dense":
                pair = cost.taps
            else:
                probs = apply_factor(cost.heredity.synapse_probs, synapse_factor)
                pair = probs.reshape(-1, *probs.shape[-2:]).sum(axis=0)
            out[i] = cost.positions * float(inputs @ pair @ clusters)
        return out

    def drawn_macs(self, masks: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """MACs of every evolvable layer of a drawn offspring (``masks``: layer -> (synapses,
        clusters)), counted like the expectation: what the compacted offspring computes for
        'dense', its living synapses for 'living'."""
        group_alive = np.zeros(len(self.plan.groups))
        for name, (_, clusters) in masks.items():
            np.maximum.at(group_alive, self.plan.layer_groups[name], clusters.astype(float))
        out = np.zeros(len(self.layers))
        for i, cost in enumerate(self.layers):
            synapses, clusters = masks[cost.heredity.name]
            inputs = np.where(cost.input_groups >= 0, group_alive[cost.input_groups], 1.0)
            if self.count == "dense":
                pair = cost.taps
            else:
                pair = synapses.reshape(-1, *synapses.shape[-2:]).sum(axis=0)
            out[i] = cost.positions * float(inputs @ pair @ clusters.astype(float))
        return out

    def parent_macs(self) -> np.ndarray:
        """MACs of the parent's evolvable layers (every living cluster and synapse kept)."""
        return self.layer_macs([(_ALL, _ALL)] * len(self.layers))

    def cluster_costs(self, name: str) -> np.ndarray:
        """Parent MACs each output channel of ``name`` accounts for: its group's own MACs in every
        member layer plus the MACs of the synapses reading it."""
        parent = [(_ALL, _ALL)] * len(self.layers)
        group_p = self.group_probs(parent)
        per_group = np.zeros(len(self.plan.groups))
        for cost in self.layers:
            inputs = np.where(cost.input_groups >= 0, group_p[cost.input_groups], 1.0)
            clusters = group_p[cost.groups] * cost.heredity.cluster_alive
            if self.count == "dense":
                pair = cost.taps
            else:
                pair = cost.heredity.synapse_alive.reshape(-1, *cost.taps.shape).sum(axis=0)
            own = cost.positions * (inputs @ pair) * clusters
            np.add.at(per_group, cost.groups, own)
            caused = cost.positions * (pair @ clusters)
            read = cost.input_groups >= 0
            np.add.at(per_group, cost.input_groups[read], caused[read])
        return per_group[self.layers[self.index[name]].groups]


class FlopsBudget(EnvironmentalFactor):
    """Resource target: the expected offspring keeps ``fraction`` of the parent's MACs.

    Args:
      fraction: share of the parent's evolvable-layer MACs the expected offspring keeps.
      count: 'dense' counts the compacted network's MACs (whole clusters and input channels; the
        solved factor applies to clusters and ``synapse_factor`` stays constant); 'living' counts
        living synapses (the same solved factor applies to clusters and synapses).
      synapse_factor: the constant synapse factor for ``count='dense'``; above 1 it is generous
        (probabilities clip at 1), which slows the loss of synapses that MACs do not count.
      max_factor: > 1 lets the environment be generous (probabilities clip at 1).
      overrides: layer name -> {"fraction": f}: that layer keeps ``f`` of its clusters' cost.
      retry_relief: a re-draw ``k`` keeps ``fraction ** ((1 - retry_relief) ** k)``.
    """

    def __init__(
        self,
        fraction: float = 0.5,
        count: str = "dense",
        synapse_factor: float = 1.0,
        max_factor: float = 10.0,
        overrides: dict[str, dict[str, float]] | None = None,
        retry_relief: float = 0.0,
    ):
        self.fraction = _check_fraction("fraction", fraction)
        if count not in COUNTS:
            raise ValueError(f"count must be one of {COUNTS}, got {count!r}.")
        self.count = count
        if max_factor < 1.0:
            raise ValueError(f"max_factor must be >= 1, got {max_factor}.")
        self.max_factor = float(max_factor)
        if not 0.0 < float(synapse_factor) <= self.max_factor:
            raise ValueError(
                f"synapse_factor must be in (0, max_factor={self.max_factor}], got "
                f"{synapse_factor}."
            )
        self.synapse_factor = float(synapse_factor)
        if not 0.0 <= retry_relief < 1.0:
            raise ValueError(f"retry_relief must be in [0, 1), got {retry_relief}.")
        self.retry_relief = float(retry_relief)
        self.overrides: dict[str, dict[str, float]] = {}
        for layer_name, values in dict(overrides or {}).items():
            if set(values) != {"fraction"}:
                raise ValueError(
                    f"overrides[{layer_name!r}] must be {{'fraction': f}}, got {dict(values)!r}."
                )
            self.overrides[str(layer_name)] = {
                "fraction": _check_fraction(
                    f"overrides[{layer_name!r}].fraction", values["fraction"]
                )
            }

    def _pair(self, factor: float) -> tuple[float, float]:
        return factor, (self.synapse_factor if self.count == "dense" else factor)

    def layer_factors(self, layer, parent_synapses):
        raise RuntimeError(
            "FlopsBudget counts MACs over the whole model: call bind(model, plan, heredities) "
            "first (tf_evosyn.synthesize does)."
        )

    def solve(self, macs: MacsModel) -> dict[str, tuple[float, float]]:
        """Factors per layer: overridden layers first, then one shared factor for the rest."""
        names = [cost.heredity.name for cost in macs.layers]
        unknown = sorted(set(self.overrides) - set(names))
        if unknown:
            raise ValueError(f"overrides name unknown evolvable layers {unknown}; known: {names}.")
        pinned: dict[str, tuple[float, float]] = {}
        for name, values in self.overrides.items():
            heredity = macs.layers[macs.index[name]].heredity
            weights = macs.cluster_costs(name)
            target = values["fraction"] * float((weights * heredity.cluster_alive).sum())
            factor = solve_factor(
                lambda f, h=heredity, w=weights: float(
                    (apply_factor(h.cluster_probs, f) * w).sum()
                ),
                target,
                self.max_factor,
            )
            pinned[name] = self._pair(factor)
        target = self.fraction * float(macs.parent_macs().sum())

        def factors_for(f: float) -> list[tuple[float, float]]:
            return [pinned.get(name, self._pair(f)) for name in names]

        shared = solve_factor(
            lambda f: float(macs.layer_macs(factors_for(f)).sum()), target, self.max_factor
        )
        return dict(zip(names, factors_for(shared), strict=True))

    def check_model(self, model) -> None:
        what = "flops_budgets (FlopsBudget overrides)"
        environment_lib.check_layer_names(what, self.overrides, model)

    def bind(self, model, plan, heredities) -> EnvironmentalFactor:
        return SolvedFactors(self, self.solve(MacsModel(model, plan, heredities, self.count)))

    def for_attempt(self, attempt: int) -> FlopsBudget:
        if attempt <= 0 or self.retry_relief == 0.0:
            return self
        exponent = (1.0 - self.retry_relief) ** int(attempt)
        return FlopsBudget(
            self.fraction**exponent,
            self.count,
            self.synapse_factor,
            self.max_factor,
            {name: {"fraction": v["fraction"] ** exponent} for name, v in self.overrides.items()},
            self.retry_relief,
        )

    def get_config(self):
        return {
            "fraction": self.fraction,
            "count": self.count,
            "synapse_factor": self.synapse_factor,
            "max_factor": self.max_factor,
            "overrides": {name: dict(values) for name, values in self.overrides.items()},
            "retry_relief": self.retry_relief,
        }


class SolvedFactors(EnvironmentalFactor):
    """A model-wide environment bound to one parent: its factors, solved once per layer."""

    def __init__(self, source: EnvironmentalFactor, factors: dict[str, tuple[float, float]]):
        self.source = source
        self.solved = dict(factors)

    def layer_factors(self, layer, parent_synapses):
        del parent_synapses
        return self.solved[layer.name]

    def adjust_masks(self, model, plan, heredities, masks, rng=None):
        self.source.adjust_masks(model, plan, heredities, masks, rng)

    def get_config(self):
        return self.source.get_config()


environment_lib.register(FlopsBudget)
