"""The record of an evolutionary run: one JSON line per generation in ``lineage.jsonl``.

Generation 0 is the ancestor network; every later line is one offspring (accepted or not). The
file is the source of truth for resuming a killed run and for the paper-style results table, so
it is always rewritten atomically and validated strictly on load. TensorFlow and matplotlib are
imported lazily so that reading a lineage stays cheap.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tf_evosyn import io_utils

__all__ = [
    "LAYER_KEYS",
    "LINEAGE_FILENAME",
    "Lineage",
    "REQUIRED_KEYS",
    "close_tensorboard_writers",
    "efficiencies",
    "plot_lineage",
    "summary_table",
    "validate_record",
    "write_tensorboard",
]

LINEAGE_FILENAME = "lineage.jsonl"

REQUIRED_KEYS: tuple[str, ...] = (
    "generation",
    "accuracy",
    "synapses",
    "clusters",
    "synaptic_efficiency",
    "cluster_efficiency",
    "accepted",
    "seconds",
    "seed",
    "layers",
)
LAYER_KEYS: tuple[str, ...] = ("name", "synapses", "clusters", "total_synapses", "total_clusters")

_CRITERIA = ("most_efficient", "most_accurate")


def efficiencies(
    ancestor_synapses: int, ancestor_clusters: int, synapses: int, clusters: int
) -> tuple[float, float]:
    """Return (synaptic, cluster) efficiency = ancestor count / current count, as in the paper.

    A network with no living synapses/clusters left has infinite efficiency (and is useless);
    that is reported as ``inf`` rather than raising so the run log still records it.
    """
    if ancestor_synapses <= 0 or ancestor_clusters <= 0:
        raise ValueError(
            f"ancestor counts must be positive, got synapses={ancestor_synapses}, "
            f"clusters={ancestor_clusters}"
        )
    if synapses < 0 or clusters < 0:
        raise ValueError(f"counts must be >= 0, got synapses={synapses}, clusters={clusters}")
    syn = ancestor_synapses / synapses if synapses else math.inf
    clu = ancestor_clusters / clusters if clusters else math.inf
    return float(syn), float(clu)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _record_problems(record: Any) -> list[str]:
    """List what is wrong with a record (empty if it is valid)."""
    if not isinstance(record, Mapping):
        return [f"record must be a JSON object/dict, got {type(record).__name__}"]
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        return [f"missing required key(s) {missing}"]
    problems = []
    for key in ("generation", "synapses", "clusters", "seed"):
        if not _is_int(record[key]):
            problems.append(f"{key!r} must be an int, got {record[key]!r}")
    for key in ("accuracy", "synaptic_efficiency", "cluster_efficiency", "seconds"):
        if not _is_number(record[key]):
            problems.append(f"{key!r} must be a number, got {record[key]!r}")
    if _is_number(record["accuracy"]) and not 0.0 <= record["accuracy"] <= 1.0:
        problems.append(f"'accuracy' must be a fraction in [0, 1], got {record['accuracy']!r}")
    if not isinstance(record["accepted"], bool):
        problems.append(f"'accepted' must be a bool, got {record['accepted']!r}")
    layers = record["layers"]
    if not isinstance(layers, list):
        problems.append(f"'layers' must be a list, got {type(layers).__name__}")
    else:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Mapping):
                problems.append(f"layers[{i}] must be an object, got {type(layer).__name__}")
                continue
            lmissing = [k for k in LAYER_KEYS if k not in layer]
            if lmissing:
                problems.append(f"layers[{i}] is missing key(s) {lmissing}")
    return problems


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ValueError listing every problem, so a bad record never reaches the file."""
    problems = _record_problems(record)
    if problems:
        gen = record.get("generation", "?") if isinstance(record, Mapping) else "?"
        raise ValueError(f"invalid lineage record (generation {gen}): " + "; ".join(problems))


def _encode_line(record: Mapping[str, Any]) -> str:
    return json.dumps(io_utils.to_jsonable(record), sort_keys=True, separators=(",", ":"))


