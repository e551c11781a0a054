"""Per-generation latency of each paper network's offspring (for ``latency.py --networks``).

Latency depends on shapes only, so a lineage here is *architecture-only*: it is drawn from a
random-init ancestor with the network's config environment (configs/*.py), or, for LeNet-5, it
rebuilds the layer widths recorded by the trained run in benchmarks/results/mnist_lenet5.json.
Every generation is compacted, converted to TFLite and timed at 1 and 2 threads in interleaved
rounds; the table gives the MACs ratio, the speedups, the share of the promised saving
(1 - 1/speedup) / (1 - 1/MACs ratio) and the speedup predicted by the measured layer model
(tf_evosyn.hardware.latency_model). 1-thread times are the invoking thread's CPU time per invoke
(robust
to the load of a shared machine), 2-thread times are wall time.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

import common

import tf_evosyn
from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.environments.alignment import ChannelAlignment
from tf_evosyn.environments.flops_budget import FlopsBudget
from tf_evosyn.export.artifacts import convert_to_tflite, save_serving_model
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.hardware.latency import tflite_latency
from tf_evosyn.hardware.latency_model import LatencyTable
from tf_evosyn.models import build
from tf_evosyn.runs.config_checks import build_environment

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "lenet5": "lenet5_mnist",
    "resnet56": "resnet56_cifar10",
    "alexnet_cifar": "alexnet_cifar10",
    "detectnet": "detectnet_kitti",
}
# DetectNet is timed at a quarter of KITTI's 384x1248 (a full-size invoke takes seconds on a
# shared 2-core machine); its layer widths, and so the ratios, are those of the full network.
BUILD_KWARGS = {"detectnet": {"input_shape": (96, 320, 3)}}
THREADS = (1, 2)
CLOCK = {1: "cpu_median_ms", 2: "median_ms"}


def _config(network: str):
    from tf_evosyn.bin.config_cli import load_config_file

    return load_config_file(str(ROOT / "configs" / f"{CONFIGS[network]}.py"))


def environment_for(network: str, flops_fraction: float, align_channels: int):
    """The network's config environment, or FlopsBudget(flops_fraction) if > 0; aligned if k > 1."""
    if flops_fraction > 0:
        environment = FlopsBudget(flops_fraction)
    else:
        environment = build_environment(_config(network).evolution)
    return ChannelAlignment(environment, align_channels) if align_channels > 1 else environment


def drawn_lineage(
    network: str, generations: int, environment, input_size: tuple[int, int] | None = None
) -> list[keras.Model]:
    """Compacted generations 0..``generations`` of a random-init ancestor (seed 0), built at
    ``input_size`` (height, width) if given (networks with a free input size only: DetectNet)."""
    kwargs = dict(BUILD_KWARGS.get(network, {}))
    if input_size:
        if "input_shape" not in kwargs:
            raise ValueError(
                f"{network} has a fixed input size; give an input size only for "
                f"{sorted(n for n, k in BUILD_KWARGS.items() if 'input_shape' in k)}."
            )
        kwargs["input_shape"] = (*input_size, kwargs["input_shape"][-1])
    keras.utils.set_random_seed(0)
    model = tf_evosyn.evolvable(build(network, **kwargs))
    lineage = [compact(model)]
    for generation in range(1, generations + 1):
        model, _ = tf_evosyn.synthesize(model, environment, seed=0, generation=generation)
        lineage.append(compact(model))
    return lineage


def recorded_lenet5_lineage(path: Path) -> tuple[list[keras.Model], list[int]]:
    """LeNet-5 at the layer widths of each accepted generation of a recorded run."""
    records = [r for r in json.loads(path.read_text())["lineage"] if r.get("accepted", True)]
    keras.utils.set_random_seed(0)
    ancestor = tf_evosyn.evolvable(build("lenet5"))
    lineage, generations = [], []
    for record in records:
        widths = {layer["name"]: layer["clusters"] for layer in record.get("layers", [])}
        model = tf_evosyn.clone_with_weights(ancestor)
        for layer in tf_evosyn.evolvable_layers(model):
            clusters = layer.living_cluster_mask().copy()
            clusters[widths.get(layer.name, clusters.size) :] = False
            layer.set_masks(layer.living_synapse_mask() & clusters, clusters)
        lineage.append(compact(model))
        generations.append(int(record["generation"]))
    return lineage, generations


