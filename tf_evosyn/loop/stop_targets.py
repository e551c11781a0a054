"""Stop evolving once an offspring is as small as asked: efficiency targets.

A user who needs a 14x smaller network (as a TF-MOT user sets a final sparsity) should not
have to guess how many generations reach it: past the target, each generation only costs
time and accuracy. ``evolution.stop_at`` maps a measure to the efficiency it must reach, each
against the ancestor (generation 0):

    synaptic_efficiency   ancestor's living synapses / the offspring's
    cluster_efficiency    ancestor's living clusters / the offspring's
    flops_efficiency      ancestor's MACs / the offspring's MACs once compacted (what dense
                          hardware runs, the lineage's ``flops``)

The loop stops after the first accepted generation that reaches every target set (0 or absent
= no target); ``evolution.generations`` stays the cap, and the final fine-tuning
(``final_epochs``) still follows.
"""

from __future__ import annotations

from collections.abc import Mapping

STOP_MEASURES = ("synaptic_efficiency", "cluster_efficiency", "flops_efficiency")


def active_targets(stop_at: Mapping[str, float] | None) -> dict[str, float]:
    """The targets that are set (value > 0), checked: known measures, 0 or >= 1."""
    if stop_at is not None and not isinstance(stop_at, Mapping):
        raise ValueError(
            f"stop_at maps measures to efficiencies (e.g. {{'cluster_efficiency': 14}}), got "
            f"{stop_at!r}."
        )
    targets = {}
    for measure, value in (stop_at or {}).items():
        if measure not in STOP_MEASURES:
            raise ValueError(
                f"stop_at: unknown measure {measure!r}; use one of {', '.join(STOP_MEASURES)} "
                f"(e.g. evolution.stop_at.cluster_efficiency=14)."
            )
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not (value == 0 or value >= 1):
            raise ValueError(
                f"stop_at.{measure} must be an efficiency >= 1 (e.g. 14 for 14x), or 0 for no "
                f"target; got {value!r}."
            )
        if value:
            targets[measure] = float(value)
    return targets


def measure(name: str, record: Mapping, ancestor: Mapping) -> float:
    """The efficiency ``name`` of a lineage record against the ancestor's record."""
    if name == "flops_efficiency":
        return ancestor["flops"] / max(record["flops"], 1)
    return float(record[name])


def reached(stop_at: Mapping[str, float] | None, record: Mapping, ancestor: Mapping) -> str | None:
    """Why evolution stops at ``record`` ('reached the targets ...'), or None: no target is set
    or one is not reached yet."""
    targets = active_targets(stop_at)
    if not targets:
        return None
    values = {name: measure(name, record, ancestor) for name in targets}
    if any(values[name] < target for name, target in targets.items()):
        return None
    met = ", ".join(f"{name} {values[name]:.2f}x >= {targets[name]:g}x" for name in targets)
    return f"generation {record['generation']} reached the targets ({met})"
