"""Longer fine-tuning as the network shrinks (``EvolutionSettings.epochs_per_doubling``)."""

import pytest
from helpers import adam_compile, small_evolution

from tf_evosyn import EvolutionSettings
from tf_evosyn._keras import keras
from tf_evosyn.models import lenet5


def test_epochs_grow_with_the_parents_cluster_efficiency():
    settings = EvolutionSettings(epochs_per_generation=3, epochs_per_doubling=1.0)
    assert [settings.epochs_for(e) for e in (1.0, 2.0, 3.0, 8.0, 16.0)] == [3, 4, 5, 6, 7]
    capped = EvolutionSettings(
        epochs_per_generation=3, epochs_per_doubling=1.0, max_epochs_per_generation=5
    )
    assert [capped.epochs_for(e) for e in (1.0, 4.0, 16.0)] == [3, 5, 5]
    fixed = EvolutionSettings(epochs_per_generation=2)
    assert [fixed.epochs_for(e) for e in (1.0, 100.0)] == [2, 2]
    # A parent larger than the ancestor (efficiency < 1) never gets fewer epochs than the base.
    assert settings.epochs_for(0.5) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs_per_doubling": -1.0}, "must be >= 0"),
        ({"epochs_per_generation": 3, "max_epochs_per_generation": 2}, "below"),
    ],
)
def test_bad_epoch_growth_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EvolutionSettings(**kwargs).validate()


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_the_loop_trains_and_records_the_grown_epochs(tmp_path, mnist_small):
    """Each generation fine-tunes epochs_for(its parent's cluster efficiency) epochs, the
    compile function learns that length (so a schedule spans it) and the record says it."""
    compiled_for = []

    def compile_fn(model, epochs=None):
        compiled_for.append(epochs)
        adam_compile(model)

    keras.utils.set_random_seed(0)
    evolution = small_evolution(
        tmp_path,
        mnist_small,
        compile_fn=compile_fn,
        epochs_per_doubling=4.0,
        max_epochs_per_generation=3,
        max_attempts=1,
        seed=3,
    )
    settings = evolution.settings
    records = evolution.run(lenet5(), ancestor_epochs=1)
    expected = [settings.epochs_for(r["cluster_efficiency"]) for r in records[:-1]]
    assert expected[0] == 1 and expected[1] > 1  # generation 1's parent is the ancestor
    assert [r["epochs"] for r in records[1:]] == expected
    assert compiled_for == [1, *expected]  # the ancestor's training, then each generation's
