"""Final fine-tuning of best/ (``EvolutionSettings.final_epochs``): one more generation that
trains the chosen offspring longer, kept only if the decision split does not get worse."""

import json

import numpy as np
import pytest
from helpers import adam_compile, small_evolution

from tf_evosyn import EvolutionSettings
from tf_evosyn._keras import keras
from tf_evosyn.core.model_io import load_model
from tf_evosyn.models import lenet5


def _compile_final_with(learning_rate, calls_before_final):
    """Adam 1e-3 for the ancestor and the generations, ``learning_rate`` from the call after
    ``calls_before_final`` on (the final fine-tuning); records each call's epochs."""
    compiled_for = []

    def compile_fn(model, epochs=None):
        compiled_for.append(epochs)
        if len(compiled_for) <= calls_before_final:
            adam_compile(model)
            return
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

    return compile_fn, compiled_for


def _run(workdir, data, compile_fn, **settings):
    keras.utils.set_random_seed(0)
    evolution = small_evolution(workdir, data, compile_fn=compile_fn, max_attempts=1, **settings)
    return evolution, evolution.run(lenet5(), ancestor_epochs=1)


def test_negative_final_epochs_is_refused():
    with pytest.raises(ValueError, match="final_epochs must be >= 0"):
        EvolutionSettings(final_epochs=-1).validate()


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_final_fine_tuning_keeps_the_structure_and_becomes_best(tmp_path, mnist_small):
    """With a learning rate of 0 the final fine-tuning cannot change the score, so it is kept:
    it is the next generation, bred from best/, with best/'s counts, and it is best/ now.
    A second run on the same directory does not fine-tune again."""
    compile_fn, compiled_for = _compile_final_with(0.0, calls_before_final=3)
    evolution, records = _run(tmp_path, mnist_small, compile_fn, final_epochs=2)
    *evolved, final = records
    assert [r["generation"] for r in records] == [0, 1, 2, 3]
    source = max(
        (r for r in evolved[1:] if r["accepted"]),
        key=lambda r: (r["cluster_efficiency"], r["synaptic_efficiency"], r["generation"]),
    )
    assert final["final"] and final["parent"] == source["generation"]
    assert compiled_for[-1] == 2 and final["epochs"] == 2  # its own length, for the schedule
    assert (final["synapses"], final["clusters"]) == (source["synapses"], source["clusters"])
    assert final["score"] == source["score"] and final["accepted"]
    assert evolution.best_record()["generation"] == 3
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["best_generation"] == 3
    assert status["reason"] == (
        f"reached generation 2; generation 3 is the final fine-tuning of {source['generation']}"
    )
    best = load_model(tmp_path / "best")
    parent = load_model(tmp_path / "generations" / f"gen_{source['generation']:04d}")
    for got, want in zip(best.get_weights(), parent.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)  # lr 0: the final network is its parent

    again = small_evolution(tmp_path, mnist_small, compile_fn=adam_compile, final_epochs=2)
    assert len(again.run()) == 4  # resumed: nothing more to do


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_a_final_fine_tuning_that_hurts_is_recorded_but_not_kept(tmp_path, mnist_small):
    """A learning rate of 50 wrecks the network: the record says so (not accepted, its test
    figures still recorded) and best/ stays the offspring it came from."""
    compile_fn, _ = _compile_final_with(50.0, calls_before_final=3)
    evolution, records = _run(tmp_path, mnist_small, compile_fn, final_epochs=1)
    final = records[-1]
    assert final["final"] and not final["accepted"]
    assert evolution.best_record()["generation"] == final["parent"]
    assert "test_accuracy" in final or final["score"] is None
    # A rejected final fine-tuning is not a stop of the evolution: more generations continue.
    longer = small_evolution(tmp_path, mnist_small, generations=3, max_attempts=1)
    assert longer._stopped_reason() is None


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_killed_before_the_final_fine_tuning_it_runs_on_resume(tmp_path, mnist_small):
    """A lineage that ends at the last generation (killed before the final fine-tuning, or run
    without it) gets it on resume, exactly once."""
    _run(tmp_path, mnist_small, adam_compile)
    resumed = small_evolution(tmp_path, mnist_small, final_epochs=1)
    records = resumed.run()
    assert [bool(r.get("final")) for r in records] == [False, False, False, True]
    assert len(small_evolution(tmp_path, mnist_small, final_epochs=1).run()) == 4
