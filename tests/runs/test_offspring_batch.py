"""Offspring fine-tune on their own batch (``evolution.batch_size``), the ancestor on
``train.batch_size``: the data, the schedule's step count and distillation follow each."""

import json

import pytest

from tests.loop.test_distribute import _smoke_config
from tf_evosyn.data import ClassificationData
from tf_evosyn.runs import classification as classification_run
from tf_evosyn.runs import evolve as evolve_run
from tf_evosyn.runs.common import prepare_workdir
from tf_evosyn.runs.config_checks import validate_config
from tf_evosyn.runs.errors import ConfigError


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_ancestor_and_offspring_train_on_their_own_batches(tmp_path, datasets_dir, monkeypatch):
    config = _smoke_config()
    config.data.data_dir = str(datasets_dir / "mnist")
    config.data.train_limit, config.data.validation_size, config.data.test_limit = 640, 128, 128
    config.train.batch_size, config.evolution.batch_size = 64, 32
    config.evolution.generations = 1
    config.evolution.max_attempts = 1
    config.log.fit_verbose = 0
    batches, steps = [], []
    real_train_dataset = ClassificationData.train_dataset
    real_make_compile_fn = evolve_run.make_compile_fn

    def spy_train_dataset(self, batch_size, seed, **kwargs):
        batches.append((batch_size, kwargs.get("soft_targets") is not None))
        return real_train_dataset(self, batch_size, seed, **kwargs)

    def spy_make_compile_fn(section, epochs, steps_per_epoch, **kwargs):
        steps.append(steps_per_epoch)
        return real_make_compile_fn(section, epochs, steps_per_epoch, **kwargs)

    monkeypatch.setattr(ClassificationData, "train_dataset", spy_train_dataset)
    monkeypatch.setattr(evolve_run, "make_compile_fn", spy_make_compile_fn)
    records = classification_run.run_classification(config, tmp_path)

    assert [r["generation"] for r in records] == [0, 1]
    # The ancestor on plain batches of 64; the offspring on distillation batches of 32.
    assert batches == [(64, False), (32, True)]
    num_train = len(classification_run.load_classification_data(config.data).train_labels)
    # Each schedule counts its own steps.
    assert sorted(steps) == [-(-num_train // 64), -(-num_train // 32)]
    runtime = json.loads((tmp_path / "runtime.json").read_text())
    assert (runtime["global_batch_size"], runtime["offspring_global_batch_size"]) == (64, 32)


def test_zero_means_the_ancestors_batch_and_old_runs_resume(tmp_path):
    config = _smoke_config()
    old = json.loads(config.to_json_best_effort(sort_keys=True))
    del old["evolution"]["batch_size"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert config.evolution.batch_size == 0
    prepare_workdir(config, tmp_path)  # a run directory older than the key resumes
    config.evolution.batch_size = 128
    with pytest.raises(ConfigError, match="evolution.batch_size"):
        prepare_workdir(config, tmp_path)


@pytest.mark.parametrize("value", [-1, 2.5, True, "64"])
def test_bad_offspring_batch_is_a_config_error(value):
    config = _smoke_config()
    del config.evolution["batch_size"]
    config.evolution.batch_size = value
    with pytest.raises(ConfigError, match="evolution.batch_size.*integer >= 1, or 0"):
        validate_config(config)
