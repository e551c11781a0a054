"""The rows of the TF-MOT comparison (ancestor, TF-MOT arms, evolution generations) and the
:class:`Bench` they are computed from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ml_collections
from absl import logging
from evolution_run import RunInfo, checkpoint, fine_tuning_epochs
from tfmot_arm import Arm, cached_arm, kernel_counts, store_arm, train_tfmot_arm

import tf_evosyn  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn._keras import keras, tf
from tf_evosyn.data import ClassificationData
from tf_evosyn.loop.candidates import derive_seed
from tf_evosyn.loop.lineage import efficiencies


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
    bench: Bench,
    arm: Arm,
    index: int,
    ancestor: keras.Model,
    test_data: tf.data.Dataset,
    tfmot_workdir: str = "",
    fit_verbose: int = 2,
) -> tuple[dict, keras.Model]:
    """Train (or reuse) one TF-MOT arm; (row, stripped model). ``tfmot_workdir``: where
    finished arms are kept and reused (empty: nowhere)."""
    record = bench.run.records[0]
    seed = derive_seed(int(bench.config.seed), 1_000_003, index)
    key = {
        "ancestor": str(checkpoint(bench.run.workdir, 0).resolve()),
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
    if tfmot_workdir:
        folder = Path(tfmot_workdir) / arm.name.replace(" ", "_").replace(":", "of")
    cached = cached_arm(folder, key)
    if cached is None:
        logging.info("Training %s for %d epochs.", arm.name, bench.budget)
        stripped, result = train_tfmot_arm(
            ancestor,
            arm,
            bench.data,
            test_data,
            bench.config,
            bench.budget,
            seed,
            fit_verbose=fit_verbose,
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
