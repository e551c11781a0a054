"""Land on the stop target: ease the draw that would overshoot it.

Why: a run told to stop at 14x fewer clusters (``evolution.stop_at``) takes its last step at the
environment's full pressure, so it overshoots by whatever that step removes. Measured with
ReLU LeNet-5 on MNIST (configs/lenet5_relu_mnist.py, seeds 0-2, same config): lineages whose
last step ended at 41 clusters (14.15x) reached 99.00-99.05% test after the final fine-tuning;
lineages whose last step jumped from 43 or 47 clusters to 36-37 (15.7-16.1x) ended at
98.91-98.92%. A user who asked for 14x wants 14x at the best accuracy, not 16x at less.

:class:`TargetLanding` wraps an environment that can ease its pressure
(:meth:`EnvironmentalFactor.eased`: fractions to the power ``e``, 0 = keep everything, 1 =
unchanged; :class:`~tf_evosyn.environments.base.LayerBudget` does) and, for each draw, computes
the offspring's expected living clusters and synapses from the parent's heredity
(:func:`~tf_evosyn.core.heredity.expected_survivors`). If they fall below the totals the stop
target needs, the draw uses the largest ``e`` whose expected offspring keeps at least them, so
the lineage reaches the target in expectation instead of jumping past it; a draw that lands just
short is followed by one more small step. Draws that do not reach the totals are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from tf_evosyn.core.heredity import LayerHeredity, expected_survivors
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.base import EnvironmentalFactor

_BISECTION_STEPS = 14  # exponent resolution 2**-14: a fraction of a cluster in LeNet-5


def landing_totals(stop_at: Mapping[str, float], ancestor: Mapping) -> tuple[int, int]:
    """(clusters, synapses) an offspring may go down to and still stop at ``stop_at`` (0 = no
    target): the most that reaches each efficiency target against the ``ancestor`` record."""
    clusters = stop_at.get("cluster_efficiency", 0)
    synapses = stop_at.get("synaptic_efficiency", 0)
    return (
        math.floor(ancestor["clusters"] / clusters) if clusters else 0,
        math.floor(ancestor["synapses"] / synapses) if synapses else 0,
    )


def expected_totals(
    environment: EnvironmentalFactor, heredities: Sequence[LayerHeredity]
) -> tuple[float, float]:
    """Expected living (clusters, synapses) of an offspring drawn under a bound environment."""
    clusters = synapses = 0.0
    for layer in heredities:
        factors = environment.layer_factors(layer, int(layer.synapse_alive.sum()))
        layer_synapses, layer_clusters = expected_survivors(layer, *factors)
        clusters += layer_clusters
        synapses += layer_synapses
    return clusters, synapses


class TargetLanding(EnvironmentalFactor):
    """Any easable environment, eased so an expected offspring keeps at least ``min_clusters``
    living clusters and ``min_synapses`` living synapses (0 = no minimum).

    Args:
      base: the environment that sets the factors (serialised form or instance).
      min_clusters / min_synapses: the totals of the stop target (:func:`landing_totals`).
    """

    def __init__(self, base=None, min_clusters: int = 0, min_synapses: int = 0):
        self.base = environment_lib.get(base)
        if min(min_clusters, min_synapses) < 0:
            raise ValueError("min_clusters and min_synapses must be >= 0 (0 = no minimum).")
        self.min_clusters = int(min_clusters)
        self.min_synapses = int(min_synapses)
        self.base.eased(1.0)  # an environment that cannot ease says so now, not at a draw

    def check_model(self, model) -> None:
        self.base.check_model(model)

    def layer_factors(self, layer, parent_synapses):
        return self.base.layer_factors(layer, parent_synapses)

    def for_attempt(self, attempt):
        return TargetLanding(self.base.for_attempt(attempt), self.min_clusters, self.min_synapses)

    def eased(self, exponent):
        return TargetLanding(self.base.eased(exponent), self.min_clusters, self.min_synapses)

    def adjust_masks(self, model, plan, heredities, masks, rng=None):
        self.base.adjust_masks(model, plan, heredities, masks, rng)

    def bind(self, model, plan, heredities):
        # A total the parent already reached constrains nothing (else the lineage stalls).
        parent_clusters = sum(int(h.cluster_alive.sum()) for h in heredities)
        parent_synapses = sum(int(h.synapse_alive.sum()) for h in heredities)
        min_clusters = self.min_clusters if parent_clusters > self.min_clusters else 0
        min_synapses = self.min_synapses if parent_synapses > self.min_synapses else 0

        def keeps_enough(exponent: float) -> tuple[bool, EnvironmentalFactor]:
            bound = self.base.eased(exponent).bind(model, plan, heredities)
            clusters, synapses = expected_totals(bound, heredities)
            return clusters >= min_clusters and synapses >= min_synapses, bound

        enough, bound = keeps_enough(1.0)
        if enough:
            return bound
        low, high = 0.0, 1.0  # keeps_enough(low) holds (nothing lost), keeps_enough(high) not
        best = self.base.eased(0.0).bind(model, plan, heredities)
        for _ in range(_BISECTION_STEPS):
            middle = (low + high) / 2
            enough, candidate = keeps_enough(middle)
            if enough:
                low, best = middle, candidate
            else:
                high = middle
        return best

    def get_config(self):
        return {
            "base": environment_lib.serialize(self.base),
            "min_clusters": self.min_clusters,
            "min_synapses": self.min_synapses,
        }


environment_lib.register(TargetLanding)
