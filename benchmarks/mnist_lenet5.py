"""Benchmark: evolve LeNet-5 on full MNIST and compare with the papers' figures.

    python benchmarks/mnist_lenet5.py --config=configs/lenet5_mnist.py --workdir=runs/bench
        [--output=benchmarks/results/mnist_lenet5.json] [--config.KEY=VALUE ...]

Runs (or resumes) the experiment exactly as ``evosyn-classify`` does, then prints one row per
generation (accuracy, synapses, clusters, both efficiencies) beside the papers' LeNet-5 result
(~125x synaptic, ~9.71x cluster efficiency) and writes everything as JSON.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

import tf_evosyn  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn import io_utils
from tf_evosyn.experiment import run_classification
from tf_evosyn.lineage import summary_table

PAPER = {"synaptic_efficiency": 125.0, "cluster_efficiency": 9.71}
GOAL = {
    "synaptic_efficiency": 125.0,
    "cluster_efficiency": 9.71,
    "max_accuracy_drop": 0.010,
    "min_ancestor_accuracy": 0.990,
}

_CONFIG = config_flags.DEFINE_config_file("config", "configs/lenet5_mnist.py", "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/bench_mnist_lenet5", "Run directory.")
_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/mnist_lenet5.json", "Where to write the JSON results."
)


def verdict(records: list[dict]) -> dict:
    """The best accepted offspring against the issue's goal."""
    ancestor = records[0]
    meeting = [
        r
        for r in records[1:]
        if r["accepted"] and ancestor["accuracy"] - r["accuracy"] <= GOAL["max_accuracy_drop"]
    ]
    best = max(
        meeting, key=lambda r: (r["cluster_efficiency"], r["synaptic_efficiency"]), default=None
    )
    result = {"ancestor_accuracy": ancestor["accuracy"], "best_generation": None, "goal_met": False}
    if best is not None:
        result.update(
            best_generation=best["generation"],
            accuracy=best["accuracy"],
            accuracy_drop_points=100 * (ancestor["accuracy"] - best["accuracy"]),
            synaptic_efficiency=best["synaptic_efficiency"],
            cluster_efficiency=best["cluster_efficiency"],
            goal_met=bool(
                ancestor["accuracy"] >= GOAL["min_ancestor_accuracy"]
                and best["synaptic_efficiency"] >= GOAL["synaptic_efficiency"]
                and best["cluster_efficiency"] >= GOAL["cluster_efficiency"]
            ),
        )
    return result


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    records = run_classification(config, _WORKDIR.value)
    print()
    print("LeNet-5 / MNIST (test split), ours per generation vs. the papers:")
    print(summary_table(records, paper=PAPER))
    result = verdict(records)
    print()
    print(json.dumps(result, indent=2))
    output = Path(_OUTPUT.value)
    output.parent.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_write_json(
        output,
        {
            "benchmark": "mnist_lenet5",
            "config": json.loads(config.to_json_best_effort(sort_keys=True)),
            "workdir": str(_WORKDIR.value),
            "machine": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "processor": platform.processor(),
            },
            "paper": PAPER,
            "goal": GOAL,
            "verdict": result,
            "lineage": records,
        },
    )
    print(f"Wrote {output}")


if __name__ == "__main__":
    app.run(main)
