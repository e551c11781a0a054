"""Knowledge distillation for offspring fine-tuning (Hinton et al. 2015).

An offspring inherits the surviving weights of its parent, but a small network recovers faster
when it also learns the ancestor's soft predictions, which carry what the ancestor knows about
similar classes. The loss is

    alpha * CE(labels, student)
      + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

Both models output logits. The teacher runs in inference mode and is never trained. It is the
same network for a whole evolution, so when the training inputs are not augmented its logits
can be computed once and fed with the labels (``y = (labels, teacher_logits)``): a small
offspring's step then costs what it costs without distillation (running the ancestor each step
doubled the epoch time of a 41-cluster LeNet-5 on CPU).
"""

from __future__ import annotations

from tf_evosyn._keras import keras, tf
from tf_evosyn.tasks.classification import soft_target_loss


class Distiller(keras.Model):
    """Trains ``student`` (in place) against labels and a frozen ``teacher``.

    Compile it like the student (optimizer, hard-label loss, metrics); ``fit`` updates the
    student's weights only. Calling the distiller calls the student.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        temperature: float = 4.0,
        alpha: float = 0.1,
        distillation_loss=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
        self.student = student
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        # (teacher outputs, student outputs, targets, temperature) -> loss: the task's
        # (Task.distillation_loss); default Hinton's soft targets on logits.
        self.distillation_loss = distillation_loss or (
            lambda teacher, student, y, t: soft_target_loss(teacher, student, t)
        )
        # The epoch's mean loss (a fit's ``loss`` is this, not the last batch's).
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self) -> list:
        """What ``fit`` resets every epoch: the loss tracker and the judge's metrics."""
        judge = self._judge()
        judged = judge.metrics if judge is self.student else super().metrics
        return [self.loss_tracker, *(m for m in judged if m.name != "loss")]

    def _judge(self) -> keras.Model:
        """A compiled student's own loss and metrics know its output names (a detector's
        "coverage" and "bbox"); the distiller's would be "output_1", ..."""
        return self.student if getattr(self.student, "compiled_loss", None) else self

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def train_step(self, data):
        x, y = data[0], data[1]
        if isinstance(y, tuple | list):  # labels and the teacher's precomputed logits
            y, teacher_logits = y
        else:
            teacher_logits = self.teacher(x, training=False)
        judge = self._judge()
        with tf.GradientTape() as tape:
            logits = self.student(x, training=True)
            hard = judge.compiled_loss(y, logits, regularization_losses=self.student.losses)
            soft = self.distillation_loss(
                self._named(teacher_logits), self._named(logits), y, self.temperature
            )
            # The soft loss is a mean over this replica's batch; the optimizer sums gradients
            # over replicas, so scale it as Keras scales the compiled loss (per global batch).
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss = self.alpha * hard + (1.0 - self.alpha) * soft / replicas
        self.optimizer.minimize(loss, self.student.trainable_variables, tape=tape)
        judge.compiled_metrics.update_state(y, logits)
        # ``loss`` is this replica's share of the global batch's loss; the tracker's result is
        # read across replicas as a mean, so it takes the share times the replicas.
        self.loss_tracker.update_state(loss * replicas)
        return {metric.name: metric.result() for metric in self.metrics}

    def _named(self, outputs):
        """A multi-output model's list of outputs as a dict by output name (as targets are)."""
        names = self.student.output_names
        if isinstance(outputs, list | tuple) and len(outputs) == len(names) > 1:
            return dict(zip(names, outputs, strict=True))
        return outputs

    def get_config(self) -> dict:
        return {"temperature": self.temperature, "alpha": self.alpha}


def steps_per_execution(model: keras.Model) -> int:
    """The compiled ``steps_per_execution`` of ``model`` (1 when it has none)."""
    value = getattr(model, "_steps_per_execution", None)
    return 1 if value is None else int(value.numpy())


def distiller_like(
    student: keras.Model,
    teacher: keras.Model,
    temperature: float,
    alpha: float,
    distillation_loss=None,
) -> Distiller:
    """A :class:`Distiller` compiled with the student's own optimizer, loss and metrics.

    Call after the student was compiled (e.g. by the user's ``compile_fn``).
    """
    if student.optimizer is None:
        raise ValueError("Compile the student before wrapping it in a Distiller.")
    distiller = Distiller(student, teacher, temperature, alpha, distillation_loss)
    metrics = [m for m in student.compiled_metrics._user_metrics or []]
    distiller.compile(
        optimizer=student.optimizer,
        loss=student.loss,
        metrics=metrics,
        jit_compile=getattr(student, "_jit_compile", None),
        steps_per_execution=steps_per_execution(student),
    )
    return distiller