class Lineage:
    """Append-only, crash-safe list of generation records backed by ``lineage.jsonl``.

    ``path`` is either the ``.jsonl`` file itself or the run directory that holds
    ``lineage.jsonl``. Existing records are loaded and validated, so a resumed run continues
    from ``last_generation + 1``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        self.path: Path = p if p.suffix == ".jsonl" else p / LINEAGE_FILENAME
        self._records: list[dict[str, Any]] = []
        if self.path.exists():
            self._records = self._load()

    def _corrupt(self, lineno: int, why: str) -> ValueError:
        return ValueError(
            f"{self.path}, line {lineno}: {why}. The lineage file is corrupt; restore "
            f"{self.path.name} from a backup, or delete the run directory {self.path.parent} "
            "to start the run over."
        )

    def _load(self) -> list[dict[str, Any]]:
        lines = self.path.read_text(encoding="utf-8").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()  # the trailing newline (or blank tail) is not a record
        records: list[dict[str, Any]] = []
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                raise self._corrupt(lineno, "empty line")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise self._corrupt(lineno, f"not valid JSON ({e.msg} at column {e.colno})") from e
            problems = _record_problems(record)
            if problems:
                raise self._corrupt(lineno, "; ".join(problems))
            expected = records[-1]["generation"] + 1 if records else 0
            if record["generation"] != expected:
                raise self._corrupt(
                    lineno,
                    f"generation {record['generation']} where {expected} was expected "
                    "(generations must count up from 0 without gaps)",
                )
            records.append(record)
        return records

    @property
    def records(self) -> list[dict[str, Any]]:
        """All records, oldest first (a new list; the dicts themselves are shared)."""
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._records))

    @property
    def last_generation(self) -> int:
        """Generation of the newest record, -1 if there is none (so the next one is +1)."""
        return self._records[-1]["generation"] if self._records else -1

    @property
    def ancestor(self) -> dict[str, Any] | None:
        """The generation-0 record, the baseline for efficiencies; None before it is written."""
        return self._records[0] if self._records else None

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and add the next generation, rewriting the file atomically.

        Returns the stored (JSON-normalised) record. Numpy numbers are converted first, so
        ``np.float32`` accuracies and ``np.int64`` counts are accepted.
        """
        normalised = json.loads(_encode_line(record))
        validate_record(normalised)
        expected = self.last_generation + 1
        if normalised["generation"] != expected:
            raise ValueError(
                f"{self.path}: cannot append generation {normalised['generation']}; the next "
                f"generation must be {expected} (last recorded is {self.last_generation})"
            )
        new_records = [*self._records, normalised]
        text = "".join(_encode_line(r) + "\n" for r in new_records)
        io_utils.atomic_write_text(self.path, text)
        self._records = new_records
        return normalised

    def accepted_records(self) -> list[dict[str, Any]]:
        """Records whose offspring was kept (the ancestor counts if it is marked accepted)."""
        return [r for r in self._records if r["accepted"]]

    def best(self, criterion: str = "most_efficient") -> dict[str, Any] | None:
        """Pick the record to report/export.

        ``most_efficient``: accepted offspring (generation >= 1) with the highest cluster
        efficiency, then synaptic efficiency; None if no offspring was accepted.
        ``most_accurate``: highest accuracy among the ancestor and accepted offspring.
        Ties go to the later generation (the smaller network in practice).
        """
        if criterion == "most_efficient":
            pool = [r for r in self._records if r["accepted"] and r["generation"] >= 1]
            key = lambda r: (r["cluster_efficiency"], r["synaptic_efficiency"], r["generation"])
        elif criterion == "most_accurate":
            pool = [r for r in self._records if r["accepted"] or r["generation"] == 0]
            key = lambda r: (r["accuracy"], r["generation"])
        else:
            raise ValueError(f"unknown criterion {criterion!r}; expected one of {_CRITERIA}")
        return max(pool, key=key) if pool else None


# --------------------------------------------------------------------------- summary table


def _fmt_eff(x: Any) -> str:
    if not _is_number(x):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.2f}x"


