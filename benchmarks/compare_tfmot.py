"""Benchmark: evolutionary synthesis vs TF-MOT magnitude pruning, same ancestor, same budget.

    # Full benchmark (LeNet-5 / full MNIST): evolve (or resume) into --workdir, then compare.
    EVOSYN_DATA_DIR=/path/to/datasets python benchmarks/compare_tfmot.py \
        --config=configs/lenet5_mnist.py --workdir=runs/bench_mnist_lenet5 \
        --tfmot_workdir=runs/compare_tfmot_arms [--output=benchmarks/results/compare_tfmot.json]

    # Against a finished evosyn-classify run (its data, batch size and fine-tuning optimizer):
    python benchmarks/compare_tfmot.py --evolution_run=RUN [--train_limit=N --test_limit=N]
        [--sparsities=0.9,0.95,0.98,0.99,0.995] [--m_by_n=true] [--tfmot_epochs=0]
        [--generations_to_show=1,5,10] [--latency_runs=200] [--latency_rounds=3]

Rows of the one table (all measured on the same test split):

* ancestor      generation 0 of the run (trained once; every other row starts from its weights)
* tfmot poly s  the ancestor with every Conv2D/Dense wrapped in ``prune_low_magnitude`` with
                ``PolynomialDecay(0 -> s, begin_step=0, end_step ~ 70% of the steps)``, fine-tuned
                with ``UpdatePruningStep``, then ``strip_pruning`` (nothing to compact: zeros stay)
* tfmot 2:4     the same with ``sparsity_m_by_n=(2, 4)`` (TF-MOT computes the 2:4 mask once, at
                step 1, from the ancestor's magnitudes; ConstantSparsity(0.5) as in its tutorial)
* evo gen g     the evolution's accepted generation g, compacted (dead clusters removed)

Columns: top-1 accuracy, living synapses (non-zero Conv2D/Dense kernel weights; evolution: living
masked synapses), synaptic efficiency (ancestor / living), living clusters (output channels with
any non-zero kernel weight, so TF-MOT gets credit for any channel it happened to empty), cluster
efficiency, MACs per example of the deployed model (evolution: after ``compact``; TF-MOT: the
stripped model, dense), batch-1 float32 TFLite latency (XNNPACK, 1 thread, interleaved rounds),
fine-tuning epochs and training seconds.

Training budget (``--tfmot_epochs=0``): every TF-MOT arm fine-tunes for as many epochs as the
evolution spent on fine-tuning up to its last accepted generation, i.e. the sum over generations
1..last accepted of ``epochs_per_generation x attempts`` (rejected re-draws cost training too, so
they count; the final rejected generation that stopped the run does not). TF-MOT trains these
epochs in one ``fit`` on the evolution's pipeline (``train_dataset(batch_size, seed)``), batch
size and optimizer (``make_compile_fn(config.evolution, ...)``: same optimizer and peak learning
rate; a cosine schedule then decays once over the whole TF-MOT training, where the evolution
restarts it every generation).

Verdict (the issue's goal): for each TF-MOT row, the most efficient (cluster efficiency, then
synaptic efficiency, then later) accepted evolution generation among those shown whose accuracy is
>= TF-MOT's accuracy - 0.3 point must have >= 1x TF-MOT's synaptic efficiency, >= 5x its cluster
efficiency and >= 5x its batch-1 TFLite speed (TF-MOT latency / evolution latency).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

import tf_evosyn  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn import io_utils
from tf_evosyn._keras import keras, tf
from tf_evosyn.compaction import compact
from tf_evosyn.data import ClassificationData, DataError, load_classification_data
from tf_evosyn.evolution import derive_seed, evaluate_accuracy
from tf_evosyn.experiment import ConfigError, make_compile_fn, run_classification
from tf_evosyn.export import (
    convert_to_tflite,
    plain_copy,
    read_run_records,
    run_tflite,
    save_serving_model,
)
from tf_evosyn.export import tflite_latency as _tflite_latency
from tf_evosyn.flops import count_flops
from tf_evosyn.lineage import efficiencies
from tf_evosyn.model_io import load_model

_REPO = Path(__file__).resolve().parent.parent

_EVOLUTION_RUN = flags.DEFINE_string(
    "evolution_run",
    None,
    "A finished (or stopped) evosyn-classify run directory to compare against. Not given: run "
    "(or resume) the evolution of --config into --workdir first.",
)
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    str(_REPO / "configs" / "lenet5_mnist.py"),
    "Experiment config, used only without --evolution_run.",
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    "runs/bench_mnist_lenet5",
    "Run directory of the evolution when --evolution_run is not given (created or resumed; the "
    "default is the one benchmarks/mnist_lenet5.py uses, so the two share one evolution).",
)
_SPARSITIES = flags.DEFINE_list(
    "sparsities",
    ["0.9", "0.95", "0.98", "0.99", "0.995"],
    "Final sparsities of the TF-MOT PolynomialDecay arms (comma-separated, each in (0, 1)).",
)
_M_BY_N = flags.DEFINE_bool("m_by_n", True, "Also run the TF-MOT 2:4 structured sparsity arm.")
_TFMOT_EPOCHS = flags.DEFINE_integer(
    "tfmot_epochs",
    0,
    "Fine-tuning epochs of each TF-MOT arm; 0 = the epochs the evolution spent (see docstring).",
)
_TRAIN_LIMIT = flags.DEFINE_integer(
    "train_limit",
    None,
    "Training images for the TF-MOT arms (0 = all; default: the run's data.train_limit). "
    "With --config it also limits the evolution.",
)
_TEST_LIMIT = flags.DEFINE_integer(
    "test_limit",
    None,
    "Test images every row is evaluated on (0 = all; default: the run's data.test_limit). "
    "If it differs from the run's, the evolution's checkpoints are re-evaluated.",
)
_GENERATIONS = flags.DEFINE_list(
    "generations_to_show", [], "Evolution generations to show (default: every accepted one)."
)
_LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 200, "Timed TFLite invokes per round.")
_LATENCY_WARMUP = flags.DEFINE_integer("latency_warmup", 20, "Untimed invokes per round.")
_LATENCY_ROUNDS = flags.DEFINE_integer(
    "latency_rounds", 3, "Interleaved rounds over all models (load hits every model alike)."
)
_TFMOT_WORKDIR = flags.DEFINE_string(
    "tfmot_workdir",
    "",
    "Keep each finished TF-MOT arm here (stripped model + record) and reuse it when rerun with "
    "the same settings, so a killed benchmark resumes. Empty: a temporary directory.",
)
_FIT_VERBOSE = flags.DEFINE_integer("fit_verbose", 2, "Keras fit verbosity of the TF-MOT arms.")
_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/compare_tfmot.json", "Where to write the JSON results."
)

GOAL = {
    "accuracy_window_points": 0.3,  # evolution accuracy >= TF-MOT accuracy - 0.3 point
    "synaptic_efficiency_ratio": 1.0,  # evolution / TF-MOT
    "cluster_efficiency_ratio": 5.0,
    "speedup": 5.0,  # TF-MOT batch-1 TFLite latency / evolution's
}
TFLITE_THREADS = 1
KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)


class BenchmarkError(ValueError):
    """A flag or run directory that cannot work; the message names the fix."""


# -- flags and the run directory ------------------------------------------------------------------
@dataclass
class Arm:
    """One TF-MOT configuration."""

    name: str
    sparsity: float | None  # PolynomialDecay final sparsity; None for 2:4
    m_by_n: tuple[int, int] | None = None


def parse_arms(sparsities: list[str], m_by_n: bool) -> list[Arm]:
    arms = []
    for text in sparsities:
        try:
            value = float(text)
        except ValueError:
            raise BenchmarkError(
                f"--sparsities: {text!r} is not a number; pass e.g. --sparsities=0.9,0.99."
            ) from None
        if not 0.0 < value < 1.0:
            raise BenchmarkError(f"--sparsities: {value} is outside (0, 1); e.g. 0.99 = 99% zeros.")
        arms.append(Arm(f"tfmot poly {value:g}", value))
    if len({a.name for a in arms}) != len(arms):
        raise BenchmarkError(f"--sparsities has duplicates: {sparsities}.")
    if m_by_n:
        arms.append(Arm("tfmot 2:4", None, (2, 4)))
    if not arms:
        raise BenchmarkError("No TF-MOT arm: pass --sparsities=... and/or --m_by_n=true.")
    return arms


def parse_generations(values: list[str]) -> list[int] | None:
    if not values or values == ["all"]:
        return None
    try:
        generations = sorted({int(v) for v in values})
    except ValueError:
        raise BenchmarkError(
            f"--generations_to_show={','.join(values)}: pass generation numbers, e.g. 1,5,10."
        ) from None
    if generations[0] < 1:
        raise BenchmarkError("--generations_to_show: the ancestor (0) is always shown; use >= 1.")
    return generations


def _checkpoint(workdir: Path, generation: int) -> Path:
    return workdir / "generations" / f"gen_{generation:04d}" / "model.keras"


@dataclass
class RunInfo:
    workdir: Path
    config: dict
    records: list[dict]
    shown: list[int]  # accepted generations >= 1 to show
    last_accepted: int


def inspect_run(workdir: str | Path, generations: list[int] | None) -> RunInfo:
    """Check the run directory before any expensive work; raises BenchmarkError with the fix."""
    workdir = Path(workdir)
    fix = "pass the --workdir of an evosyn-classify run (or use --config to run one)"
    records = read_run_records(
        workdir, described_as=f"--evolution_run={workdir}", fix=fix, error=BenchmarkError
    )
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise BenchmarkError(
            f"{config_path} is missing: the run's data, batch size and fine-tuning optimizer are "
            "read from it. Restore it from the config the run was started with."
        )
    config = io_utils.read_json(config_path)
    for section in ("data", "train", "evolution"):
        if section not in config:
            raise BenchmarkError(f"{config_path} has no '{section}' section; restore the config.")
    accepted = [r["generation"] for r in records if r["accepted"] and r["generation"] >= 1]
    if not accepted:
        raise BenchmarkError(
            f"{workdir} has no accepted offspring yet (generations: {len(records) - 1}); resume "
            "the evolution until at least generation 1 is accepted."
        )
    if generations is None:
        shown = accepted
    else:
        missing = [g for g in generations if g not in accepted]
        if missing:
            raise BenchmarkError(
                f"--generations_to_show: {missing} not accepted generations of {workdir}; "
                f"choose from {accepted}."
            )
        shown = generations
    for generation in [0, *shown]:
        if not _checkpoint(workdir, generation).is_file():
            raise BenchmarkError(
                f"{_checkpoint(workdir, generation)} is missing; restore it or leave generation "
                f"{generation} out of --generations_to_show."
            )
    return RunInfo(workdir, config, records, shown, accepted[-1])


def fine_tuning_epochs(records: list[dict], generation: int, default_epochs: int) -> int:
    """Epochs the evolution trained in generations 1..generation, re-draws included."""
    return sum(
        int(r.get("epochs", default_epochs)) * int(r.get("attempts", 1))
        for r in records[1 : generation + 1]
    )


def data_settings(data_config: dict, train_limit: int | None, test_limit: int | None) -> dict:
    """The run's data config with the benchmark's limits (None = keep the run's)."""
    data = dict(data_config)
    if train_limit is not None:
        data["train_limit"] = train_limit
    if test_limit is not None:
        data["test_limit"] = test_limit
    return data


# -- TF-MOT ---------------------------------------------------------------------------------------
def polynomial_steps(total_steps: int) -> tuple[int, int]:
    """(end_step, frequency): end ~70% into training, frequency 100 (fewer for tiny runs).

    end_step is a multiple of frequency so the last mask update lands exactly on the final
    sparsity (TF-MOT only prunes at begin_step + k * frequency, k >= 0, up to end_step).
    """
    target = max(1, int(0.7 * total_steps))
    frequency = min(100, max(1, target // 10))
    return max(frequency, target // frequency * frequency), frequency


def tfmot_schedule(arm: Arm, total_steps: int) -> tuple[dict, dict]:
    """prune_low_magnitude keyword arguments and a JSON description of them."""
    import tensorflow_model_optimization as tfmot  # after tf_evosyn has selected Keras 2

    sparsity = tfmot.sparsity.keras
    if arm.m_by_n is not None:
        schedule = sparsity.ConstantSparsity(0.5, begin_step=0, frequency=100)
        return (
            {"pruning_schedule": schedule, "sparsity_m_by_n": arm.m_by_n},
            {"schedule": schedule.get_config(), "sparsity_m_by_n": list(arm.m_by_n)},
        )
    end_step, frequency = polynomial_steps(total_steps)
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=arm.sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )
    return {"pruning_schedule": schedule}, {"schedule": schedule.get_config()}


def kernel_counts(model: keras.Model) -> dict:
    """Non-zero kernel weights and channels with any, per Conv2D/Dense layer and in total.

    ``sparse_macs``: MACs if a sparse engine skipped every zero weight (for information).
    """
    flops = count_flops(model)
    layers = []
    for layer in model.layers:
        if not isinstance(layer, KERNEL_LAYERS):
            continue
        kernel = layer.kernel.numpy()
        nonzero = kernel != 0
        size = int(kernel.size)
        dense_macs = flops.layer(layer.name).dense_macs
        layers.append(
            {
                "name": layer.name,
                "synapses": int(nonzero.sum()),
                "total_synapses": size,
                "clusters": int(nonzero.reshape(-1, kernel.shape[-1]).any(axis=0).sum()),
                "total_clusters": int(kernel.shape[-1]),
                "sparse_macs": dense_macs * int(nonzero.sum()) // size,
            }
        )
    return {
        "synapses": sum(x["synapses"] for x in layers),
        "clusters": sum(x["clusters"] for x in layers),
        "sparse_macs": sum(x["sparse_macs"] for x in layers),
        "layers": layers,
    }


def train_tfmot_arm(
    ancestor: keras.Model,
    arm: Arm,
    data: ClassificationData,
    test_data: tf.data.Dataset,
    config: ml_collections.ConfigDict,
    epochs: int,
    seed: int,
) -> tuple[keras.Model, dict]:
    """Prune a plain copy of ``ancestor`` with TF-MOT while fine-tuning; the stripped model."""
    import tensorflow_model_optimization as tfmot

    batch_size = config.train.batch_size
    steps_per_epoch = -(-len(data.train_labels) // batch_size)
    kwargs, described = tfmot_schedule(arm, epochs * steps_per_epoch)

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, KERNEL_LAYERS):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, **kwargs)
        return layer

    # plain_copy: the ancestor's weights in plain layers (consumed: wrapped in place).
    model = keras.models.clone_model(plain_copy(ancestor), clone_function=wrap)
    keras.utils.set_random_seed(seed)
    make_compile_fn(config.evolution, epochs, steps_per_epoch)(model)
    start = time.time()
    history = model.fit(
        data.train_dataset(batch_size=batch_size, seed=seed),
        epochs=epochs,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), keras.callbacks.TerminateOnNaN()],
        verbose=_FIT_VERBOSE.value,
    )
    fit_seconds = time.time() - start
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    accuracy = evaluate_accuracy(stripped, test_data)
    losses = history.history.get("loss", [])
    return stripped, {
        "accuracy": accuracy,
        "train_seconds": time.time() - start,
        "fit_seconds": fit_seconds,
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "final_loss": float(losses[-1]) if losses else None,
        "seed": seed,
        "pruning": described,
    }


