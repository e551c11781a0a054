"""The ancestor's learning curve: the task's score on training and validation images per epoch.

With a few dozen training images (KITTI here: 61) a network overfits within epochs; the loss
alone does not show it. :class:`LearningCurve` evaluates the task's own metric (e.g. Car
Moderate AP|R40) on unaugmented training images and on the validation split every ``every``
epochs of the ancestor's training and rewrites ``learning_curve.json`` in the run directory
(atomically) after each evaluation, so a killed run keeps what it measured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tf_evosyn._keras import keras, tf
from tf_evosyn.storage import fs
from tf_evosyn.storage.io_utils import atomic_write_json
from tf_evosyn.tasks import Task

LEARNING_CURVE_FILE = "learning_curve.json"


class LearningCurve(keras.callbacks.Callback):
    """Evaluates ``task`` on ``train_data`` and ``validation_data`` every ``every`` epochs.

    Both datasets are built by zero-argument callables (made once, at the first evaluation),
    batched as ``task.evaluate`` reads them. ``path``: where the curve is written (None: kept in
    :attr:`points` only).
    """

    def __init__(
        self,
        task: Task,
        train_data: Callable[[], tf.data.Dataset],
        validation_data: Callable[[], tf.data.Dataset],
        every: int = 1,
        path: str | fs.RunPath | None = None,
    ):
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be an integer >= 1 (epochs), got {every!r}.")
        self.task = task
        self._make = {"train": train_data, "validation": validation_data}
        self._datasets: dict[str, tf.data.Dataset] = {}
        self.every = every
        self.path = path
        self.points: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        point: dict[str, Any] = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", 0.0))}
        for split, make in self._make.items():
            if split not in self._datasets:
                self._datasets[split] = make()
            point[split] = float(self.task.evaluate(self.model, self._datasets[split]).score)
        self.points.append(point)
        if self.path is not None:
            atomic_write_json(self.path, {"metric": self.task.metric, "points": self.points})


def read_learning_curve(workdir: str | fs.RunPath) -> dict | None:
    """The curve a run wrote (``{"metric", "points": [{epoch, loss, train, validation}]}``) or
    None when it wrote none."""
    path = fs.join(workdir, LEARNING_CURVE_FILE)
    if not fs.exists(path):
        return None
    with tf.io.gfile.GFile(str(path)) as handle:
        return json.load(handle)
