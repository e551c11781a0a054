"""Distillation for offspring fine-tuning: the loss is Hinton's, only the student learns, and the
generational loop can use the ancestor as teacher."""

import json
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

import tf_evosyn
from tf_evosyn import Evolution, EvolutionSettings
from tf_evosyn._keras import keras, tf
from tf_evosyn.loop.distill import Distiller, distiller_like
from tf_evosyn.loop.recipes import make_compile_fn
from tf_evosyn.models import lenet5
from tf_evosyn.tasks.classification import soft_target_loss


def _compile(model):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _settings(**overrides) -> EvolutionSettings:
    """One or two quick distilled generations that accept anything better than chance."""
    values = dict(
        epochs_per_generation=1,
        accuracy_tolerance=0.5,
        max_attempts=1,
        seed=3,
        fit_verbose=0,
        tensorboard_fit_logs=False,
        distill_temperature=4.0,
    )
    return EvolutionSettings(**{**values, **overrides})


def test_soft_target_loss_is_scaled_kl_divergence():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(5, 10)), rng.normal(size=(5, 10))
    t = 3.0

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(teacher / t), softmax(student / t)
    expected = t * t * np.mean(np.sum(p * np.log(p / q), axis=1))
    actual = float(soft_target_loss(tf.constant(teacher), tf.constant(student), t))
    assert actual == pytest.approx(expected, rel=1e-5)
    assert float(soft_target_loss(tf.constant(teacher), tf.constant(teacher), t)) == (
        pytest.approx(0.0, abs=1e-6)
    )


