"""The generational loop: synthesize -> train -> evaluate -> accept or re-draw -> record.

The loop is the same for every task: a :class:`tf_evosyn.tasks.Task` supplies the evaluation
(a primary score, higher is better, plus a dict of metrics); acceptance compares an offspring's
score with the ancestor's minus ``settings.tolerance`` (in the score's units). The loss comes
with the ``compile_fn`` (see :meth:`tf_evosyn.tasks.Task.compile`).

Everything lands in a run directory (:mod:`tf_evosyn.loop.run_dir` lists its files), written
atomically, so a killed run resumes after its last finished generation and ends with the same
lineage as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
from absl import logging

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.convert import clone_with_weights, evolvable
from tf_evosyn.core.layers import evolvable_layers
from tf_evosyn.core.model_io import load_model
from tf_evosyn.loop import distribute as distribute_lib
from tf_evosyn.loop import lineage as lineage_lib
from tf_evosyn.loop import population as population_lib
from tf_evosyn.loop import records as records_lib
from tf_evosyn.loop import stop_targets
from tf_evosyn.loop.candidates import CandidateDrawer, derive_seed
from tf_evosyn.loop.fine_tuning import CompileFn, FineTuner, SoftTargetData, TrainData
from tf_evosyn.loop.run_dir import RunDirectory
from tf_evosyn.loop.settings import EvolutionSettings
from tf_evosyn.loop.workers import PopulationWorkers
from tf_evosyn.storage import fs
from tf_evosyn.tasks import ClassificationTask, Evaluation, Task


def _finite_weights(model: keras.Model) -> bool:
    return all(np.isfinite(w).all() for w in model.get_weights())


class Evolution:
    """Runs (and resumes) an evolution in ``workdir``.

    Args:
      workdir: the run directory: a local path or a URL TensorFlow can write (``gs://...``).
      compile_fn: compiles a model with the user's optimizer, loss and metrics; called on the
        ancestor and on every offspring (each gets a fresh optimizer). If it takes an ``epochs``
        keyword it gets each training's length (generations may differ, see
        ``EvolutionSettings.epochs_per_doubling``), so a schedule can span it.
      train_data: a ``tf.data.Dataset`` or, for exact resumability, a function ``seed -> dataset``
        (the loop passes a different seed per generation and attempt).
      ancestor_train_data: the ancestor's batches, if they differ from the offspring's (e.g. a
        smaller batch: a small offspring's epoch is mostly per-step cost); default ``train_data``.
      test_data: the test split: evaluated and recorded every generation (``test_score``,
        ``test_accuracy`` for classification), never used to decide anything when
        ``validation_data`` is given.
      settings: :class:`EvolutionSettings`.
      fit_kwargs: extra keyword arguments for ``model.fit`` (callbacks, class weights, ...).
      ancestor_compile_fn: compiles the ancestor for its own training, if it differs from the
        offspring's fine-tuning (e.g. a higher learning rate); default ``compile_fn``.
      strategy: a ``tf.distribute`` strategy (default: no distribution). The whole loop runs in
        its scope, so every offspring, resumed checkpoint and optimizer is created there and all
        variables (masks and heredity buffers included) are distributed; ``train_data`` batches
        are global batches that ``model.fit`` splits across the replicas. Synthesis reads and
        writes the mirrored variables from the host (cross-replica context), see
        :mod:`tf_evosyn.loop.distribute`.
      validation_data: the data every decision is made on (acceptance, re-draws, early stop,
        ``best/``): held out from the training data. None: decide on ``test_data``, the papers'
        protocol (records say ``selection_split: "test"``).
      task: what the network learns and how it is judged (default: classification, top-1
        accuracy). ``compile_fn`` should compile with the task's loss (:meth:`Task.compile`).
      soft_target_data: for distillation, ``teacher -> (seed -> dataset)`` whose labels are
        ``(label, teacher logits)``, computed once per run (the teacher, the ancestor, never
        changes), or None where it cannot (augmented inputs); then the teacher runs every step.
      ancestor_callbacks: Keras callbacks for the ancestor's training only (e.g.
        :class:`tf_evosyn.loop.learning_curve.LearningCurve`).
      workers: this process's share of each generation's population when N worker jobs share
        it (:mod:`tf_evosyn.loop.workers`); default: one worker draws every candidate.
      calibration_data: unaugmented training batches (or ``seed -> batches``) whose first images
        frozen BatchNorm is re-matched on (``settings.rematch_batchnorm_images``); default
        ``train_data``.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        compile_fn: CompileFn,
        train_data: TrainData,
        test_data: tf.data.Dataset,
        settings: EvolutionSettings | None = None,
        fit_kwargs: dict | None = None,
        ancestor_compile_fn: CompileFn | None = None,
        strategy: tf.distribute.Strategy | None = None,
        task: Task | None = None,
        validation_data: tf.data.Dataset | None = None,
        soft_target_data: SoftTargetData | None = None,
        ancestor_train_data: TrainData | None = None,
        ancestor_callbacks: list[keras.callbacks.Callback] | None = None,
        workers: PopulationWorkers | None = None,
        calibration_data: TrainData | None = None,
    ):
        self.workers = workers or PopulationWorkers()
        self.run_dir = RunDirectory(workdir)
        self.workdir = self.run_dir.workdir
        self.test_data = test_data
        self.validation_data = validation_data
        if validation_data is None:
            logging.warning(
                "No validation data: acceptance and best/ are decided on the TEST split (the "
                "papers' protocol); its figures are then chosen on the data they report."
            )
        self.settings = settings or EvolutionSettings()
        self.settings.validate()
        self.task = task or ClassificationTask()
        if self.settings.distill_temperature > 0 and not self.task.supports_distillation:
            raise ValueError(
                f"distill_temperature > 0 needs a task whose outputs are class logits; the "
                f"{self.task.name} task does not support distillation. Set it to 0."
            )
        self.fine_tuner = FineTuner(
            compile_fn,
            ancestor_compile_fn or compile_fn,
            train_data,
            self.settings,
            teacher_dir=self.generation_dir(0),
            tensorboard_dir=self.run_dir.tensorboard_dir
            if self.workers.leads
            else fs.join(self.run_dir.tensorboard_dir, f"worker_{self.workers.index}"),
            fit_kwargs=fit_kwargs,
            soft_target_data=soft_target_data,
            ancestor_train_data=ancestor_train_data,
            ancestor_callbacks=ancestor_callbacks,
            distillation_loss=self.task.distillation_loss,
        )
        self.strategy = strategy or tf.distribute.get_strategy()
        self.lineage = self.run_dir.lineage
        self.candidates = CandidateDrawer(
            self.settings,
            self.run_dir,
            self.workers,
            self.task.metric,
            self._fine_tune,
            calibration_data=train_data if calibration_data is None else calibration_data,
        )

    # -- paths ---------------------------------------------------------------------------------
    def generation_dir(self, generation: int) -> fs.RunPath:
        return self.run_dir.generation_dir(generation)

    @property
    def best_dir(self) -> fs.RunPath:
        return self.run_dir.best_dir

    # -- public --------------------------------------------------------------------------------
    def run(self, ancestor: keras.Model | None = None, ancestor_epochs: int = 0) -> list[dict]:
        """Evolve until ``settings.generations`` or until no offspring is acceptable.

        ``ancestor`` is needed only when the run has no generation 0 yet; it is made evolvable
        if it is not, and trained for ``ancestor_epochs`` first (0 = it is already trained).
        Create it inside the strategy's scope (otherwise it is copied into the scope here).
        """
        if not self.workers.leads:  # it writes its candidates only, without the lock
            with self.strategy.scope():
                return self._help()
        chief = distribute_lib.is_chief(self.strategy)  # only the chief writes (and locks) it
        with self.strategy.scope(), self.run_dir.writing(chief):
            return self._run(ancestor, ancestor_epochs)

    def _run(self, ancestor: keras.Model | None, ancestor_epochs: int) -> list[dict]:
        self.run_dir.prepare(shared_candidates=self.workers.count > 1)
        if self.lineage.last_generation < 0:
            if ancestor is None:
                raise ValueError(f"{self.workdir} has no ancestor yet; pass the ancestor model.")
            self._record_ancestor(ancestor, ancestor_epochs)
        else:
            logging.info(
                "Resuming %s after generation %d.", self.workdir, self.lineage.last_generation
            )

        while self._goes_on():
            self._evolve_one_generation()
        stopped, reached = self._stopped_reason(), self._reached_targets()
        self._final_fine_tuning()
        self._sync_best()
        self._finish(stopped, reached)
        return self.lineage.records

    def _help(self) -> list[dict]:
        """A helping worker: draw this worker's share of every generation the leader runs."""
        self.workers.wait_for(lambda: self.lineage.reload().ancestor, "the ancestor")
        while self._goes_on():
            generation = self.lineage.last_generation + 1
            parent = self._parent_record()["generation"]
            self.candidates.draw_all(generation, parent, *self._generation_plan())
            self.workers.wait_for(
                lambda g=generation: self.lineage.reload().last_generation >= g or None,
                f"the commit of generation {generation}",
            )
        return self.lineage.records

    def _goes_on(self) -> bool:
        """Is there another generation to evolve (not stopped, no target reached, not done)?"""
        return (
            self._stopped_reason() is None
            and self._reached_targets() is None
            and self.lineage.last_generation < self.settings.generations
        )

    # -- steps ---------------------------------------------------------------------------------
    @property
    def selection_split(self) -> str:
        return "test" if self.validation_data is None else "validation"

    def _evaluate(self, model: keras.Model) -> Evaluation:
        """The evaluation every decision is made on (validation, or test if there is none)."""
        decide_on = self.test_data if self.validation_data is None else self.validation_data
        return self.task.check_score(self.task.evaluate(model, decide_on))

    def _test_fields(self, model: keras.Model, finite: bool) -> dict:
        """The test split's figures, recorded beside the decision split's (never decisive)."""
        if self.validation_data is None:
            return {"selection_split": "test"}
        evaluation = self.task.evaluate(model, self.test_data) if finite else None
        test = records_lib.score_fields(self.task.metric, evaluation, prefix="test_")
        return {"selection_split": "validation", **test}

    def _score_fields(self, evaluation: Evaluation | None) -> dict:
        return records_lib.score_fields(self.task.metric, evaluation)

    def _measure(
        self,
        model: keras.Model,
        generation: int,
        seconds: float,
        accepted: bool,
        evaluation: Evaluation | None,
        extra: dict,
    ) -> dict:
        return {
            "generation": generation,
            **self._score_fields(evaluation),
            **self._test_fields(model, evaluation is not None),
            **records_lib.network_fields(model, self.lineage.ancestor),
            "accepted": accepted,
            "seconds": seconds,
            "seed": self.settings.seed,
            **extra,
        }

    def _fine_tune(self, model: keras.Model, epochs: int, seed: int, generation: int):
        """Train ``model``; returns (evaluation, last loss, seconds per epoch). A diverged
        network (non-finite loss or weights) is never evaluated: its evaluation is None."""
        losses, per_epoch = self.fine_tuner.train(model, epochs, seed, generation)
        finite = _finite_weights(model) and all(math.isfinite(v) for v in losses)
        evaluation = self._evaluate(model) if finite else None
        return evaluation, (losses[-1] if losses and finite else None), per_epoch

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
        self.settings.environment.check_model(ancestor)  # before any training
        seed = derive_seed(self.settings.seed, 0)
        evaluation, loss, per_epoch = self._fine_tune(ancestor, epochs, seed, 0)
        if evaluation is None:
            raise FloatingPointError(
                "The ancestor's training loss became NaN/inf; lower the learning rate "
                "(--config.train.learning_rate) and start a new run directory."
            )
        extra = {"loss": loss, "epochs": epochs, "attempts": 1, "seconds_per_epoch": per_epoch}
        record = self._measure(ancestor, 0, time.time() - start, True, evaluation, extra)
        self._commit_generation(ancestor, record)

    def _generation_plan(self) -> tuple[float, int]:
        """The next generation's acceptance floor and fine-tuning epochs."""
        floor = self.settings.floor(lineage_lib.score_of(self.lineage.ancestor))
        return floor, self.settings.epochs_for(self._parent_record()["cluster_efficiency"])

    def _evolve_one_generation(self) -> bool:
        """Draw, train and judge one generation's candidates; returns False if evolution must
        stop (no acceptable candidate). See :mod:`tf_evosyn.loop.population`."""
        generation = self.lineage.last_generation + 1
        parent_record = self._parent_record()
        ancestor_score = lineage_lib.score_of(self.lineage.ancestor)
        floor, epochs = self._generation_plan()
        candidates = self.candidates.draw_all(
            generation, parent_record["generation"], floor, epochs
        )
        best = population_lib.chosen(candidates)
        accepted = best["acceptable"]
        offspring = self.run_dir.load_candidate(generation, best["index"])
        extra = {
            "parent": parent_record["generation"],
            "parents": self.settings.parents,
            "attempts": len(candidates),
            "rejected": [_brief(c) for c in candidates if not c["acceptable"]],
            "candidates": [_brief(c) for c in candidates],
            "loss": best["loss"],
            "epochs": epochs,
            "environment": best["environment"],
            "seconds_per_epoch": best.get("seconds_per_epoch"),
        }
        if not accepted:
            extra["stop_reason"] = (
                f"no offspring of generation {generation} met the {self.task.metric} floor "
                f"{floor:.4f} ({self.settings.describe_floor(ancestor_score)}) in "
                f"{len(candidates)} draws; last: {best['reason']}"
            )
        evaluation = Evaluation(best["score"], best["metrics"]) if best["finite"] else None
        seconds = sum(c["seconds"] for c in candidates)
        record = self._measure(offspring, generation, seconds, accepted, evaluation, extra)
        self._commit_generation(offspring, record)
        return accepted

    def _final_fine_tuning(self) -> None:
        """Train best/ ``settings.final_epochs`` more epochs, once, as one more generation.

        Kept (accepted, and then best/: same efficiency, later) only if its score on the
        decision split meets the floor and does not fall below what it had; a killed final
        fine-tuning is redone from its start on resume (same seed, same result).
        """
        records = self.lineage.records
        source = self.best_record()
        if not self.settings.final_epochs or records[-1].get("final") or not source["generation"]:
            return
        start, epochs = time.time(), self.settings.final_epochs
        generation = self.lineage.last_generation + 1
        model = load_model(self.generation_dir(source["generation"]))
        seed = derive_seed(self.settings.seed, generation, 0)
        evaluation, loss, per_epoch = self._fine_tune(model, epochs, seed, generation)
        ancestor_floor = self.settings.floor(lineage_lib.score_of(self.lineage.ancestor))
        floor = max(ancestor_floor, source["score"])
        accepted = evaluation is not None and evaluation.score >= floor
        extra = {"final": True, "parent": source["generation"], "attempts": 1, "loss": loss}
        extra.update(epochs=epochs, seconds_per_epoch=per_epoch)
        record = self._measure(model, generation, time.time() - start, accepted, evaluation, extra)
        self._commit_generation(model, record)

    def _parent_record(self) -> dict:
        return self.lineage.accepted_records()[-1]

    def _last_evolved(self) -> dict | None:
        """The last record of the generational loop (a final fine-tuning is not one)."""
        records = [r for r in self.lineage.records if not r.get("final")]
        return records[-1] if records else None

    def _stopped_reason(self) -> str | None:
        last = self._last_evolved()
        if last is not None and not last["accepted"]:
            return last.get("stop_reason", "the last offspring was rejected")
        return None

    def _reached_targets(self) -> str | None:
        """Why the last accepted offspring ends the evolution (settings.stop_at), or None."""
        last = self._last_evolved()
        if last is None or not last["accepted"] or not last["generation"]:
            return None
        return stop_targets.reached(self.settings.stop_at, last, self.lineage.ancestor)

    # -- persistence (the files themselves: tf_evosyn.loop.run_dir) --------------------------------
    def _commit_generation(self, model: keras.Model | None, record: dict) -> None:
        self.run_dir.commit_generation(model, record)
        self._sync_best()
        logging.info(
            "gen %3d  %s %.4f  synapses %7d (%.2fx)  clusters %4d (%.2fx)  %s  %.0fs",
            record["generation"],
            record["metric"],
            record["score"],
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
        if self.lineage.last_generation >= 0:
            self.run_dir.sync_best(self.best_record())

    def _finish(self, stopped: str | None, reached: str | None = None) -> None:
        table = self.run_dir.finish(stopped, self.best_record()["generation"], reached)
        print(table)
        if stopped:
            print(f"Evolution stopped: {stopped}")


def _brief(candidate: dict) -> dict:
    """A candidate's summary as the lineage keeps it (without its full metrics, or which
    worker drew it: the lineage is the same whatever the number of workers)."""
    return {k: v for k, v in candidate.items() if k not in ("metrics", "environment", "worker")}
