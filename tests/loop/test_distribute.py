"""Scale: tf.distribute strategies, mixed precision and XLA.

Logical CPU devices must be configured before TensorFlow initialises its devices, so everything
that mirrors over two logical CPUs runs in a subprocess (the binary, or a short script).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_collections
import numpy as np
import pytest

import tf_evosyn
from tf_evosyn._keras import keras, tf
from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.loop import distribute
from tf_evosyn.loop.lineage import REQUIRED_KEYS
from tf_evosyn.loop.recipes import make_compile_fn
from tf_evosyn.models import lenet5
from tf_evosyn.runs.common import prepare_workdir
from tf_evosyn.runs.config_checks import validate_config
from tf_evosyn.runs.errors import ConfigError
from tf_evosyn.runs.scale import scale_settings
from tf_evosyn.tasks.classification import evaluate_accuracy

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"
TINY = (
    "--config.data.train_limit=256",
    "--config.data.test_limit=128",
    "--config.evolution.generations=1",
)


def _smoke_config() -> ml_collections.ConfigDict:
    return load_config_file(str(SMOKE))


@pytest.fixture
def policy():
    """Set a global dtype policy for one test and always restore float32 afterwards."""
    yield distribute.set_precision
    keras.mixed_precision.set_global_policy("float32")


# -- make_strategy / set_precision: clear errors -------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "horovod"}, "unknown strategy 'horovod'"),
        ({"name": "default", "num_cpu_devices": 2}, "only applies to the 'mirrored'"),
        ({"name": "mirrored", "num_cpu_devices": -1}, "must be >= 0"),
        ({"name": "mirrored", "num_cpu_devices": 2.0}, "must be an int"),
        ({"name": "mirrored", "tpu_address": "grpc://1.2.3.4:8470"}, "only applies to the 'tpu'"),
    ],
)
def test_make_strategy_rejects_bad_arguments(kwargs, message):
    with pytest.raises(distribute.StrategyError, match=message):
        distribute.make_strategy(**kwargs)


def test_default_strategy_is_tensorflows():
    strategy = distribute.make_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert distribute.is_default(strategy)
    assert distribute.describe(strategy) == {
        "strategy": "default",
        "num_replicas": 1,
        "devices": [],
    }


def test_tpu_without_a_tpu_says_how_to_point_at_one(monkeypatch):
    for name in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(distribute.StrategyError, match="tpu_address"):
        distribute.make_strategy("tpu")


def test_multi_worker_with_broken_tf_config_is_refused(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(distribute.StrategyError, match="TF_CONFIG is not valid JSON"):
        distribute.make_strategy("multi_worker_mirrored")


def test_set_precision_rejects_unknown_policies(policy):
    with pytest.raises(distribute.StrategyError, match="mixed_bfloat16"):
        policy("bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"


# -- config keys ---------------------------------------------------------------------------------


def test_scale_keys_default_for_configs_without_them():
    config = _smoke_config()
    assert scale_settings(config) == scale_settings(ml_collections.ConfigDict())
    old = _smoke_config()
    del old["distribute"]
    del old.train["mixed_precision"]
    del old.train["jit_compile"]
    validate_config(old)  # an older config file still validates
    settings = scale_settings(old)
    assert (settings.strategy, settings.num_cpu_devices) == ("default", 0)
    assert (settings.mixed_precision, settings.jit_compile) == ("float32", False)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("distribute.strategy", "parameter_server", "unknown strategy"),
        ("distribute.num_cpu_devices", 2, "only applies to the 'mirrored'"),
        ("train.mixed_precision", "float16", "unknown precision"),
        ("train.jit_compile", "yes", "jit_compile must be True or False"),
        ("train.jit_compile", True, "needs deterministic=False"),
    ],
)
def test_bad_scale_keys_are_config_errors(key, value, message):
    config = _smoke_config()
    section, name = key.split(".")
    del config[section][name]  # ConfigDict is type-safe: re-add to set any type
    config[section][name] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_resume_allows_another_strategy_but_not_another_precision(tmp_path):
    config = _smoke_config()
    old = json.loads(config.to_json_best_effort(sort_keys=True))
    del old["distribute"], old["train"]["mixed_precision"], old["train"]["jit_compile"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    prepare_workdir(config, tmp_path)  # a run directory older than the scale keys resumes
    config.distribute.strategy = "mirrored"
    config.distribute.num_cpu_devices = 2
    prepare_workdir(config, tmp_path)  # where it runs may change
    config.train.mixed_precision = "mixed_bfloat16"
    with pytest.raises(ConfigError, match="train.mixed_precision"):
        prepare_workdir(config, tmp_path)


# -- mixed precision -----------------------------------------------------------------------------


def _two_layer_model():
    inputs = keras.Input((6, 6, 2))
    x = tf_evosyn.EvoConv2D(4, 3, activation="sigmoid", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = tf_evosyn.EvoDense(5, activation="sigmoid", name="dense")(x)
    outputs = tf_evosyn.EvoDense(3, name="logits", evolve_clusters=False)(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "precision, dtype", [("mixed_bfloat16", tf.bfloat16), ("mixed_float16", tf.float16)]
)
def test_evolvable_layers_under_mixed_precision(policy, precision, dtype):
    keras.utils.set_random_seed(0)
    reference = _two_layer_model()  # float32
    policy(precision)
    model = distribute.with_precision(_two_layer_model())
    model.set_weights(reference.get_weights())
    assert model.get_layer("logits").dtype_policy.name == "float32"  # float32 logits
    conv, dense = model.get_layer("conv"), model.get_layer("dense")
    rng = np.random.default_rng(0)
    conv_synapses = rng.random(conv.kernel.shape) > 0.3
    dense_synapses = rng.random(dense.kernel.shape) > 0.3
    for layer, synapses, clusters in (
        (conv, conv_synapses, np.array([0, 1, 0, 1])),
        (dense, dense_synapses, np.array([1, 0, 1, 1, 0])),
    ):
        layer.set_masks(synapses, clusters)
        reference.get_layer(layer.name).set_masks(synapses, clusters)
        for name in ("kernel", *tf_evosyn.core.layers.MASK_NAMES):
            assert getattr(layer, name).dtype == tf.float32  # variables stay float32

    x = tf.constant(rng.random((8, 6, 6, 2)), tf.float32)
    conv_out = keras.Model(model.inputs, conv.output)(x)
    dense_out = keras.Model(model.inputs, dense.output)(x)
    assert conv_out.dtype == dtype and dense_out.dtype == dtype
    # Dead clusters emit exactly activation(0) = sigmoid(0) = 0.5, in any float format.
    assert np.all(conv_out.numpy()[..., [0, 2]].astype(np.float32) == 0.5)
    assert np.all(dense_out.numpy()[:, [1, 4]].astype(np.float32) == 0.5)
    logits = model(x)
    assert logits.dtype == tf.float32
    np.testing.assert_allclose(logits.numpy(), reference(x).numpy(), rtol=0.05, atol=0.05)

    labels = tf.constant(rng.integers(0, 3, 8))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(x, training=True))
    grads = tape.gradient(loss, [conv.kernel, dense.kernel])
    for grad, layer in zip(grads, (conv, dense), strict=True):
        grad = tf.convert_to_tensor(grad).numpy()
        assert grad.dtype == np.float32 and np.isfinite(grad).all()
        assert np.all(grad[~layer.living_synapse_mask()] == 0)  # dead synapses learn nothing
        assert np.any(grad[layer.living_synapse_mask()] != 0)


def test_with_precision_keeps_weights_and_synthesis_keeps_policies(policy):
    plain = tf_evosyn.evolvable(lenet5())
    assert distribute.with_precision(plain) is plain  # float32: nothing to do
    policy("mixed_bfloat16")
    model = distribute.with_precision(plain)
    assert [layer.dtype_policy.name for layer in model.layers] == [
        *["mixed_bfloat16"] * 6,
        "float32",
    ]
    for a, b in zip(model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    offspring, _ = tf_evosyn.synthesize(model, seed=0)
    assert offspring.get_layer("fc2").dtype_policy.name == "float32"
    assert offspring.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_jit_compile_compiles_and_trains_a_step(policy, mnist_small, precision):
    policy(precision)
    keras.utils.set_random_seed(0)
    small = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, strides=4, name="conv1"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model = distribute.with_precision(tf_evosyn.evolvable(small))
    conv1 = model.get_layer("conv1")
    clusters = np.ones(20)
    clusters[:4] = 0
    conv1.set_masks(np.ones(conv1.kernel.shape), clusters)
    section = ml_collections.ConfigDict(
        {"optimizer": "adam", "learning_rate": 1e-3, "schedule": "constant"}
    )
    make_compile_fn(section, epochs=1, steps_per_epoch=2, jit_compile=True)(model)
    assert model.jit_compile
    images = mnist_small.preprocess(mnist_small.train_images[:128])
    labels = mnist_small.train_labels[:128]
    history = model.fit(images, labels, batch_size=64, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.all(conv1.kernel.numpy()[..., :4] == 0)  # dead clusters stayed dead
    assert model.predict(images[:8], verbose=0).dtype == np.float32


# -- mirrored over two logical CPU devices (subprocesses) ----------------------------------------

_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tf_evosyn
    from tf_evosyn.runs.classification import run_classification
    from tf_evosyn.runs.errors import ConfigError
    from tf_evosyn.loop import distribute
    from tf_evosyn._keras import keras, tf
    from tf_evosyn.core.layers import MASK_NAMES, evolvable_layers
    from tf_evosyn.models import lenet5

    out = {}
    strategy = distribute.make_strategy("mirrored", num_cpu_devices=2)
    out["replicas"] = strategy.num_replicas_in_sync
    out["again"] = distribute.make_strategy("mirrored", num_cpu_devices=2).num_replicas_in_sync
    try:
        distribute.make_strategy("mirrored", num_cpu_devices=3)
    except distribute.StrategyError as error:
        out["late_split"] = str(error)
    try:
        distribute.check_jit_compile(strategy, True)
    except distribute.StrategyError as error:
        out["jit"] = str(error)

    def replicas_equal(model):
        return all(
            all(np.array_equal(v.values[0].numpy(), c.numpy()) for c in v.values[1:])
            for layer in evolvable_layers(model)
            for v in (getattr(layer, n) for n in ("kernel", *MASK_NAMES))
        )

    def all_mirrored(model):
        return all(
            isinstance(getattr(layer, n), tf.distribute.DistributedValues)
            and len(getattr(layer, n).values) == 2
            for layer in evolvable_layers(model)
            for n in ("kernel", *MASK_NAMES)
        )

    keras.utils.set_random_seed(0)
    with strategy.scope():
        parent = tf_evosyn.evolvable(lenet5())
        out["parent_mirrored"] = all_mirrored(parent)
        offspring, _ = tf_evosyn.synthesize(parent, seed=3)
        out["offspring_mirrored"] = all_mirrored(offspring)
        out["parent_heredity_written"] = bool(
            (parent.get_layer("fc1").cluster_heredity.values[1].numpy() < 1).any()
        )
        out["replicas_equal_after_synthesis"] = replicas_equal(offspring)
        out["parent_replicas_equal"] = replicas_equal(parent)
        offspring.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    rng = np.random.default_rng(0)
    offspring.fit(
        rng.random((64, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 64),
        batch_size=32, epochs=1, verbose=0,
    )
    out["replicas_equal_after_training"] = replicas_equal(offspring)
    out["dead_weights_zero"] = all(
        np.all(layer.kernel.numpy()[~layer.living_synapse_mask()] == 0)
        for layer in evolvable_layers(offspring)
    )
    # run_classification refuses XLA on logical CPU replicas before any work.
    cfg = json.loads(sys.argv[1])
    from tf_evosyn.bin.config_cli import load_config_file
    c = load_config_file(cfg["smoke"])
    c.train.jit_compile = True
    try:
        run_classification(c, cfg["workdir"], strategy=strategy)
    except ConfigError as error:
        out["run_jit"] = str(error)
    print("RESULT " + json.dumps(out))
    """
)


