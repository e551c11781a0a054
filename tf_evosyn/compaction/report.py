"""What compaction did, layer by layer: channels and parameters before and after.

Kept apart from :mod:`tf_evosyn.compaction.plan` (which removes the channels) so each module has one
job.
"""

from __future__ import annotations

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import EvolvableMixin
from tf_evosyn.core.kinds import nearest_rule
from tf_evosyn.hardware.flops import layer_params


def _channels(layer: keras.layers.Layer) -> int | None:
    """Output channels by the layer's rule (a subclass as its base type), or a BatchNorm's."""
    rule = nearest_rule(layer)
    if rule is not None:
        return rule.output_channels(layer)
    if isinstance(layer, keras.layers.BatchNormalization):
        return int(layer.moving_mean.shape[-1])
    return None


def compaction_report(original: keras.Model, compacted: keras.Model) -> list[dict]:
    """Per layer with weights: channels and parameters before and after compaction."""
    rows = []
    for layer in original.layers:
        if not layer.weights:
            continue
        after = compacted.get_layer(layer.name)
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "channels_before": _channels(layer),
                "channels_after": _channels(after),
                "living_channels": (
                    int(layer.living_cluster_mask().sum())
                    if isinstance(layer, EvolvableMixin)
                    else None
                ),
                "params_before": layer_params(layer),
                "params_after": layer_params(after),
            }
        )
    return rows


def format_report(rows: list[dict]) -> str:
    """The report of :func:`compaction_report` as an aligned text table with totals."""

    def show(value):
        return "-" if value is None else f"{value:,}"

    header = ("layer", "type", "channels", "living", "params before", "params after", "kept")
    table = [header]
    for row in rows:
        before, after = row["params_before"], row["params_after"]
        channels = (
            "-"
            if row["channels_before"] is None
            else f"{row['channels_before']} -> {row['channels_after']}"
        )
        table.append(
            (
                row["name"],
                row["type"],
                channels,
                show(row["living_channels"]),
                show(before),
                show(after),
                f"{after / before:.1%}" if before else "-",
            )
        )
    total_before = sum(r["params_before"] for r in rows)
    total_after = sum(r["params_after"] for r in rows)
    table.append(
        (
            "total",
            "",
            "",
            "",
            show(total_before),
            show(total_after),
            f"{total_after / total_before:.1%}" if total_before else "-",
        )
    )
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = []
    for i, row in enumerate(table):
        cells = [
            str(c).ljust(w) if j < 3 else str(c).rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0 or i == len(table) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
