"""What benchmarks/kitti_detectnet.py measures per generation, beyond what the run recorded.

The run records validation and test Car AP|R40 at KITTI's IoU 0.7. With ~20 test images one AP
means little, so here every accepted generation's compacted network is run once more on the
test block and scored at IoU 0.7 and 0.5 for Easy, Moderate and Hard, each with a bootstrap
interval over the test images (:func:`tf_evosyn.detection.bootstrap_ap`), beside its batch-1
TFLite latency at the paper's 1248x384 input.
"""

from __future__ import annotations

import common

from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.model_io import load_model
from tf_evosyn.data.kitti import load_kitti_data
from tf_evosyn.detection import bootstrap_ap, format_interval
from tf_evosyn.loop.run_dir import RunDirectory
from tf_evosyn.runs.detection import PAPER_INPUT_SHAPE, detection_task

IOUS = (0.7, 0.5)
DIFFICULTIES = ("easy", "moderate", "hard")


def _ms(latency: dict) -> float:
    """CPU time of the invoking thread per invoke (1 thread): robust to other processes' load,
    unlike wall time (tf_evosyn.hardware.latency); wall time where CPU time is not reported."""
    return latency.get("cpu_median_ms") or latency["median_ms"]


def measure_generations(
    config, workdir: str, records: list[dict], latency_runs: int, resamples: int
) -> dict[int, dict]:
    """Per accepted generation: test AP intervals at both IoUs and TFLite latency (ms)."""
    data = load_kitti_data(config.data)
    task = detection_task(config)
    run_dir = RunDirectory(workdir)
    measured = {}
    for record in records:
        if not record["accepted"]:
            continue
        model = compact(load_model(run_dir.generation_dir(record["generation"])))
        ground_truth, detections = task.ground_truth_and_detections(
            model, data.test_dataset(int(config.train.batch_size))
        )
        ap = {}
        for iou in IOUS:
            intervals = bootstrap_ap(
                ground_truth,
                detections,
                task.class_names,
                min_overlap={task.class_names[0].lower(): iou},
                resamples=resamples,
                seed=int(config.seed),
            )
            ap[str(iou)] = {
                d: intervals[f"{task.class_names[0].lower()}_{d}_ap_r40"]._asdict()
                for d in DIFFICULTIES
            }
        latency = common.tflite_latency_at(model, PAPER_INPUT_SHAPE, latency_runs)
        measured[record["generation"]] = {
            "test_ap_r40": ap,
            "tflite_latency": latency,
            "ms": _ms(latency),
            "test_images": len(ground_truth),
        }
    return measured


def _cell(interval: dict) -> str:
    return format_interval(interval["value"], interval["low"], interval["high"])


HEADER = (
    "gen",
    "test Mod AP@0.7 [90%]",
    "Easy@0.7",
    "Hard@0.7",
    "test Mod AP@0.5 [90%]",
    "Easy@0.5",
    "Hard@0.5",
    "val Mod@0.7",
    "syn. eff.",
    "cluster eff.",
    "MACs compacted",
    "TFLite ms @1248x384 (speedup)",
    "accepted",
)


def rows(records: list[dict], measured: dict[int, dict]) -> list[list[str]]:
    """The lineage table: one row per generation (rejected ones without test measurements)."""
    ancestor_ms = measured[0]["ms"]
    table = []
    for r in records:
        m = measured.get(r["generation"])
        cells = ["-"] * 6
        if m is not None:
            strict, loose = m["test_ap_r40"]["0.7"], m["test_ap_r40"]["0.5"]
            cells = [
                _cell(strict["moderate"]),
                f"{100 * strict['easy']['value']:.1f}",
                f"{100 * strict['hard']['value']:.1f}",
                _cell(loose["moderate"]),
                f"{100 * loose['easy']['value']:.1f}",
                f"{100 * loose['hard']['value']:.1f}",
            ]
        table.append(
            [
                str(r["generation"]),
                *cells,
                f"{100 * r['score']:.1f}",
                f"{r['synaptic_efficiency']:.2f}x",
                f"{r['cluster_efficiency']:.2f}x",
                f"{r['flops']:,}",
                f"{m['ms']:.0f} ({ancestor_ms / m['ms']:.2f}x)" if m else "-",
                "ancestor" if r["generation"] == 0 else ("yes" if r["accepted"] else "no"),
            ]
        )
    return table


def plot_points(records: list[dict], measured: dict[int, dict], iou: str) -> list[dict]:
    """Points of the AP-against-efficiency plots (percent), accepted generations only."""
    points = []
    for r in records:
        m = measured.get(r["generation"])
        if m is None:
            continue
        moderate = m["test_ap_r40"][iou]["moderate"]
        points.append(
            {
                "generation": r["generation"],
                "cluster_efficiency": r["cluster_efficiency"],
                "macs": r["flops"],
                "ap": 100 * moderate["value"],
                "ap_low": 100 * moderate["low"],
                "ap_high": 100 * moderate["high"],
            }
        )
    return points


def verdict(records: list[dict], measured: dict[int, dict], goal: dict) -> dict:
    """The issue's goals on the TEST block, for the first accepted generation at >= 8.16x
    (chosen on validation by the run, not on test)."""

    def moderate(generation: int, iou: str) -> float:
        return measured[generation]["test_ap_r40"][iou]["moderate"]["value"]

    result = {
        "ancestor_test_moderate_ap_r40_iou07": moderate(0, "0.7"),
        "ancestor_test_moderate_ap_r40_iou05": moderate(0, "0.5"),
        "ancestor_goal_met": moderate(0, "0.5") >= 0.40 and moderate(0, "0.7") >= 0.20,
        "generation": None,
    }
    efficient = [
        r
        for r in records[1:]
        if r["accepted"] and r["cluster_efficiency"] >= goal["cluster_efficiency"]
    ]
    if efficient:
        r = efficient[0]
        kept = moderate(r["generation"], "0.7") / max(moderate(0, "0.7"), 1e-12)
        speedup = measured[0]["ms"] / measured[r["generation"]]["ms"]
        result.update(
            generation=r["generation"],
            cluster_efficiency=r["cluster_efficiency"],
            synaptic_efficiency=r["synaptic_efficiency"],
            test_moderate_ap_r40_iou07=moderate(r["generation"], "0.7"),
            kept_fraction_of_ancestor_ap=kept,
            tflite_speedup_paper_size=speedup,
            ap_goal_met=kept >= 1 - goal["max_relative_ap_loss"],
            speed_goal_met=speedup >= goal["min_speedup"],
        )
    return result
