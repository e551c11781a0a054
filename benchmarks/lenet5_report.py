"""What the LeNet-5/MNIST benchmark reports: the published results beside our generations, the
verdict against issue 12's targets, and two lineages side by side (issue 13).

Pure Python on lineage records (no TensorFlow), so the tests check it on hand-made lineages.
Every verdict follows one rule: offspring are *chosen* on the validation split (the one that
decided the run) and *judged* on the test split, which no decision ever saw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from common import format_table

# The best published results on the same LeNet-5-Caffe (issue 12) and the papers' own figures.
PUBLISHED: tuple[dict, ...] = (
    {
        "label": "BC-GHS (Louizos et al. 2017)",
        "source": "Bayesian Compression, architecture 5-10-76-16",
        "accuracy": 0.990,
        "synaptic_efficiency": 156.0,
        "cluster_efficiency": 14.1,
    },
    {
        "label": "Sparse VD (Molchanov et al. 2017)",
        "source": "Sparse Variational Dropout, unstructured",
        "accuracy": 0.9925,
        "synaptic_efficiency": 280.0,
        "cluster_efficiency": None,
    },
    {
        "label": "Mating Rituals (Chung et al. 2017)",
        "source": "2-parent evolutionary synthesis",
        "accuracy": 0.97,
        "synaptic_efficiency": 258.37,
        "cluster_efficiency": 34.29,
    },
    {
        "label": "papers (Shafiee & Wong 2016)",
        "source": "evolutionary synthesis, near the ancestor's accuracy",
        "accuracy": None,
        "synaptic_efficiency": 125.0,
        "cluster_efficiency": 9.71,
    },
)


@dataclass(frozen=True)
class Target:
    name: str
    accuracy: float  # test accuracy to reach (a fraction)
    synaptic_efficiency: float
    cluster_efficiency: float
    min_parents: int = 1  # the target is about m-parent synthesis when > 1


TARGETS: tuple[Target, ...] = (
    Target("(1) issue 12: >= 99.0% at >= 150x / 14x", 0.990, 150.0, 14.0),
    Target("(2) stretch: >= 99.0% at >= 280x / 15x", 0.990, 280.0, 15.0),
    Target("(3) Mating Rituals: >= 97% at >= 258.37x / 34.29x", 0.970, 258.37, 34.29, 2),
)
MAX_EVOLUTION_COST = 3.0  # whole evolution <= 3x the ancestor's training time


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100.0 * x:.2f}"


def _eff(x: float | None) -> str:
    if x is None:
        return "-"
    return "inf" if math.isinf(x) else f"{x:.2f}x"


def _validation(record: Mapping) -> float:
    """The score every decision was made on (validation, or test under the papers' protocol)."""
    return float(record.get("score", record.get("accuracy")))


def _test(record: Mapping) -> float | None:
    return float(record["test_score"]) if "test_score" in record else None


def _macs_ratio(record: Mapping, ancestor: Mapping) -> float | None:
    if not record.get("flops") or not ancestor.get("flops"):
        return None
    return ancestor["flops"] / record["flops"]


def generations_table(records: Sequence[Mapping]) -> str:
    """Our generations (validation and test accuracy, counts, efficiencies, compacted MACs,
    seconds) with the published results as the last rows."""
    ancestor = records[0]
    base_epoch = ancestor.get("seconds_per_epoch")
    header = ["gen", "val %", "test %", "synapses", "clusters", "syn. eff.", "clu. eff."]
    header += ["MACs", "seconds", "s/epoch", "vs ancestor", "accepted"]
    rows = []
    for r in records:
        per_epoch = r.get("seconds_per_epoch")
        ratio = per_epoch / base_epoch if per_epoch and base_epoch else None
        rows.append(
            [
                f"{r['generation']} (final)" if r.get("final") else str(r["generation"]),
                _pct(_validation(r)),
                _pct(_test(r)),
                f"{r['synapses']:,}",
                f"{r['clusters']:,}",
                _eff(r["synaptic_efficiency"]),
                _eff(r["cluster_efficiency"]),
                f"{r['flops']:,}" if r.get("flops") else "-",
                f"{r['seconds']:.1f}",
                f"{per_epoch:.1f}" if per_epoch else "-",
                f"{ratio:.2f}x" if ratio else "-",
                "ancestor" if r["generation"] == 0 else ("yes" if r["accepted"] else "no"),
            ]
        )
    for p in PUBLISHED:
        label = p["label"]
        acc = _pct(p["accuracy"]) if p["accuracy"] else "near ancestor"
        cells = [label, "-", acc, "-", "-"]
        cells += [_eff(p["synaptic_efficiency"]), _eff(p["cluster_efficiency"])]
        rows.append(cells + ["-"] * (len(header) - len(cells)))
    return format_table(header, rows)


def _offspring(records: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in records[1:] if r["accepted"]]


def _efficiency_key(r: Mapping) -> tuple[float, float, int]:
    # Ties go to the later generation, as the run's best/ (Lineage.best): a final fine-tuning
    # has its parent's counts.
    return (r["cluster_efficiency"], r["synaptic_efficiency"], r["generation"])


def best_generation(records: Sequence[Mapping]) -> int | None:
    """The most efficient accepted offspring (accepted = within the tolerance on validation),
    the one the run's best/ holds."""
    best = max(_offspring(records), key=_efficiency_key, default=None)
    return None if best is None else best["generation"]


def target_verdict(records: Sequence[Mapping], target: Target) -> dict:
    """Choose on validation the offspring for ``target``: among accepted offspring at or above
    the target accuracy on validation and at both efficiencies, the most accurate on validation.
    The target is met when that offspring's *test* accuracy reaches the target too."""
    parents = max(int(r.get("parents", 1)) for r in records)
    result: dict = {"target": target.name, "met": False, "generation": None}
    if records[0].get("selection_split") == "test" or "test_score" not in records[0]:
        why = "the run selected on the test split (no independent test score)"
        result.update(status="NOT MEASURABLE", why=why)
        return result
    if parents < target.min_parents:
        result.update(status="NOT APPLICABLE", why=f"single-parent run (parents={parents})")
        return result
    accurate = [r for r in _offspring(records) if _validation(r) >= target.accuracy]
    efficient = [
        r
        for r in accurate
        if r["synaptic_efficiency"] >= target.synaptic_efficiency
        and r["cluster_efficiency"] >= target.cluster_efficiency
    ]
    if efficient:
        chosen = max(efficient, key=lambda r: (_validation(r), *_efficiency_key(r)))
        test = _test(chosen)
        result["met"] = test is not None and test >= target.accuracy
        result["status"] = "MET" if result["met"] else "NOT MET"
        result["why"] = "chosen on validation" if result["met"] else "below the target on test"
    elif accurate:
        chosen = max(accurate, key=_efficiency_key)
        why = f"closest: the most efficient offspring at {_pct(target.accuracy)}% on validation"
        result.update(status="NOT MET", why=why)
    else:
        chosen = None
        why = f"no offspring reaches {_pct(target.accuracy)}% on validation"
        result.update(status="NOT MET", why=why)
    if chosen is not None:
        result.update(
            generation=chosen["generation"],
            validation_accuracy=_validation(chosen),
            test_accuracy=_test(chosen),
            synaptic_efficiency=chosen["synaptic_efficiency"],
            cluster_efficiency=chosen["cluster_efficiency"],
        )
    return result


def time_verdict(records: Sequence[Mapping]) -> dict:
    """Seconds of all offspring generations (re-draws and population included) against the
    ancestor's training (generation 0)."""
    ancestor = records[0]
    offspring = sum(r["seconds"] for r in records[1:])
    result = {"ancestor_seconds": ancestor["seconds"], "offspring_seconds": offspring}
    if not ancestor.get("epochs"):
        why = "the ancestor was loaded (train.epochs=0), not trained in this run"
        result.update(met=False, status="NOT MEASURABLE", why=why)
        return result
    ratio = offspring / ancestor["seconds"]
    met = ratio <= MAX_EVOLUTION_COST
    result.update(ratio=ratio, met=met, status="MET" if met else "NOT MET")
    return result


def verdict(records: Sequence[Mapping]) -> dict:
    """Every target of issue 12, plus the best generation (what the table marks)."""
    return {
        "best_generation": best_generation(records),
        "targets": [target_verdict(records, t) for t in TARGETS],
        "time": time_verdict(records),
    }


def format_verdict(result: Mapping) -> str:
    lines = ["Verdict (offspring chosen on validation, judged on test):"]
    for t in result["targets"]:
        line = f"  {t['target']}: {t['status']} ({t['why']})"
        if t["generation"] is not None:
            line += (
                f" - gen {t['generation']}: test {_pct(t['test_accuracy'])}% "
                f"(val {_pct(t['validation_accuracy'])}%), "
                f"{_eff(t['synaptic_efficiency'])} / {_eff(t['cluster_efficiency'])}"
            )
        lines.append(line)
    time = result["time"]
    line = f"  (4) evolution <= {MAX_EVOLUTION_COST:g}x the ancestor's training: "
    line += time["status"] + (f" ({time['why']})" if "why" in time else "")
    line += (
        f" - offspring {time['offspring_seconds']:.0f} s, ancestor {time['ancestor_seconds']:.0f} s"
    )
    if "ratio" in time:
        line += f" ({time['ratio']:.2f}x)"
    return "\n".join([*lines, line])


# --------------------------------------------------------------------------- two lineages


def best_macs_reduction(records: Sequence[Mapping], tolerance: float) -> Mapping | None:
    """The accepted offspring with the largest MACs reduction within ``tolerance`` (a fraction)
    of the ancestor's validation accuracy; its validation accuracy breaks ties."""
    ancestor = records[0]
    floor = _validation(ancestor) - tolerance - 1e-12
    within = [r for r in _offspring(records) if _validation(r) >= floor and r.get("flops")]
    return max(within, key=lambda r: (_macs_ratio(r, ancestor), _validation(r)), default=None)


def side_by_side(arms: Mapping[str, Sequence[Mapping]]) -> str:
    """Generation, validation and test accuracy, MACs reduction vs the ancestor, per arm."""
    header = ["gen"]
    for name in arms:
        header += [f"{name} val %", "test %", "MACs reduction", "syn. eff."]
    generations = sorted({r["generation"] for records in arms.values() for r in records})
    rows = []
    for g in generations:
        row = [str(g)]
        for records in arms.values():
            r = next((r for r in records if r["generation"] == g), None)
            if r is None:
                row += ["-"] * 4
                continue
            ratio = _macs_ratio(r, records[0])
            rejected = "" if r["accepted"] else " (rejected)"
            row += [_pct(_validation(r)) + rejected, _pct(_test(r))]
            row += [f"{ratio:.2f}x" if ratio else "-"]
            row += [f"{r['synaptic_efficiency']:.1f}x"]
        rows.append(row)
    return format_table(header, rows)


def macs_verdict(
    arms: Mapping[str, Sequence[Mapping]], reference: str, challenger: str, tolerance: float
) -> dict:
    """Issue 13: does ``challenger`` reach at least ``reference``'s best MACs reduction at equal
    or better validation accuracy (both within ``tolerance`` of their ancestor)?"""
    best = {name: best_macs_reduction(arms[name], tolerance) for name in (reference, challenger)}
    result: dict = {"tolerance": tolerance, "met": False}
    for name, r in best.items():
        result[name] = None
        if r is not None:
            result[name] = {
                "generation": r["generation"],
                "macs_reduction": _macs_ratio(r, arms[name][0]),
                "validation_accuracy": _validation(r),
                "test_accuracy": _test(r),
            }
    ref = result[reference]
    if ref is None:
        result["met"] = result[challenger] is not None
        return result
    base = arms[challenger][0]
    result["met"] = any(
        _macs_ratio(r, base) >= ref["macs_reduction"]
        and _validation(r) >= ref["validation_accuracy"]
        for r in _offspring(arms[challenger])
        if r.get("flops") and _validation(r) >= _validation(base) - tolerance - 1e-12
    )
    return result


def format_macs_verdict(result: Mapping, reference: str, challenger: str) -> str:
    def arm(name: str) -> str:
        b = result[name]
        if b is None:
            return f"{name}: no offspring within the tolerance"
        return (
            f"{name} best {b['macs_reduction']:.2f}x at gen {b['generation']} "
            f"(val {_pct(b['validation_accuracy'])}%, test {_pct(b['test_accuracy'])}%)"
        )

    verdict = "MET" if result["met"] else "NOT MET"
    return (
        f"MACs reduction within {100 * result['tolerance']:.1f} points of the ancestor (val): "
        f"{arm(reference)}; {arm(challenger)}. {challenger} reaches {reference}'s reduction at "
        f"equal or better validation accuracy: {verdict}"
    )
