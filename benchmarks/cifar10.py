"""Benchmark: evolve ResNet-56 and AlexNet (Caffe cifar10_full) on CIFAR-10, measure what it buys.

Here (CPU, the shared 4000-image subset; ~15-25 minutes with the defaults):

    EVOSYN_DATA_DIR=/work/shared/datasets python benchmarks/cifar10.py \
        [--models=resnet56,alexnet_cifar] [--workdir_root=runs/bench_cifar10] \
        [--output=benchmarks/results/cifar10.json] [--generations=3] \
        [--ancestor_epochs=resnet56:10,alexnet_cifar:30] \
        [--epochs_per_generation=resnet56:3,alexnet_cifar:4]

Full CIFAR-10 with the papers' recipes (a GPU machine; TFDS or local python batches):

    python benchmarks/cifar10.py --config.data.name=cifar10 --config.data.source=tfds \
        --ancestor_epochs=resnet56:164,alexnet_cifar:140 --epochs_per_generation=10 \
        --generations=15 --accuracy_tolerance=0.01 --max_attempts=3 --set=none \
        [--config.distribute.strategy=mirrored]

Each model starts from its recipe config (configs/resnet56_cifar10.py: He et al. 2016;
configs/alexnet_cifar10.py: Caffe's cifar10_full solver) with the benchmark's data section
(``--config.data.*``, shared by both models) and the flags below, and runs (or resumes) through
``tf_evosyn.runs.classification.run_classification`` in
``--workdir_root/<model>_<data.name>``. When the ancestor trains for fewer epochs than its
recipe, the recipe's piecewise boundaries are scaled by the same ratio (``--scale_schedule``),
so a short run still ends at the recipe's lowest rate.
``--set=model:key=value`` overrides any config key of one model; by default it adapts ResNet-56
to the subset's short budget (:data:`SHORT_BUDGET_SETTINGS`): at 25 steps per epoch, the recipe's
rate 0.1 blows the loss up in the first steps and ResNet-56 stays at chance for 10 epochs (with
or without a 1-epoch warm-up), while 0.02 reaches ~44% in 8; the offspring fine-tune at a tenth
of that, as in the recipe (one epoch at 0.01 costs even an unpruned 6-epoch ancestor 6 points).
Use ``--set=none`` for the unchanged recipes (on full CIFAR-10, the papers' setting: 391 steps
per epoch; the recipe has not been run end to end here, there is no GPU and no full dataset).

Per model it prints one row per generation: accuracy, synapses, clusters, synaptic and cluster
efficiency, MACs of the compacted network, and the compacted network's batch-1 TFLite latency
(XNNPACK, ``--tflite_threads``) against the ancestor's; then the training throughput (images/s:
wall time of ``fit`` for one epoch after a warm-up, same pipeline, batch size and optimizer;
the median of ``--throughput_rounds`` interleaved epochs) of the ancestor against the compacted
best offspring. Everything goes to ``--output`` as JSON, written atomically, including
which data was used: the 4000-image subset's test split is NOT the official CIFAR-10 test split,
so its accuracies are not comparable with published CIFAR-10 results.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import ml_collections
from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cifar10_configs import (  # noqa: E402
    RECIPES,
    SHORT_BUDGET_SETTINGS,
    FlagError,
    model_config,
    parse_per_model,
    parse_settings,
)
from cifar10_measure import measure_latency, measure_throughput  # noqa: E402
from cifar10_report import print_model  # noqa: E402

import tf_evosyn  # noqa: E402, F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn._keras import keras, tf  # noqa: E402
from tf_evosyn.data import DataError, load_classification_data  # noqa: E402
from tf_evosyn.loop import distribute as distribute_lib  # noqa: E402
from tf_evosyn.runs.classification import run_classification  # noqa: E402
from tf_evosyn.runs.common import prepare_workdir  # noqa: E402
from tf_evosyn.runs.config_checks import validate_config  # noqa: E402
from tf_evosyn.runs.errors import ConfigError  # noqa: E402
from tf_evosyn.storage import io_utils  # noqa: E402

SUBSET_WARNING = (
    "The 4000-image CIFAR-10 subset (first 4000 images of training batch 1) is split into "
    "train/test by data.test_fraction: its test split is NOT the official CIFAR-10 test split, "
    "and accuracies on it are NOT comparable with published CIFAR-10 results."
)


def _shared_config() -> ml_collections.ConfigDict:
    """The benchmark's ``--config``: the data section both models use, and where they run."""
    config = ml_collections.ConfigDict()
    config.data = ml_collections.ConfigDict()
    config.data.name = "cifar10_subset"  # cifar10_subset | cifar10
    config.data.source = "auto"  # auto | local | tfds (cifar10 only)
    config.data.data_dir = ""
    config.data.tfds_data_dir = ""
    config.data.download = True
    config.data.train_limit = 0  # 0 = all (subset: 3200 train images)
    config.data.test_limit = 0  # 0 = all (subset: 800 test images)
    config.data.test_fraction = 0.2  # cifar10_subset only
    config.distribute = ml_collections.ConfigDict()
    config.distribute.strategy = "default"  # default | mirrored | multi_worker_mirrored | tpu
    config.distribute.tpu_address = ""
    config.distribute.num_cpu_devices = 0
    return config


