"""CIFAR-10 experiments: the ResNet-56 and AlexNet configs, the training-recipe knobs (SGD
momentum, piecewise schedule, warm-up, weight decay) and, marked slow, a 2-generation ResNet-56
smoke evolution through the binary under the default and a mirrored strategy."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import tf_evosyn
from tf_evosyn import models
from tf_evosyn._keras import keras
from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.compaction.plan import compact
from tf_evosyn.data import DataError, load_classification_data
from tf_evosyn.graph.coupling import plan_coupling
from tf_evosyn.loop.lineage import LAYER_KEYS, REQUIRED_KEYS, Lineage
from tf_evosyn.loop.recipes import (
    LinearWarmup,
    learning_rate_schedule,
    make_compile_fn,
    piecewise_boundary_steps,
)
from tf_evosyn.runs.classification import run_classification
from tf_evosyn.runs.common import prepare_workdir
from tf_evosyn.runs.config_checks import model_kwargs, validate_config
from tf_evosyn.runs.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
NEW_CONFIGS = (
    "resnet56_cifar10",
    "resnet56_cifar10_smoke",
    "alexnet_cifar10",
    "alexnet_cifar10_smoke",
)
COMPACT_TOLERANCE = 1e-5


def load_config(name: str) -> ml_collections.ConfigDict:
    return load_config_file(str(CONFIGS / f"{name}.py"))


def _section(**kwargs) -> ml_collections.ConfigDict:
    values = {"optimizer": "sgd", "learning_rate": 0.1, "schedule": "constant", **kwargs}
    return ml_collections.ConfigDict(values)


def _rates(schedule, steps) -> list[float]:
    if isinstance(schedule, float):
        return [schedule] * len(steps)
    return [float(schedule(step)) for step in steps]


# -- the configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_new_configs_validate_and_say_how_to_run(name):
    config = load_config(name)
    validate_config(config)
    docstring = (CONFIGS / f"{name}.py").read_text().split('"""')[1]
    assert f"--config=configs/{name}.py" in docstring
    if name.endswith("_smoke"):
        assert config.data.name == "cifar10_subset"
        assert "NOT the official" in docstring
        assert (config.train.epochs, config.evolution.generations) == (1, 2)
        assert config.evolution.epochs_per_generation == 1
    else:
        assert config.data.name == "cifar10"


def test_configs_load_through_config_flags_and_every_key_overrides(monkeypatch):
    argv = [
        "prog",
        f"--config={CONFIGS / 'resnet56_cifar10.py'}",
        "--config.train.boundaries_epochs=(91, 136)",
        "--config.train.momentum=0.8",
        "--config.train.nesterov=True",
        "--config.train.warmup_epochs=1",
        "--config.model.weight_decay=5e-4",
        "--config.evolution.decay_factor=0.2",
        "--config.data.normalize_style=caffe",
    ]
    monkeypatch.setattr(sys, "argv", argv)  # config_flags finds the override flags in sys.argv
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config", flag_values=values, lock_config=True)
    values(argv)
    config = values.config
    assert tuple(config.train.boundaries_epochs) == (91, 136)
    assert (config.train.momentum, config.train.nesterov) == (0.8, True)
    assert (config.train.warmup_epochs, config.model.weight_decay) == (1.0, 5e-4)
    assert config.evolution.decay_factor == 0.2 and config.data.normalize_style == "caffe"
    validate_config(config)