def cached_arm(folder: Path | None, key: dict) -> tuple[keras.Model, dict] | None:
    if folder is None or not (folder / "record.json").is_file():
        return None
    record = io_utils.read_json(folder / "record.json")
    if record.get("key") != json.loads(io_utils.dumps_json(key)):
        logging.info("%s holds an arm trained with other settings; retraining it.", folder)
        return None
    return keras.models.load_model(folder / "model.keras", compile=False), record["result"]


def store_arm(folder: Path, key: dict, model: keras.Model, result: dict) -> None:
    def write(tmp: Path) -> None:
        model.save(tmp / "model.keras")
        io_utils.atomic_write_json(tmp / "record.json", {"key": key, "result": result})

    folder.parent.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_replace_dir(folder, write)


# -- deployment and latency -----------------------------------------------------------------------
def to_tflite(model: keras.Model, folder: Path, reference: keras.Model, probe: np.ndarray) -> dict:
    """Float32 TFLite file of ``model``, checked against ``reference`` on real test images."""
    saved = save_serving_model(model, folder / "saved_model")
    path = convert_to_tflite(saved, folder / "model.tflite")
    expected = reference(probe, training=False).numpy()
    return {
        "path": path,
        "tflite_bytes": path.stat().st_size,
        "tflite_max_abs_difference": float(np.abs(run_tflite(path, probe) - expected).max()),
    }


