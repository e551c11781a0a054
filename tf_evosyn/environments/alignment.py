"""Channel alignment: keep every layer's living clusters a multiple of k.

Dense hardware computes channels in blocks (XNNPACK's SIMD tiles, GPU tensor cores want
multiples of 8): a layer shrunk from 16 to 13 channels can cost what 16 cost. After an offspring
is drawn, :class:`ChannelAlignment` moves each family of coupled cluster groups (the set of
layers whose channels live or die together, see :mod:`tf_evosyn.graph.coupling`) to an allowed
count:
a multiple of ``multiple`` no larger than the parent's living count, or the parent's count
itself. Clusters are killed weakest first and revived strongest first, by group heredity, so the
environment's pressure decides *how many* steps and heredity decides *which* clusters. With the
default 'stochastic' rounding a family drawn at 13 of 16 channels keeps 16 or drops to 8 with
probabilities that preserve the expected count (13), so a budget environment still meets its
budget on average while every shrink that happens is a whole block the hardware can skip.

A revived cluster gets back its parent synapses (those reading living inputs), and the synapses
of readers that read it come back too; a killed cluster takes the synapses reading it along.
Groups that may not die (classifier outputs, barriers) are never touched.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn.core.heredity import LayerHeredity
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.base import EnvironmentalFactor
from tf_evosyn.graph.coupling import group_alive, group_strength, set_group

ROUNDINGS = ("stochastic", "nearest", "down", "up")


def aligned_count(
    current: int,
    parent: int,
    floor: int,
    multiple: int,
    rounding: str,
    rng: np.random.Generator | None = None,
) -> int:
    """The allowed living count next to ``current`` in the ``rounding`` direction.

    Allowed: multiples of ``multiple`` in [max(floor, 1), parent], and ``parent`` itself.
    'stochastic' picks the lower neighbour with probability (upper - current) / (upper - lower),
    so the expected count is the drawn one: the environment's budget holds in expectation and
    every shrink that happens is a whole block.
    """
    allowed = [m for m in range(multiple, parent + 1, multiple) if m >= max(floor, 1)]
    allowed = sorted(set(allowed) | {parent})
    if current in allowed:
        return current
    below = [m for m in allowed if m < current]
    above = [m for m in allowed if m > current]
    if rounding == "down" and below:
        return below[-1]
    if rounding == "up" and above:
        return above[0]
    if not below:
        return above[0]
    if not above:
        return below[-1]
    if rounding == "stochastic":
        if rng is None:
            raise ValueError("rounding='stochastic' needs a random generator (rng).")
        lower, upper = below[-1], above[0]
        return lower if rng.random() < (upper - current) / (upper - lower) else upper
    return above[0] if above[0] - current <= current - below[-1] else below[-1]


def _align_masks(
    plan,
    heredities: list[LayerHeredity],
    masks: dict[str, tuple[np.ndarray, np.ndarray]],
    multiple: int,
    rounding: str = "stochastic",
    rng: np.random.Generator | None = None,
) -> None:
    """Align the living groups of every family of ``plan`` in place (module docstring)."""
    by_name = {h.name: h for h in heredities}
    order = {h.name: i for i, h in enumerate(heredities)}
    families: dict[tuple[str, ...], list] = {}
    for group in plan.groups:
        families.setdefault(group.family, []).append(group)
    for family in sorted(families, key=lambda names: min(order[n] for n in names)):
        groups = families[family]
        parent_alive = [g for g in groups if group_alive(g, lambda n: by_name[n].cluster_alive)]
        living = [g for g in parent_alive if group_alive(g, lambda n: masks[n][1])]
        fixed = [g for g in living if not g.may_die]
        target = aligned_count(len(living), len(parent_alive), len(fixed), multiple, rounding, rng)
        strength = {g.index: group_strength(g, by_name) for g in parent_alive}
        if target < len(living):
            victims = sorted((g for g in living if g.may_die), key=lambda g: strength[g.index])
            for group in victims[: len(living) - target]:
                set_group(group, False, plan, by_name, masks)
        elif target > len(living):
            dead = [g for g in parent_alive if g not in living and g.may_die]
            for group in sorted(dead, key=lambda g: -strength[g.index])[: target - len(living)]:
                set_group(group, True, plan, by_name, masks)


class ChannelAlignment(EnvironmentalFactor):
    """Any environment, with each family's living clusters kept a multiple of ``multiple``.

    Args:
      base: the environment that sets the factors (serialised form or instance).
      multiple: k, e.g. 8 (GPU tensor cores, XNNPACK's float tiles); 1 changes nothing.
      rounding: 'stochastic' (the lower or upper block, so that the expected count is the drawn
        one: the base environment's budget holds in expectation), 'nearest' (ties keep more),
        'down' (never keeps more than drawn) or 'up'.
    """

    def __init__(self, base=None, multiple: int = 8, rounding: str = "stochastic"):
        self.base = environment_lib.get(base)
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
            raise ValueError(f"multiple must be an integer >= 1, got {multiple!r}.")
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}.")
        self.multiple = multiple
        self.rounding = rounding

    def check_model(self, model):
        self.base.check_model(model)

    def layer_factors(self, layer, parent_synapses):
        return self.base.layer_factors(layer, parent_synapses)

    def bind(self, model, plan, heredities):
        return ChannelAlignment(
            self.base.bind(model, plan, heredities), self.multiple, self.rounding
        )

    def for_attempt(self, attempt):
        return ChannelAlignment(self.base.for_attempt(attempt), self.multiple, self.rounding)

    def adjust_masks(self, model, plan, heredities, masks, rng=None):
        self.base.adjust_masks(model, plan, heredities, masks, rng)
        if self.multiple > 1:
            _align_masks(plan, heredities, masks, self.multiple, self.rounding, rng)

    def get_config(self):
        return {
            "base": environment_lib.serialize(self.base),
            "multiple": self.multiple,
            "rounding": self.rounding,
        }


environment_lib.register(ChannelAlignment)