def test_resnet56_config_is_he_et_al():
    config = load_config("resnet56_cifar10")
    train = config.train
    assert (train.optimizer, train.learning_rate, train.momentum) == ("sgd", 0.1, 0.9)
    assert (train.batch_size, config.model.weight_decay) == (128, 1e-4)
    assert config.data.augment and config.data.normalize
    steps_per_epoch = -(-50_000 // train.batch_size)
    assert steps_per_epoch == 391
    # /10 at ~32k and ~48k iterations, stop at ~64k (within one epoch of the paper's counts).
    iterations = [b * steps_per_epoch for b in (*train.boundaries_epochs, train.epochs)]
    for ours, paper in zip(iterations, (32_000, 48_000, 64_000), strict=True):
        assert abs(ours - paper) < steps_per_epoch
    schedule = learning_rate_schedule(train, train.epochs, steps_per_epoch)
    rates = _rates(schedule, [0, 32_061, 32_062, 48_092, 48_093, 64_123])
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_alexnet_config_is_caffes_cifar10_full_solver():
    config = load_config("alexnet_cifar10")
    train = config.train
    assert (train.optimizer, train.learning_rate, train.momentum) == ("sgd", 0.001, 0.9)
    assert (train.batch_size, config.model.weight_decay) == (100, 0.004)
    assert not config.data.augment and config.data.normalize_style == "caffe"
    steps_per_epoch = 50_000 // train.batch_size
    iterations = [b * steps_per_epoch for b in (*train.boundaries_epochs, train.epochs)]
    assert iterations == [60_000, 65_000, 70_000]  # base_lr, then _lr1 and _lr2 solvers
    schedule = learning_rate_schedule(train, train.epochs, steps_per_epoch)
    rates = _rates(schedule, [0, 59_999, 60_000, 64_999, 65_000, 69_999])
    np.testing.assert_allclose(rates, [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rtol=1e-6)


def test_weight_decay_reaches_the_model():
    config = load_config("alexnet_cifar10")
    config.model.weight_decay = 0.002
    model = models.build(config.model.name, **model_kwargs(config))
    assert model.get_layer("conv1").kernel_regularizer.l2 == pytest.approx(0.001)  # decay / 2
    assert model.get_layer("fc").kernel_regularizer.l2 == pytest.approx(0.25)  # x250
    lenet = load_config("resnet56_cifar10")
    lenet.model.name = "lenet5"
    del lenet.model["weight_decay"]
    assert model_kwargs(lenet) == {}  # models without weight decay get nothing


def test_conv_activation_reaches_lenet5():
    config = load_config("lenet5_mnist")
    plain = models.build(config.model.name, **model_kwargs(config))
    assert plain.get_layer("conv1").activation is keras.activations.linear  # Caffe's network
    config.model.conv_activation = "relu"
    validate_config(config)
    relu = models.build(config.model.name, **model_kwargs(config))
    for name in ("conv1", "conv2"):
        assert relu.get_layer(name).activation is keras.activations.relu
    assert relu.count_params() == plain.count_params() == 431_080  # same weights and clusters


# -- bad recipe keys -----------------------------------------------------------------------------


def _set(config, dotted, value):
    section, key = dotted.rsplit(".", 1)
    node = config
    for part in section.split("."):
        node = node[part]
    if key in node:
        del node[key]  # ConfigDict is type-safe: re-add to set any type
    node[key] = value


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"train.momentum": 1.0}, r"train.momentum must be a number in \[0, 1\)"),
        ({"evolution.momentum": -0.1}, r"evolution.momentum must be a number in \[0, 1\)"),
        ({"train.momentum": "0.9"}, "train.momentum must be a number"),
        ({"train.optimizer": "adam"}, "apply to SGD only"),
        ({"train.momentum": 0.0, "train.nesterov": True}, "nesterov=True needs train.momentum"),
        ({"evolution.nesterov": "yes"}, "evolution.nesterov must be True or False"),
        ({"train.schedule": "step"}, "train.schedule='step'"),
        ({"train.boundaries_epochs": None}, "needs train.boundaries_epochs"),
        ({"train.boundaries_epochs": ()}, "non-empty list"),
        ({"train.boundaries_epochs": "82,123"}, "non-empty list"),
        ({"train.boundaries_epochs": (123, 82)}, "strictly increasing"),
        ({"train.boundaries_epochs": (82, 82)}, "strictly increasing"),
        ({"train.boundaries_epochs": (0, 82)}, "positive numbers"),
        ({"train.decay_factor": 0.0}, r"decay_factor must be in \(0, 1\]"),
        ({"train.decay_factor": 10.0}, r"decay_factor must be in \(0, 1\]"),
        ({"evolution.warmup_epochs": -1.0}, "warmup_epochs must be a number >= 0"),
        ({"train.steps_per_execution": 0}, "steps_per_execution must be an integer >= 1"),
        ({"evolution.steps_per_execution": 2.0}, "steps_per_execution must be an integer"),
        ({"model.weight_decay": -1e-4}, "model.weight_decay must be a number >= 0"),
        ({"model.name": "lenet5"}, "takes no weight decay"),
        ({"model.conv_activation": "relu"}, "has no such option"),
        ({"model.conv_activation": "tanh"}, r"use one of \('linear', 'relu'\)"),
    ],
)
def test_bad_recipe_keys_are_config_errors(changes, message):
    config = load_config("resnet56_cifar10")
    for key, value in changes.items():
        _set(config, key, value)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_piecewise_without_the_keys_says_what_is_missing():
    config = load_config("lenet5_mnist")  # a config older than the recipe keys
    config.train.optimizer = "sgd"
    config.train.schedule = "piecewise"
    with pytest.raises(ConfigError, match="needs train.boundaries_epochs"):
        validate_config(config)
    config.train.boundaries_epochs = (5,)  # decay_factor defaults to 0.1
    validate_config(config)


