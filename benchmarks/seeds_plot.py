"""The seeds benchmark's figure: every seed's lineage (test accuracy against synaptic and
cluster efficiency), the offspring each run chose marked, the published results beside them.

Drawn on matplotlib's Agg canvas (no pyplot: headless, no global state), written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import common
from matplotlib.figure import Figure

_MARKERS = "osD^vP*X"
_AXES = (
    ("synaptic_efficiency", "synaptic efficiency (x)"),
    ("cluster_efficiency", "cluster efficiency (x)"),
)


def plot_seeds(
    lineages: Mapping[int, Sequence[dict]],
    rows: Sequence[dict],
    published: Sequence[dict],
    path: str | Path,
    title: str,
) -> Path:
    """``lineages``: seed -> lineage records; ``rows``: the seeds benchmark's chosen rows."""
    figure = Figure(figsize=(11, 4.5))
    chosen = {row["seed"]: row for row in rows}
    for axis_index, (key, label) in enumerate(_AXES):
        axes = figure.add_subplot(1, 2, axis_index + 1)
        for n, (seed, records) in enumerate(sorted(lineages.items())):
            points = [
                (r[key], 100.0 * r["test_accuracy"])
                for r in records
                if r.get("accepted") and r.get("test_accuracy") is not None
            ]
            if not points:
                raise ValueError(f"seed {seed}: no accepted generation with a test accuracy")
            marker = _MARKERS[n % len(_MARKERS)]
            xs, ys = [x for x, _ in points], [y for _, y in points]
            line = axes.plot(xs, ys, marker=marker, ms=4, lw=1, label=f"seed {seed}")[0]
            row = chosen.get(seed)
            if row and row.get("test_accuracy") is not None:
                axes.plot(
                    row[key], 100.0 * row["test_accuracy"], marker=marker, ms=11,
                    mfc="none", mec=line.get_color(), mew=2,
                )  # fmt: skip
        for p in published:
            if p.get(key) and p.get("accuracy"):
                axes.plot(p[key], 100.0 * p["accuracy"], "k+", ms=10, mew=2)
                axes.annotate(p["label"], (p[key], 100.0 * p["accuracy"]), fontsize=7,
                              xytext=(4, -10), textcoords="offset points")  # fmt: skip
        axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("test accuracy (%)")
        axes.set_ylim(98.0, 99.6)
        axes.axhline(99.0, color="grey", lw=0.5, ls="--")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8, loc="lower left")
    figure.suptitle(f"{title}: every seed's accepted generations (ringed: the chosen offspring)")
    figure.tight_layout()
    return common.save_png(figure, path)
