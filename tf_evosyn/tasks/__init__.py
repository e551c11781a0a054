"""Tasks the evolution loop can run: each supplies its loss, evaluation and primary score."""

from tf_evosyn.tasks.base import Evaluation, Task
from tf_evosyn.tasks.classification import ClassificationTask, evaluate_accuracy
from tf_evosyn.tasks.detection import DetectionTask

__all__ = ["ClassificationTask", "DetectionTask", "Evaluation", "Task", "evaluate_accuracy"]