_CONFIG = config_flags.DEFINE_config_dict("config", _shared_config(), "Data and distribution.")
_MODELS = flags.DEFINE_list("models", ["resnet56", "alexnet_cifar"], "Models to evolve.")
_WORKDIR_ROOT = flags.DEFINE_string(
    "workdir_root", "runs/bench_cifar10", "Run directories go to ROOT/<model>_<data.name>."
)
_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/cifar10.json", "JSON results file.")
_GENERATIONS = flags.DEFINE_integer("generations", 3, "Generations to evolve per model.")
_ANCESTOR_EPOCHS = flags.DEFINE_list(
    "ancestor_epochs",
    ["resnet56:10", "alexnet_cifar:30"],
    "Ancestor training epochs: N for every model, or model:N items.",
)
_EPOCHS_PER_GENERATION = flags.DEFINE_list(
    "epochs_per_generation",
    ["resnet56:3", "alexnet_cifar:4"],
    "Fine-tuning epochs per generation: N for every model, or model:N items.",
)
_SET = flags.DEFINE_multi_string(
    "set",
    list(SHORT_BUDGET_SETTINGS),
    "model:key=value config overrides (Python literals), applied after the other flags, e.g. "
    "--set=resnet56:train.learning_rate=0.1. Giving --set replaces these defaults (they adapt "
    "the ResNet-56 recipe to a few epochs on the subset); --set=none keeps the recipes as is.",
)
_SCALE_SCHEDULE = flags.DEFINE_boolean(
    "scale_schedule",
    True,
    "If the ancestor trains for fewer epochs than its recipe, scale the recipe's piecewise "
    "boundaries by the same ratio.",
)
_ACCURACY_TOLERANCE = flags.DEFINE_float(
    "accuracy_tolerance",
    0.03,
    "Accept offspring within this fraction of the ancestor's accuracy (the subset's 800 test "
    "images measure accuracy to ~1.5 points).",
)
_MAX_ATTEMPTS = flags.DEFINE_integer("max_attempts", 2, "Draws per generation before stopping.")
_FIT_VERBOSE = flags.DEFINE_integer("fit_verbose", 0, "Keras fit verbosity (0, 1 or 2).")
_LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 100, "Timed TFLite calls per round.")
_LATENCY_WARMUP = flags.DEFINE_integer("latency_warmup", 10, "Untimed TFLite calls first.")
_LATENCY_ROUNDS = flags.DEFINE_integer("latency_rounds", 3, "Interleaved latency rounds.")
_TFLITE_THREADS = flags.DEFINE_integer("tflite_threads", 1, "TFLite (XNNPACK) threads.")
_THROUGHPUT_ROUNDS = flags.DEFINE_integer(
    "throughput_rounds",
    3,
    "Timed one-epoch trainings per model (interleaved rounds; the median is reported).",
)
_THROUGHPUT_WARMUP_STEPS = flags.DEFINE_integer(
    "throughput_warmup_steps", 5, "Untimed training steps before the timed epoch."
)


