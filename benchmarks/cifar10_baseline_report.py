"""What the CIFAR-10 L1-pruning baseline reports: one row per seed with the evolution's chosen
offspring and the L1-pruned ancestor side by side, and mean / min / max / spread rows over seeds
(spread = max - min: how much of one seed's result is luck)."""

from __future__ import annotations

import statistics

import common

# (key, header, format) of the side-by-side table; keys are "<method>.<field>" of a seed's row.
COLUMNS = (
    ("evolution.generation", "evo gen", "int"),
    ("evolution.test_accuracy", "evo test %", "pct"),
    ("l1_pruning.fraction", "L1 fraction", "frac"),
    ("l1_pruning.test_accuracy_before_fine_tuning", "L1 pre-FT %", "pct"),
    ("l1_pruning.test_accuracy", "L1 test %", "pct"),
    ("difference.test_accuracy", "L1 - evo", "points"),
    ("evolution.macs", "evo MACs", "int"),
    ("l1_pruning.macs", "L1 MACs", "int"),
    ("evolution.params", "evo params", "int"),
    ("l1_pruning.params", "L1 params", "int"),
    ("evolution.cluster_efficiency", "evo clu. eff", "eff"),
    ("l1_pruning.cluster_efficiency", "L1 clu. eff", "eff"),
    ("l1_pruning.epochs", "epochs", "int"),
)
SUMMARIES = ("mean", "min", "max", "spread")


def _value(row: dict, key: str):
    method, field = key.split(".")
    return row.get(method, {}).get(field)


def summarize(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """{method: {field: {mean, min, max, spread}}} over the seeds' rows, every numeric field."""
    out: dict[str, dict[str, dict]] = {}
    for method in ("evolution", "l1_pruning", "difference"):
        fields = sorted({k for r in rows for k, v in r.get(method, {}).items() if _number(v)})
        for field in fields:
            values = [r[method][field] for r in rows if _number(r[method].get(field))]
            if values:
                out.setdefault(method, {})[field] = {
                    "mean": statistics.fmean(values),
                    "min": min(values),
                    "max": max(values),
                    "spread": max(values) - min(values),
                }
    return out


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value, kind: str, summary: str | None = None) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}"
    if kind == "points":
        return f"{100 * value:+.2f}" if summary != "spread" else f"{100 * value:.2f}"
    if kind == "frac":
        return f"{value:.4f}"
    if kind == "eff":
        return common.efficiency_text(value) if summary != "spread" else f"{value:.2f}"
    return f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"


def format_table(rows: list[dict], summary: dict) -> str:
    """Seeds, then mean / min / max / spread, as an aligned plain-text table."""
    table = [["seed", *(header for _, header, _ in COLUMNS)]]
    for row in rows:
        table.append([str(row["seed"]), *(_cell(_value(row, k), f) for k, _, f in COLUMNS)])
    for name in SUMMARIES if len(rows) > 1 else ():
        cells = []
        for key, _, kind in COLUMNS:
            method, field = key.split(".")
            stats = summary.get(method, {}).get(field)
            cells.append(_cell(stats[name] if stats else None, kind, name))
        table.append([name, *cells])
    return common.aligned_table(table)


def print_model(model: str, result: dict) -> None:
    """One model's block: how the baseline was made, and the table."""
    seeds = result.get("summary_seeds") or sorted(result["seeds"], key=int)
    rows = [result["seeds"][str(s)] for s in seeds]
    print()
    print(f"== {model}: evolution vs L1-norm filter pruning (Li et al. 2017) ==")
    if rows:
        l1 = rows[0]["l1_pruning"]
        print(
            f"L1: the ancestor (gen 0 of each seed's run), uniform fraction of each prunable "
            f"layer's filters (skip_coupled={l1['skip_coupled']}, skipped layers: "
            f"{', '.join(l1['skip_layers']) or 'none'}) found by bisection so its compacted MACs "
            "<= the chosen offspring's; fine-tuned with the evolution's optimizer for the "
            "epochs the evolution spent up to that offspring (re-draws included); test split"
        )
    print(format_table(rows, result["summary"]))