def run_lineage(workdir: str | Path) -> tuple[list[keras.Model], list[int]]:
    """The accepted generations of a finished run, as trained, compacted (e.g. a LatencyBudget
    run, whose predicted and measured latency this compares)."""
    from tf_evosyn.core.model_io import load_model
    from tf_evosyn.loop.run_dir import RunDirectory

    records, _ = common.read_run(workdir)
    run = RunDirectory(workdir)
    generations = [int(r["generation"]) for r in records if r.get("accepted", True)]
    return [compact(load_model(run.generation_dir(g))) for g in generations], generations


def time_lineage(lineage: list[keras.Model], rounds: int, runs: int) -> dict:
    """Median ms per generation and thread count, interleaved over rounds."""
    shape = (1, *lineage[0].inputs[0].shape[1:])
    with tempfile.TemporaryDirectory(prefix="evosyn_lineage_") as tmp:
        paths = []
        for i, model in enumerate(lineage):
            saved = save_serving_model(model, Path(tmp) / f"g{i}" / "saved_model")
            paths.append(convert_to_tflite(saved, Path(tmp) / f"g{i}" / "model.tflite"))
        probe = tflite_latency(paths[0], shape, 1, runs=3, warmup=1)["median_ms"]
        runs = max(5, min(runs, int(1500 / max(probe, 1e-3))))  # ~1.5 s per measurement
        samples = {t: [[] for _ in paths] for t in THREADS}
        for _ in range(rounds):
            for threads in THREADS:
                for i, path in enumerate(paths):
                    result = tflite_latency(path, shape, threads, runs=runs, warmup=3)
                    # 1 thread: the invoking thread's CPU time (a loaded machine's waits left
                    # out); 2 threads: wall time (CPU time would add both threads up)
                    samples[threads][i].append(result[CLOCK[threads]])
    return {t: [statistics.median(s) for s in per_gen] for t, per_gen in samples.items()}


def lineage_rows(
    lineage: list[keras.Model], generations: list[int], table: LatencyTable, rounds: int, runs: int
) -> list[dict]:
    load_before = os.getloadavg()[0]
    times = time_lineage(lineage, rounds, runs)
    load_after = os.getloadavg()[0]
    macs = [count_flops(model).total_dense_macs for model in lineage]
    modelled = [sum(table.predict(model).values()) for model in lineage]
    rows = []
    for i, generation in enumerate(generations):
        ratio = macs[0] / macs[i]
        speedups = {t: times[t][0] / times[t][i] for t in THREADS}
        rows.append(
            {
                "generation": generation,
                "macs": macs[i],
                "macs_ratio": ratio,
                "ms": {t: times[t][i] for t in THREADS},
                "speedup": speedups,
                "share_of_promised_saving": {
                    t: common.promised_saving_share(speedups[t], ratio) for t in THREADS
                },
                "predicted_speedup": modelled[0] / modelled[i],
                "modelled_ms": modelled[i],
                "load_average": [load_before, load_after],
            }
        )
    return rows


def format_rows(rows: list[dict]) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    header = ["gen", "MACs", "MACs ratio", "1t ms", "1t speedup", "1t share", "2t ms"]
    header += ["2t speedup", "2t share", "predicted"]
    body = [
        [
            str(r["generation"]),
            f"{r['macs']:,}",
            f"{r['macs_ratio']:.2f}x",
            f"{r['ms'][1]:.3f}",
            f"{r['speedup'][1]:.2f}x",
            fmt(r["share_of_promised_saving"][1], ".2f"),
            f"{r['ms'][2]:.3f}",
            f"{r['speedup'][2]:.2f}x",
            fmt(r["share_of_promised_saving"][2], ".2f"),
            f"{r['predicted_speedup']:.2f}x",
        ]
        for r in rows
    ]
    return common.format_table(header, body)
