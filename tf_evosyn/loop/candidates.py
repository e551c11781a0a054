"""One generation's candidates: breed each from the parents, fine-tune it, judge it, save it.

Candidate k of generation g uses synthesis attempt k and the training seed of
(seed, g, k) only, so it is the same whichever process draws it and whenever: a resumed run
keeps the candidates already committed, and N workers can share the draws
(:mod:`tf_evosyn.loop.workers`). Which candidates are drawn and which is chosen:
:mod:`tf_evosyn.loop.population`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from absl import logging

from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.measures import count_living, mask_digest
from tf_evosyn.environments.base import EnvironmentalFactor
from tf_evosyn.environments.landing import TargetLanding, landing_totals
from tf_evosyn.loop import lineage as lineage_lib
from tf_evosyn.loop import population as population_lib
from tf_evosyn.loop import records as records_lib
from tf_evosyn.loop import stop_targets
from tf_evosyn.loop.fine_tuning import TrainData
from tf_evosyn.loop.run_dir import RunDirectory
from tf_evosyn.loop.settings import EvolutionSettings
from tf_evosyn.loop.workers import PopulationWorkers
from tf_evosyn.synthesis.batchnorm_rematch import calibration_inputs, rematch_batchnorm
from tf_evosyn.synthesis.mating import synthesize_from_parents
from tf_evosyn.tasks import Evaluation

# (model, epochs, seed, generation) -> (evaluation or None if diverged, last loss, s/epoch)
_FineTune = Callable[[keras.Model, int, int, int], tuple[Evaluation | None, float | None, float]]


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from (seed, generation, attempt, ...), stable across runs and resumes."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] % (2**31 - 1))


class CandidateDrawer:
    """Draws this worker's share of a generation's candidates into the run directory."""

    def __init__(
        self,
        settings: EvolutionSettings,
        run_dir: RunDirectory,
        workers: PopulationWorkers,
        metric: str,
        fine_tune: _FineTune,
        calibration_data: TrainData | None = None,
    ):
        self.settings = settings
        self.run_dir = run_dir
        self.workers = workers
        self.metric = metric
        self.fine_tune = fine_tune
        # The training data (a dataset or seed -> dataset) whose first images frozen BatchNorm
        # is re-matched on (settings.rematch_batchnorm_images > 0); taken once, when first used.
        self.calibration_data = calibration_data
        self._calibration_inputs = None

    def parents(self, parent_generation: int) -> list[keras.Model]:
        """The networks a generation breeds from: generation ``parent_generation``'s offspring,
        or with ``settings.parents = m`` its m fittest acceptable candidates (fittest first)."""
        if self.settings.parents == 1 or parent_generation == 0:
            return [self.run_dir.load_generation(parent_generation)]
        summaries = self.run_dir.finished_candidates(parent_generation)
        best = population_lib.ranked(summaries)[: self.settings.parents]
        return [self.run_dir.load_candidate(parent_generation, c["index"]) for c in best]

    def draw_all(
        self, generation: int, parent_generation: int, floor: float, epochs: int
    ) -> list[dict]:
        """Draw this worker's share until drawing is done (every candidate, with one worker),
        waiting for the other workers' shares; returns every finished candidate's summary."""
        candidates = self.run_dir.finished_candidates(generation)  # a resumed generation
        if candidates:
            logging.info("Generation %d: %d draw(s) already done.", generation, len(candidates))
        parents = None
        while not population_lib.done_drawing(
            candidates, self.settings.population, self.settings.max_attempts
        ):
            pending = population_lib.next_draws(len(candidates), self.settings.population)
            for index in pending:
                if self.workers.draws(index) and not self.run_dir.candidate_summary(
                    generation, index
                ):
                    parents = parents or self.parents(parent_generation)
                    self.draw(parents, generation, index, floor, epochs)
            others = sorted({self.workers.owner(i) for i in pending} - {self.workers.index})
            candidates = self.workers.wait_for(
                lambda stop=pending.stop: _at_least(
                    self.run_dir.finished_candidates(generation), stop
                ),
                f"candidates {pending.start}-{pending.stop - 1} of generation {generation}",
                owner=others[0] if others else None,
            )
        return candidates

    def draw(
        self, parents: list[keras.Model], generation: int, index: int, floor: float, epochs: int
    ) -> dict:
        """Breed, fine-tune and judge candidate ``index``; saved at once (resumable)."""
        start = time.time()
        seed = derive_seed(self.settings.seed, generation, index)
        offspring, synthesis = synthesize_from_parents(
            parents,
            self._environment(),
            seed=self.settings.seed,
            generation=generation,
            attempt=index,
            reinitialize=self.settings.reinitialize,
            heredity=self.settings.heredity,
        )
        logging.info("Generation %d draw %d: masks %s", generation, index, mask_digest(offspring))
        if self.settings.rematch_batchnorm_images:  # before compaction: parent-shaped still
            rematch_batchnorm(parents[0], offspring, self._calibration())
        if self.settings.compact_offspring:  # fine-tuned at its physical size (in scope)
            offspring = compact(offspring, keep_evolvable=True)
        # A diverged network is never evaluated, accepted, or used as a parent.
        evaluation, loss, per_epoch = self.fine_tune(offspring, epochs, seed, generation)
        counts = count_living(offspring)
        reason = None
        if evaluation is None:
            reason = "non-finite loss or weights"
        elif not evaluation.score >= floor:
            reason = f"{self.metric} {evaluation.score:.4f} below floor {floor:.4f}"
        ancestor = self.run_dir.lineage.ancestor
        _, cluster_efficiency = lineage_lib.efficiencies(
            ancestor["synapses"], ancestor["clusters"], counts.synapses, counts.clusters
        )
        score = records_lib.score_fields(self.metric, evaluation)
        summary = {
            "index": index,
            "worker": self.workers.index,
            "attempt": index,
            **{k: v for k, v in score.items() if k != "metrics"},
            "metrics": score["metrics"],
            "finite": evaluation is not None,
            "synapses": counts.synapses,
            "clusters": counts.clusters,
            "cluster_efficiency": cluster_efficiency,
            "acceptable": reason is None,
            "fitness": population_lib.fitness(
                score["score"], cluster_efficiency, self.settings.efficiency_weight
            )
            if reason is None
            else None,
            "reason": reason,
            "loss": loss,
            "environment": {name: list(f) for name, f in synthesis.factors.items()},
            "seconds": time.time() - start,
            "seconds_per_epoch": per_epoch,
        }
        self.run_dir.save_candidate(generation, index, offspring, summary)
        if reason is not None:
            logging.info("Generation %d draw %d rejected: %s", generation, index, reason)
        return summary

    def _environment(self) -> EnvironmentalFactor:
        """The settings' environment; with ``land_on_stop_target`` eased near the target."""
        if not self.settings.land_on_stop_target:
            return self.settings.environment
        targets = stop_targets.active_targets(self.settings.stop_at)
        totals = landing_totals(targets, self.run_dir.lineage.ancestor)
        return TargetLanding(self.settings.environment, *totals)

    def _calibration(self):
        if self._calibration_inputs is None:
            if self.calibration_data is None:
                raise ValueError(
                    "rematch_batchnorm_images > 0 needs calibration_data (the training data)."
                )
            self._calibration_inputs = calibration_inputs(
                self.calibration_data, self.settings.rematch_batchnorm_images, self.settings.seed
            )
        return self._calibration_inputs


def _at_least(candidates: list[dict], count: int) -> list[dict] | None:
    return candidates if len(candidates) >= count else None
