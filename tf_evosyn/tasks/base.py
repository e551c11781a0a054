"""What the generational loop asks of a task: its loss, its evaluation and its primary score.

The loop (:mod:`tf_evosyn.loop.evolution`) is one; classification and detection differ only in what
a
:class:`Task` supplies. A new task (segmentation, say) is a new subclass, not edits across the
loop. The primary score is "higher is better" and is what acceptance compares with the
ancestor's (the tolerance is in the score's units); every other number goes into ``metrics``
and is recorded in the lineage.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any

from tf_evosyn._keras import keras, tf


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a network: the primary score and every metric behind it."""

    score: float
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.score, int | float) or isinstance(self.score, bool):
            raise TypeError(f"Evaluation.score must be a number, got {self.score!r}.")


class Task(abc.ABC):
    """A learning problem the evolution loop can train, judge and record.

    Subclasses set ``name`` and ``metric`` (the primary score's name, e.g. ``"accuracy"``)
    and implement :meth:`loss` and :meth:`evaluate`.
    """

    name: str = "task"
    metric: str = "score"
    # Can offspring learn the ancestor's outputs (tf_evosyn.loop.distill)? Tasks that can implement
    # :meth:`distillation_loss`.
    supports_distillation: bool = False

    @abc.abstractmethod
    def loss(self) -> Any:
        """A Keras loss, or a dict of losses keyed by the model's output names."""

    def loss_weights(self) -> dict[str, float] | None:
        return None

    def compile_metrics(self) -> Any:
        """Metrics Keras reports during ``fit`` (progress bars only; not used for decisions)."""
        return None

    def compile(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        jit_compile: bool = False,
        steps_per_execution: int = 1,
    ) -> None:
        """Compile ``model`` for this task with a fresh ``optimizer``."""
        model.compile(
            optimizer=optimizer,
            loss=self.loss(),
            loss_weights=self.loss_weights(),
            metrics=self.compile_metrics(),
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
        )

    def distillation_loss(
        self, teacher_outputs: Any, student_outputs: Any, y_true: Any, temperature: float
    ) -> tf.Tensor:
        """The loss of the student against the teacher's outputs on the same batch (a scalar).

        ``y_true`` is the batch's targets, for tasks whose distillation needs them (e.g. which
        cells hold an object)."""
        raise NotImplementedError(f"The {self.name} task has no distillation loss.")

    @abc.abstractmethod
    def evaluate(self, model: keras.Model, dataset: tf.data.Dataset) -> Evaluation:
        """Score ``model`` on ``dataset`` (the data the loop decides on)."""

    def check_score(self, evaluation: Evaluation) -> Evaluation:
        """A non-finite score never wins: it counts as minus infinity in comparisons."""
        if not math.isfinite(evaluation.score):
            return Evaluation(-math.inf, dict(evaluation.metrics))
        return evaluation