def test_configs_and_run_directories_older_than_the_recipe_keys_still_work(tmp_path):
    config = load_config("lenet5_mnist")
    validate_config(config)  # no momentum/boundaries/warmup/weight_decay keys
    assert model_kwargs(config) == {"conv_activation": "linear"}
    del config.model["conv_activation"]  # a config older than that key, too
    assert model_kwargs(config) == {}
    model = tf_evosyn.evolvable(models.lenet5())
    make_compile_fn(config.train, epochs=2, steps_per_epoch=5)(model)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    config.train.optimizer = "sgd"
    make_compile_fn(config.train, epochs=2, steps_per_epoch=5)(model)
    assert float(model.optimizer.momentum) == 0.0 and not model.optimizer.nesterov
    # A run directory written before the keys resumes with a config that has them at defaults.
    prepare_workdir(config, tmp_path)
    with config.unlocked():
        for section in ("train", "evolution"):
            config[section].momentum = 0.0
            config[section].nesterov = False
            config[section].boundaries_epochs = ()
            config[section].decay_factor = 0.1
            config[section].warmup_epochs = 0.0
        config.model.weight_decay = ml_collections.config_dict.placeholder(float)
        config.model.conv_activation = "linear"
    prepare_workdir(config, tmp_path)
    config.model.conv_activation = "relu"
    with pytest.raises(ConfigError, match="model.conv_activation"):
        prepare_workdir(config, tmp_path)
    config.model.conv_activation = "linear"
    config.train.momentum = 0.9
    with pytest.raises(ConfigError, match="train.momentum"):
        prepare_workdir(config, tmp_path)


# -- schedules -----------------------------------------------------------------------------------


def test_piecewise_schedule_changes_at_the_first_step_of_each_boundary_epoch():
    section = _section(schedule="piecewise", boundaries_epochs=(2, 3), decay_factor=0.1)
    schedule = learning_rate_schedule(section, epochs=4, steps_per_epoch=10)
    steps = [0, 19, 20, 29, 30, 39, 1000]
    np.testing.assert_allclose(
        _rates(schedule, steps), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001], rtol=1e-6
    )
    assert piecewise_boundary_steps((2, 3), 10) == [19, 29]
    assert piecewise_boundary_steps((2.5,), 10) == [24]  # fractional epochs: step 25 on
    half = learning_rate_schedule(
        _section(schedule="piecewise", boundaries_epochs=(2.5,), decay_factor=0.5), 4, 10
    )
    np.testing.assert_allclose(_rates(half, [24, 25]), [0.1, 0.05], rtol=1e-6)


def test_constant_and_cosine_schedules_are_unchanged():
    assert learning_rate_schedule(_section(), epochs=3, steps_per_epoch=10) == 0.1
    cosine = learning_rate_schedule(_section(schedule="cosine"), epochs=3, steps_per_epoch=10)
    expected = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=30)
    assert cosine.get_config() == expected.get_config()


def test_linear_warmup_then_the_schedule():
    section = _section(
        schedule="piecewise", boundaries_epochs=(2,), decay_factor=0.1, warmup_epochs=1.0
    )
    schedule = learning_rate_schedule(section, epochs=3, steps_per_epoch=10)
    assert isinstance(schedule, LinearWarmup) and schedule.warmup_steps == 10
    np.testing.assert_allclose(
        _rates(schedule, [0, 4, 9, 10, 19, 20]), [0.01, 0.05, 0.1, 0.1, 0.1, 0.01], rtol=1e-6
    )
    restored = LinearWarmup.from_config(schedule.get_config())
    np.testing.assert_allclose(_rates(restored, [0, 9, 25]), _rates(schedule, [0, 9, 25]))
    constant = learning_rate_schedule(_section(warmup_epochs=0.5), epochs=1, steps_per_epoch=10)
    np.testing.assert_allclose(_rates(constant, [0, 4, 5]), [0.02, 0.1, 0.1], rtol=1e-6)


