"""Populations and m-parent synthesis in the loop: determinism, records, resume mid-generation."""

import pytest
from helpers import small_evolution, without_timing

from tf_evosyn._keras import keras
from tf_evosyn.loop import population
from tf_evosyn.loop.candidates import CandidateDrawer
from tf_evosyn.models import lenet5


def _evolution(workdir, data):
    return small_evolution(workdir, data, population=2, parents=2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_small):
    keras.utils.set_random_seed(0)
    workdir = tmp_path_factory.mktemp("population")
    return workdir, _evolution(workdir, mnist_small).run(lenet5(), ancestor_epochs=1)


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_every_candidate_is_recorded_and_the_fittest_is_chosen(reference):
    _, records = reference
    for record in records[1:]:
        candidates = record["candidates"]
        assert [c["index"] for c in candidates] == [0, 1]
        best = population.chosen(candidates)
        assert record["score"] == best["score"] and record["clusters"] == best["clusters"]
        assert record["parents"] == 2
        assert best["fitness"] == max(c["fitness"] for c in candidates if c["acceptable"])


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_a_run_killed_mid_generation_resumes_to_the_same_lineage(
    tmp_path, mnist_small, reference, monkeypatch
):
    original = CandidateDrawer.draw

    def killed(self, parents, generation, index, *args):
        if (generation, index) == (2, 1):
            raise KeyboardInterrupt("killed after the first draw of generation 2")
        return original(self, parents, generation, index, *args)

    monkeypatch.setattr(CandidateDrawer, "draw", killed)
    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        _evolution(tmp_path, mnist_small).run(lenet5(), ancestor_epochs=1)
    assert (tmp_path / "candidates" / "gen_0002" / "cand_000" / "candidate.json").is_file()
    monkeypatch.setattr(CandidateDrawer, "draw", original)
    records = _evolution(tmp_path, mnist_small).run()
    assert without_timing(records) == without_timing(reference[1])
