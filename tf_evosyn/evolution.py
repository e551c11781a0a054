"""The generational loop: synthesize -> train -> evaluate -> accept or re-draw -> record.

Everything lands in a run directory, written atomically, so a killed run resumes after its last
finished generation and ends with the same lineage as an uninterrupted one:

    lineage.jsonl               one record per generation (0 = ancestor)
    generations/gen_NNNN/       checkpoint (model.keras) + record.json of each generation
    best/                       the selected offspring (model.keras + record.json)
    tensorboard/                scalars per generation (+ fit logs per generation)
    plots/                      accuracy and efficiencies against generation
    status.json, summary.txt    how the run ended and its table
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from absl import logging

from tf_evosyn import distribute as distribute_lib
from tf_evosyn import environment as environment_lib
from tf_evosyn import io_utils
from tf_evosyn import lineage as lineage_lib
from tf_evosyn._keras import keras, tf
from tf_evosyn.compaction import compact
from tf_evosyn.convert import clone_with_weights, evolvable
from tf_evosyn.distill import distiller_like
from tf_evosyn.flops import count_flops
from tf_evosyn.layers import evolvable_layers
from tf_evosyn.measures import count_living
from tf_evosyn.model_io import load_model, save_model
from tf_evosyn.synthesis import synthesize

TrainData = Callable[[int], tf.data.Dataset] | tf.data.Dataset
CompileFn = Callable[[keras.Model], None]
SELECTION_CRITERIA = ("most_efficient", "most_accurate")


@dataclass
class EvolutionSettings:
    """Knobs of the generational loop (the binary fills them from ``config.evolution``)."""

    generations: int = 10
    epochs_per_generation: int = 1
    environment: environment_lib.EnvironmentalFactor = field(
        default_factory=environment_lib.ConstantFactor
    )
    accuracy_tolerance: float = 0.01  # accept if accuracy >= ancestor accuracy - tolerance
    max_attempts: int = 3  # draws per generation before evolution stops
    reinitialize: bool = False  # architecture-only heredity instead of inheriting weights
    selection: str = "most_efficient"
    seed: int = 0
    fit_verbose: int | str = "auto"
    tensorboard_fit_logs: bool = True
    # > 0: offspring also learn the ancestor's soft predictions at this temperature (distill.py);
    # distill_alpha weighs the hard-label loss against them.
    distill_temperature: float = 0.0
    distill_alpha: float = 0.1

    def validate(self) -> None:
        if self.generations < 0:
            raise ValueError(f"generations must be >= 0, got {self.generations}.")
        if self.epochs_per_generation < 0:
            raise ValueError("epochs_per_generation must be >= 0.")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}.")
        if not 0.0 <= self.accuracy_tolerance <= 1.0:
            raise ValueError("accuracy_tolerance is a fraction in [0, 1], e.g. 0.01 = 1 point.")
        if self.selection not in SELECTION_CRITERIA:
            raise ValueError(f"selection must be one of {SELECTION_CRITERIA}.")
        if self.distill_temperature < 0:
            raise ValueError("distill_temperature must be >= 0 (0 = no distillation).")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ValueError("distill_alpha must be in [0, 1] (the weight of the label loss).")


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from (seed, generation, attempt, ...), stable across runs and resumes."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] % (2**31 - 1))


def evaluate_accuracy(model: keras.Model, dataset: tf.data.Dataset) -> float:
    """Top-1 accuracy on a dataset of (images, integer labels) batches."""
    labels = np.concatenate([np.asarray(y) for _, y in dataset])
    if labels.size == 0:
        raise ValueError("The evaluation dataset is empty.")
    logits = model.predict(dataset.map(lambda x, y: x), verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == labels.reshape(-1)))


def _finite_weights(model: keras.Model) -> bool:
    return all(np.isfinite(w).all() for w in model.get_weights())


class Evolution:
    """Runs (and resumes) an evolution in ``workdir``.

    Args:
      workdir: the run directory.
      compile_fn: compiles a model with the user's optimizer, loss and metrics; called on the
        ancestor and on every offspring (each gets a fresh optimizer).
      train_data: a ``tf.data.Dataset`` or, for exact resumability, a function ``seed -> dataset``
        (the loop passes a different seed per generation and attempt).
      test_data: the evaluation dataset (top-1 accuracy decides acceptance).
      settings: :class:`EvolutionSettings`.
      fit_kwargs: extra keyword arguments for ``model.fit`` (callbacks, class weights, ...).
      ancestor_compile_fn: compiles the ancestor for its own training, if it differs from the
        offspring's fine-tuning (e.g. a higher learning rate); default ``compile_fn``.
      strategy: a ``tf.distribute`` strategy (default: no distribution). The whole loop runs in
        its scope, so every offspring, resumed checkpoint and optimizer is created there and all
        variables (masks and heredity buffers included) are distributed; ``train_data`` batches
        are global batches that ``model.fit`` splits across the replicas. Synthesis reads and
        writes the mirrored variables from the host (cross-replica context), see
        :mod:`tf_evosyn.distribute`.
    """

    def __init__(
        self,
        workdir: str | Path,
        compile_fn: CompileFn,
        train_data: TrainData,
        test_data: tf.data.Dataset,
        settings: EvolutionSettings | None = None,
        fit_kwargs: dict | None = None,
        ancestor_compile_fn: CompileFn | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self._teacher_model: keras.Model | None = None
        self.workdir = Path(workdir)
        self.compile_fn = compile_fn
        self.ancestor_compile_fn = ancestor_compile_fn or compile_fn
        self.train_data = train_data
        self.test_data = test_data
        self.settings = settings or EvolutionSettings()
        self.settings.validate()
        self.fit_kwargs = dict(fit_kwargs or {})
        self.strategy = strategy or tf.distribute.get_strategy()
        self.lineage = lineage_lib.Lineage(self.workdir / "lineage.jsonl")

    # -- paths ---------------------------------------------------------------------------------
    def generation_dir(self, generation: int) -> Path:
        return self.workdir / "generations" / f"gen_{generation:04d}"

    @property
    def best_dir(self) -> Path:
        return self.workdir / "best"

    # -- public --------------------------------------------------------------------------------
    def run(self, ancestor: keras.Model | None = None, ancestor_epochs: int = 0) -> list[dict]:
        """Evolve until ``settings.generations`` or until no offspring is acceptable.

        ``ancestor`` is needed only when the run has no generation 0 yet; it is made evolvable
        if it is not, and trained for ``ancestor_epochs`` first (0 = it is already trained).
        Create it inside the strategy's scope (otherwise it is copied into the scope here).
        """
        with self.strategy.scope():
            return self._run(ancestor, ancestor_epochs)

    def _run(self, ancestor: keras.Model | None, ancestor_epochs: int) -> list[dict]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        io_utils.remove_stale_temps(self.workdir)
        io_utils.remove_stale_temps(self.workdir / "generations")
        if self.lineage.last_generation < 0:
            if ancestor is None:
                raise ValueError(f"{self.workdir} has no ancestor yet; pass the ancestor model.")
            self._record_ancestor(ancestor, ancestor_epochs)
        else:
            logging.info(
                "Resuming %s after generation %d.", self.workdir, self.lineage.last_generation
            )

        stopped = self._stopped_reason()
        while stopped is None and self.lineage.last_generation < self.settings.generations:
            if not self._evolve_one_generation():
                stopped = self._stopped_reason()
        self._sync_best()
        self._finish(stopped)
        return self.lineage.records

    # -- steps ---------------------------------------------------------------------------------
    def _train(self, model: keras.Model, epochs: int, seed: int, generation: int) -> list[float]:
        """Compile and fit; returns the per-epoch training losses."""
        if epochs <= 0:
            return []
        keras.utils.set_random_seed(seed)
        (self.ancestor_compile_fn if generation == 0 else self.compile_fn)(model)
        data = self.train_data(seed) if callable(self.train_data) else self.train_data
        callbacks = [keras.callbacks.TerminateOnNaN(), *self.fit_kwargs.get("callbacks", [])]
        if self.settings.tensorboard_fit_logs:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    str(self.workdir / "tensorboard" / f"gen_{generation:04d}"),
                    write_graph=False,
                    profile_batch=0,
                )
            )
        extra = {k: v for k, v in self.fit_kwargs.items() if k != "callbacks"}
        if generation > 0 and self.settings.distill_temperature > 0:
            model = distiller_like(
                model,
                self._teacher(),
                self.settings.distill_temperature,
                self.settings.distill_alpha,
            )
        history = model.fit(
            data, epochs=epochs, callbacks=callbacks, verbose=self.settings.fit_verbose, **extra
        )
        return [float(v) for v in history.history.get("loss", [])]

    def _teacher(self) -> keras.Model:
        """The ancestor (generation 0), loaded once, as the distillation teacher."""
        if self._teacher_model is None:
            self._teacher_model = load_model(self.generation_dir(0))
            self._teacher_model.trainable = False
        return self._teacher_model

    def _measure(
        self,
        model: keras.Model,
        generation: int,
        seconds: float,
        accepted: bool,
        accuracy: float,
        extra: dict,
    ) -> dict:
        counts = count_living(model)
        ancestor = self.lineage.ancestor or {
            "synapses": counts.synapses,
            "clusters": counts.clusters,
        }
        synaptic, cluster = lineage_lib.efficiencies(
            ancestor["synapses"], ancestor["clusters"], counts.synapses, counts.clusters
        )
        compacted = compact(model)
        return {
            "generation": generation,
            "accuracy": accuracy,
            "synapses": counts.synapses,
            "clusters": counts.clusters,
            "synaptic_efficiency": synaptic,
            "cluster_efficiency": cluster,
            "accepted": accepted,
            "seconds": seconds,
            "seed": self.settings.seed,
            "layers": counts.layers_as_dicts(),
            # What dense hardware runs once dead clusters are physically removed:
            "flops": count_flops(compacted).total_macs,  # multiply-accumulates per example
            "living_macs": count_flops(model).total_living_macs,  # if zeros were skipped too
            "compact_params": compacted.count_params(),
            **extra,
        }

    def _created_in_scope(self, model: keras.Model) -> bool:
        """Were ``model``'s variables created under this evolution's strategy?"""
        if distribute_lib.is_default(self.strategy):
            return True
        return getattr(model, "_distribution_strategy", None) is self.strategy

    def _record_ancestor(self, ancestor: keras.Model, epochs: int) -> None:
        start = time.time()
        if not evolvable_layers(ancestor):
            ancestor = evolvable(ancestor)  # cloned inside the scope
        elif not self._created_in_scope(ancestor):
            ancestor = clone_with_weights(ancestor)
        losses = self._train(ancestor, epochs, derive_seed(self.settings.seed, 0), 0)
        if (losses and not math.isfinite(losses[-1])) or not _finite_weights(ancestor):
            raise FloatingPointError(
                "The ancestor's training loss became NaN/inf; lower the learning rate "
                "(--config.train.learning_rate) and start a new run directory."
            )
        accuracy = evaluate_accuracy(ancestor, self.test_data)
        record = self._measure(
            ancestor,
            0,
            time.time() - start,
            True,
            accuracy,
            {"loss": losses[-1] if losses else None, "epochs": epochs, "attempts": 1},
        )
        self._commit_generation(ancestor, record)

    def _evolve_one_generation(self) -> bool:
        """Breed, train and judge one generation; returns False if evolution must stop."""
        generation = self.lineage.last_generation + 1
        parent_record = self._parent_record()
        parent = load_model(self.generation_dir(parent_record["generation"]))
        floor = self.lineage.ancestor["accuracy"] - self.settings.accuracy_tolerance
        start = time.time()
        rejected, last = [], None
        for attempt in range(self.settings.max_attempts):
            seed = derive_seed(self.settings.seed, generation, attempt)
            offspring, synthesis = synthesize(
                parent,
                self.settings.environment,
                seed=self.settings.seed,
                generation=generation,
                attempt=attempt,
                reinitialize=self.settings.reinitialize,
            )
            losses = self._train(offspring, self.settings.epochs_per_generation, seed, generation)
            finite = _finite_weights(offspring) and all(math.isfinite(v) for v in losses)
            # A diverged network is never evaluated, accepted, or used as a parent.
            accuracy = evaluate_accuracy(offspring, self.test_data) if finite else 0.0
            counts = count_living(offspring)
            reason = None
            if not finite:
                reason = "non-finite loss or weights"
            elif accuracy < floor:
                reason = f"accuracy {accuracy:.4f} below floor {floor:.4f}"
            last = (offspring, accuracy, losses, attempt, reason, synthesis)
            if reason is None:
                break
            logging.info("Generation %d attempt %d rejected: %s", generation, attempt, reason)
            rejected.append(
                {
                    "attempt": attempt,
                    "accuracy": accuracy if finite else None,
                    "synapses": counts.synapses,
                    "clusters": counts.clusters,
                    "reason": reason,
                }
            )
        offspring, accuracy, losses, attempt, reason, synthesis = last
        accepted = reason is None
        extra = {
            "parent": parent_record["generation"],
            "attempts": attempt + 1,
            "rejected": rejected,
            "loss": losses[-1] if losses and math.isfinite(losses[-1]) else None,
            "epochs": self.settings.epochs_per_generation,
            "environment": {name: list(f) for name, f in synthesis.factors.items()},
        }
        if not accepted:
            extra["stop_reason"] = (
                f"no offspring of generation {generation} met the accuracy floor {floor:.4f} "
                f"(ancestor {self.lineage.ancestor['accuracy']:.4f} - tolerance "
                f"{self.settings.accuracy_tolerance}) in {self.settings.max_attempts} attempts; "
                f"last: {reason}"
            )
        record = self._measure(
            offspring,
            generation,
            time.time() - start,
            accepted,
            accuracy if math.isfinite(accuracy) else None,
            extra,
        )
        self._commit_generation(offspring if accepted or math.isfinite(accuracy) else None, record)
        return accepted

    def _parent_record(self) -> dict:
        return self.lineage.accepted_records()[-1]

    def _stopped_reason(self) -> str | None:
        records = self.lineage.records
        if records and not records[-1]["accepted"]:
            return records[-1].get("stop_reason", "the last offspring was rejected")
        return None

    # -- persistence -----------------------------------------------------------------------------
    def _commit_generation(self, model: keras.Model | None, record: dict) -> None:
        """Checkpoint first, then the lineage line: a crash in between only redoes the work."""
        generation = record["generation"]

        def write_checkpoint(tmp: Path) -> None:
            if model is not None:
                save_model(model, tmp)
            io_utils.atomic_write_json(tmp / "record.json", record)

        (self.workdir / "generations").mkdir(parents=True, exist_ok=True)
        io_utils.atomic_replace_dir(self.generation_dir(generation), write_checkpoint)
        self.lineage.append(record)
        self._sync_best()
        lineage_lib.write_tensorboard(self.workdir / "tensorboard", record)
        lineage_lib.plot_lineage(self.lineage.records, self.workdir / "plots")
        logging.info(
            "gen %3d  acc %.4f  synapses %7d (%.2fx)  clusters %4d (%.2fx)  %s  %.0fs",
            generation,
            record["accuracy"] or float("nan"),
            record["synapses"],
            record["synaptic_efficiency"],
            record["clusters"],
            record["cluster_efficiency"],
            "accepted" if record["accepted"] else "REJECTED",
            record["seconds"],
        )

    def best_record(self) -> dict:
        best = self.lineage.best(self.settings.selection)
        return best if best is not None else self.lineage.ancestor

    def _sync_best(self) -> None:
        """Make best/ hold the selected generation (idempotent, so resume repairs it)."""
        if self.lineage.last_generation < 0:
            return
        best = self.best_record()
        current = self.best_dir / "record.json"
        if current.exists() and io_utils.read_json(current).get("generation") == best["generation"]:
            return
        source = self.generation_dir(best["generation"])

        def copy_best(tmp: Path) -> None:
            save_model(load_model(source), tmp)
            io_utils.atomic_write_json(tmp / "record.json", best)

        io_utils.atomic_replace_dir(self.best_dir, copy_best)

    def _finish(self, stopped: str | None) -> None:
        table = lineage_lib.summary_table(self.lineage.records)
        io_utils.atomic_write_text(self.workdir / "summary.txt", table + "\n")
        status = {
            "state": "stopped" if stopped else "finished",
            "reason": stopped or f"reached generation {self.lineage.last_generation}",
            "best_generation": self.best_record()["generation"],
            "last_generation": self.lineage.last_generation,
        }
        io_utils.atomic_write_json(self.workdir / "status.json", status)
        print(table)
        if stopped:
            print(f"Evolution stopped: {stopped}")
