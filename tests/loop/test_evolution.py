"""The generational loop from Python, on a small real MNIST subset."""

import json

import numpy as np
import pytest

import tf_evosyn
from tf_evosyn import Evolution, EvolutionSettings
from tf_evosyn._keras import keras
from tf_evosyn.models import lenet5
from tf_evosyn.tasks.classification import evaluate_accuracy


def _compile(learning_rate=1e-3, optimizer=keras.optimizers.Adam):
    def compile_fn(model):
        model.compile(
            optimizer=optimizer(learning_rate=learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

    return compile_fn


def _evolution(workdir, data, compile_fn=None, **settings):
    defaults = dict(
        generations=2,
        epochs_per_generation=1,
        accuracy_tolerance=0.5,
        max_attempts=2,
        seed=7,
        fit_verbose=0,
        tensorboard_fit_logs=False,
    )
    defaults.update(settings)
    return Evolution(
        workdir,
        compile_fn=compile_fn or _compile(),
        train_data=lambda seed: data.train_dataset(batch_size=64, seed=seed),
        test_data=data.test_dataset(batch_size=256),
        settings=EvolutionSettings(**defaults),
        ancestor_compile_fn=_compile(),
    )


def test_two_generations_from_python(tmp_path, mnist_small):
    keras.utils.set_random_seed(0)
    records = _evolution(tmp_path, mnist_small).run(lenet5(), ancestor_epochs=1)
    assert [r["generation"] for r in records] == [0, 1, 2]
    assert records[0]["synapses"] == 430_500 and records[0]["clusters"] == 580
    assert records[0]["flops"] == 2_293_000 and records[0]["compact_params"] == 431_080
    assert records[2]["flops"] < records[0]["flops"]
    assert records[2]["compact_params"] < records[0]["compact_params"]
    assert records[0]["accuracy"] > 0.5  # one epoch on 1,000 real digits learns something
    for previous, current in zip(records[:-1], records[1:], strict=True):
        assert current["synapses"] < previous["synapses"]
        assert current["clusters"] <= previous["clusters"]
        assert current["synaptic_efficiency"] == pytest.approx(430_500 / current["synapses"])
        assert current["parent"] == previous["generation"]
    best = tf_evosyn.load_model(tmp_path / "best")
    best_record = json.loads((tmp_path / "best" / "record.json").read_text())
    assert best_record["generation"] == 2  # the most efficient accepted offspring
    assert tf_evosyn.count_living(best).synapses == records[2]["synapses"]
    assert evaluate_accuracy(best, mnist_small.test_dataset(256)) == pytest.approx(
        records[2]["accuracy"]
    )
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "finished" and status["best_generation"] == 2
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {
        "accuracy.png",
        "synaptic_efficiency.png",
        "cluster_efficiency.png",
    }
    # Running again is a no-op resume: nothing repeated.
    again = _evolution(tmp_path, mnist_small).run()
    assert [r["generation"] for r in again] == [0, 1, 2]


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_nan_loss_never_poisons_the_lineage(tmp_path, mnist_small):
    keras.utils.set_random_seed(0)
    # Offspring are fine-tuned with an absurd learning rate: the loss diverges to NaN.
    evolution = _evolution(tmp_path, mnist_small, compile_fn=_compile(1e30, keras.optimizers.SGD))
    records = evolution.run(lenet5(), ancestor_epochs=1)
    assert [r["generation"] for r in records] == [0, 1]
    gen1 = records[1]
    assert gen1["accepted"] is False and gen1["attempts"] == 2
    assert all("non-finite" in r["reason"] for r in gen1["rejected"])
    assert "non-finite" in gen1["stop_reason"]
    assert json.loads((tmp_path / "best" / "record.json").read_text())["generation"] == 0
    best = tf_evosyn.load_model(tmp_path / "best")
    assert all(np.isfinite(w).all() for w in best.get_weights())
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "stopped"


def test_offspring_below_the_floor_are_redrawn_then_evolution_stops(tmp_path, mnist_small):
    keras.utils.set_random_seed(0)
    # A floor above the ancestor's own accuracy can never be met.
    records = _evolution(
        tmp_path,
        mnist_small,
        accuracy_tolerance=0.0,
        max_attempts=3,
        epochs_per_generation=0,
        environment=tf_evosyn.ConstantFactor(0.2, 0.2),
    ).run(lenet5(), ancestor_epochs=1)
    assert records[-1]["accepted"] is False and records[-1]["attempts"] == 3
    assert len(records[-1]["rejected"]) == 3
    assert "accuracy floor" in records[-1]["stop_reason"]
    # Each attempt is a different draw.
    assert len({r["synapses"] for r in records[-1]["rejected"]}) == 3


def test_settings_are_validated_before_any_work(tmp_path, mnist_small):
    with pytest.raises(ValueError, match="max_attempts"):
        _evolution(tmp_path, mnist_small, max_attempts=0)
    with pytest.raises(ValueError, match="selection"):
        _evolution(tmp_path, mnist_small, selection="fastest")
    with pytest.raises(ValueError, match="ancestor"):
        _evolution(tmp_path / "empty", mnist_small).run()
