"""Compaction that keeps layers evolvable: the masks and heredity buffers follow the slicing.

``compact(model, keep_evolvable=True)`` (:mod:`tf_evosyn.compaction.plan`) removes dead channel
groups exactly as for export, but rebuilds every evolvable layer as the same evolvable type
(EvoConv2D stays EvoConv2D, same name). This module carries the evolvable state into the smaller
layer: each buffer keeps the entries of the surviving matrix-kernel rows (inputs) and clusters
(outputs). So an offspring can be fine-tuned, measured and bred from at its physical size, and
its masks still keep dead synapses dead during training (the forward pass multiplies by them).

Kept dead clusters (a barrier, a zero-padded constant, the last channel of a tensor; see
:class:`tf_evosyn.compaction.plan.CompactionPlan`) stay in the smaller layer with their masks at 0.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn.core.evolvable_base import EvolvableMixin
from tf_evosyn.core.kinds import DEPTHWISE, GROUPED, PRODUCER, rule_for


def _row_and_cluster_keep(
    layer: EvolvableMixin, kind: str, in_keep: np.ndarray, out_keep: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray]:
    """(surviving matrix-kernel rows or None = all, surviving clusters) of ``layer``, by its
    rule: a producer keeps the rows of its kept inputs, a grouped convolution every row of its
    kept groups, a depthwise layer the clusters ``c * m + j`` of its kept inputs ``c``."""
    if kind not in (PRODUCER, GROUPED, DEPTHWISE):
        raise ValueError(
            f"{layer.name}: an evolvable layer of channel kind {kind!r} is unexpected."
        )
    return rule_for(layer).kept_rows_and_clusters(layer, in_keep, out_keep)


def carry_evolvable_state(
    source: EvolvableMixin,
    target: EvolvableMixin,
    kind: str,
    in_keep: np.ndarray,
    out_keep: np.ndarray,
    values: list[np.ndarray],
) -> None:
    """Write the compacted weights ``values`` into ``target`` and slice ``source``'s masks and
    heredity buffers into it (``in_keep``/``out_keep``: surviving input/output channels)."""
    attrs = [a for a in target.weight_attrs if a != "bias" or target.use_bias]
    if len(attrs) != len(values):
        raise ValueError(f"{target.name}: {len(values)} compacted weights for {attrs}.")
    for attr, value in zip(attrs, values, strict=True):
        getattr(target, attr).assign(value)
    rows, clusters = _row_and_cluster_keep(source, kind, in_keep, out_keep)
    for name in ("synapse_mask", "synapse_heredity"):
        value = getattr(source, name).numpy()
        if rows is not None:
            value = value[..., rows, :]
        getattr(target, name).assign(value[..., clusters])
    for name in ("cluster_mask", "cluster_heredity"):
        getattr(target, name).assign(getattr(source, name).numpy()[clusters])
    rule_for(source).carry_shared_masks(source, target, in_keep)
