"""The fields of a lineage record: how a network scores and what it is made of.

Kept apart from the loop (:mod:`tf_evosyn.loop.evolution`) so that every record, of every task,
is built the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.measures import count_living
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.loop import lineage as lineage_lib
from tf_evosyn.tasks import Evaluation


def score_fields(metric: str, evaluation: Evaluation | None, prefix: str = "") -> dict:
    """``metric``/``score``/``metrics`` (+ ``accuracy`` when that is the metric, as
    classification records always had); with ``prefix="test_"`` the test split's
    ``test_score``/``test_metrics``/``test_accuracy``. No evaluation (a diverged network)
    scores 0."""
    score = evaluation.score if evaluation and math.isfinite(evaluation.score) else 0.0
    fields = {
        f"{prefix}score": score,
        f"{prefix}metrics": dict(evaluation.metrics) if evaluation else {},
    }
    if not prefix:
        fields["metric"] = metric
    if metric == "accuracy":
        fields[f"{prefix}accuracy"] = score
    return fields


def _ancestor_layer_totals(layers: list[dict], ancestor: Mapping | None) -> list[dict]:
    """Per-layer counts with ``total_synapses``/``total_clusters`` of the ancestor's layer of the
    same name: a physically compacted offspring (``evolution.compact_offspring``) has smaller
    layers, but its lineage reports against the ancestor like a masked one."""
    totals = {layer["name"]: layer for layer in (ancestor or {}).get("layers", [])}
    keys = ("total_synapses", "total_clusters")
    return [
        {**layer, **{k: totals[layer["name"]][k] for k in keys}}
        if layer["name"] in totals
        else layer
        for layer in layers
    ]


def network_fields(model: keras.Model, ancestor: Mapping | None) -> dict:
    """Living synapses and clusters (per layer too, totals of the ancestor's layers),
    efficiencies against ``ancestor`` (the generation-0 record; None for the ancestor itself),
    and the size of the compacted network that dense hardware runs."""
    counts = count_living(model)
    ancestor = ancestor or {"synapses": counts.synapses, "clusters": counts.clusters}
    synaptic, cluster = lineage_lib.efficiencies(
        ancestor["synapses"], ancestor["clusters"], counts.synapses, counts.clusters
    )
    compacted = compact(model)
    return {
        "synapses": counts.synapses,
        "clusters": counts.clusters,
        "synaptic_efficiency": synaptic,
        "cluster_efficiency": cluster,
        "layers": _ancestor_layer_totals(counts.layers_as_dicts(), ancestor),
        # What dense hardware runs once dead clusters are physically removed:
        "flops": count_flops(compacted).total_macs,  # multiply-accumulates per example
        "living_macs": count_flops(model).total_living_macs,  # if zeros were skipped too
        "compact_params": compacted.count_params(),
    }