def _env(datasets_dir):
    return dict(os.environ, EVOSYN_DATA_DIR=str(datasets_dir), TF_CPP_MIN_LOG_LEVEL="2")


@pytest.mark.slow
def test_masks_and_heredity_are_mirrored_through_synthesis_and_training(tmp_path, datasets_dir):
    args = json.dumps({"smoke": str(SMOKE), "workdir": str(tmp_path / "run")})
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, args],
        env=_env(datasets_dir),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["replicas"] == 2 and out["again"] == 2
    assert "already initialised" in out["late_split"] and "fresh process" in out["late_split"]
    assert "jit_compile" in out["jit"] and "jit_compile" in out["run_jit"]
    assert not (tmp_path / "run").exists()  # refused before any work
    assert out["parent_mirrored"] and out["offspring_mirrored"]
    assert out["parent_heredity_written"] and out["parent_replicas_equal"]
    assert out["replicas_equal_after_synthesis"] and out["replicas_equal_after_training"]
    assert out["dead_weights_zero"]


def _run_binary(workdir, datasets_dir, *overrides):
    command = [
        sys.executable,
        "-m",
        "tf_evosyn.bin.evolve_classification",
        f"--config={SMOKE}",
        f"--workdir={workdir}",
        *TINY,
        *overrides,
    ]
    result = subprocess.run(
        command, env=_env(datasets_dir), cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"binary failed:\n{result.stderr[-4000:]}"
    return result


def _lineage(workdir):
    return [json.loads(line) for line in (workdir / "lineage.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def default_and_mirrored_runs(tmp_path_factory, datasets_dir):
    default = tmp_path_factory.mktemp("default")
    mirrored = tmp_path_factory.mktemp("mirrored")
    _run_binary(default, datasets_dir)
    _run_binary(
        mirrored, datasets_dir, "--strategy=mirrored", "--config.distribute.num_cpu_devices=2"
    )
    return default, mirrored


@pytest.mark.slow
def test_mirrored_run_has_the_default_run_format(default_and_mirrored_runs):
    default, mirrored = default_and_mirrored_runs
    runtime = json.loads((mirrored / "runtime.json").read_text())
    assert runtime["strategy"] == "mirrored" and runtime["num_replicas"] == 2
    assert runtime["global_batch_size"] == 64 and runtime["per_replica_batch_size"] == 32
    assert len(runtime["devices"]) == 2
    assert json.loads((default / "runtime.json").read_text())["num_replicas"] == 1

    records, reference = _lineage(mirrored), _lineage(default)
    assert [r["generation"] for r in records] == [0, 1]
    assert [sorted(r) for r in records] == [sorted(r) for r in reference]
    for record in records:
        assert set(REQUIRED_KEYS) <= set(record)
        assert [layer["name"] for layer in record["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    assert records[1]["synapses"] < records[0]["synapses"] == 430_500
    # Two replicas of 32 compute what one replica of 64 does, up to float rounding.
    assert records[0]["accuracy"] == pytest.approx(reference[0]["accuracy"], abs=0.02)

    config, default_config = (
        json.loads((d / "config.json").read_text()) for d in (mirrored, default)
    )
    assert config["distribute"] == {
        "strategy": "mirrored",
        "tpu_address": "",
        "num_cpu_devices": 2,
        "collective_timeout_seconds": 600.0,
    }
    config.pop("distribute"), default_config.pop("distribute")
    assert config == default_config
    assert sorted(p.name for p in mirrored.iterdir()) == sorted(p.name for p in default.iterdir())


@pytest.mark.slow
def test_mirrored_offspring_checkpoint_loads_with_binary_monotone_masks(
    default_and_mirrored_runs, mnist_small
):
    _, mirrored = default_and_mirrored_runs
    ancestor = tf_evosyn.load_model(mirrored / "generations" / "gen_0000")
    offspring = tf_evosyn.load_model(mirrored / "generations" / "gen_0001")
    record = _lineage(mirrored)[1]
    assert tf_evosyn.count_living(offspring).synapses == record["synapses"]
    for parent_layer, layer in zip(
        tf_evosyn.evolvable_layers(ancestor), tf_evosyn.evolvable_layers(offspring), strict=True
    ):
        for name in ("synapse_mask", "cluster_mask"):
            mask, parent_mask = getattr(layer, name).numpy(), getattr(parent_layer, name).numpy()
            assert set(np.unique(mask)) <= {0.0, 1.0}  # binary
            if mask.shape == parent_mask.shape:
                assert np.all(mask <= parent_mask)  # monotone
            else:  # compacted offspring (the smoke config's default): dead channels are gone
                assert all(o <= p for o, p in zip(mask.shape, parent_mask.shape, strict=True))
        # Every replica kept the masks during training: dead weights are still exactly 0.
        assert np.all(layer.kernel.numpy()[~layer.living_synapse_mask()] == 0)
    # The mirrored evaluation (predict split over two replicas) matches a plain one on the same
    # 128 test images (test_limit keeps the first ones).
    first_128 = mnist_small.test_dataset(batch_size=128).take(1)
    accuracy = evaluate_accuracy(offspring, first_128)
    assert accuracy == pytest.approx(record["test_accuracy"], abs=1 / 128 + 1e-9)