def check_flags() -> dict[str, ml_collections.ConfigDict]:
    """Every flag and config, before any training; returns model -> config."""
    models = list(dict.fromkeys(_MODELS.value))
    unknown = [m for m in models if m not in RECIPES]
    if not models or unknown:
        raise FlagError(f"--models: unknown {unknown or 'none given'}; use {sorted(RECIPES)}.")
    if _GENERATIONS.value < 0:
        raise FlagError("--generations must be >= 0.")
    if _MAX_ATTEMPTS.value < 1:
        raise FlagError("--max_attempts must be >= 1.")
    if not 0.0 <= _ACCURACY_TOLERANCE.value <= 1.0:
        raise FlagError("--accuracy_tolerance is a fraction in [0, 1].")
    for name, flag in (
        ("latency_runs", _LATENCY_RUNS),
        ("latency_rounds", _LATENCY_ROUNDS),
        ("tflite_threads", _TFLITE_THREADS),
        ("throughput_rounds", _THROUGHPUT_ROUNDS),
    ):
        if flag.value < 1:
            raise FlagError(f"--{name} must be >= 1.")
    if _LATENCY_WARMUP.value < 0 or _THROUGHPUT_WARMUP_STEPS.value < 1:
        raise FlagError("--latency_warmup must be >= 0 and --throughput_warmup_steps >= 1.")
    if not _OUTPUT.value.endswith(".json"):
        raise FlagError(f"--output={_OUTPUT.value!r} must be a .json file.")
    epochs = parse_per_model("ancestor_epochs", _ANCESTOR_EPOCHS.value, models)
    per_gen = parse_per_model("epochs_per_generation", _EPOCHS_PER_GENERATION.value, models)
    for model, value in epochs.items():
        if value < 1:
            raise FlagError(f"--ancestor_epochs: {model} needs at least 1 epoch.")
    settings = parse_settings(_SET.value, models)
    evolution = {
        "generations": _GENERATIONS.value,
        "accuracy_tolerance": _ACCURACY_TOLERANCE.value,
        "max_attempts": _MAX_ATTEMPTS.value,
        "fit_verbose": _FIT_VERBOSE.value,
    }
    configs = {
        m: model_config(
            m, _CONFIG.value, epochs[m], per_gen[m], evolution, settings[m], _SCALE_SCHEDULE.value
        )
        for m in models
    }
    for config in configs.values():
        validate_config(config)
    return configs


def workdir_for(model: str, config: ml_collections.ConfigDict) -> Path:
    return Path(_WORKDIR_ROOT.value) / f"{model}_{config.data.name}"


def data_facts(data, config: ml_collections.ConfigDict) -> dict:
    official = config.data.name == "cifar10"
    return {
        "name": config.data.name,
        "description": data.description,
        "train_images": int(len(data.train_labels)),
        "test_images": int(len(data.test_labels)),
        "official_test_split": official and not config.data.test_limit,
        "warning": "" if official else SUBSET_WARNING,
    }


# -- measurements ---------------------------------------------------------------------------------


# -- output ---------------------------------------------------------------------------------------


