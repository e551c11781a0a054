"""Benchmark: evolve LeNet-5 on full MNIST and compare with the published results (issue 12).

    python benchmarks/mnist_lenet5.py [--config=configs/lenet5_relu_mnist.py]
        [--workdir=runs/bench_<config>] [--output=benchmarks/results/mnist_<config>.json]
        [--plots_dir=benchmarks/results]
        [--report_only] [--compare=flops_budget|latency_budget | --other_workdir=RUN]
        [--config.KEY=VALUE ...]

Runs (or resumes) the experiment exactly as ``evosyn-classify`` does (``--report_only``: reads
the finished run directory instead), then prints one row per generation (validation and test
accuracy, synapses, clusters, both efficiencies, compacted MACs, seconds and seconds per
fine-tuning epoch) beside the published LeNet-5 results, the verdict against issue 12's targets
(offspring chosen on validation, judged on test), draws test accuracy against synaptic and
cluster efficiency as PNG (named after ``--output``: ``<stem>_test_accuracy_vs_*.png``), and
writes everything as JSON. Without flags it runs issue 12's recipe
(``configs/lenet5_relu_mnist.py``) into ``runs/bench_lenet5_relu_mnist`` and writes
``benchmarks/results/mnist_lenet5_relu.json``; the papers' Caffe LeNet-5 is
``--config=configs/lenet5_mnist.py`` (-> ``mnist_lenet5.json``).

Issue 13: ``--compare=flops_budget`` (or ``latency_budget``) also runs the same config with that
``evolution.environment`` from the same trained ancestor (``--compare_workdir``),
``--other_workdir`` reads any finished run instead; both print the two lineages side by side with
their best MACs reductions within the accuracy tolerance, and write ``--compare_output``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import lenet5_report as report  # noqa: E402

import tf_evosyn  # noqa: E402, F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn.loop.lineage_report import plot_score_vs_efficiency  # noqa: E402
from tf_evosyn.storage import fs  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(common.LENET5_CONFIG), "Experiment config (default: issue 12's recipe)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: runs/bench_<config>).")
_OUTPUT = flags.DEFINE_string(
    "output",
    None,
    "Where to write the JSON results (default: benchmarks/results/mnist_<config>.json, <config> "
    "= the config file's name without _mnist: lenet5_relu_mnist -> mnist_lenet5_relu.json).",
)
_PLOTS_DIR = flags.DEFINE_string(
    "plots_dir", "benchmarks/results", "Where to write the accuracy-vs-efficiency PNGs."
)
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Read the finished run in --workdir (and its config.json); run nothing."
)
_COMPARE = flags.DEFINE_enum(
    "compare",
    "none",
    ["none", "flops_budget", "latency_budget"],
    "flops_budget / latency_budget: also run the config with that evolution.environment from "
    "the same ancestor into --compare_workdir and print both lineages side by side.",
)
_COMPARE_WORKDIR = flags.DEFINE_string(
    "compare_workdir", None, "Run directory of the --compare arm (default: <workdir>_<arm>)."
)
_OTHER_WORKDIR = flags.DEFINE_string(
    "other_workdir", None, "A finished run to print side by side with --workdir (read only)."
)
_COMPARE_OUTPUT = flags.DEFINE_string(
    "compare_output",
    None,
    "Where to write the side-by-side JSON (default: benchmarks/results/mnist_<arm>_vs_layer_budget"
    ".json, <arm> = flops or latency).",
)

# Record fields the side-by-side JSON keeps (the rest is in each run directory).
_BRIEF_KEYS = (
    "generation", "accepted", "score", "test_accuracy", "flops", "synapses", "clusters",
    "synaptic_efficiency", "cluster_efficiency", "seconds", "layers",
)  # fmt: skip


def _run(config, workdir: str) -> list[dict]:
    from tf_evosyn.runs.classification import run_classification

    return run_classification(config, workdir)


def _workdir() -> str:
    return _WORKDIR.value or common.default_workdir()


def _output() -> str:
    default = f"benchmarks/results/mnist_{common.config_stem().replace('_mnist', '')}.json"
    return _OUTPUT.value or default


def _check_flags() -> None:
    """Contradictions are reported before any training."""
    if _COMPARE.value != "none" and _OTHER_WORKDIR.value:
        raise app.UsageError("--compare runs a second arm, --other_workdir reads one: pick one")
    if _COMPARE.value != "none" and _REPORT_ONLY.value:
        raise app.UsageError(
            "--report_only runs nothing: read the finished second arm with --other_workdir"
        )


def _environment(config: dict) -> str:
    evolution = config.get("evolution", {})
    return str(evolution.get("environment", "unknown"))


def _main_arm() -> tuple[list[dict], dict]:
    if _REPORT_ONLY.value:
        return common.read_run(_workdir())
    config = _CONFIG.value
    return _run(config, _workdir()), common.config_json(config)


def _compare_arm() -> tuple[list[dict], dict, str] | None:
    """The second lineage: run (--compare) from the first arm's ancestor, or read."""
    if _OTHER_WORKDIR.value:
        records, config = common.read_run(_OTHER_WORKDIR.value)
        return records, config, _OTHER_WORKDIR.value
    if _COMPARE.value == "none":
        return None
    config = copy.deepcopy(_CONFIG.value)
    workdir = _COMPARE_WORKDIR.value or f"{_workdir().rstrip('/')}_{_COMPARE.value}"
    with config.unlocked():
        config.evolution.environment = _COMPARE.value
        # The same trained ancestor, so the two lineages differ only by their environment.
        config.train.ancestor_path = str(
            fs.join(_workdir(), "generations", "gen_0000", "model.keras")
        )
        config.train.epochs = 0
    return _run(config, workdir), common.config_json(config), workdir


