"""Benchmark: evolve DetectNet (MobileNetV2 trunk) on KITTI Car against the paper's 8.16x.

    python benchmarks/kitti_detectnet.py [--config=configs/detectnet_mobilenetv2_kitti.py]
        [--workdir=runs/bench_kitti_detectnet] [--output=benchmarks/results/kitti_detectnet.json]
        [--latency_runs=10] [--resamples=1000] [--config.KEY=VALUE ...]

Runs (or resumes) the experiment exactly as ``evosyn-detect`` does, on the real KITTI subset
(``$EVOSYN_DATA_DIR/kitti``, an ID-block split that is NOT KITTI's benchmark split; selection on
the validation block, the test block never decides), then prints the ancestor's learning curve
(train and validation AP every few epochs) and, per accepted generation, test Car AP|R40 for
Easy / Moderate / Hard at IoU 0.7 and 0.5 with a 90% bootstrap interval over the test images,
both efficiencies, MACs and the compacted network's batch-1 TFLite latency at 1248x384. Writes
the JSON and two PNG plots (test AP against cluster efficiency and against MACs, the paper's
8.16x marked) beside it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import detection_plots  # noqa: E402
import kitti_measure  # noqa: E402

import tf_evosyn  # noqa: E402, F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn.loop.learning_curve import read_learning_curve  # noqa: E402
from tf_evosyn.runs.detection import run_detection  # noqa: E402

PAPER = {"cluster_efficiency": 8.16, "source": "Shafiee, Barshan & Wong 2017 (DetectNet, KITTI)"}
GOAL = {"cluster_efficiency": 8.16, "max_relative_ap_loss": 0.10, "min_speedup": 3.0}

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/detectnet_mobilenetv2_kitti.py", "Experiment config."
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/bench_kitti_detectnet", "Run directory.")
_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/kitti_detectnet.json", "Where to write the JSON results."
)
_LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 10, "Timed TFLite invokes per network.")
_RESAMPLES = flags.DEFINE_integer("resamples", 1000, "Bootstrap resamples of the test images.")


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    start = time.time()
    records = run_detection(config, _WORKDIR.value)
    measured = kitti_measure.measure_generations(
        config, _WORKDIR.value, records, _LATENCY_RUNS.value, _RESAMPLES.value
    )
    curve = read_learning_curve(_WORKDIR.value)
    if curve:
        print(f"\nAncestor learning curve ({curve['metric']}, unaugmented train / validation):")
        print(detection_plots.learning_curve_table(curve["points"]))
    table = common.format_table(kitti_measure.HEADER, kitti_measure.rows(records, measured))
    print("\nKITTI Car, test block (AP|R40 %, 90% bootstrap interval over test images):")
    print(table)
    print(f"paper: {PAPER['cluster_efficiency']}x cluster efficiency ({PAPER['source']})")
    output = Path(_OUTPUT.value)
    plots = {}
    for x_key, label in (("cluster_efficiency", "cluster efficiency"), ("macs", "MACs")):
        plots[x_key] = str(
            detection_plots.plot_ap_against(
                kitti_measure.plot_points(records, measured, "0.7"),
                x_key,
                output.with_name(f"{output.stem}_ap_vs_{x_key}.png"),
                paper_mark=PAPER["cluster_efficiency"] if x_key == "cluster_efficiency" else None,
                x_label=label,
                title="KITTI Car Moderate AP|R40 @IoU 0.7 (test) per generation",
            )
        )
    result = kitti_measure.verdict(records, measured, GOAL)
    result["benchmark_seconds_this_call"] = time.time() - start
    print(result)
    common.write_results(
        output,
        {
            "benchmark": "kitti_detectnet",
            "config": common.config_json(config),
            "workdir": str(_WORKDIR.value),
            "paper": PAPER,
            "goal": GOAL,
            "verdict": result,
            "learning_curve": curve,
            "table": {
                "header": list(kitti_measure.HEADER),
                "rows": kitti_measure.rows(records, measured),
            },
            "measured": {str(k): v for k, v in measured.items()},
            "plots": plots,
            "lineage": records,
        },
    )


if __name__ == "__main__":
    app.run(main)