def test_compile_fn_builds_sgd_with_momentum_and_the_schedule():
    section = _section(
        schedule="piecewise", boundaries_epochs=(1,), momentum=0.9, nesterov=True, warmup_epochs=0.0
    )
    model = tf_evosyn.evolvable(models.alexnet_cifar())
    make_compile_fn(section, epochs=2, steps_per_epoch=3)(model)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.momentum) == pytest.approx(0.9) and optimizer.nesterov
    schedule = optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "PiecewiseConstantDecay"
    assert schedule["config"]["boundaries"] == [2] and schedule["config"]["values"] == [
        pytest.approx(0.1),
        pytest.approx(0.01),
    ]


# -- data: Caffe-style input scaling --------------------------------------------------------------


def test_caffe_normalize_style_subtracts_the_channel_mean_from_raw_pixels(cifar10_subset_file):
    data_config = ml_collections.ConfigDict(
        {
            "name": "cifar10_subset",
            "source": "local",
            "data_dir": str(cifar10_subset_file.parent),
            "train_limit": 0,
            "test_limit": 16,
            "normalize_style": "caffe",
        }
    )
    data = load_classification_data(data_config)
    mean_255 = data.train_images.reshape(-1, 3).mean(axis=0)
    expected = data.test_images.astype(np.float64) - mean_255
    np.testing.assert_allclose(data.preprocess(data.test_images), expected, atol=1e-3)
    batch = next(iter(data.test_dataset(batch_size=16)))[0].numpy()
    np.testing.assert_allclose(batch, data.preprocess(data.test_images), atol=1e-4)
    assert "mean-subtracted, 0-255" in data.description
    data_config.normalize_style = "torch"
    with pytest.raises(DataError, match="normalize_style='torch'"):
        load_classification_data(data_config)


# -- slow: the binary, default and mirrored, on the real subset ----------------------------------

SMOKE = CONFIGS / "resnet56_cifar10_smoke.py"
TINY = (
    "--config.data.train_limit=128",
    "--config.data.test_limit=64",
    "--config.train.batch_size=32",
    "--config.log.fit_verbose=0",
)


def _env(datasets_dir):
    return dict(os.environ, EVOSYN_DATA_DIR=str(datasets_dir), TF_CPP_MIN_LOG_LEVEL="2")