def measure_latency(paths: dict[str, Path], shape: tuple[int, ...]) -> dict[str, dict]:
    """name -> median/p90 ms (median over interleaved rounds of per-round figures)."""
    samples = {name: [] for name in paths}
    for _ in range(_LATENCY_ROUNDS.value):
        for name, path in paths.items():
            samples[name].append(
                _tflite_latency(
                    path, shape, TFLITE_THREADS, _LATENCY_RUNS.value, _LATENCY_WARMUP.value
                )
            )
    return {
        name: {
            "median_ms": float(statistics.median(r["median_ms"] for r in results)),
            "p90_ms": float(statistics.median(r["p90_ms"] for r in results)),
            "round_medians_ms": [r["median_ms"] for r in results],
        }
        for name, results in samples.items()
    }


# -- verdict and table ----------------------------------------------------------------------------
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


def _eff(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}x"


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
                _eff(r["synaptic_efficiency"]),
                f"{r['clusters']:,}",
                _eff(r["cluster_efficiency"]),
                f"{r['macs']:,}",
                f"{r['latency_ms']:.4f}",
                f"{base / r['latency_ms']:.2f}x",
                str(r["epochs"]),
                f"{r['train_seconds']:.0f}",
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for i, row in enumerate(table):
        cells = [
            c.ljust(w) if j == 0 else c.rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------
def _fail(error: Exception) -> None:
    sys.exit(f"compare_tfmot.py: error: {error}")


def _validate_flags() -> tuple[list[Arm], list[int] | None]:
    overrides = [a for a in sys.argv[1:] if a.startswith("--config")]
    if _EVOLUTION_RUN.value and overrides:
        raise BenchmarkError(
            f"--evolution_run with {overrides[0]}: the run's own config.json is used with "
            "--evolution_run; drop --config and --config.* overrides."
        )
    for flag in (_TFMOT_EPOCHS, _LATENCY_WARMUP):
        if flag.value < 0:
            raise BenchmarkError(f"--{flag.name} must be >= 0, got {flag.value}.")
    for flag in (_LATENCY_RUNS, _LATENCY_ROUNDS):
        if flag.value < 1:
            raise BenchmarkError(f"--{flag.name} must be >= 1, got {flag.value}.")
    for flag in (_TRAIN_LIMIT, _TEST_LIMIT):
        if flag.value is not None and flag.value < 0:
            raise BenchmarkError(f"--{flag.name} must be >= 0 (0 = all), got {flag.value}.")
    arms = parse_arms(_SPARSITIES.value, _M_BY_N.value)
    generations = parse_generations(_GENERATIONS.value)
    Path(_OUTPUT.value).parent.mkdir(parents=True, exist_ok=True)
    return arms, generations


def _evolve(config: ml_collections.ConfigDict) -> Path:
    """Run (or resume) the evolution of --config into --workdir; its run directory."""
    if _TRAIN_LIMIT.value is not None:
        config.data.train_limit = _TRAIN_LIMIT.value
    if _TEST_LIMIT.value is not None:
        config.data.test_limit = _TEST_LIMIT.value
    run_classification(config, _WORKDIR.value)
    return Path(_WORKDIR.value)


@dataclass
class Bench:
    """Everything the rows are computed from."""

    run: RunInfo
    mode: str
    config: ml_collections.ConfigDict  # the run's config
    data_config: dict  # the run's data config with the benchmark's limits
    data: ClassificationData
    budget: int  # fine-tuning epochs of each TF-MOT arm

    @property
    def same_test(self) -> bool:
        return int(self.data_config["test_limit"]) == int(self.run_data.get("test_limit", 0))

    @property
    def same_train(self) -> bool:
        return int(self.data_config["train_limit"]) == int(self.run_data.get("train_limit", 0))

    @property
    def run_data(self) -> dict:
        return self.run.config["data"]

    @property
    def optimizer(self) -> dict:
        evo = self.run.config["evolution"]
        return {k: evo[k] for k in ("optimizer", "learning_rate", "schedule")}


def prepare(generations: list[int] | None) -> Bench:
    """Evolve if asked, check the run and load the data: everything that can fail cheaply."""
    if _EVOLUTION_RUN.value:
        mode, run = "existing run", inspect_run(_EVOLUTION_RUN.value, generations)
    else:
        mode, run = "evolved by this benchmark", inspect_run(_evolve(_CONFIG.value), generations)
    config = ml_collections.ConfigDict(run.config)
    data_config = data_settings(run.config["data"], _TRAIN_LIMIT.value, _TEST_LIMIT.value)
    data = load_classification_data(ml_collections.ConfigDict(data_config))
    epochs = int(config.evolution.epochs_per_generation)
    budget = _TFMOT_EPOCHS.value or fine_tuning_epochs(run.records, run.last_accepted, epochs)
    if budget < 1:
        raise BenchmarkError("the evolution spent 0 fine-tuning epochs; pass --tfmot_epochs=N.")
    return Bench(run, mode, config, data_config, data, budget)


def ancestor_row(bench: Bench, accuracy: tuple[float, str]) -> dict:
    record = bench.run.records[0]
    return {
        "name": "ancestor (gen 0)",
        "kind": "ancestor",
        "generation": 0,
        "accuracy": accuracy[0],
        "accuracy_source": accuracy[1],
        "lineage_accuracy": record["accuracy"],
        "synapses": record["synapses"],
        "clusters": record["clusters"],
        "synaptic_efficiency": 1.0,
        "cluster_efficiency": 1.0,
        "epochs": int(record.get("epochs", 0)),
        "train_seconds": float(record["seconds"]),
        "note": "train s / epochs: the ancestor's own training",
    }


def tfmot_row(
    bench: Bench, arm: Arm, index: int, ancestor: keras.Model, test_data: tf.data.Dataset
) -> tuple[dict, keras.Model]:
    """Train (or reuse) one TF-MOT arm; (row, stripped model)."""
    record = bench.run.records[0]
    seed = derive_seed(int(bench.config.seed), 1_000_003, index)
    key = {
        "ancestor": str(_checkpoint(bench.run.workdir, 0).resolve()),
        "ancestor_record": {k: record[k] for k in ("accuracy", "synapses", "seconds")},
        "arm": {"sparsity": arm.sparsity, "m_by_n": arm.m_by_n},
        "epochs": bench.budget,
        "data": bench.data_config,
        "train": bench.run.config["train"],
        "evolution_optimizer": bench.optimizer,
        "deterministic": bool(bench.config.get("deterministic", False)),
        "seed": seed,
    }
    folder = None
    if _TFMOT_WORKDIR.value:
        folder = Path(_TFMOT_WORKDIR.value) / arm.name.replace(" ", "_").replace(":", "of")
    cached = cached_arm(folder, key)
    if cached is None:
        logging.info("Training %s for %d epochs.", arm.name, bench.budget)
        stripped, result = train_tfmot_arm(
            ancestor, arm, bench.data, test_data, bench.config, bench.budget, seed
        )
        if folder is not None:
            store_arm(folder, key, stripped, result)
    else:
        print(f"{arm.name}: reusing the finished arm in {folder}")
        stripped, result = cached
    counts = kernel_counts(stripped)
    syn_eff, clu_eff = efficiencies(
        record["synapses"], record["clusters"], counts["synapses"], counts["clusters"]
    )
    row = {
        "name": arm.name,
        "kind": "tfmot",
        "generation": None,
        "target_sparsity": arm.sparsity,
        "m_by_n": list(arm.m_by_n) if arm.m_by_n else None,
        "accuracy": result["accuracy"],
        "accuracy_source": "evaluated after strip_pruning",
        "synapses": counts["synapses"],
        "clusters": counts["clusters"],
        "synaptic_efficiency": syn_eff,
        "cluster_efficiency": clu_eff,
        "realized_sparsity": 1.0 - counts["synapses"] / record["synapses"],
        "sparse_macs": counts["sparse_macs"],
        "layers": counts["layers"],
        "epochs": result["epochs"],
        "train_seconds": result["train_seconds"],
        "training": result,
    }
    return row, stripped


def evolution_row(bench: Bench, generation: int, accuracy: tuple[float, str]) -> dict:
    records = bench.run.records
    record = records[generation]
    epochs = int(bench.config.evolution.epochs_per_generation)
    return {
        "name": f"evo gen {generation}",
        "kind": "evolution",
        "generation": generation,
        "accuracy": accuracy[0],
        "accuracy_source": accuracy[1],
        "lineage_accuracy": record["accuracy"],
        "synapses": record["synapses"],
        "clusters": record["clusters"],
        "synaptic_efficiency": record["synaptic_efficiency"],
        "cluster_efficiency": record["cluster_efficiency"],
        "lineage_flops": record.get("flops"),
        "epochs": fine_tuning_epochs(records, generation, epochs),
        "train_seconds": sum(float(r["seconds"]) for r in records[1 : generation + 1]),
        "train_seconds_with_ancestor": sum(float(r["seconds"]) for r in records[: generation + 1]),
    }


def deploy_and_time(
    rows: list[dict], models: dict[str, tuple[keras.Model, keras.Model]], data: ClassificationData
) -> None:
    """Add MACs, TFLite size/check and batch-1 latency to every row (latency interleaved)."""
    probe = data.preprocess(data.test_images[:64])
    with tempfile.TemporaryDirectory(prefix="evosyn_compare_tfmot_") as tmp:
        paths = {}
        for i, row in enumerate(rows):
            deployed, reference = models[row["name"]]
            flops = count_flops(deployed)
            info = to_tflite(deployed, Path(tmp) / f"m{i}", reference, probe)
            paths[row["name"]] = info.pop("path")
            row.update(macs=flops.total_dense_macs, deployed_params=flops.total_params, **info)
        logging.info("Timing %d TFLite models.", len(paths))
        latency = measure_latency(paths, (1, *data.input_shape))
    for row in rows:
        lat = latency[row["name"]]
        row.update(latency_ms=lat["median_ms"], latency_p90_ms=lat["p90_ms"], latency=lat)
        row["speedup_vs_ancestor"] = latency[rows[0]["name"]]["median_ms"] / lat["median_ms"]


def build_output(bench: Bench, rows: list[dict], result: dict) -> dict:
    data = bench.data
    return {
        "benchmark": "compare_tfmot",
        "dataset": {
            "description": data.description,
            "train_examples": len(data.train_labels),
            "test_examples": len(data.test_labels),
            "data_config": bench.data_config,
            "run_data_config": bench.run_data,
            "same_test_split_as_run": bench.same_test,
            "same_train_split_as_run": bench.same_train,
        },
        "evolution_run": str(bench.run.workdir.resolve()),
        "mode": bench.mode,
        "run_config": bench.run.config,
        "settings": {
            "tfmot_epochs": bench.budget,
            "tfmot_epochs_rule": (
                "--tfmot_epochs"
                if _TFMOT_EPOCHS.value
                else "sum over generations 1..last accepted of epochs_per_generation x attempts"
            ),
            "last_accepted_generation": bench.run.last_accepted,
            "batch_size": bench.config.train.batch_size,
            "optimizer": bench.optimizer,
            "cosine_decay": "once over each TF-MOT arm's whole training",
            "polynomial_decay": "initial 0, begin_step 0, end_step ~70% of the steps (a multiple "
            "of frequency), frequency min(100, end/10)",
            "m_by_n": "ConstantSparsity(0.5), sparsity_m_by_n=(2, 4): mask set once at step 1",
            "generations_shown": bench.run.shown,
            "latency": {
                "batch": 1,
                "threads": TFLITE_THREADS,
                "delegate": "XNNPACK (default)",
                "runs": _LATENCY_RUNS.value,
                "warmup": _LATENCY_WARMUP.value,
                "rounds": _LATENCY_ROUNDS.value,
            },
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "tensorflow": tf.__version__,
            "tfmot": _tfmot_version(),
        },
        "rows": rows,
        "verdict": result,
    }


def _tfmot_version() -> str:
    import tensorflow_model_optimization as tfmot

    return getattr(tfmot, "__version__", "unknown")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        arms, generations = _validate_flags()
        bench = prepare(generations)
    except (BenchmarkError, ConfigError, DataError) as error:
        _fail(error)
    run, data = bench.run, bench.data
    if bench.config.get("deterministic", False):
        tf.config.experimental.enable_op_determinism()  # as the evolution trained

    print(f"Evolution run: {run.workdir.resolve()} ({bench.mode})")
    print(f"Dataset: {data.description}")
    print(
        f"Limits: train_limit={bench.data_config['train_limit']}, "
        f"test_limit={bench.data_config['test_limit']} (0 = all); the run used "
        f"train_limit={bench.run_data.get('train_limit', 0)}, "
        f"test_limit={bench.run_data.get('test_limit', 0)}"
    )
    if not bench.same_train:
        print("WARNING: TF-MOT trains on another training split than the evolution did.")
    rule = "" if _TFMOT_EPOCHS.value else f" (= evolution's, generations 1..{run.last_accepted})"
    print(f"TF-MOT budget: {bench.budget} fine-tuning epochs per arm{rule}")

    test_data = data.test_dataset(batch_size=max(bench.config.train.batch_size, 256))

    def accuracy_of(record: dict, model: keras.Model) -> tuple[float, str]:
        if bench.same_test:
            return float(record["accuracy"]), "lineage"
        return evaluate_accuracy(model, test_data), "re-evaluated on the benchmark test split"

    ancestor = load_model(_checkpoint(run.workdir, 0))
    rows = [ancestor_row(bench, accuracy_of(run.records[0], ancestor))]
    models = {rows[0]["name"]: (compact(ancestor), ancestor)}  # name -> (deployed, reference)
    for index, arm in enumerate(arms):
        row, stripped = tfmot_row(bench, arm, index, ancestor, test_data)
        rows.append(row)
        models[row["name"]] = (stripped, stripped)
    for generation in run.shown:
        masked = load_model(_checkpoint(run.workdir, generation))
        rows.append(evolution_row(bench, generation, accuracy_of(run.records[generation], masked)))
        models[rows[-1]["name"]] = (compact(masked), masked)
    deploy_and_time(rows, models, data)
    result = verdict(rows, float(bench.config.evolution.accuracy_tolerance))

    print()
    print(
        f"{data.description}: top-1 accuracy on the test split ({len(data.test_labels)} images); "
        f"batch-1 float32 TFLite, XNNPACK, {TFLITE_THREADS} thread, median of "
        f"{_LATENCY_ROUNDS.value} rounds x {_LATENCY_RUNS.value} runs; MACs per example of the "
        "deployed model (evolution compacted, TF-MOT stripped = dense)."
    )
    print(format_table(rows))
    print(
        "epochs / train s: ancestor = its own training; other rows = fine-tuning after it "
        "(evolution: cumulative over generations 1..g, incl. rejected re-draws and per-attempt "
        "evaluation, measured when the run was made; TF-MOT: one fit + evaluation)."
    )
    if not bench.same_test:
        print("Evolution accuracies were re-evaluated on this test split (the run used another).")
    print()
    print(format_verdict(result))
    io_utils.atomic_write_json(Path(_OUTPUT.value), build_output(bench, rows, result))
    print(f"Wrote {_OUTPUT.value} (written atomically: temp file + os.replace)")


if __name__ == "__main__":
    app.run(main)
