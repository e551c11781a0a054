"""The TF-MOT comparison's verdict (each TF-MOT arm against the most efficient evolution
generation within the accuracy window) and its printed table and verdict lines."""

from __future__ import annotations

import math

import common

GOAL = {
    "accuracy_window_points": 0.3,  # evolution accuracy >= TF-MOT accuracy - 0.3 point
    "synaptic_efficiency_ratio": 1.0,  # evolution / TF-MOT
    "cluster_efficiency_ratio": 5.0,
    "speedup": 5.0,  # TF-MOT batch-1 TFLite latency / evolution's
}


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return math.inf
    return numerator / denominator


def verdict(rows: list[dict], tolerance: float | None = None) -> dict:
    """Each TF-MOT row against the most efficient evolution row within the accuracy window.

    ``tolerance``: the evolution's accuracy tolerance; a TF-MOT row further below the ancestor
    gets a note (the evolution would have rejected such a model), the comparison is unchanged.
    """
    evolution = [r for r in rows if r["kind"] == "evolution"]
    ancestor = next(r for r in rows if r["kind"] == "ancestor")
    window = GOAL["accuracy_window_points"] / 100
    comparisons = []
    for t in (r for r in rows if r["kind"] == "tfmot"):
        floor = t["accuracy"] - window
        eligible = [e for e in evolution if e["accuracy"] >= floor - 1e-12]
        item = {
            "tfmot": t["name"],
            "tfmot_accuracy": t["accuracy"],
            "accuracy_floor": floor,
            "generation": None,
            "goal_met": False,
            "tfmot_wins": [],
        }
        drop = ancestor["accuracy"] - t["accuracy"]
        if tolerance is not None and drop > tolerance + 1e-12:
            item["note"] = (
                f"TF-MOT is {100 * drop:.2f} points below the ancestor, beyond the evolution's "
                f"acceptance tolerance ({100 * tolerance:g} points)"
            )
        if not eligible:
            best = max(evolution, key=lambda e: e["accuracy"])
            item["tfmot_wins"].append(
                f"accuracy: no shown evolution generation reaches {100 * floor:.2f}% "
                f"(best: gen {best['generation']} at {100 * best['accuracy']:.2f}%)"
            )
            comparisons.append(item)
            continue
        e = max(
            eligible,
            key=lambda r: (r["cluster_efficiency"], r["synaptic_efficiency"], r["generation"]),
        )
        checks = {
            "synaptic_efficiency": (
                e["synaptic_efficiency"],
                t["synaptic_efficiency"],
                _ratio(e["synaptic_efficiency"], t["synaptic_efficiency"]),
                GOAL["synaptic_efficiency_ratio"],
            ),
            "cluster_efficiency": (
                e["cluster_efficiency"],
                t["cluster_efficiency"],
                _ratio(e["cluster_efficiency"], t["cluster_efficiency"]),
                GOAL["cluster_efficiency_ratio"],
            ),
            "speed": (
                e["latency_ms"],
                t["latency_ms"],
                _ratio(t["latency_ms"], e["latency_ms"]),
                GOAL["speedup"],
            ),
        }
        item.update(generation=e["generation"], evolution_accuracy=e["accuracy"])
        if t["accuracy"] > e["accuracy"]:
            item["tfmot_wins"].append(
                f"accuracy: TF-MOT {100 * t['accuracy']:.2f}% vs evolution "
                f"{100 * e['accuracy']:.2f}% (within the window)"
            )
        for name, (evo, tfm, ratio, need) in checks.items():
            met = ratio >= need
            item[name] = {"evolution": evo, "tfmot": tfm, "ratio": ratio, "need": need, "met": met}
            if ratio < 1.0:
                fmt = "{:.4f} ms" if name == "speed" else "{:.2f}x"
                what = "batch-1 latency" if name == "speed" else name.replace("_", " ")
                item["tfmot_wins"].append(
                    f"{what}: TF-MOT {fmt.format(tfm)} vs evolution {fmt.format(evo)}"
                )
        item["goal_met"] = all(item[name]["met"] for name in checks)
        comparisons.append(item)
    return {
        "goal": GOAL,
        "comparisons": comparisons,
        "goal_met_against_all": bool(comparisons) and all(c["goal_met"] for c in comparisons),
        "candidates": "accepted evolution generations shown in the table",
    }


def format_verdict(result: dict) -> str:
    lines = [
        "Verdict (goal: at accuracy >= TF-MOT's - 0.3 point, evolution >= 1x TF-MOT's synaptic "
        "efficiency, >= 5x its cluster efficiency, >= 5x its batch-1 TFLite speed):"
    ]
    for c in result["comparisons"]:
        head = f"  {c['tfmot']} ({100 * c['tfmot_accuracy']:.2f}%)"
        note = f"      note: {c['note']}" if "note" in c else None
        if c["generation"] is None:
            lines.append(f"{head}: NOT MET -- TF-MOT wins on {c['tfmot_wins'][0]}")
            lines.extend([note] if note else [])
            continue
        lines.append(
            f"{head} vs evo gen {c['generation']} ({100 * c['evolution_accuracy']:.2f}%): "
            + ("MET" if c["goal_met"] else "NOT MET")
        )
        for name, label, fmt in (
            ("synaptic_efficiency", "synaptic eff.", "{:.2f}x"),
            ("cluster_efficiency", "cluster eff. ", "{:.2f}x"),
            ("speed", "TFLite ms    ", "{:.4f}"),
        ):
            x = c[name]
            lines.append(
                f"      {label} evo {fmt.format(x['evolution'])} vs TF-MOT "
                f"{fmt.format(x['tfmot'])}: {x['ratio']:.2f}x (need >= {x['need']:g}x) "
                + ("ok" if x["met"] else "short")
            )
        for win in c["tfmot_wins"]:
            lines.append(f"      TF-MOT wins on {win}")
        lines.extend([note] if note else [])
    lines.append(
        "  Overall: "
        + (
            "goal met against every TF-MOT arm."
            if result["goal_met_against_all"]
            else f"goal NOT met against {sum(not c['goal_met'] for c in result['comparisons'])} "
            f"of {len(result['comparisons'])} TF-MOT arms."
        )
    )
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    header = [
        "row",
        "acc %",
        "synapses",
        "syn eff",
        "clusters",
        "clu eff",
        "MACs",
        "TFLite ms",
        "speedup",
        "epochs",
        "train s",
    ]
    base = rows[0]["latency_ms"]
    table = [header]
    for r in rows:
        table.append(
            [
                r["name"],
                f"{100 * r['accuracy']:.2f}",
                f"{r['synapses']:,}",
                common.efficiency_text(r["synaptic_efficiency"]),
                f"{r['clusters']:,}",
                common.efficiency_text(r["cluster_efficiency"]),
                f"{r['macs']:,}",
                f"{r['latency_ms']:.4f}",
                f"{base / r['latency_ms']:.2f}x",
                str(r["epochs"]),
                f"{r['train_seconds']:.0f}",
            ]
        )
    return common.aligned_table(table)