def _start(workdir, datasets_dir, *overrides):
    command = [
        sys.executable,
        "-m",
        "tf_evosyn.bin.evolve_classification",
        f"--config={SMOKE}",
        f"--workdir={workdir}",
        *TINY,
        *overrides,
    ]
    return subprocess.Popen(
        command,
        env=_env(datasets_dir),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lineage(workdir):
    return [json.loads(line) for line in (workdir / "lineage.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, datasets_dir):
    """Both runs at once (TensorFlow's graph building is single-threaded, so two processes
    share the cores better than one after the other)."""
    runs = {
        "default": tmp_path_factory.mktemp("resnet56_default"),
        "mirrored": tmp_path_factory.mktemp("resnet56_mirrored"),
    }
    start = time.time()
    processes = {
        "default": _start(runs["default"], datasets_dir),
        "mirrored": _start(
            runs["mirrored"],
            datasets_dir,
            "--strategy=mirrored",
            "--config.distribute.num_cpu_devices=2",
        ),
    }
    for name, process in processes.items():
        try:
            _, stderr = process.communicate(timeout=1200)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        assert process.returncode == 0, f"{name} run failed:\n{stderr[-4000:]}"
    print(f"\nResNet-56 smoke runs (default + mirrored, concurrent): {time.time() - start:.0f}s")
    return runs


@pytest.fixture(scope="module")
def mnist_lineage(tmp_path_factory, mnist_dir):
    """A 1-generation LeNet-5 lineage on a few real MNIST images: the reference format."""
    config = load_config("lenet5_mnist_smoke")
    config.data.data_dir = str(mnist_dir)
    config.data.train_limit = 128
    config.data.test_limit = 64
    config.evolution.generations = 1
    config.evolution.accuracy_tolerance = 1.0
    config.log.fit_verbose = 0
    config.log.tensorboard_fit_logs = False
    config.deterministic = False  # op determinism is process-wide: keep it off in pytest
    return run_classification(config, tmp_path_factory.mktemp("mnist"))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_resnet56_smoke_lineage_has_the_mnist_format(smoke_runs, mnist_lineage, strategy):
    workdir = smoke_runs[strategy]
    records = _lineage(workdir)
    assert [r["generation"] for r in records] == [0, 1, 2]
    assert Lineage(workdir / "lineage.jsonl").records == records  # strict validation passes
    assert all(r["accepted"] for r in records)
    for record in records:
        assert set(REQUIRED_KEYS) <= set(record)
        reference = mnist_lineage[min(record["generation"], 1)]
        assert sorted(record) == sorted(reference)
        for layer in record["layers"]:
            assert sorted(layer) == sorted(LAYER_KEYS)
    assert records[0]["synapses"] == 848_944 and records[0]["clusters"] == 2_042
    assert records[2]["synapses"] < records[1]["synapses"] < records[0]["synapses"]
    assert records[2]["clusters"] < records[0]["clusters"]
    assert records[2]["flops"] < records[0]["flops"]  # compaction removed real work
    runtime = json.loads((workdir / "runtime.json").read_text())
    replicas = 2 if strategy == "mirrored" else 1
    assert runtime["strategy"] == strategy and runtime["num_replicas"] == replicas
    assert runtime["per_replica_batch_size"] == 32 // replicas


@pytest.mark.slow
def test_mirrored_and_default_runs_differ_only_in_where_they_ran(smoke_runs):
    configs = {
        name: json.loads((workdir / "config.json").read_text())
        for name, workdir in smoke_runs.items()
    }
    assert configs["mirrored"]["distribute"]["num_cpu_devices"] == 2
    for config in configs.values():
        config.pop("distribute")
    assert configs["mirrored"] == configs["default"]
    assert configs["default"]["data"]["name"] == "cifar10_subset"
    assert configs["default"]["train"]["momentum"] == 0.9
    names = [sorted(p.name for p in workdir.iterdir()) for workdir in smoke_runs.values()]
    assert names[0] == names[1]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_offspring_keep_coupled_groups_whole_and_compact_exactly(
    smoke_runs, cifar10_subset_file, strategy
):
    workdir = smoke_runs[strategy]
    for generation in (1, 2):
        model = tf_evosyn.load_model(workdir / "generations" / f"gen_{generation:04d}")
        plan = plan_coupling(model)
        assert plan.coupled_groups(), "ResNet-56 has residual groups"
        alive = {
            layer.name: layer.living_cluster_mask() for layer in tf_evosyn.evolvable_layers(model)
        }
        for group in plan.groups:
            states = {bool(alive[name][channel]) for name, channel in group.members}
            assert len(states) == 1, f"generation {generation}: group {group.members} partly dead"
    best_record = json.loads((workdir / "best" / "record.json").read_text())
    assert best_record["generation"] == 2  # most_efficient
    best = tf_evosyn.load_model(workdir / "best")
    compacted = compact(best)
    assert compacted.count_params() == best_record["compact_params"]
    assert compacted.count_params() < models.resnet56().count_params()
    # Real subset images, preprocessed like the test pipeline (the run's own data config).
    data_config = json.loads((workdir / "config.json").read_text())["data"]
    data_config["data_dir"] = str(cifar10_subset_file.parent)
    data = load_classification_data(ml_collections.ConfigDict(data_config))
    images = data.preprocess(data.test_images[:32])
    expected = best(images, training=False).numpy()
    actual = compacted(images, training=False).numpy()
    # 1e-5 of the logits' scale: float32 resolves ~1e-7 of a value, and a few steps at rate 0.1
    # leave a smoke run's ResNet-56 logits in the hundreds (BN statistics far from converged),
    # so an absolute 1e-5 would test float32 rounding rather than compaction.
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(actual - expected).max() <= COMPACT_TOLERANCE * scale
    np.testing.assert_array_equal(actual.argmax(axis=-1), expected.argmax(axis=-1))