def _print_and_write_comparison(
    first: tuple[list[dict], dict, str], second: tuple[list[dict], dict, str]
) -> None:
    names = [_environment(first[1]), _environment(second[1])]
    if names[0] == names[1]:
        names = [f"{names[0]} ({Path(first[2]).name})", f"{names[1]} ({Path(second[2]).name})"]
    arms = {names[0]: first[0], names[1]: second[0]}
    tolerance = float(first[1].get("evolution", {}).get("accuracy_tolerance", 0.01))
    result = report.macs_verdict(arms, names[0], names[1], tolerance)
    print()
    print(f"{names[1]} against {names[0]} (MACs of the compacted networks):")
    print(report.side_by_side(arms))
    print(report.format_macs_verdict(result, names[0], names[1]))
    runs = {}
    for name, (records, config, workdir) in zip(names, (first, second), strict=True):
        runs[name] = {
            "workdir": str(workdir),
            "config": config,
            "lineage": [{k: r[k] for k in _BRIEF_KEYS if k in r} for r in records],
        }
    # --other_workdir: the other run's own environment names the file (flops / latency / ...)
    arm = _COMPARE.value if _COMPARE.value != "none" else _environment(second[1])
    default_output = f"benchmarks/results/mnist_{arm.removesuffix('_budget')}_vs_layer_budget.json"
    common.write_results(
        _COMPARE_OUTPUT.value or default_output,
        {
            "benchmark": "mnist_lenet5 side by side",
            "note": "MACs = the compacted network's; selection on the run's decision split",
            "runs": runs,
            "verdict": result,
        },
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    _check_flags()
    records, config = _main_arm()
    print()
    print("LeNet-5 / MNIST: ours per generation (val = the selection split, test = never used")
    print("by selection) and the published results on the same LeNet-5-Caffe:")
    print(report.generations_table(records))
    result = report.verdict(records)
    print()
    print(report.format_verdict(result))
    plots = plot_score_vs_efficiency(
        records, _PLOTS_DIR.value, anchors=report.PUBLISHED, prefix=f"{Path(_output()).stem}_"
    )
    print("Plots: " + ", ".join(str(p) for p in plots))
    common.write_results(
        _output(),
        {
            "benchmark": "mnist_lenet5",
            "config": config,
            "workdir": str(_workdir()),
            "published": list(report.PUBLISHED),
            "targets": [t.__dict__ for t in report.TARGETS],
            "verdict": result,
            "plots": [str(p) for p in plots],
            "lineage": records,
        },
    )
    second = _compare_arm()
    if second is not None:
        _print_and_write_comparison((records, config, _workdir()), second)


if __name__ == "__main__":
    app.run(main)
