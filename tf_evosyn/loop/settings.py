"""The knobs of the generational loop (the binaries fill them from ``config.evolution``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tf_evosyn.core.heredity import Heredity
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.loop import stop_targets

_SELECTION_CRITERIA = ("most_efficient", "most_accurate")


@dataclass
class EvolutionSettings:
    """Knobs of the generational loop (the binary fills them from ``config.evolution``)."""

    generations: int = 10
    epochs_per_generation: int = 1
    # Longer fine-tuning as the network shrinks: a generation whose parent has cluster
    # efficiency E fine-tunes epochs_per_generation + round(epochs_per_doubling * log2(E))
    # epochs, at most max_epochs_per_generation (0 = no cap). Small networks recover more slowly
    # but (compacted) cost less per epoch.
    epochs_per_doubling: float = 0.0
    max_epochs_per_generation: int = 0
    # > 0: after the last generation, the offspring chosen as best/ trains this many more epochs
    # (the same recipe, its schedule spanning them), recorded as one more generation with
    # ``final: true``. A small offspring that passed the floor after a few epochs is not done
    # learning (LeNet-5 at 40 clusters: 98.74% -> ~99.0% test after 20 more epochs).
    final_epochs: int = 0
    # Stop after the first accepted generation that reaches these efficiencies against the
    # ancestor (stop_targets.STOP_MEASURES -> e.g. 14.0; 0 = no target); generations stays the
    # cap. Past the size a user needs, generations only cost time and accuracy.
    stop_at: dict[str, float] = field(default_factory=dict)
    # Ease the draw that would overshoot stop_at's cluster / synapse targets so the lineage
    # lands on them (environments/landing.py); needs an environment that can ease (layer_budget).
    land_on_stop_target: bool = False
    environment: environment_lib.EnvironmentalFactor = field(
        default_factory=environment_lib.ConstantFactor
    )
    # Accept an offspring if its score >= the ancestor's score - tolerance (score units; for
    # accuracy a fraction, 0.01 = 1 point). ``accuracy_tolerance`` is the classification name
    # of the same knob, used when ``score_tolerance`` is None.
    score_tolerance: float | None = None
    accuracy_tolerance: float = 0.01
    # Or a fraction of the ancestor's score (0.1 = at most 10% relative loss; detection AP
    # differs so much between datasets that a relative floor travels better). Wins if set.
    relative_tolerance: float | None = None
    max_attempts: int = 3  # draws per generation before evolution stops
    # Offspring drawn per generation (the fittest becomes the parent; see population.py) and
    # the number of fittest networks each offspring is bred from (m-parent, see mating.py).
    population: int = 1
    parents: int = 1
    efficiency_weight: float = 0.005  # fitness = score + this * log2(cluster efficiency)
    reinitialize: bool = False  # architecture-only heredity instead of inheriting weights
    # The heredity family's sharpnesses (heredity.py): Heredity() is the papers' exp(|w|/z - 1).
    heredity: Heredity = field(default_factory=Heredity)
    # Physically remove dead clusters from each offspring before fine-tuning (the layers stay
    # evolvable, compaction.compact(keep_evolvable=True)): generations get faster as they shrink.
    compact_offspring: bool = False
    # > 0: before fine-tuning, re-match each offspring's frozen BatchNorm statistics to its
    # parent's on this many training images (synthesis/batchnorm_rematch.py); 0 = off. A frozen
    # pretrained trunk otherwise normalises a shrunken network with its parent's statistics.
    rematch_batchnorm_images: int = 0
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
        if self.epochs_per_doubling < 0 or self.max_epochs_per_generation < 0:
            raise ValueError(
                "epochs_per_doubling and max_epochs_per_generation must be >= 0 (0 = a fixed "
                "epochs_per_generation)."
            )
        if self.final_epochs < 0:
            raise ValueError(f"final_epochs must be >= 0 (0 = none), got {self.final_epochs}.")
        targets = stop_targets.active_targets(self.stop_at)
        if self.land_on_stop_target:
            if not {"cluster_efficiency", "synaptic_efficiency"} & set(targets):
                raise ValueError(
                    "land_on_stop_target needs a stop_at.cluster_efficiency or "
                    "stop_at.synaptic_efficiency target to land on; set one or turn it off."
                )
            self.environment.eased(1.0)  # raises, naming the fix, if it cannot ease
        if 0 < self.max_epochs_per_generation < self.epochs_per_generation:
            raise ValueError(
                f"max_epochs_per_generation ({self.max_epochs_per_generation}) is below "
                f"epochs_per_generation ({self.epochs_per_generation}); raise it or set it to 0."
            )
        if self.rematch_batchnorm_images < 0:
            raise ValueError(
                f"rematch_batchnorm_images must be >= 0 (0 = off), got "
                f"{self.rematch_batchnorm_images}."
            )
        if self.population < 1:
            raise ValueError(f"population must be >= 1, got {self.population}.")
        if not 1 <= self.parents <= self.population:
            raise ValueError(
                f"parents must be between 1 and population ({self.population}): each "
                f"offspring is bred from the m fittest of the previous generation; got "
                f"{self.parents}."
            )
        if self.compact_offspring and self.parents > 1:
            raise ValueError(
                "compact_offspring=True cannot be combined with parents > 1: m-parent synthesis "
                "combines the parents layer by layer, and parents compacted differently have "
                "different shapes. Set evolution.parents=1 or evolution.compact_offspring=False."
            )
        if self.efficiency_weight < 0:
            raise ValueError(f"efficiency_weight must be >= 0, got {self.efficiency_weight}.")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}.")
        if not 0.0 <= self.accuracy_tolerance <= 1.0:
            raise ValueError("accuracy_tolerance is a fraction in [0, 1], e.g. 0.01 = 1 point.")
        if self.relative_tolerance is not None and not 0.0 <= self.relative_tolerance <= 1.0:
            raise ValueError(
                f"relative_tolerance is a fraction of the ancestor's score in [0, 1] (0.1 = at "
                f"most 10% below it), got {self.relative_tolerance!r}."
            )
        if self.score_tolerance is not None and not self.score_tolerance >= 0:
            raise ValueError(
                f"score_tolerance must be >= 0 (in the primary score's units), got "
                f"{self.score_tolerance!r}."
            )
        if self.selection not in _SELECTION_CRITERIA:
            raise ValueError(f"selection must be one of {_SELECTION_CRITERIA}.")
        if self.distill_temperature < 0:
            raise ValueError("distill_temperature must be >= 0 (0 = no distillation).")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ValueError("distill_alpha must be in [0, 1] (the weight of the label loss).")

    @property
    def tolerance(self) -> float:
        """How far below the ancestor's score an offspring may fall (absolute tolerance)."""
        return self.accuracy_tolerance if self.score_tolerance is None else self.score_tolerance

    def floor(self, ancestor_score: float) -> float:
        """The lowest score an offspring may have and still be accepted."""
        if self.relative_tolerance is not None:
            return ancestor_score * (1.0 - self.relative_tolerance)
        return ancestor_score - self.tolerance

    def describe_floor(self, ancestor_score: float) -> str:
        if self.relative_tolerance is not None:
            return f"ancestor {ancestor_score:.4f} x (1 - {self.relative_tolerance})"
        return f"ancestor {ancestor_score:.4f} - tolerance {self.tolerance}"

    def epochs_for(self, parent_cluster_efficiency: float) -> int:
        """Fine-tuning epochs of a generation bred from a parent this much smaller (clusters)."""
        doublings = math.log2(max(float(parent_cluster_efficiency), 1.0))
        epochs = self.epochs_per_generation + round(self.epochs_per_doubling * doublings)
        if self.max_epochs_per_generation:
            epochs = min(epochs, self.max_epochs_per_generation)
        return int(epochs)
