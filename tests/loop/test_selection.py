"""Evolution decides on the validation split; the test split is recorded and never decides."""

import numpy as np
import pytest

from tf_evosyn import Evolution, EvolutionSettings
from tf_evosyn._keras import keras, tf
from tf_evosyn.models import lenet5

DECISIONS = ("generation", "accepted", "attempts", "synapses", "clusters", "score", "parent")


def _compile(model):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def _run(workdir, data, test_data, validation_data):
    settings = EvolutionSettings(
        generations=2,
        epochs_per_generation=1,
        accuracy_tolerance=0.02,  # tight: some draws are rejected, so decisions matter
        max_attempts=2,
        seed=3,
        fit_verbose=0,
        tensorboard_fit_logs=False,
    )
    evolution = Evolution(
        workdir,
        compile_fn=_compile,
        train_data=lambda seed: data.train_dataset(batch_size=64, seed=seed),
        test_data=test_data,
        validation_data=validation_data,
        settings=settings,
    )
    keras.utils.set_random_seed(0)
    return evolution.run(lenet5(), ancestor_epochs=1)


def _dataset(images, labels, data):
    x = data.preprocess(images)
    return tf.data.Dataset.from_tensor_slices((x, labels.astype(np.int64))).batch(256)


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_the_test_split_never_changes_a_decision(tmp_path, mnist_small):
    """The same run with another test set (the test images with shuffled labels) makes the
    same decisions: the records differ only in their test figures."""
    data = mnist_small
    validation = _dataset(data.test_images[:250], data.test_labels[:250], data)
    test_images, test_labels = data.test_images[250:], data.test_labels[250:]
    shuffled = np.random.default_rng(0).permutation(test_labels)
    first = _run(tmp_path / "a", data, _dataset(test_images, test_labels, data), validation)
    second = _run(tmp_path / "b", data, _dataset(test_images, shuffled, data), validation)
    assert [{k: r.get(k) for k in DECISIONS} for r in first] == [
        {k: r.get(k) for k in DECISIONS} for r in second
    ]
    assert all(r["selection_split"] == "validation" for r in first + second)
    assert [r["test_accuracy"] for r in first] != [r["test_accuracy"] for r in second]
    assert first[0]["test_accuracy"] > 0.5 > second[0]["test_accuracy"]  # real vs shuffled


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_without_validation_data_the_test_split_decides(tmp_path, mnist_small):
    """The papers' protocol is still there, and the records say so."""
    data = mnist_small
    records = _run(tmp_path, data, data.test_dataset(256), None)
    assert all(r["selection_split"] == "test" for r in records)
    assert all("test_score" not in r for r in records)
