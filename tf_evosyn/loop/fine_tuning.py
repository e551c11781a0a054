"""How the generational loop trains one network: compile, pick the data, fit.

Split from :mod:`tf_evosyn.loop.evolution` so the loop reads as synthesize -> train -> evaluate ->
decide. The ancestor is compiled with its own ``compile_fn``; offspring with theirs, told how
many epochs this training lasts (so a schedule can span it). With distillation the offspring
learn the ancestor's soft predictions (:mod:`tf_evosyn.loop.distill`); the ancestor never changes
during a run, so when the data source can label the training images with its logits once
(``soft_target_data``) the teacher does not run on every batch.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.model_io import load_model
from tf_evosyn.loop.distill import distiller_like
from tf_evosyn.loop.settings import EvolutionSettings
from tf_evosyn.storage import fs

TrainData = Callable[[int], tf.data.Dataset] | tf.data.Dataset
CompileFn = Callable[[keras.Model], None]
SoftTargetData = Callable[[keras.Model], TrainData | None]


class FineTuner:
    """Trains the ancestor (generation 0) and every offspring of one run.

    Args:
      compile_fn / ancestor_compile_fn / train_data / ancestor_train_data / fit_kwargs /
        soft_target_data / ancestor_callbacks: as :class:`tf_evosyn.loop.evolution.Evolution` takes
        them.
      settings: the run's settings (distillation, verbosity, TensorBoard logs).
      teacher_dir: where the trained ancestor is saved (the distillation teacher).
      tensorboard_dir: where per-generation fit logs go.
    """

    def __init__(
        self,
        compile_fn: CompileFn,
        ancestor_compile_fn: CompileFn,
        train_data: TrainData,
        settings: EvolutionSettings,
        teacher_dir: fs.RunPath,
        tensorboard_dir: fs.RunPath,
        fit_kwargs: dict | None = None,
        soft_target_data: SoftTargetData | None = None,
        ancestor_train_data: TrainData | None = None,
        ancestor_callbacks: list[keras.callbacks.Callback] | None = None,
        distillation_loss=None,
    ):
        self.compile_fn = compile_fn
        self.distillation_loss = distillation_loss  # the task's (Task.distillation_loss)
        self.ancestor_compile_fn = ancestor_compile_fn
        self.train_data = train_data
        self.ancestor_train_data = ancestor_train_data
        if ancestor_train_data is None:
            self.ancestor_train_data = train_data
        self.settings = settings
        self.teacher_dir = teacher_dir
        self.tensorboard_dir = tensorboard_dir
        self.fit_kwargs = dict(fit_kwargs or {})
        self.ancestor_callbacks = list(ancestor_callbacks or [])
        self.teacher_model: keras.Model | None = None
        self._soft_target_data = soft_target_data
        self._soft_train_data: TrainData | None = None

    def train(
        self, model: keras.Model, epochs: int, seed: int, generation: int
    ) -> tuple[list[float], float | None]:
        """Compile and fit; returns the per-epoch training losses and the fit's wall seconds per
        epoch (None without training)."""
        if epochs <= 0:
            return [], None
        keras.utils.set_random_seed(seed)
        _compile_with_epochs(
            self.ancestor_compile_fn if generation == 0 else self.compile_fn, model, epochs
        )
        distill = generation > 0 and self.settings.distill_temperature > 0
        plain = self.ancestor_train_data if generation == 0 else self.train_data
        source = (self._distillation_data() if distill else None) or plain
        data = source(seed) if callable(source) else source
        callbacks = [keras.callbacks.TerminateOnNaN(), *self.fit_kwargs.get("callbacks", [])]
        if generation == 0:
            callbacks += self.ancestor_callbacks
        if self.settings.tensorboard_fit_logs:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    str(fs.join(self.tensorboard_dir, f"gen_{generation:04d}")),
                    write_graph=False,
                    profile_batch=0,
                )
            )
        extra = {k: v for k, v in self.fit_kwargs.items() if k != "callbacks"}
        if distill:
            model = distiller_like(
                model,
                self.teacher(),
                self.settings.distill_temperature,
                self.settings.distill_alpha,
                self.distillation_loss,
            )
        start = time.perf_counter()
        history = model.fit(
            data, epochs=epochs, callbacks=callbacks, verbose=self.settings.fit_verbose, **extra
        )
        losses = [float(v) for v in history.history.get("loss", [])]
        return losses, (time.perf_counter() - start) / max(len(losses), 1)

    def teacher(self) -> keras.Model:
        """The ancestor (generation 0), loaded once, as the distillation teacher."""
        if self.teacher_model is None:
            self.teacher_model = load_model(self.teacher_dir)
            self.teacher_model.trainable = False
        return self.teacher_model

    def _distillation_data(self) -> TrainData | None:
        """Training data labelled with the teacher's logits, made once (None: not available)."""
        if self._soft_train_data is None and self._soft_target_data is not None:
            self._soft_train_data = self._soft_target_data(self.teacher())
            if self._soft_train_data is None:
                self._soft_target_data = None  # e.g. augmented inputs: the teacher runs per step
        return self._soft_train_data


def _compile_with_epochs(compile_fn: CompileFn, model: keras.Model, epochs: int) -> None:
    """``compile_fn(model, epochs=...)`` if it takes the epochs (a schedule that spans one
    training must know how long this one is: see ``settings.epochs_for``), else
    ``compile_fn(model)``."""
    try:
        takes_epochs = "epochs" in inspect.signature(compile_fn).parameters
    except (TypeError, ValueError):
        takes_epochs = False
    if takes_epochs:
        compile_fn(model, epochs=epochs)
    else:
        compile_fn(model)
