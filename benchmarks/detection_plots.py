"""Plots and tables for the KITTI DetectNet benchmark: AP with its bootstrap interval against
cluster efficiency or MACs per generation, and the ancestor's learning curve.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display or global state),
so a benchmark can run headless and in threads. PNGs are written atomically: a killed run never
leaves a truncated figure behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import common
from matplotlib.figure import Figure

PAPER_CLUSTER_EFFICIENCY = 8.16  # the paper's 8.16x cluster efficiency for DetectNet on KITTI


def plot_ap_against(
    points: Sequence[Mapping[str, Any]],
    x_key: str,
    path: str | os.PathLike,
    *,
    paper_mark: float | None = PAPER_CLUSTER_EFFICIENCY,
    x_label: str | None = None,
    title: str | None = None,
    log_x: bool | None = None,
) -> Path:
    """AP (percent) with its interval as error bars against ``x_key`` of each point, e.g.
    ``cluster_efficiency`` (log axis by default) or ``macs``; points are dicts with
    ``generation``, ``ap`` and optionally ``ap_low`` / ``ap_high`` (percent). Each point is
    labelled with its generation; ``paper_mark`` draws the paper's efficiency as a dashed
    vertical line (pass None on axes other than cluster efficiency). Returns the PNG path."""
    if not points:
        raise ValueError("no points to plot")
    missing = [key for key in (x_key, "ap", "generation") if any(key not in p for p in points)]
    if missing:
        raise ValueError(f"every point needs the keys {missing}")
    xs = [float(p[x_key]) for p in points]
    ys = [float(p["ap"]) for p in points]
    below = [y - float(p.get("ap_low", y)) for p, y in zip(points, ys, strict=True)]
    above = [float(p.get("ap_high", y)) - y for p, y in zip(points, ys, strict=True)]
    if min(below + above) < 0:
        raise ValueError("every interval must contain its AP (ap_low <= ap <= ap_high)")
    log_x = x_key == "cluster_efficiency" if log_x is None else log_x
    if log_x and min(xs + ([] if paper_mark is None else [paper_mark])) <= 0:
        raise ValueError("a log x axis needs positive values (and paper_mark)")

    figure = Figure(figsize=(6.4, 4.4), dpi=120)
    axes = figure.add_subplot()
    axes.errorbar(xs, ys, yerr=[below, above], fmt="o-", capsize=3, label="AP|R40")
    for point, x, y in zip(points, xs, ys, strict=True):
        axes.annotate(
            str(point["generation"]), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8
        )
    if paper_mark is not None:
        axes.axvline(
            paper_mark, linestyle="--", color="grey", label=f"paper {paper_mark:g}x cluster eff."
        )
    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel(x_label or x_key.replace("_", " "))
    axes.set_ylabel("AP (%)")
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    return common.save_png(figure, path)


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * float(value):.1f}"


def learning_curve_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Epoch / train AP / val AP (percent) of learning-curve points as ``read_learning_curve``
    returns them (``epoch``, ``train``, ``validation``, fractions): the gap shows overfitting."""
    lines = [["epoch", "train AP", "val AP"]]
    for row in rows:
        lines.append(
            [str(row["epoch"]), _percent(row.get("train")), _percent(row.get("validation"))]
        )
    return common.aligned_table(lines, left_first=False)
