"""Cluster floors: never let a named layer fall below a minimum number of living clusters.

Every layer has a width below which the task cannot be learnt any more, and the environment's
pressure does not know it: a budget that keeps 74% of fc1 per generation takes LeNet-5's fc1
from 500 units to 8 as readily as to 10. In our ReLU LeNet-5 lineages the offspring that held
99% on MNIST kept at least 7 conv1 filters and 10 fc1 units, and those with 8 units or 5
filters did not (docs/benchmarks.md, "LeNet-5 with ReLU convolutions"; floors at those widths
alone did not lift the weaker lineages, so that config sets none). Floors are also what hardware
or a deployment asks for: a minimum width per layer that no budget may go under.

:class:`ClusterFloor` wraps any environment and, after an offspring is drawn, brings each
floored layer back up to ``min(floor, living clusters in the parent)``: the parent's dead
clusters are never revived, and a layer already below its floor may shrink no further.

Revival uses :mod:`tf_evosyn.environments.alignment`'s group edits: the strongest dead groups by
heredity
come back first, with their parent synapses and the synapses of the layers that read them, so
the environment decides how far the rest of the network shrinks and heredity decides which
clusters fill the floor. Coupled layers (one family of groups) share the floor of each member.
Floors draw no random numbers, so a run whose floors never bind is identical to one without.
"""

from __future__ import annotations

from collections.abc import Mapping

from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.base import EnvironmentalFactor
from tf_evosyn.graph.coupling import group_alive, group_strength, set_group


def _check_floors(floors: Mapping[str, int] | None) -> dict[str, int]:
    """``floors`` as a plain {layer name: count >= 1} dict, or ValueError naming the fix."""
    if floors is None:
        return {}
    if not isinstance(floors, Mapping):
        raise ValueError(
            f"min_clusters must map layer names to counts, e.g. {{'conv1': 7}}, got {floors!r}."
        )
    checked = {}
    for name, count in floors.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(
                f"min_clusters[{name!r}] must be an integer >= 1 (living clusters the layer "
                f"keeps), got {count!r}; remove the entry for no floor."
            )
        checked[str(name)] = count
    return checked


class ClusterFloor(EnvironmentalFactor):
    """Any environment, with each named layer kept at ``floors[name]`` living clusters or more.

    Args:
      base: the environment that sets the factors (serialised form or instance).
      floors: layer name -> minimum living clusters (filters, units) of that layer.
    """

    def __init__(self, base=None, floors: Mapping[str, int] | None = None):
        self.base = environment_lib.get(base)
        self.floors = _check_floors(floors)

    def check_model(self, model) -> None:
        environment_lib.check_layer_names("min_clusters", self.floors, model)
        self.base.check_model(model)

    def layer_factors(self, layer, parent_synapses):
        return self.base.layer_factors(layer, parent_synapses)

    def bind(self, model, plan, heredities):
        return ClusterFloor(self.base.bind(model, plan, heredities), self.floors)

    def for_attempt(self, attempt):
        return ClusterFloor(self.base.for_attempt(attempt), self.floors)

    def eased(self, exponent):
        return ClusterFloor(self.base.eased(exponent), self.floors)

    def adjust_masks(self, model, plan, heredities, masks, rng=None):
        self.base.adjust_masks(model, plan, heredities, masks, rng)
        _raise_to_floors(plan, heredities, masks, self.floors)

    def get_config(self):
        return {"base": environment_lib.serialize(self.base), "floors": dict(self.floors)}


def _raise_to_floors(plan, heredities, masks, floors: Mapping[str, int]) -> None:
    """Revive the strongest dead groups of each floored layer until it keeps
    ``min(floor, parent's living clusters)`` (in place; see the module docstring)."""
    by_name = {h.name: h for h in heredities}
    for name, floor in floors.items():
        target = min(floor, int(by_name[name].cluster_alive.sum()))
        if int(masks[name][1].sum()) >= target:
            continue
        groups = [plan.groups[int(g)] for g in dict.fromkeys(plan.layer_groups[name])]
        dead = [
            g
            for g in groups
            if g.may_die
            and group_alive(g, lambda n: by_name[n].cluster_alive)
            and not group_alive(g, lambda n: masks[n][1])
        ]
        for group in sorted(dead, key=lambda g: -group_strength(g, by_name)):
            if int(masks[name][1].sum()) >= target:
                break
            set_group(group, True, plan, by_name, masks)


environment_lib.register(ClusterFloor)
