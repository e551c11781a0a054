"""Classification: cross-entropy on logits, judged by top-1 accuracy (the papers' measure)."""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.tasks.base import Evaluation, Task


def evaluate_accuracy(model: keras.Model, dataset: tf.data.Dataset) -> float:
    """Top-1 accuracy on a dataset of (images, integer labels) batches."""
    labels = np.concatenate([np.asarray(y) for _, y in dataset])
    if labels.size == 0:
        raise ValueError("The evaluation dataset is empty.")
    logits = model.predict(dataset.map(lambda x, y: x), verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == labels.reshape(-1)))


def soft_target_loss(
    teacher_logits: tf.Tensor, student_logits: tf.Tensor, temperature: float
) -> tf.Tensor:
    """Mean over the batch of T^2 * KL(softmax(teacher/T) || softmax(student/T))."""
    teacher_logits = tf.cast(teacher_logits, tf.float32)
    student_logits = tf.cast(student_logits, tf.float32)
    t = float(temperature)
    p_teacher = tf.nn.softmax(teacher_logits / t, axis=-1)
    log_p_teacher = tf.nn.log_softmax(teacher_logits / t, axis=-1)
    log_p_student = tf.nn.log_softmax(student_logits / t, axis=-1)
    kl = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
    return (t * t) * tf.reduce_mean(kl)


class ClassificationTask(Task):
    """Integer labels, a model that outputs logits; the primary score is top-1 accuracy."""

    name = "classification"
    metric = "accuracy"
    supports_distillation = True

    def loss(self) -> keras.losses.Loss:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def compile_metrics(self) -> list[str]:
        return ["accuracy"]

    def distillation_loss(self, teacher_outputs, student_outputs, y_true, temperature):
        """Hinton's T^2 * KL(softmax(teacher / T) || softmax(student / T))."""
        del y_true
        return soft_target_loss(teacher_outputs, student_outputs, temperature)

    def evaluate(self, model: keras.Model, dataset: tf.data.Dataset) -> Evaluation:
        accuracy = evaluate_accuracy(model, dataset)
        return Evaluation(accuracy, {"accuracy": accuracy})
