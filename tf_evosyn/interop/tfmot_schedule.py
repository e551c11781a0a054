"""Cluster-driven evolution inside one TF-MOT ``model.fit``: a schedule plus the callback that
owns the masks.

Usage::

    schedule = EvolutionarySchedule(generation_steps=500, max_generations=10, cluster_factor=0.8)
    pruned = prune_with_evolution(model, schedule)      # wrappers with KeepMasks
    pruned.compile(...)
    pruned.fit(x, y, callbacks=[EvolutionaryPruningCallback(schedule),  # replaces UpdatePruningStep
                                tfmot.sparsity.keras.PruningSummaries(log_dir)])
    final = tfmot.sparsity.keras.strip_pruning(pruned)  # or tf_evosyn.from_tfmot(pruned)

Who owns the masks. TF-MOT's wrapper recomputes its masks by magnitude thresholding whenever
its schedule says ``should_prune``; a magnitude threshold cannot express "this whole filter died"
or heredity sampled from cluster strengths. So the two jobs are split:

* the wrappers are built with :class:`~tf_evosyn.interop.tfmot.KeepMasks`, whose ``should_prune``
  is always False: TF-MOT never writes a mask, but it still applies the masks to the kernels in
  every training step and at every epoch end, exactly as for its own schedules;
* :class:`EvolutionarySchedule` says *when* a generation happens, in TF-MOT's ``(should_prune,
  sparsity)`` format (True exactly at generation boundaries), and carries the environment;
* :class:`EvolutionaryPruningCallback` (a subclass of ``UpdatePruningStep``: use it *instead of*
  ``UpdatePruningStep``; passing both is harmless) is the only writer of masks. Before the
  training step at which the schedule fires, it reads the current kernels and masks back as an
  evolvable model (:func:`~tf_evosyn.interop.tfmot.from_tfmot`), draws the offspring's masks with
  :func:`tf_evosyn.synthesis.offspring.draw_masks` (cluster-driven heredity, the environment,
  dead-input
  propagation and coupled groups, deterministic for ``(seed, generation)``), and writes them into
  the wrappers, zeroing the dead kernels. Heredity is monotone, so nothing dead comes back.
  TF-MOT masks kernels only; the callback also keeps the biases of dead clusters at 0 after every
  batch, so a dead cluster emits ``activation(0)`` and compaction can remove it.

``PruningSummaries`` keeps working: it reads the wrappers' mask variables.

How this differs from :mod:`tf_evosyn.loop.evolution`. The generational loop trains each offspring,
evaluates it, accepts or redraws it, records the lineage and checkpoints every generation, and
never lets a bad generation replace a good one. Here a generation is only a mask change in the
middle of one continuous ``fit``: no separate evaluation, no acceptance test or selection, no
rollback when a generation hurts accuracy, and the optimizer state carries over. It is cheaper
(one ``fit``, no re-compiles) and fits a TF-MOT pipeline as is; use it when a fixed schedule of
generations is good enough and you watch the training metrics yourself. Use the generational loop
for the papers' protocol, for resource targets checked per generation, or when accuracy must not
drop unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow_model_optimization as tfmot
from absl import logging

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.convert import evolvable
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.interop.tfmot import (
    KeepMasks,
    bias_alive,
    bias_variable,
    from_tfmot,
    read_masks,
    to_tfmot,
    wrapped_layers,
    write_masks,
)
from tf_evosyn.synthesis.offspring import draw_masks, synthesis_rng


@keras.utils.register_keras_serializable(package="tf_evosyn")
class EvolutionarySchedule(tfmot.sparsity.keras.PruningSchedule):
    """When generations happen, and under which environment, in TF-MOT's schedule format.

    Generation ``g = 1, 2, ...`` is synthesised at step ``begin_step + g * generation_steps`` (the
    parent trains a whole generation first), while that step is ``<= end_step`` (``-1``: no end)
    and ``g <= max_generations`` (None: no limit). Steps count like TF-MOT's ``pruning_step``:
    the first training step is 1.

    The environment is ``ConstantFactor(cluster_factor, synapse_factor)`` (the papers' setting)
    unless ``environment`` (an EnvironmentalFactor or its ``{"class_name", "config"}`` dict) is
    given. ``seed`` selects the random stream; generation ``g`` always draws the same masks from
    the same weights.

    ``__call__(step)`` returns ``(should_prune, sparsity)``: True exactly at the boundaries, and the
    global kernel sparsity the callback realised at the latest generation (heredity sampling has
    no sparsity target to promise; a traced graph keeps the value it was traced with).
    """

    def __init__(
        self,
        generation_steps: int,
        begin_step: int = 0,
        end_step: int = -1,
        max_generations: int | None = None,
        cluster_factor: float = 0.8,
        synapse_factor: float = 1.0,
        environment: environment_lib.EnvironmentalFactor | dict | None = None,
        seed: int = 0,
    ):
        self._validate_step(int(begin_step), int(end_step), int(generation_steps), True)
        if max_generations is not None and int(max_generations) < 1:
            raise ValueError(f"max_generations must be >= 1 or None, got {max_generations}.")
        self.generation_steps = int(generation_steps)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.max_generations = None if max_generations is None else int(max_generations)
        self.cluster_factor = float(cluster_factor)
        self.synapse_factor = float(synapse_factor)
        self.environment = (
            environment_lib.get(environment)
            if environment is not None
            else environment_lib.ConstantFactor(self.cluster_factor, self.synapse_factor)
        )
        self._custom_environment = environment is not None
        self.seed = int(seed)
        self.realized_sparsity = 0.0

    def generation_at(self, step: int) -> int:
        """The generation training step ``step`` runs in (0: the ancestor, before any boundary)."""
        offset = int(step) - self.begin_step
        if offset <= 0:
            return 0
        generations = offset // self.generation_steps
        if self.end_step != -1:
            generations = min(
                generations, (self.end_step - self.begin_step) // self.generation_steps
            )
        if self.max_generations is not None:
            generations = min(generations, self.max_generations)
        return generations

    def is_boundary(self, step: int) -> bool:
        """True if a new generation is synthesised right before training step ``step``."""
        return self.generation_at(step) > self.generation_at(int(step) - 1)

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        offset = step - self.begin_step
        should_prune = tf.logical_and(
            offset > 0, tf.math.floormod(offset, self.generation_steps) == 0
        )
        if self.end_step != -1:
            should_prune = tf.logical_and(should_prune, step <= self.end_step)
        if self.max_generations is not None:
            generation = tf.math.floordiv(offset, self.generation_steps)
            should_prune = tf.logical_and(should_prune, generation <= self.max_generations)
        return should_prune, tf.constant(self.realized_sparsity, dtype=tf.float32)

    def get_config(self) -> dict:
        # TF-MOT's schedule format: {"class_name", "config"}; from_config takes either form.
        config = {
            "generation_steps": self.generation_steps,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "max_generations": self.max_generations,
            "cluster_factor": self.cluster_factor,
            "synapse_factor": self.synapse_factor,
            "environment": (
                environment_lib.serialize(self.environment) if self._custom_environment else None
            ),
            "seed": self.seed,
        }
        return {"class_name": keras.utils.get_registered_name(type(self)), "config": config}

    @classmethod
    def from_config(cls, config: dict) -> EvolutionarySchedule:
        if "class_name" in config and "config" in config:
            config = config["config"]
        return cls(**config)


@dataclass(frozen=True)
class GenerationRecord:
    """One generation synthesised by the callback."""

    generation: int
    step: int
    synapses: int
    clusters: int
    cluster_alive: dict[str, np.ndarray]
    factors: dict[str, tuple[float, float]]


class EvolutionaryPruningCallback(tfmot.sparsity.keras.UpdatePruningStep):
    """Synthesises a generation at every boundary of ``schedule`` and owns the wrapper masks.

    Use instead of ``UpdatePruningStep`` (it does that callback's job too). Works on models from
    :func:`prune_with_evolution` or :func:`~tf_evosyn.interop.tfmot.to_tfmot`, and on models
    wrapped by ``prune_low_magnitude(..., pruning_schedule=KeepMasks())`` (plain or evolvable
    Conv2D/Dense); layers without a wrapper are not evolved. ``protect_outputs`` keeps every unit
    of the output layers (a classifier never loses a class). Needs ``steps_per_execution=1``.
    ``history`` holds one :class:`GenerationRecord` per generation.
    """

    def __init__(self, schedule: EvolutionarySchedule, *, protect_outputs: bool = True):
        super().__init__()
        if not isinstance(schedule, EvolutionarySchedule):
            raise TypeError(f"schedule must be an EvolutionarySchedule, got {schedule!r}.")
        self.schedule = schedule
        self.protect_outputs = bool(protect_outputs)
        self.history: list[GenerationRecord] = []
        self._wrappers = {}
        self._dead_biases = {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._wrappers = wrapped_layers(self.model)
        if not self._wrappers:
            raise ValueError(
                "The model has no PruneLowMagnitude-wrapped Conv2D/Dense layers; wrap it with "
                "tf_evosyn.prune_with_evolution(model, schedule)."
            )
        for wrapper in self._wrappers.values():
            if not isinstance(wrapper.pruning_schedule, KeepMasks) or wrapper.sparsity_m_by_n:
                raise ValueError(
                    f"{wrapper.name} prunes by magnitude ({wrapper.pruning_schedule!r}), which "
                    "would overwrite the evolved masks; wrap with "
                    "pruning_schedule=tf_evosyn.KeepMasks() (prune_with_evolution does)."
                )
        steps_per_execution = getattr(self.model, "_steps_per_execution", None)
        if steps_per_execution is not None and int(steps_per_execution.numpy()) != 1:
            raise ValueError(
                "EvolutionaryPruningCallback needs compile(steps_per_execution=1): it changes "
                "masks between single training steps."
            )
        self._update_dead_biases()

    def on_train_batch_begin(self, batch, logs=None):
        step = self._completed_steps() + 1  # the step TF-MOT's wrappers are about to run
        if self.schedule.is_boundary(step):
            self._synthesize(step)

    def on_train_batch_end(self, batch, logs=None):
        # The optimizer moves every bias; a dead cluster must keep emitting activation(0).
        for name, alive in self._dead_biases.items():
            bias = bias_variable(self._wrappers[name].layer)
            bias.assign(bias * alive)

    def _completed_steps(self) -> int:
        wrapper = next(iter(self._wrappers.values()))
        return max(int(keras.backend.get_value(wrapper.pruning_step)), 0)

    def _update_dead_biases(self) -> None:
        self._dead_biases = {}
        for name, wrapper in self._wrappers.items():
            alive = read_masks(wrapper)[1]  # any layout: transposed, recurrent
            if wrapper.layer.use_bias and not alive.all():
                entries = bias_alive(wrapper.layer, alive)
                dtype = bias_variable(wrapper.layer).dtype
                self._dead_biases[name] = tf.constant(entries, dtype=dtype)

    def _synthesize(self, step: int) -> None:
        generation = self.schedule.generation_at(step)
        parent = from_tfmot(
            self.model, protect_outputs=self.protect_outputs, evolve_unwrapped=False
        )
        rng = synthesis_rng(self.schedule.seed, generation)
        masks, factors = draw_masks(parent, self.schedule.environment, rng)
        for name, (synapses, clusters) in masks.items():
            write_masks(self._wrappers[name], synapses, clusters)
        self._update_dead_biases()

        living = {name: synapses & clusters for name, (synapses, clusters) in masks.items()}
        synapse_count = int(sum(m.sum() for m in living.values()))
        total = int(sum(m.size for m in living.values()))
        self.schedule.realized_sparsity = 1.0 - synapse_count / total
        record = GenerationRecord(
            generation=generation,
            step=step,
            synapses=synapse_count,
            clusters=int(sum(clusters.sum() for _, clusters in masks.values())),
            cluster_alive={name: clusters.copy() for name, (_, clusters) in masks.items()},
            factors=factors,
        )
        self.history.append(record)
        logging.info(
            "Generation %d at step %d: %d synapses, %d clusters (sparsity %.4f).",
            generation,
            step,
            record.synapses,
            record.clusters,
            self.schedule.realized_sparsity,
        )


def prune_with_evolution(model: keras.Model, schedule: EvolutionarySchedule) -> keras.Model:
    """Wrap a plain (or evolvable) Keras model for evolution inside ``fit``.

    Every Conv2D/Dense becomes a plain layer in a PruneLowMagnitude wrapper with
    :class:`~tf_evosyn.interop.tfmot.KeepMasks`, so ``strip_pruning`` later gives a plain Keras
    model. Train it with ``EvolutionaryPruningCallback(schedule)``, which protects the output
    layers' units (the classes) the way :func:`tf_evosyn.evolvable` does. The optimizer is not
    kept: compile the returned model.
    """
    if not isinstance(schedule, EvolutionarySchedule):
        raise TypeError(f"schedule must be an EvolutionarySchedule, got {schedule!r}.")
    return to_tfmot(evolvable(model))
