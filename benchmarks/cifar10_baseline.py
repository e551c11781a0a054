"""Benchmark: evolution against L1-norm filter pruning (Li et al. 2017) on CIFAR-10, per seed.

    EVOSYN_DATA_DIR=/work/shared/datasets python benchmarks/cifar10_baseline.py \
        [--seeds=0,1,2] [--models=resnet56] [--output=benchmarks/results/cifar10_baseline.json] \
        [--skip_layers=li_a] [--skip_coupled=true] [--baseline_epochs=0] [--threads=0] \
        [every flag of benchmarks/cifar10.py: --generations, --ancestor_epochs, --set, ...]

Why: the structured baseline a practitioner would pick against evolution must start from the
same ancestor, end at the same cost and train as long. Per model and seed:

1. the evolution of benchmarks/cifar10.py with ``config.seed = S`` runs (or resumes) in
   ``--workdir_root/<model>_<data.name>`` for the recipes' seed (0: the very run
   benchmarks/cifar10.py makes) and in ``..._seed<S>`` for the others;
2. its chosen offspring is ``best/`` (as benchmarks/cifar10.py reports it): its MACs (the
   lineage's ``flops``, compacted) are the target;
3. the ancestor, ``generations/gen_0000/``, is L1-pruned with
   :func:`tf_evosyn.interop.prune_to_macs` (the least uniform fraction whose compacted MACs are
   at most the offspring's; by default only filters feeding no residual addition, and Li et al.'s
   sensitive ResNet-56 layers skipped: ``--skip_layers=li_a``), compacted, and fine-tuned with the
   evolution's optimizer and learning rate (``make_compile_fn(config.evolution, ...)``, its
   offspring batch) for as many epochs as the evolution fine-tuned up to that offspring, re-draws
   included (``--baseline_epochs=0``), in one ``fit`` (a cosine schedule decays once over it,
   where the evolution restarts it every generation);
4. both are reported on the test split: accuracy, MACs and parameters of the compacted network,
   clusters and efficiencies; then mean / min / max / spread over the seeds.

Resumable: each seed's result is written to ``--output`` (atomically) as soon as it is done, and
a seed whose result there was made with the same config and baseline settings is not re-run;
evolution runs resume after their last committed generation. ``--report_only`` runs nothing.
The 4000-image subset's test split is not CIFAR-10's official one (see benchmarks/cifar10.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cifar10 as bench  # noqa: E402  (its flags are this benchmark's too)
import cifar10_baseline_report as report  # noqa: E402
import common  # noqa: E402
from common import BenchmarkError  # noqa: E402
from evolution_run import fine_tuning_epochs  # noqa: E402
from seeds import parse_seeds  # noqa: E402

from tf_evosyn._keras import keras, tf  # noqa: E402
from tf_evosyn.core.measures import count_living  # noqa: E402
from tf_evosyn.data import DataError, load_classification_data  # noqa: E402
from tf_evosyn.interop import LI_RESNET56_SENSITIVE, prune_to_macs  # noqa: E402
from tf_evosyn.loop import distribute as distribute_lib  # noqa: E402
from tf_evosyn.loop.lineage import efficiencies  # noqa: E402
from tf_evosyn.loop.recipes import make_compile_fn  # noqa: E402
from tf_evosyn.loop.run_dir import RunDirectory  # noqa: E402
from tf_evosyn.runs.classification import run_classification  # noqa: E402
from tf_evosyn.runs.common import prepare_workdir  # noqa: E402
from tf_evosyn.runs.config_checks import offspring_batch_size  # noqa: E402
from tf_evosyn.runs.errors import ConfigError  # noqa: E402
from tf_evosyn.storage import io_utils  # noqa: E402
from tf_evosyn.tasks.classification import evaluate_accuracy  # noqa: E402

FLAGS = flags.FLAGS
_SEEDS = flags.DEFINE_string("seeds", "", "Comma list of seeds; empty: the recipes' seed.")
_SKIP_LAYERS = flags.DEFINE_list(
    "skip_layers",
    ["li_a"],
    "Layers L1 pruning leaves alone: li_a / li_b (Li et al.'s sensitive ResNet-56 layers, "
    "ResNet-56 only), none, or layer names.",
)
_SKIP_COUPLED = flags.DEFINE_boolean(
    "skip_coupled", True, "Keep every filter of residual streams (Li et al. on ResNet-56)."
)
_BASELINE_EPOCHS = flags.DEFINE_integer(
    "baseline_epochs", 0, "Fine-tuning epochs of the L1 baseline; 0 = what the evolution spent."
)
_EVOLVE = flags.DEFINE_boolean(
    "evolve", True, "Run or resume missing evolutions; false: only read finished run dirs."
)
_THREADS = flags.DEFINE_integer("threads", 0, "TensorFlow intra/inter-op threads; 0 = default.")
_REPORT_ONLY = flags.DEFINE_boolean("report_only", False, "Print --output; run nothing.")


def skip_layers(model: str) -> list[str]:
    names = [n for n in _SKIP_LAYERS.value if n.lower() != "none"]
    out = []
    for name in names:
        variant = name.lower().removeprefix("li_").upper() if name.lower().startswith("li_") else ""
        if variant:
            if variant not in LI_RESNET56_SENSITIVE:
                raise BenchmarkError(f"--skip_layers={name}: use li_a, li_b, none or layer names.")
            out += list(LI_RESNET56_SENSITIVE[variant]) if model == "resnet56" else []
        else:
            out.append(name)
    return out


def check_layer_names(model: str, config) -> None:
    """Layer names in --skip_layers must be the model's (checked before hours of evolution)."""
    names = skip_layers(model)
    if not names:
        return
    from tf_evosyn import models
    from tf_evosyn.runs.config_checks import model_kwargs

    built = models.build(
        config.model.name, input_shape=(32, 32, 3), num_classes=10, **model_kwargs(config)
    )
    unknown = sorted(set(names) - {layer.name for layer in built.layers})
    if unknown:
        raise BenchmarkError(f"--skip_layers: {unknown} are no layers of {model}.")


