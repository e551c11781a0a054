"""Tasks the evolution loop can run: each supplies its loss, evaluation and primary score."""

from tf_evosyn.tasks.base import Evaluation, Task
from tf_evosyn.tasks.classification import ClassificationTask, evaluate_accuracy

__all__ = ["ClassificationTask", "Evaluation", "Task", "evaluate_accuracy"]
