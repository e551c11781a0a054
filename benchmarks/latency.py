"""Benchmark: does evolution make inference faster? Batch-1 latency of four deployments.

    python benchmarks/latency.py --workdir=RUN [--output=benchmarks/results/latency.json]
        [--generation=N] [--runs=200] [--rounds=3] [--tf_threads=1]
    python benchmarks/latency.py --networks=lenet5,resnet56,alexnet_cifar,detectnet
        [--generations=3] [--flops_fraction=0] [--align_channels=0] [--lineage_runs=RUN,...]
        [--input_size=384,1248 (DetectNet only)]
        [--output=benchmarks/results/latency_networks.json] [--merge]

The second form times every generation of each network's lineage at 1 and 2 threads with the
MACs ratio, the share of the promised saving and the latency model's predicted speedup (see
benchmarks/latency_lineages.py). With ``--merge`` it replaces only the measured networks' entries
of an existing --output file measured with the same flags (re-measure one network, keep the rest).

For a finished run, exports and times side by side (TFLite with XNNPACK at 1 and 2 threads, and
the TF SavedModel signature):

* ancestor           generation 0
* masked offspring   the offspring as evolution leaves it: masks folded into a plain copy of the
                     ancestor's shapes (no compaction) -- dead weights are zeros, still computed
* compact offspring  ``compact(offspring)``: dead clusters physically removed
* TF-MOT pruned      the ancestor pruned by ``prune_low_magnitude`` (ConstantSparsity) to the
                     offspring's synapse count, then ``strip_pruning`` -- unstructured zeros

Measurements are interleaved over ``--rounds`` so load from other processes hits every variant
alike; each figure is the median over rounds of the per-round median (p90 likewise).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from tfmot_arm import prune_wrapped  # noqa: E402

import tf_evosyn  # noqa: E402, F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn._keras import keras, tf  # noqa: E402
from tf_evosyn.compaction.plan import compact  # noqa: E402
from tf_evosyn.core.measures import count_living  # noqa: E402
from tf_evosyn.core.model_io import load_model  # noqa: E402
from tf_evosyn.export.artifacts import (  # noqa: E402
    ExportError,
    plain_copy,
    resolve_target,
    savedmodel_latency,
    tflite_latency,
)
from tf_evosyn.hardware.flops import count_flops  # noqa: E402
from tf_evosyn.storage import io_utils  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A finished run directory.")
_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/latency.json", "Where to write the JSON results."
)
_GENERATION = flags.DEFINE_integer("generation", None, "Offspring to measure; default: the best.")
_RUNS = flags.DEFINE_integer("runs", 200, "Timed calls per variant, setting and round.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed calls before each measurement.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds over all variants.")
_TF_THREADS = flags.DEFINE_integer(
    "tf_threads", 1, "TF intra-op threads for the SavedModel timings (0 = TF's default)."
)
_NETWORKS = flags.DEFINE_list(
    "networks", [], "Per-generation tables of these networks' lineages instead of --workdir."
)
_GENERATIONS = flags.DEFINE_integer("generations", 3, "--networks: generations drawn.")
_FLOPS_FRACTION = flags.DEFINE_float(
    "flops_fraction", 0.0, "--networks: > 0 draws with FlopsBudget(fraction), not the config's."
)
_ALIGN = flags.DEFINE_integer("align_channels", 0, "--networks: ChannelAlignment multiple.")
_INPUT_SIZE = flags.DEFINE_list(
    "input_size",
    [],
    "--networks: HEIGHT,WIDTH to build DetectNet at (e.g. 384,1248, KITTI's); default: "
    "latency_lineages.BUILD_KWARGS (96,320).",
)
_MERGE = flags.DEFINE_bool(
    "merge",
    False,
    "--networks: replace only these networks' entries of the existing --output (same flags "
    "required), keeping the other networks' entries.",
)
_LINEAGE_RUNS = flags.DEFINE_list(
    "lineage_runs",
    [],
    "Per-generation tables of these finished runs' accepted offspring as trained (e.g. a "
    "latency_budget run: measured against predicted speedup), besides or instead of --networks.",
)

VARIANTS = ("ancestor", "masked_offspring", "compact_offspring", "tfmot_pruned")
SETTINGS = ("tflite_1t", "tflite_2t", "savedmodel")


def _nonzero_kernel_weights(model: keras.Model) -> int:
    """Kernel weights that are not exactly zero (the synapses a sparse engine would compute)."""
    return sum(
        int(np.count_nonzero(layer.kernel.numpy()))
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    )


def tfmot_pruned(plain: keras.Model, sparsity: float) -> keras.Model:
    """``plain`` with every Conv2D/Dense kernel pruned to ``sparsity`` by TF-MOT, then stripped.

    ``plain`` is consumed: its layers are wrapped in place (TF-MOT's documented clone pattern).
    """
    import tensorflow_model_optimization as tfmot  # after tf_evosyn has selected Keras 2

    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=1)
    model = prune_wrapped(plain, pruning_schedule=schedule)
    # One training step with a zero learning rate: UpdatePruningStep runs the schedule and the
    # wrappers apply the magnitude masks; the surviving weights stay the ancestor's.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    x = np.zeros((1, *model.inputs[0].shape[1:]), np.float32)
    y = np.zeros((1, *model.outputs[0].shape[1:]), np.float32)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(model)


def build_variants(ancestor: keras.Model, offspring: keras.Model) -> tuple[dict, float]:
    """The four plain Keras models to deploy, and the TF-MOT sparsity used."""
    ancestor_synapses = count_living(ancestor).synapses
    offspring_synapses = count_living(offspring).synapses
    sparsity = 1.0 - offspring_synapses / ancestor_synapses
    variants = {
        "ancestor": compact(ancestor),  # nothing is dead: a plain copy of the same shapes
        "masked_offspring": plain_copy(offspring),
        "compact_offspring": compact(offspring),
        "tfmot_pruned": tfmot_pruned(plain_copy(ancestor), sparsity),
    }
    return variants, sparsity


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def measure(
    paths: dict[str, dict[str, Path]], shape: tuple[int, ...], runs: int, warmup: int, rounds: int
) -> dict:
    """variant -> setting -> {median_ms, p90_ms}, interleaved over rounds."""
    samples = {v: {s: [] for s in SETTINGS} for v in paths}
    for _ in range(rounds):
        for setting in SETTINGS:
            for variant, files in paths.items():
                if setting == "savedmodel":
                    result = savedmodel_latency(files["saved_model"], shape, runs, warmup)
                else:
                    threads = 1 if setting == "tflite_1t" else 2
                    result = tflite_latency(files["tflite"], shape, threads, runs, warmup)
                samples[variant][setting].append(result)
    return {
        variant: {
            setting: {
                "median_ms": _median([r["median_ms"] for r in results]),
                "p90_ms": _median([r["p90_ms"] for r in results]),
                "round_medians_ms": [r["median_ms"] for r in results],
            }
            for setting, results in by_setting.items()
        }
        for variant, by_setting in samples.items()
    }


def format_table(results: dict) -> str:
    """Aligned table: size columns, then median ms and speedup vs the ancestor per setting."""
    header = ["variant", "params", "nonzero w", "MACs", "tflite KB"]
    header += [f"{s} ms" for s in SETTINGS]
    rows = [header]
    base = results["variants"]["ancestor"]["latency"]
    for name, v in results["variants"].items():
        row = [
            name,
            f"{v['parameters']:,}",
            f"{v['nonzero_kernel_weights']:,}",
            f"{v['macs']:,}",
            f"{v['tflite_bytes'] / 1024:,.0f}",
        ]
        for s in SETTINGS:
            ms = v["latency"][s]["median_ms"]
            row.append(f"{ms:.4f} ({base[s]['median_ms'] / ms:.2f}x)")
        rows.append(row)
    return common.aligned_table(rows)


def networks_main() -> None:
    """``--networks``: a per-generation table per network (benchmarks/latency_lineages.py)."""
    import latency_lineages as lineages

    from tf_evosyn.hardware.latency_model import LatencyTable

    table = LatencyTable(threads=1)
    results = {
        "networks": {},
        "flags": {
            "generations": _GENERATIONS.value,
            "flops_fraction": _FLOPS_FRACTION.value,
            "align_channels": _ALIGN.value,
            "rounds": _ROUNDS.value,
            "runs": _RUNS.value,
            "input_size": _INPUT_SIZE.value,
        },
    }
    for network in _NETWORKS.value:
        if network not in lineages.CONFIGS:
            raise app.UsageError(f"--networks: {network!r} unknown; use {list(lineages.CONFIGS)}.")
    input_size = _input_size()
    previous = _previous_results(results["flags"]) if _MERGE.value else None
    sources = [(network, None) for network in _NETWORKS.value]
    sources += [(Path(run).name, run) for run in _LINEAGE_RUNS.value]
    for network, run in sources:
        if run is not None:
            lineage, generations = lineages.run_lineage(run)
            _time_and_print(results, network, lineage, generations, f"trained run {run}", table)
            continue
        environment = lineages.environment_for(network, _FLOPS_FRACTION.value, _ALIGN.value)
        recorded = lineages.ROOT / "benchmarks" / "results" / "mnist_lenet5.json"
        if network == "lenet5" and not _FLOPS_FRACTION.value and not _ALIGN.value:
            lineage, generations = lineages.recorded_lenet5_lineage(recorded)
            source = f"layer widths recorded in {recorded.name} (trained run)"
        else:
            lineage = lineages.drawn_lineage(network, _GENERATIONS.value, environment, input_size)
            generations = list(range(len(lineage)))
            source = f"architecture-only lineage drawn with {environment!r}"
        _time_and_print(results, network, lineage, generations, source, table)
    results["platform"] = _networks_platform()
    if previous is not None:
        merged = dict(previous)  # its other keys (e.g. overhead_ms) and flags stay as they were
        merged["networks"] = {**previous["networks"], **results["networks"]}
        results = merged
        print(f"Merged {sorted(results['networks'])} ({len(previous['networks'])} before)")
    io_utils.atomic_write_json(Path(_OUTPUT.value), results)
    print(f"Wrote {_OUTPUT.value}")


def _previous_results(current_flags: dict) -> dict:
    """--merge: the existing --output, checked to record the same flags before anything is timed
    (its top-level flags must stay true of every entry)."""
    path = Path(_OUTPUT.value)
    if not path.is_file():
        raise app.UsageError(f"--merge: {path} does not exist; drop --merge to write it.")
    previous = json.loads(path.read_text())
    recorded = {"input_size": [], **previous.get("flags", {})}  # older files lack input_size
    differing = {
        key: (recorded.get(key), value)
        for key, value in current_flags.items()
        if recorded.get(key) != value
    }
    if differing:
        raise app.UsageError(
            f"--merge: {path} records other flags (recorded, given): {differing}; give the "
            "recorded ones or write a new --output."
        )
    if previous.get("platform", _networks_platform()) != _networks_platform():
        raise app.UsageError(
            f"--merge: {path} was measured on {previous['platform']}, this machine is "
            f"{_networks_platform()}; write a new --output instead."
        )
    return previous


def _networks_platform() -> dict:
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "tensorflow": tf.__version__}


def _input_size() -> tuple[int, int] | None:
    """--input_size as (height, width), checked before any model is built."""
    if not _INPUT_SIZE.value:
        return None
    import latency_lineages as lineages

    sizes = _INPUT_SIZE.value
    if len(sizes) != 2 or not all(v.strip().isdigit() for v in sizes):
        raise app.UsageError(f"--input_size wants HEIGHT,WIDTH (e.g. 384,1248), got {sizes}.")
    free = sorted(n for n, k in lineages.BUILD_KWARGS.items() if "input_shape" in k)
    fixed = [n for n in _NETWORKS.value if n not in free] + list(_LINEAGE_RUNS.value)
    if fixed:
        raise app.UsageError(f"--input_size applies to {free} only, not to {fixed}.")
    return int(sizes[0]), int(sizes[1])


def _time_and_print(results: dict, name: str, lineage, generations, source: str, table) -> None:
    import latency_lineages as lineages

    rows = lineages.lineage_rows(lineage, generations, table, _ROUNDS.value, _RUNS.value)
    results["networks"][name] = {
        "source": source,
        "rows": rows,
        "input_shape": list(lineage[0].inputs[0].shape[1:]),
    }
    print(
        f"\n{name} ({source}); input {tuple(lineage[0].inputs[0].shape[1:])}; TFLite "
        f"XNNPACK batch 1; load average {rows[0]['load_average'][0]:.2f} -> "
        f"{rows[0]['load_average'][1]:.2f}"
    )
    print(lineages.format_rows(rows))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if _NETWORKS.value or _LINEAGE_RUNS.value:
        return networks_main()
    if not _WORKDIR.value:
        raise app.UsageError("Give --workdir=RUN (one run) or --networks=lenet5,resnet56,...")
    if _TF_THREADS.value:  # must happen before TensorFlow initialises its runtime
        tf.config.threading.set_intra_op_parallelism_threads(_TF_THREADS.value)
        tf.config.threading.set_inter_op_parallelism_threads(_TF_THREADS.value)
    try:
        target = resolve_target(_WORKDIR.value, _GENERATION.value)
    except ExportError as error:
        sys.exit(f"latency.py: error: {error}")
    ancestor = load_model(target["ancestor_path"])
    offspring = load_model(target["offspring_path"])
    variants, sparsity = build_variants(ancestor, offspring)
    shape = (1, *variants["ancestor"].inputs[0].shape[1:])

    # Sanity check on random inputs: every offspring deployment computes the offspring's function
    # (TF-MOT is a different network, so it is compared with the ancestor for information only).
    rng = np.random.default_rng(0)
    probe = rng.random((16, *shape[1:]), dtype=np.float32)
    reference = {"ancestor": ancestor, "tfmot_pruned": ancestor}
    results = {
        "workdir": str(Path(_WORKDIR.value).resolve()),
        "generation": target["offspring"]["generation"],
        "tfmot_sparsity": sparsity,
        "settings": {
            "batch": 1,
            "runs": _RUNS.value,
            "warmup": _WARMUP.value,
            "rounds": _ROUNDS.value,
            "tf_threads": _TF_THREADS.value,
            "tflite_delegate": "XNNPACK (default)",
        },
        "platform": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()),
        },
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="evosyn_latency_") as tmp:
        paths = {}
        for name, model in variants.items():
            expected = reference.get(name, offspring)
            info = common.checked_tflite(model, Path(tmp) / name, expected, probe)
            paths[name] = {"saved_model": info["saved_model"], "tflite": info["tflite"]}
            results["variants"][name] = {
                "parameters": count_flops(model).total_params,
                "nonzero_kernel_weights": _nonzero_kernel_weights(model),
                "macs": count_flops(model).total_dense_macs,
                "tflite_bytes": info["tflite_bytes"],
                "tflite_max_abs_difference": info["tflite_max_abs_difference"],
            }
        latency = measure(paths, shape, _RUNS.value, _WARMUP.value, _ROUNDS.value)
    base = latency["ancestor"]
    for name, lat in latency.items():
        results["variants"][name]["latency"] = lat
        results["variants"][name]["speedup_vs_ancestor"] = {
            s: base[s]["median_ms"] / lat[s]["median_ms"] for s in SETTINGS
        }

    print(
        f"{results['workdir']}: ancestor vs generation {results['generation']}, batch 1, "
        f"median of {_ROUNDS.value} rounds x {_RUNS.value} runs (speedup vs ancestor); "
        f"TF-MOT sparsity {sparsity:.4f}; SavedModel with {_TF_THREADS.value or 'default'} TF "
        f"thread(s); load average {results['platform']['load_average'][0]:.2f}"
    )
    print(format_table(results))
    io_utils.atomic_write_json(Path(_OUTPUT.value), results)
    print(f"Wrote {_OUTPUT.value}")


if __name__ == "__main__":
    app.run(main)
