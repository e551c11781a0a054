"""Training recipes: optimizers, learning-rate schedules and the compile function.

The ``train`` (ancestor) and ``evolution`` (offspring fine-tuning) sections of a config each
describe one recipe; :func:`make_compile_fn` turns a section into a function that compiles a
model for a task with a fresh optimizer.
"""

from __future__ import annotations

import ml_collections

from tf_evosyn._keras import keras, tf
from tf_evosyn.tasks import ClassificationTask, Task

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
SCHEDULES = ("constant", "cosine", "piecewise", "exponential")
# Training-recipe knobs of the ``train`` and ``evolution`` sections and the model's weight decay,
# read with these defaults (the behaviour before they existed) so older configs and run
# directories keep working. See :func:`learning_rate_schedule` for their meaning.
RECIPE_DEFAULTS = {
    "momentum": 0.0,  # SGD momentum (0 = plain SGD)
    "nesterov": False,  # Nesterov momentum (SGD with momentum > 0 only)
    "boundaries_epochs": (),  # piecewise: epochs at which the rate is multiplied by decay_factor
    "decay_factor": 0.1,  # piecewise: the multiplier at each boundary
    "warmup_epochs": 0.0,  # linear warm-up from ~0 to the schedule's rate over these epochs
    # Training steps per call of the compiled step function: the same updates, less per-step
    # dispatch (the usual setting on TPUs and GPUs; on this 2-core CPU a compacted LeNet-5
    # offspring gains only ~9% with 32, 3.1 -> 2.85 s per epoch, so the configs keep 1).
    "steps_per_execution": 1,
}
RECIPE_SECTIONS = ("train", "evolution")


def recipe(section: ml_collections.ConfigDict, key: str):
    """``section.key`` of a training-recipe knob, or its default from :data:`RECIPE_DEFAULTS`."""
    value = section.get(key, None)
    return RECIPE_DEFAULTS[key] if value is None else value


@keras.utils.register_keras_serializable(package="tf_evosyn")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule``'s rate, scaled by ``(step + 1) / warmup_steps`` during the first
    ``warmup_steps`` steps (Goyal et al. 2017's gradual warm-up). The wrapped schedule runs
    on the same step counter, so its boundaries stay where they were configured."""

    def __init__(self, schedule, warmup_steps: int):
        super().__init__()
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            rate = tf.cast(self.schedule(step), tf.float32)
        else:
            rate = tf.constant(float(self.schedule), tf.float32)
        ramp = tf.minimum(1.0, (step + 1.0) / float(max(1, self.warmup_steps)))
        return rate * ramp

    def get_config(self):
        schedule = self.schedule
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            schedule = keras.optimizers.schedules.serialize(schedule)
        return {"schedule": schedule, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(**config)


def piecewise_boundary_steps(boundaries_epochs, steps_per_epoch: int) -> list[int]:
    """Keras ``PiecewiseConstantDecay`` boundaries for epoch boundaries: the rate changes at the
    first step of epoch ``b`` (step ``round(b * steps_per_epoch)``, counting from 0), like
    Caffe's ``multistep`` policy (``iter >= stepvalue``). Keras switches *after* a boundary
    step, hence the ``- 1``."""
    return [max(0, round(float(b) * steps_per_epoch) - 1) for b in boundaries_epochs]


def learning_rate_schedule(
    section: ml_collections.ConfigDict, epochs: int, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate (a float or a Keras schedule) that ``section`` describes.

    ``schedule``: ``constant``; ``cosine`` decays to 0 over the ``epochs`` of one training (the
    ancestor's, or one generation's fine-tuning); ``piecewise`` multiplies the rate by
    ``decay_factor`` from each of ``boundaries_epochs`` on; ``exponential`` multiplies it by
    ``decay_factor`` every epoch, smoothly (e.g. He et al.'s /10 at 32k and 48k
    iterations: ``(82, 123)`` at 391 steps per epoch). Boundaries are counted from the start of
    each training, so for ``evolution`` they are epochs of one generation; a boundary at or after
    ``epochs`` never takes effect. ``warmup_epochs`` > 0 ramps the rate up linearly over that
    many epochs first (:class:`LinearWarmup`).
    """
    learning_rate = float(section.learning_rate)
    if section.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, epochs * steps_per_epoch)
        )
    elif section.schedule == "exponential":
        # DIGITS' "exponential decay" (DetectNet's KITTI recipe): x decay_factor every epoch.
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            learning_rate,
            decay_steps=max(1, steps_per_epoch),
            decay_rate=float(recipe(section, "decay_factor")),
        )
    elif section.schedule == "piecewise":
        boundaries = list(recipe(section, "boundaries_epochs"))
        factor = float(recipe(section, "decay_factor"))
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            piecewise_boundary_steps(boundaries, steps_per_epoch),
            [learning_rate * factor**i for i in range(len(boundaries) + 1)],
        )
    warmup_steps = round(float(recipe(section, "warmup_epochs")) * steps_per_epoch)
    if warmup_steps > 0:
        learning_rate = LinearWarmup(learning_rate, warmup_steps)
    return learning_rate


def _make_optimizer(
    section: ml_collections.ConfigDict, epochs: int, steps_per_epoch: int
) -> keras.optimizers.Optimizer:
    """A fresh optimizer of ``section.optimizer`` with its schedule (and SGD momentum)."""
    learning_rate = learning_rate_schedule(section, epochs, steps_per_epoch)
    if section.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate,
            momentum=float(recipe(section, "momentum")),
            nesterov=bool(recipe(section, "nesterov")),
        )
    return OPTIMIZERS[section.optimizer](learning_rate=learning_rate)


def make_compile_fn(
    section: ml_collections.ConfigDict,
    epochs: int,
    steps_per_epoch: int,
    jit_compile: bool = False,
    task: Task | None = None,
):
    """Compile with ``task``'s loss (default: classification, logits + integer labels) and a
    fresh optimizer of the configured kind.

    The learning rate follows :func:`learning_rate_schedule` (``schedule='cosine'`` decays it to
    0 over the ``epochs`` of one training: the last epochs settle instead of bouncing at the
    peak rate, which is worth ~0.5 point on MNIST); SGD takes ``momentum``/``nesterov``.
    ``jit_compile`` compiles the train/predict steps with XLA. Call the function inside the
    strategy's scope (the evolution loop does): the optimizer's variables are then distributed
    like the model's. Under ``mixed_float16`` Keras wraps the optimizer in a loss-scale
    optimizer by itself. Weight decay is part of the model (L2 kernel regularizers, see
    ``model.weight_decay``), so it is in the training loss.
    """
    task = task or ClassificationTask()

    def compile_fn(model: keras.Model, epochs: int = epochs) -> None:
        # ``epochs``: this training's length when the loop varies it per generation.
        task.compile(
            model,
            _make_optimizer(section, epochs, steps_per_epoch),
            jit_compile,
            steps_per_execution=int(recipe(section, "steps_per_execution")),
        )

    return compile_fn