def test_distiller_trains_only_the_student(mnist_small):
    keras.utils.set_random_seed(0)
    teacher = lenet5()
    _compile(teacher)
    teacher.fit(mnist_small.train_dataset(64, seed=0), epochs=1, verbose=0)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student = tf_evosyn.evolvable(lenet5())
    _compile(student)
    before = student.get_layer("fc1").kernel.numpy().copy()
    distiller = distiller_like(student, teacher, temperature=4.0, alpha=0.1)
    history = distiller.fit(mnist_small.train_dataset(64, seed=1), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(student.get_layer("fc1").kernel.numpy(), before)
    for a, b in zip(teacher_weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    _, accuracy = student.evaluate(mnist_small.test_dataset(256), verbose=0)
    assert accuracy > 0.5  # it learned digits, not just the teacher's noise
    with pytest.raises(ValueError, match="alpha"):
        Distiller(student, teacher, alpha=1.5)


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_generations_fine_tune_with_the_ancestor_as_teacher(tmp_path, mnist_small):
    keras.utils.set_random_seed(0)
    settings = _settings(generations=1, distill_alpha=0.2)
    evolution = Evolution(
        tmp_path,
        compile_fn=_compile,
        train_data=lambda seed: mnist_small.train_dataset(batch_size=64, seed=seed),
        test_data=mnist_small.test_dataset(batch_size=256),
        settings=settings,
    )
    records = evolution.run(lenet5(), ancestor_epochs=1)
    assert [r["generation"] for r in records] == [0, 1]
    assert records[1]["loss"] is not None and np.isfinite(records[1]["loss"])
    assert records[1]["accuracy"] > 0.5
    assert evolution.fine_tuner.teacher_model is not None  # the ancestor taught generation 1
    with pytest.raises(ValueError, match="distill_alpha"):
        EvolutionSettings(distill_alpha=2.0).validate()


def test_precomputed_teacher_logits_train_exactly_like_the_running_teacher(mnist_small):
    """The teacher's logits gathered with the labels (computed once) give the student the same
    updates as running the teacher every step."""
    keras.utils.set_random_seed(0)
    teacher = lenet5()
    _compile(teacher)
    teacher.fit(mnist_small.train_dataset(64, seed=0), epochs=1, verbose=0)
    keras.utils.set_random_seed(1)
    initial = tf_evosyn.evolvable(lenet5()).get_weights()
    students = []
    soft = mnist_small.soft_target_train_data(teacher, batch_size=64)
    for data in (mnist_small.train_dataset(64, seed=5), soft(5)):
        student = tf_evosyn.evolvable(lenet5())
        student.set_weights(initial)
        _compile(student)
        distiller_like(student, teacher, 4.0, 0.1).fit(data, epochs=1, verbose=0)
        students.append(student)
    x, (labels, logits) = next(iter(soft(5)))
    assert logits.shape == (64, 10) and labels.dtype == tf.int32
    np.testing.assert_allclose(logits, teacher(x, training=False), rtol=1e-4, atol=1e-4)
    for a, b in zip(students[0].get_weights(), students[1].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_evolution_uses_soft_target_data_once_and_falls_back_when_unavailable(
    tmp_path, mnist_small
):
    made = []

    def soft_target_data(teacher):
        made.append(teacher)
        return mnist_small.soft_target_train_data(teacher, batch_size=64)

    settings = _settings(generations=2)
    for name, factory in (("cached", soft_target_data), ("augmented", lambda teacher: None)):
        keras.utils.set_random_seed(0)
        evolution = Evolution(
            tmp_path / name,
            compile_fn=_compile,
            train_data=lambda seed: mnist_small.train_dataset(batch_size=64, seed=seed),
            test_data=mnist_small.test_dataset(batch_size=256),
            settings=settings,
            soft_target_data=factory,
        )
        records = evolution.run(lenet5(), ancestor_epochs=1)
        assert [r["generation"] for r in records] == [0, 1, 2]
        assert all(r["accuracy"] > 0.5 for r in records)
    assert len(made) == 1  # the teacher's logits were computed once for both generations


def test_soft_targets_must_match_the_images_and_skip_augmentation(mnist_small):
    from tf_evosyn.data import DataError, make_classification_dataset

    images, labels = mnist_small.train_images[:32], mnist_small.train_labels[:32]
    kwargs = dict(batch_size=8, training=True, seed=0)
    with pytest.raises(DataError, match="one row per image"):
        make_classification_dataset(images, labels, soft_targets=np.zeros((31, 10)), **kwargs)
    with pytest.raises(DataError, match="augment=False"):
        make_classification_dataset(
            images, labels, soft_targets=np.zeros((32, 10)), augment=True, **kwargs
        )
    targets = np.arange(320, dtype=np.float32).reshape(32, 10)
    ds = make_classification_dataset(images, labels, soft_targets=targets, **kwargs)
    seen = []
    for _, (y, t) in ds:  # each row stays with its own image's label
        index = (t.numpy()[:, 0] // 10).astype(int)
        np.testing.assert_array_equal(y.numpy(), labels[index])
        seen.extend(index)
    assert sorted(seen) == list(range(32))


def test_steps_per_execution_gives_the_same_updates_and_reaches_the_distiller(mnist_small):
    keras.utils.set_random_seed(0)
    teacher = lenet5()
    _compile(teacher)
    start = tf_evosyn.evolvable(lenet5()).get_weights()
    trained = []
    for steps in (1, 8):
        section = ml_collections.ConfigDict(
            dict(optimizer="adam", learning_rate=1e-3, schedule="cosine", steps_per_execution=steps)
        )
        student = tf_evosyn.evolvable(lenet5())
        student.set_weights(start)
        make_compile_fn(section, epochs=1, steps_per_epoch=4)(student)
        distiller = distiller_like(student, teacher, temperature=4.0, alpha=0.1)
        assert int(distiller._steps_per_execution.numpy()) == steps
        distiller.fit(mnist_small.train_dataset(64, seed=0).take(4), epochs=1, verbose=0)
        trained.append(student.get_weights())
    assert not np.allclose(trained[0][0], start[0])  # it trained
    for one, eight in zip(*trained, strict=True):
        np.testing.assert_allclose(one, eight, rtol=0, atol=1e-6)


def _tiny_pair():
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    return teacher, student


@pytest.mark.parametrize("compiled", ["student", "distiller"])
def test_fit_reports_the_epoch_mean_loss_and_resets_metrics_every_epoch(compiled):
    """Either the student is compiled (its own loss and metrics judge) or only the distiller
    is (an uncompiled student: the distiller's compiled loss and metrics judge)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 8)).astype("float32")
    y = rng.integers(0, 3, 128)
    teacher, student = _tiny_pair()
    recipe = dict(  # learning rate 0: every batch's loss is known before the fit
        optimizer=keras.optimizers.SGD(0.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if compiled == "student":
        student.compile(**recipe)
        distiller = distiller_like(student, teacher, temperature=2.0, alpha=0.5)
    else:
        distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5)
        distiller.compile(**recipe)
        assert distiller._judge() is distiller
    history = distiller.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batch_losses = [
        0.5 * float(hard(y[i : i + 32], student(x[i : i + 32])))
        + 0.5 * float(soft_target_loss(teacher(x[i : i + 32]), student(x[i : i + 32]), 2.0))
        for i in range(0, 128, 32)
    ]
    assert np.std(batch_losses) > 1e-3  # the mean differs from the last batch's loss
    np.testing.assert_allclose(history.history["loss"], [np.mean(batch_losses)] * 2, rtol=1e-5)
    accuracy = next(m for m in distiller.metrics if m.name == "accuracy")
    assert float(accuracy.count) == 128  # the last epoch's images only: reset between epochs


_TWO_REPLICAS = """
import json
import numpy as np
from tf_evosyn._keras import keras, tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from tf_evosyn.loop.distill import distiller_like
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 8)).astype("float32")
y = rng.integers(0, 3, 256)
for strategy in (tf.distribute.OneDeviceStrategy("/cpu:0"),
                 tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
        student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
        student.compile(keras.optimizers.SGD(0.1),
                        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"])
        distiller = distiller_like(student, teacher, 2.0, 0.5)
    history = distiller.fit(x, y, batch_size=64, epochs=2, verbose=0, shuffle=False).history
    print("RESULT", json.dumps([history["loss"], history["accuracy"]]))
"""


def test_two_replicas_report_the_loss_and_accuracy_of_one(tmp_path):
    script = tmp_path / "two_replicas.py"
    script.write_text(_TWO_REPLICAS)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    one, two = (
        json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("RESULT ")
    )
    np.testing.assert_allclose(two, one, rtol=1e-4)