def seed_workdir(model: str, config, recipe_seed: int) -> Path:
    base = bench.workdir_for(model, config)
    return base if config.seed == recipe_seed else base.with_name(f"{base.name}_seed{config.seed}")


def settings_key(config, model: str) -> dict:
    """What a seed's stored result depends on: a changed one is re-run."""
    text = config.to_json_best_effort(sort_keys=True)
    return {
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "skip_layers": skip_layers(model),
        "skip_coupled": _SKIP_COUPLED.value,
        "baseline_epochs": _BASELINE_EPOCHS.value,
    }


def evolution_row(records: list[dict], best: int, epochs_per_generation: int) -> dict:
    record, ancestor = records[best], records[0]
    on_test = record.get("selection_split", "test") == "test"
    return {
        "generation": best,
        "test_accuracy": record["accuracy"] if on_test else record.get("test_accuracy"),
        "validation_accuracy": None if on_test else record["accuracy"],
        "macs": record["flops"],
        "mac_reduction": ancestor["flops"] / max(record["flops"], 1),
        "params": record["compact_params"],
        "synapses": record["synapses"],
        "clusters": record["clusters"],
        "synaptic_efficiency": record["synaptic_efficiency"],
        "cluster_efficiency": record["cluster_efficiency"],
        "epochs": fine_tuning_epochs(records, best, epochs_per_generation),
    }


