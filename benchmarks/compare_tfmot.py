"""Benchmark: evolutionary synthesis vs TF-MOT magnitude pruning, same ancestor, same budget.

    # Full benchmark (LeNet-5 / full MNIST): evolve (or resume) into --workdir, then compare.
    EVOSYN_DATA_DIR=/path/to/datasets python benchmarks/compare_tfmot.py \
        [--config=configs/lenet5_relu_mnist.py] [--workdir=runs/bench_<config>] \
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

import sys
import tempfile
from pathlib import Path

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import BenchmarkError  # noqa: E402
from compare_rows import Bench, ancestor_row, evolution_row, tfmot_row  # noqa: E402
from evolution_run import (  # noqa: E402
    checkpoint,
    data_settings,
    fine_tuning_epochs,
    inspect_run,
    parse_generations,
)
from tfmot_arm import Arm, parse_arms, tfmot_version  # noqa: E402
from tfmot_verdict import format_table, format_verdict, verdict  # noqa: E402

import tf_evosyn  # noqa: E402, F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn._keras import keras, tf  # noqa: E402
from tf_evosyn.compaction.plan import compact  # noqa: E402
from tf_evosyn.core.model_io import load_model  # noqa: E402
from tf_evosyn.data import ClassificationData, DataError, load_classification_data  # noqa: E402
from tf_evosyn.hardware.flops import count_flops  # noqa: E402
from tf_evosyn.runs.classification import run_classification  # noqa: E402
from tf_evosyn.runs.errors import ConfigError  # noqa: E402
from tf_evosyn.storage import io_utils  # noqa: E402
from tf_evosyn.tasks.classification import evaluate_accuracy  # noqa: E402

_EVOLUTION_RUN = flags.DEFINE_string(
    "evolution_run",
    None,
    "A finished (or stopped) evosyn-classify run directory to compare against. Not given: run "
    "(or resume) the evolution of --config into --workdir first.",
)
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    str(common.LENET5_CONFIG),
    "Experiment config, used only without --evolution_run (default: issue 12's recipe).",
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Run directory of the evolution when --evolution_run is not given (created or resumed; "
    "default runs/bench_<config>, as benchmarks/mnist_lenet5.py, so the two share one evolution).",
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

TFLITE_THREADS = 1


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
    workdir = _WORKDIR.value or common.default_workdir()
    run_classification(config, workdir)
    return Path(workdir)


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
            info = common.checked_tflite(deployed, Path(tmp) / f"m{i}", reference, probe)
            del info["saved_model"]
            paths[row["name"]] = info.pop("tflite")
            row.update(macs=flops.total_dense_macs, deployed_params=flops.total_params, **info)
        logging.info("Timing %d TFLite models.", len(paths))
        latency = common.interleaved_tflite_latency(
            paths,
            (1, *data.input_shape),
            TFLITE_THREADS,
            _LATENCY_RUNS.value,
            _LATENCY_WARMUP.value,
            _LATENCY_ROUNDS.value,
        )
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
        "machine": {**common.machine(), "tensorflow": tf.__version__, "tfmot": tfmot_version()},
        "rows": rows,
        "verdict": result,
    }


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
        if bench.same_test and record.get("selection_split") == "validation":
            # ``accuracy`` is the validation split the run decided on; TF-MOT rows are on test.
            return float(record["test_accuracy"]), "lineage (test split)"
        if bench.same_test:
            return float(record["accuracy"]), "lineage"
        return evaluate_accuracy(model, test_data), "re-evaluated on the benchmark test split"

    ancestor = load_model(checkpoint(run.workdir, 0))
    rows = [ancestor_row(bench, accuracy_of(run.records[0], ancestor))]
    models = {rows[0]["name"]: (compact(ancestor), ancestor)}  # name -> (deployed, reference)
    for index, arm in enumerate(arms):
        row, stripped = tfmot_row(
            bench, arm, index, ancestor, test_data, _TFMOT_WORKDIR.value, _FIT_VERBOSE.value
        )
        rows.append(row)
        models[row["name"]] = (stripped, stripped)
    for generation in run.shown:
        masked = load_model(checkpoint(run.workdir, generation))
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