def benchmark_model(
    model: str, config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy
) -> dict:
    workdir = workdir_for(model, config)
    data = load_classification_data(config.data)
    start = time.time()
    records = run_classification(config, workdir, strategy=strategy)
    evolution_seconds = time.time() - start
    images = data.preprocess(data.test_images[:16])
    latency = measure_latency(
        workdir,
        records,
        images,
        _TFLITE_THREADS.value,
        _LATENCY_RUNS.value,
        _LATENCY_WARMUP.value,
        _LATENCY_ROUNDS.value,
    )
    best_generation = int(io_utils.read_json(workdir / "best" / "record.json")["generation"])
    throughput = measure_throughput(
        workdir,
        best_generation,
        config,
        data,
        strategy,
        _THROUGHPUT_ROUNDS.value,
        _THROUGHPUT_WARMUP_STEPS.value,
    )
    base_macs = records[0]["flops"]
    base_ms = latency.get(0, {}).get("median_ms")
    rows = []
    for record in records:
        measured = latency.get(record["generation"])
        ms = measured["median_ms"] if measured else None
        rows.append(
            {
                "generation": record["generation"],
                "accuracy": record["accuracy"],
                "synapses": record["synapses"],
                "clusters": record["clusters"],
                "synaptic_efficiency": record["synaptic_efficiency"],
                "cluster_efficiency": record["cluster_efficiency"],
                "macs": record["flops"],
                "mac_reduction": base_macs / record["flops"] if record["flops"] else float("inf"),
                "compact_params": record["compact_params"],
                "tflite_ms": ms,
                "latency_speedup": base_ms / ms if ms and base_ms else None,
                "tflite": measured,
                "accepted": record["accepted"],
            }
        )
    return {
        "model": model,
        "workdir": str(workdir),
        "data": data_facts(data, config),
        "config": json.loads(config.to_json_best_effort(sort_keys=True)),
        "evolution_seconds_this_session": evolution_seconds,
        "best_generation": best_generation,
        "generations": rows,
        "throughput": throughput,
    }


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    shared = _CONFIG.value
    try:
        configs = check_flags()
        # Before TensorFlow initialises its devices (splitting the CPU needs that).
        strategy = distribute_lib.make_strategy(
            shared.distribute.strategy,
            shared.distribute.tpu_address,
            shared.distribute.num_cpu_devices,
        )
        for model, config in configs.items():
            load_classification_data(config.data)  # data problems surface now, not after a run
            prepare_workdir(config, workdir_for(model, config))  # a resume must match
    except (FlagError, ConfigError, DataError, distribute_lib.StrategyError) as error:
        sys.exit(f"cifar10.py: error: {error}")

    official = shared.data.name == "cifar10" and not shared.data.test_limit
    banner = (
        "DATA: full CIFAR-10, official test split"
        if official
        else f"DATA: {shared.data.name} -- {SUBSET_WARNING}"
        if shared.data.name == "cifar10_subset"
        else f"DATA: {shared.data.name}, test_limit={shared.data.test_limit} (a part of the "
        "official test split)"
    )
    print(banner)
    output = Path(_OUTPUT.value)
    results = {
        "benchmark": "cifar10",
        "data_used": banner,
        "official_test_split": official,
        "models": {},
        "flags": {
            name: flags.FLAGS[name].value
            for name in (
                "models",
                "generations",
                "ancestor_epochs",
                "epochs_per_generation",
                "set",
                "scale_schedule",
                "accuracy_tolerance",
                "max_attempts",
                "latency_runs",
                "latency_rounds",
                "tflite_threads",
                "throughput_rounds",
                "throughput_warmup_steps",
            )
        },
        "machine": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
        },
    }
    for model, config in configs.items():
        results["models"][model] = benchmark_model(model, config, strategy)
        results["machine"]["load_average_at_end"] = list(os.getloadavg())
        output.parent.mkdir(parents=True, exist_ok=True)
        io_utils.atomic_write_json(output, results)  # after every model: partial results survive
    for result in results["models"].values():
        print_model(result, results["flags"])
    print()
    print(banner)
    print(f"Wrote {output}")


if __name__ == "__main__":
    app.run(main)