def fine_tune(pruned, config, data, epochs: int, seed: int, strategy) -> tuple[keras.Model, dict]:
    """The compacted L1-pruned network trained as the evolution fine-tunes (one ``fit``)."""
    batch = offspring_batch_size(config)
    steps_per_epoch = -(-len(data.train_labels) // batch)
    with strategy.scope():
        model = keras.models.clone_model(pruned.compacted)
        model.set_weights(pruned.compacted.get_weights())
        keras.utils.set_random_seed(seed)
        make_compile_fn(config.evolution, max(epochs, 1), steps_per_epoch)(model)
    start = time.time()
    losses = []
    if epochs > 0:
        history = model.fit(
            data.train_dataset(batch_size=batch, seed=seed),
            epochs=epochs,
            callbacks=[keras.callbacks.TerminateOnNaN()],
            verbose=FLAGS.fit_verbose,
        )
        losses = history.history.get("loss", [])
    facts = {"batch_size": batch, "steps": epochs * steps_per_epoch}
    facts.update(fit_seconds=time.time() - start, final_loss=losses[-1] if losses else None)
    return model, facts


def baseline_seed(model: str, config, workdir: Path, data, strategy) -> dict:
    """Evolve (or resume), then L1-prune the ancestor to the chosen offspring's MACs."""
    start = time.time()
    if _EVOLVE.value:
        run_classification(config, workdir, strategy=strategy)
    evolution_seconds = time.time() - start
    records, _ = common.read_run(workdir)
    run = RunDirectory(workdir)
    best = run.best_generation()
    if best is None:
        raise BenchmarkError(f"{workdir}/best is missing or unfinished; resume the evolution.")
    evolution = evolution_row(records, best, int(config.evolution.epochs_per_generation))
    epochs = _BASELINE_EPOCHS.value or evolution["epochs"]
    ancestor = run.load_generation(0)  # tf_evosyn.loop.run_dir's load_model
    start = time.time()
    pruned = prune_to_macs(
        ancestor,
        evolution["macs"] / records[0]["flops"],
        skip_coupled=_SKIP_COUPLED.value,
        skip_layers=skip_layers(model),
    )
    prune_seconds = time.time() - start
    eval_batch = max(config.train.batch_size, 256)
    test = data.test_dataset(batch_size=eval_batch)
    before = evaluate_accuracy(pruned.compacted, test)
    trained, facts = fine_tune(pruned, config, data, epochs, int(config.seed), strategy)
    counts, base = count_living(pruned.masked), records[0]
    synaptic, cluster = efficiencies(
        base["synapses"], base["clusters"], counts.synapses, counts.clusters
    )
    on_test = records[best].get("selection_split", "test") == "test"
    validation = (
        None if on_test else evaluate_accuracy(trained, data.validation_dataset(eval_batch))
    )
    l1 = {
        "fraction": pruned.fraction,
        "filters_removed": sum(len(v) for v in pruned.removed.values()),
        "removed": pruned.removed,
        "skip_coupled": _SKIP_COUPLED.value,
        "skip_layers": skip_layers(model),
        "target_macs": evolution["macs"],
        "macs": pruned.macs,
        "mac_reduction": base["flops"] / max(pruned.macs, 1),
        "params": pruned.params,
        "synapses": counts.synapses,
        "clusters": counts.clusters,
        "synaptic_efficiency": synaptic,
        "cluster_efficiency": cluster,
        "test_accuracy_before_fine_tuning": before,
        "test_accuracy": evaluate_accuracy(trained, test),
        "validation_accuracy": validation,
        "epochs": epochs,
        "prune_seconds": prune_seconds,
        **facts,
    }
    store = Path(FLAGS.workdir_root) / "l1_baseline" / workdir.name

    def write(tmp: Path) -> None:
        trained.save(tmp / "model.keras")
        io_utils.atomic_write_json(tmp / "record.json", l1)

    store.parent.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_replace_dir(store, write)
    return {
        "seed": int(config.seed),
        "workdir": str(workdir),
        "baseline_model": str(store / "model.keras"),
        "evolution_seconds_this_session": evolution_seconds,
        "evolution": evolution,
        "l1_pruning": l1,
        "difference": {
            "test_accuracy": None
            if evolution["test_accuracy"] is None
            else l1["test_accuracy"] - evolution["test_accuracy"],
            "macs": l1["macs"] - evolution["macs"],
            "params": l1["params"] - evolution["params"],
        },
    }


def _previous(output: Path) -> dict:
    if not output.is_file():
        return {}
    stored = json.loads(output.read_text())
    return stored.get("models", {}) if stored.get("benchmark") == "cifar10_baseline" else {}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    output = Path(FLAGS.output)
    if _REPORT_ONLY.value:
        for model, result in _previous(output).items():
            report.print_model(model, result)
        return
    if _THREADS.value:  # before TensorFlow initialises its devices
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
        tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    try:
        configs = bench.check_flags()
        for model, recipe in configs.items():
            check_layer_names(model, recipe)  # --skip_layers checked before any training
        shared = FLAGS.config.distribute
        strategy = distribute_lib.make_strategy(
            shared.strategy, shared.tpu_address, shared.num_cpu_devices
        )
        plans = {}
        for model, recipe in configs.items():
            seeds = parse_seeds(_SEEDS.value) if _SEEDS.value else [int(recipe.seed)]
            for seed in seeds:
                config = copy.deepcopy(recipe)
                config.seed = seed
                workdir = seed_workdir(model, config, int(recipe.seed))
                if _EVOLVE.value:
                    prepare_workdir(config, workdir)  # a resume must match, checked now
                plans[(model, seed)] = (config, workdir)
            load_classification_data(recipe.data)  # data problems surface now
    except (BenchmarkError, ConfigError, DataError, distribute_lib.StrategyError) as error:
        sys.exit(f"cifar10_baseline.py: error: {error}")

    results = {"benchmark": "cifar10_baseline", "models": _previous(output)}
    results["flags"] = {name: FLAGS[name].value for name in ("models", "seeds", "generations")}
    results["flags"].update(
        ancestor_epochs=FLAGS.ancestor_epochs,
        epochs_per_generation=FLAGS.epochs_per_generation,
        set=FLAGS.set,
        skip_layers=_SKIP_LAYERS.value,
        skip_coupled=_SKIP_COUPLED.value,
        baseline_epochs=_BASELINE_EPOCHS.value,
        threads=_THREADS.value,
    )
    datasets = {}
    for (model, seed), (config, workdir) in plans.items():
        entry = results["models"].setdefault(model, {"seeds": {}, "summary": {}})
        key = settings_key(config, model)
        stored = entry["seeds"].get(str(seed))
        if stored and stored.get("key") == key:
            print(f"{model} seed {seed}: in {output}, not re-run", flush=True)
            continue
        print(f"{model} seed {seed}: {workdir}", flush=True)
        if model not in datasets:
            datasets[model] = load_classification_data(config.data)
            results.setdefault("data_used", {})[model] = bench.data_facts(datasets[model], config)
        try:
            row = baseline_seed(model, config, workdir, datasets[model], strategy)
        except (BenchmarkError, FileNotFoundError, ValueError) as error:
            sys.exit(f"cifar10_baseline.py: error: {model} seed {seed}: {error}")
        entry["seeds"][str(seed)] = {**row, "key": key}
        entry["summary"] = report.summarize(list(entry["seeds"].values()))
        common.write_results(output, results)  # after every seed: a killed run resumes here
    for model in configs:  # the seeds asked for (the JSON keeps every seed it holds)
        result = results["models"][model]
        asked = [s for m, s in plans if m == model]
        result["summary_seeds"] = asked
        result["summary"] = report.summarize([result["seeds"][str(s)] for s in asked])
        report.print_model(model, result)
    common.write_results(output, results)
    print(bench.SUBSET_WARNING if FLAGS.config.data.name == "cifar10_subset" else "")


if __name__ == "__main__":
    FLAGS.set_default("models", ["resnet56"])
    FLAGS.set_default("output", "benchmarks/results/cifar10_baseline.json")
    app.run(main)
