"""Reading a lineage for people: the summary table, the plots and TensorBoard scalars.

Kept apart from :mod:`tf_evosyn.loop.lineage` (the records and their file) so that reading and
resuming a run never needs matplotlib or TensorFlow; both are imported lazily here too.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from tf_evosyn.loop.lineage import _is_int, _is_number, metric_of, upgrade_record
from tf_evosyn.storage import fs, io_utils

# --------------------------------------------------------------------------- summary table


def _fmt_eff(x: Any) -> str:
    if not _is_number(x):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.2f}x"


def _as_percent(records: Sequence[Mapping[str, Any]]) -> bool:
    scores = [r["score"] for r in records if _is_number(r["score"]) and math.isfinite(r["score"])]
    return all(0.0 <= v <= 1.0 for v in scores)


def _fmt_score(value: float, percent: bool) -> str:
    return f"{100.0 * value:.2f}" if percent else f"{value:.4f}"


def generation_label(record: Mapping[str, Any]) -> str:
    """The generation number, marked when it is the final fine-tuning of best/ (not a draw)."""
    return f"{record['generation']} (final)" if record.get("final") else str(record["generation"])


def summary_table(
    records: Sequence[Mapping[str, Any]], paper: Mapping[str, Any] | None = None
) -> str:
    """Fixed-width text table of a run (one row per generation), for logs and the README.

    ``paper`` (e.g. ``{"synaptic_efficiency": 125.0, "cluster_efficiency": 9.71}``, optionally
    with ``accuracy`` (or ``score``) as a fraction) adds a final ``paper`` row for comparison.
    The score column is the run's primary score (``metric``), in percent when every score is a
    fraction in [0, 1] (accuracy, AP).
    """
    metric = metric_of(records)
    records = [upgrade_record(r) for r in records]
    percent = _as_percent(records)
    header = (
        "gen",
        f"{metric} (%)" if percent else metric,
        "synapses",
        "clusters",
        "synaptic eff.",
        "cluster eff.",
        "accepted",
        "seconds",
    )
    rows: list[tuple[str, ...]] = []
    for r in records:
        rows.append(
            (
                generation_label(r),
                _fmt_score(r["score"], percent),
                f"{r['synapses']:,}",
                f"{r['clusters']:,}",
                _fmt_eff(r["synaptic_efficiency"]),
                _fmt_eff(r["cluster_efficiency"]),
                "yes" if r["accepted"] else "no",
                f"{r['seconds']:.1f}",
            )
        )
    if paper is not None:
        acc = paper.get("score", paper.get("accuracy"))
        rows.append(
            (
                "paper",
                _fmt_score(acc, percent) if _is_number(acc) else "-",
                f"{paper['synapses']:,}" if _is_int(paper.get("synapses")) else "-",
                f"{paper['clusters']:,}" if _is_int(paper.get("clusters")) else "-",
                _fmt_eff(paper.get("synaptic_efficiency")),
                _fmt_eff(paper.get("cluster_efficiency")),
                "-",
                "-",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def fmt(row: Sequence[str]) -> str:
        # First column left-aligned (labels), numbers right-aligned.
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines += [fmt(row) for row in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots


def efficiency_tick_label(value: float, pos: int | None = None) -> str:
    """An efficiency tick as a plain number ("2x", "100x", "0.5x"), never as 10^2: people
    read "150x fewer synapses", not exponents."""
    del pos  # matplotlib's FuncFormatter passes the tick position
    if not math.isfinite(value) or value <= 0:
        return ""
    if value >= 1 and abs(value - round(value)) <= 1e-6 * value:
        return f"{round(value):,}x"
    return f"{value:.3g}x"


def _plain_log_axis(axis: Any) -> None:
    """Label a log-scaled ``axis`` with :func:`efficiency_tick_label` (call after plotting):
    ticks at 1, 2, 3, 5 per decade up to two decades, at 1 and 3 beyond."""
    from matplotlib import ticker

    low, high = sorted(axis.get_view_interval())
    decades = math.log10(high / low) if low > 0 and high > 0 else 0.0
    subs = (1.0, 2.0, 3.0, 5.0) if decades <= 2.0 else (1.0, 3.0)
    axis.set_major_locator(ticker.LogLocator(base=10.0, subs=subs, numticks=30))
    axis.set_major_formatter(ticker.FuncFormatter(efficiency_tick_label))
    axis.set_minor_formatter(ticker.NullFormatter())


_EFFICIENCY_PANELS = (
    ("synaptic_efficiency", "synaptic efficiency (x)", True),
    ("cluster_efficiency", "cluster efficiency (x)", True),
)


def _panels(records: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str, bool], ...]:
    """The score panel (named after the run's metric) and the two efficiency panels."""
    metric = metric_of(records)
    split = "validation" if records[0].get("selection_split") == "validation" else "test"
    label = f"{split} accuracy (%)" if metric == "accuracy" else f"{metric} (%)"
    return ((metric, label, False), *_EFFICIENCY_PANELS)


def _draw_panel(ax: Any, records: Sequence[Mapping[str, Any]], key: str, label: str, log: bool):
    score_panel = key not in ("synaptic_efficiency", "cluster_efficiency")

    def value(r: Mapping[str, Any]) -> float:
        v = float(r["score"] if score_panel else r[key])
        return 100.0 * v if score_panel else v

    def usable(r: Mapping[str, Any]) -> bool:
        v = value(r)
        return math.isfinite(v) and (v > 0 or not log)

    acc = [r for r in records if r["accepted"] and usable(r)]
    rej = [r for r in records if not r["accepted"] and usable(r)]
    if acc:
        ax.plot(
            [r["generation"] for r in acc],
            [value(r) for r in acc],
            "o-",
            color="tab:blue",
            label="accepted",
        )
    if rej:
        ax.plot(
            [r["generation"] for r in rej],
            [value(r) for r in rej],
            "x",
            color="tab:red",
            markersize=8,
            linestyle="none",
            label="rejected",
        )
    if log:
        ax.set_yscale("log")
        _plain_log_axis(ax.yaxis)
    ax.set_xlabel("generation")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if acc or rej:
        ax.legend(loc="best")


def _save_png(fig: Any, path: fs.RunPath) -> fs.RunPath:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return io_utils.atomic_write_bytes(path, buf.getvalue())


def plot_lineage(
    records: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike[str]
) -> list[fs.RunPath]:
    """Write score / synaptic / cluster efficiency vs generation PNGs and a combined panel.

    Rejected offspring are red crosses, the accepted lineage a blue line; efficiencies use a
    log axis because they grow geometrically. Uses the Agg canvas on a standalone Figure, so it
    works headless and does not switch the backend of an interactive session (e.g. Colab).
    Returns ``[<metric>.png, synaptic_efficiency.png, cluster_efficiency.png, lineage.png]``
    (``accuracy.png`` for classification).
    """
    if not records:
        raise ValueError("plot_lineage needs at least one record")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = fs.path(out_dir)
    fs.makedirs(out)
    records = [upgrade_record(r) for r in records]
    panels = _panels(records)
    paths: list[fs.RunPath] = []
    for key, label, log in panels:
        fig = Figure(figsize=(5, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        _draw_panel(ax, records, key, label, log)
        ax.set_title(label.split(" (")[0])
        paths.append(_save_png(fig, fs.join(out, f"{key}.png")))

    fig = Figure(figsize=(15, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for ax, (key, label, log) in zip(axes, panels, strict=True):
        _draw_panel(ax, records, key, label, log)
        ax.set_title(label.split(" (")[0])
    fig.tight_layout()
    paths.append(_save_png(fig, fs.join(out, "lineage.png")))
    return paths


# ------------------------------------------------------- reported score against efficiency


def _reported_score(record: Mapping[str, Any]) -> float:
    """The figure a run reports: the test split's score (``test_score``), which validation
    selection never used; a run that selected on test has only ``score``, which is then test."""
    record = upgrade_record(record)
    return float(record.get("test_score", record["score"]))


def _draw_score_vs_efficiency(
    ax: Any,
    records: Sequence[Mapping[str, Any]],
    key: str,
    anchors: Sequence[Mapping[str, Any]],
    ylabel: str,
) -> None:
    points = [
        (float(r[key]), 100.0 * _reported_score(r), r)
        for r in records
        if _is_number(r[key]) and math.isfinite(r[key]) and r[key] > 0
    ]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.plot(xs, ys, "o-", color="tab:blue", label="ours, generation by generation")
    note = {"textcoords": "offset points", "fontsize": 7}
    for x, y, r in points:
        ax.annotate(str(r["generation"]), (x, y), xytext=(3, 4), color="tab:blue", **note)
    rejected = [(x, y) for x, y, r in points if not r["accepted"]]
    if rejected:
        rx, ry = zip(*rejected, strict=True)
        ax.plot(rx, ry, "x", color="tab:red", markersize=9, label="rejected offspring")
    published = {"color": "tab:orange", "label": "published"}
    for anchor in anchors:
        x, acc = anchor.get(key), anchor.get("accuracy")
        if not _is_number(x):
            continue  # the paper gives no such efficiency
        if _is_number(acc):
            ax.plot([x], [100.0 * acc], "*", markersize=12, **published)
            where, xytext = (x, 100.0 * acc), (-8, 4)
        else:  # no accuracy given ("near the ancestor's"): a vertical mark, labelled mid-height
            ax.axvline(x, linestyle=":", linewidth=1, **published)
            where, xytext = ax.get_xaxis_transform().transform((x, 0.5)), (-3, 0)
            where = ax.transData.inverted().transform(where)
        published["label"] = None  # one legend entry for all of them
        ax.annotate(anchor["label"], where, xytext=xytext, ha="right", color="tab:orange", **note)
    ax.set_xscale("log")
    ax.margins(x=0.08)
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel(key.replace("_", " ") + " (x)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)


def plot_score_vs_efficiency(
    records: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    anchors: Sequence[Mapping[str, Any]] = (),
    prefix: str = "",
) -> list[fs.RunPath]:
    """Write the reported (test) score against synaptic and against cluster efficiency.

    Every generation is a point, joined in generation order (rejected ones crossed in red);
    ``anchors`` are published results, dicts with ``label`` and any of ``accuracy`` (a
    fraction), ``synaptic_efficiency``, ``cluster_efficiency``, drawn as labelled stars (a
    vertical line when the paper gives no accuracy). Efficiency axes are logarithmic with plain
    tick labels (:func:`efficiency_tick_label`). Returns
    ``[<prefix><metric>_vs_synaptic_efficiency.png, <prefix><metric>_vs_cluster_efficiency.png]``
    with ``<metric>`` e.g. ``test_accuracy``.
    """
    if not records:
        raise ValueError("plot_score_vs_efficiency needs at least one record")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = fs.path(out_dir)
    fs.makedirs(out)
    records = [upgrade_record(r) for r in records]
    metric = metric_of(records)
    tested = all("test_score" in r for r in records)
    name = f"test_{metric}" if tested or records[0].get("selection_split") == "test" else metric
    ylabel = f"{name.replace('_', ' ')} (%)"
    paths = []
    for key in ("synaptic_efficiency", "cluster_efficiency"):
        fig = Figure(figsize=(6, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        _draw_score_vs_efficiency(ax, records, key, anchors, ylabel)
        ax.set_title(f"{ylabel.split(' (')[0]} against {key.replace('_', ' ')}")
        paths.append(_save_png(fig, fs.join(out, f"{prefix}{name}_vs_{key}.png")))
    return paths


# --------------------------------------------------------------------------- TensorBoard

_WRITERS: dict[str, Any] = {}
_DATA_CLASS_SCALAR = 1  # tensorboard SummaryMetadata.DataClass.DATA_CLASS_SCALAR


def _writer(logdir: str | os.PathLike[str]) -> Any:
    key = fs.absolute(logdir)  # a URL stays a URL (TensorFlow writes events to any filesystem)
    if key not in _WRITERS:
        from tf_evosyn._keras import tf

        _WRITERS[key] = tf.summary.create_file_writer(key)
    return _WRITERS[key]


def write_tensorboard(logdir: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Log one generation's scalars (step = generation) so runs can be compared in TensorBoard.

    Writes ``evolution/<metric>`` (the primary score, e.g. ``evolution/accuracy``),
    ``evolution/{synapses,clusters,synaptic_efficiency,cluster_efficiency}``, every other
    number of ``record["metrics"]`` as ``metrics/<name>``, and
    ``layers/<name>/{synapses,clusters}``. Scalars are written with ``tf.summary.write`` and
    the scalar-plugin metadata, which is what ``tf.summary.scalar`` does but does not require
    the ``tensorboard`` package to be installed.
    """
    from tf_evosyn._keras import tf

    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = _DATA_CLASS_SCALAR

    record = upgrade_record(record)
    step = int(record["generation"])
    values: list[tuple[str, float]] = [(f"evolution/{record['metric']}", float(record["score"]))]
    values += [
        (f"evolution/{k}", float(record[k]))
        for k in ("synapses", "clusters", "synaptic_efficiency", "cluster_efficiency")
    ]
    for name, value in sorted((record.get("metrics") or {}).items()):
        if _is_number(value) and math.isfinite(value) and name != record["metric"]:
            values.append((f"metrics/{name}", float(value)))
    for layer in record.get("layers", []):
        name = str(layer["name"])
        values.append((f"layers/{name}/synapses", float(layer["synapses"])))
        values.append((f"layers/{name}/clusters", float(layer["clusters"])))

    writer = _writer(logdir)
    with writer.as_default():
        for tag, v in values:
            tf.summary.write(tag, tf.constant(v, dtype=tf.float32), step=step, metadata=metadata)
    writer.flush()


def close_tensorboard_writers() -> None:
    """Flush and close every cached writer (end of a run, or before deleting a logdir)."""
    while _WRITERS:
        _, writer = _WRITERS.popitem()
        writer.flush()
        writer.close()
