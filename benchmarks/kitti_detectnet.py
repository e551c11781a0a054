"""Benchmark: evolve DetectNet on KITTI (Car) and compare with the paper's 8.16x clusters.

    python benchmarks/kitti_detectnet.py --config=configs/detectnet_kitti_bench.py \
        --workdir=runs/bench_kitti [--output=benchmarks/results/kitti_detectnet.json]
        [--latency_runs=10] [--config.KEY=VALUE ...]

Runs (or resumes) the experiment exactly as ``evosyn-detect`` does: on the real KITTI subset
(``$EVOSYN_DATA_DIR/kitti``, an ID-block split that is NOT KITTI's benchmark split) by default,
or on full KITTI through TFDS with ``--config.data.source=tfds`` where TFDS has it. Then, per
generation: Car AP (Easy, Moderate, Hard; AP|R40 and 11-point), DIGITS precision/recall/mAP,
synapses, clusters, both efficiencies, MACs of the compacted network, and the compacted
network's batch-1 TFLite latency at the paper's 1248x384 input beside the ancestor's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

import tf_evosyn  # noqa: E402, F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn.compaction import compact  # noqa: E402
from tf_evosyn.model_io import load_model  # noqa: E402
from tf_evosyn.run_dir import RunDirectory  # noqa: E402
from tf_evosyn.runs.detection import PAPER_INPUT_SHAPE, run_detection  # noqa: E402

PAPER = {"cluster_efficiency": 8.16, "source": "Shafiee, Barshan & Wong 2017 (DetectNet, KITTI)"}
GOAL = {"cluster_efficiency": 8.16, "max_relative_ap_loss": 0.10, "min_speedup": 3.0}

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/detectnet_kitti_bench.py", "Experiment config."
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/bench_kitti_detectnet", "Run directory.")
_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/kitti_detectnet.json", "Where to write the JSON results."
)
_LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 10, "Timed TFLite invokes per network.")


def measure_latencies(workdir: str, records: list[dict], runs: int) -> dict[int, dict]:
    """Batch-1 TFLite latency at 1248x384 of every accepted generation's compacted network."""
    run_dir = RunDirectory(workdir)
    latencies = {}
    for record in records:
        if record["accepted"]:
            model = compact(load_model(run_dir.generation_dir(record["generation"])))
            latencies[record["generation"]] = common.tflite_latency_at(
                model, PAPER_INPUT_SHAPE, runs
            )
    return latencies


def _ms(latency: dict) -> float:
    """CPU time of the invoking thread per invoke (1 thread): robust to other processes' load,
    unlike wall time (tf_evosyn.latency); wall time where CPU time is not reported."""
    return latency.get("cpu_median_ms") or latency["median_ms"]


def rows(records: list[dict], latencies: dict[int, dict]) -> list[list[str]]:
    ancestor_ms = _ms(latencies[0])
    table = []
    for r in records:
        m = r["metrics"]
        ms = _ms(latencies[r["generation"]]) if r["generation"] in latencies else None
        table.append(
            [
                str(r["generation"]),
                *(f"{100 * m[f'car_{d}_ap_r40']:.2f}" for d in ("easy", "moderate", "hard")),
                f"{100 * m['car_moderate_ap_11']:.2f}",
                f"{100 * m['car_digits_map']:.2f}",
                f"{r['synapses']:,}",
                f"{r['clusters']:,}",
                f"{r['synaptic_efficiency']:.2f}x",
                f"{r['cluster_efficiency']:.2f}x",
                f"{r['flops']:,}",
                f"{ms:.1f} ({ancestor_ms / ms:.2f}x)" if ms else "-",
                "ancestor" if r["generation"] == 0 else ("yes" if r["accepted"] else "no"),
            ]
        )
    return table


HEADER = (
    "gen",
    "Car easy AP|R40",
    "moderate",
    "hard",
    "moderate AP11",
    "DIGITS mAP",
    "synapses",
    "clusters",
    "syn. eff.",
    "cluster eff.",
    "MACs compacted",
    "TFLite CPU ms @1248x384 (speedup)",
    "accepted",
)


def verdict(records: list[dict], latencies: dict[int, dict]) -> dict:
    ancestor = records[0]
    floor = ancestor["score"] * (1 - GOAL["max_relative_ap_loss"])
    meeting = [r for r in records[1:] if r["accepted"] and r["score"] >= floor]
    best = max(meeting, key=lambda r: (r["cluster_efficiency"], r["generation"]), default=None)
    result = {"ancestor_car_moderate_ap_r40": ancestor["score"], "best_generation": None}
    if best is not None:
        speedup = _ms(latencies[0]) / _ms(latencies[best["generation"]])
        result.update(
            best_generation=best["generation"],
            car_moderate_ap_r40=best["score"],
            cluster_efficiency=best["cluster_efficiency"],
            synaptic_efficiency=best["synaptic_efficiency"],
            tflite_speedup_paper_size=speedup,
            cluster_goal_met=best["cluster_efficiency"] >= GOAL["cluster_efficiency"],
            speed_goal_met=speedup >= GOAL["min_speedup"],
        )
    return result


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    records = run_detection(config, _WORKDIR.value)
    latencies = measure_latencies(_WORKDIR.value, records, _LATENCY_RUNS.value)
    table = common.format_table(HEADER, rows(records, latencies))
    print("\nDetectNet / KITTI Car, validation split of the run (see data below):")
    print(table)
    print(f"paper: {PAPER['cluster_efficiency']}x cluster efficiency ({PAPER['source']})")
    result = verdict(records, latencies)
    print(result)
    common.write_results(
        _OUTPUT.value,
        {
            "benchmark": "kitti_detectnet",
            "config": common.config_json(config),
            "workdir": str(_WORKDIR.value),
            "paper": PAPER,
            "goal": GOAL,
            "verdict": result,
            "table": {"header": list(HEADER), "rows": rows(records, latencies)},
            "tflite_latency_paper_size": {str(k): v for k, v in latencies.items()},
            "lineage": records,
        },
    )


if __name__ == "__main__":
    app.run(main)