def summary_table(
    records: Sequence[Mapping[str, Any]], paper: Mapping[str, Any] | None = None
) -> str:
    """Fixed-width text table of a run (one row per generation), for logs and the README.

    ``paper`` (e.g. ``{"synaptic_efficiency": 125.0, "cluster_efficiency": 9.71}``, optionally
    with ``accuracy`` as a fraction) adds a final ``paper`` row for comparison.
    """
    header = (
        "gen",
        "accuracy (%)",
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
                str(r["generation"]),
                f"{100.0 * r['accuracy']:.2f}",
                f"{r['synapses']:,}",
                f"{r['clusters']:,}",
                _fmt_eff(r["synaptic_efficiency"]),
                _fmt_eff(r["cluster_efficiency"]),
                "yes" if r["accepted"] else "no",
                f"{r['seconds']:.1f}",
            )
        )
    if paper is not None:
        acc = paper.get("accuracy")
        rows.append(
            (
                "paper",
                f"{100.0 * acc:.2f}" if _is_number(acc) else "-",
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

_PANELS = (
    ("accuracy", "test accuracy (%)", False),
    ("synaptic_efficiency", "synaptic efficiency (x)", True),
    ("cluster_efficiency", "cluster efficiency (x)", True),
)


def _draw_panel(ax: Any, records: Sequence[Mapping[str, Any]], key: str, label: str, log: bool):
    def value(r: Mapping[str, Any]) -> float:
        v = float(r[key])
        return 100.0 * v if key == "accuracy" else v

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
    ax.set_xlabel("generation")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if acc or rej:
        ax.legend(loc="best")


def _save_png(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return io_utils.atomic_write_bytes(path, buf.getvalue())


def plot_lineage(
    records: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write accuracy / synaptic / cluster efficiency vs generation PNGs and a combined panel.

    Rejected offspring are red crosses, the accepted lineage a blue line; efficiencies use a
    log axis because they grow geometrically. Uses the Agg canvas on a standalone Figure, so it
    works headless and does not switch the backend of an interactive session (e.g. Colab).
    Returns ``[accuracy.png, synaptic_efficiency.png, cluster_efficiency.png, lineage.png]``.
    """
    if not records:
        raise ValueError("plot_lineage needs at least one record")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for key, label, log in _PANELS:
        fig = Figure(figsize=(5, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        _draw_panel(ax, records, key, label, log)
        ax.set_title(label.split(" (")[0])
        paths.append(_save_png(fig, out / f"{key}.png"))

    fig = Figure(figsize=(15, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for ax, (key, label, log) in zip(axes, _PANELS, strict=True):
        _draw_panel(ax, records, key, label, log)
        ax.set_title(label.split(" (")[0])
    fig.tight_layout()
    paths.append(_save_png(fig, out / "lineage.png"))
    return paths


# --------------------------------------------------------------------------- TensorBoard

_WRITERS: dict[str, Any] = {}
_DATA_CLASS_SCALAR = 1  # tensorboard SummaryMetadata.DataClass.DATA_CLASS_SCALAR


def _writer(logdir: str | os.PathLike[str]) -> Any:
    key = os.path.abspath(os.fspath(logdir))
    if key not in _WRITERS:
        from tf_evosyn._keras import tf

        _WRITERS[key] = tf.summary.create_file_writer(key)
    return _WRITERS[key]


def write_tensorboard(logdir: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Log one generation's scalars (step = generation) so runs can be compared in TensorBoard.

    Writes ``evolution/{accuracy,synapses,clusters,synaptic_efficiency,cluster_efficiency}``
    and ``layers/<name>/{synapses,clusters}``. Scalars are written with ``tf.summary.write`` and
    the scalar-plugin metadata, which is what ``tf.summary.scalar`` does but does not require
    the ``tensorboard`` package to be installed.
    """
    from tf_evosyn._keras import tf

    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = _DATA_CLASS_SCALAR

    step = int(record["generation"])
    values: list[tuple[str, float]] = [
        (f"evolution/{k}", float(record[k]))
        for k in ("accuracy", "synapses", "clusters", "synaptic_efficiency", "cluster_efficiency")
    ]
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
