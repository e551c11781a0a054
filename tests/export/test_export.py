"""Deployment export: the compacted offspring as SavedModel / Keras / TFLite computes what the
masked Keras model computes on real MNIST images, and evosyn-export turns a run into that."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tf_evosyn
from tf_evosyn import Evolution, EvolutionSettings
from tf_evosyn._keras import keras, tf
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.layers import EvolvableMixin
from tf_evosyn.export.artifacts import (
    ARTIFACTS,
    ExportError,
    export_model,
    plain_copy,
    prepare_images,
    resolve_target,
    run_tflite,
    savedmodel_latency,
    tflite_latency,
)
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.loop.lineage import Lineage
from tf_evosyn.models import lenet5

REPO = Path(__file__).resolve().parents[2]
MODEL_KEYS = {
    "generation",
    "parameters",
    "macs",
    "file_bytes",
    "tflite_latency",
    "max_abs_difference",
}


@pytest.fixture(scope="module")
def images(mnist_small) -> np.ndarray:
    return prepare_images(mnist_small.test_images[:128])


@pytest.fixture(scope="module")
def offspring() -> keras.Model:
    """An untrained evolvable LeNet-5 after three syntheses: many dead clusters, no training."""
    keras.utils.set_random_seed(0)
    model = tf_evosyn.evolvable(lenet5())
    for generation in (1, 2, 3):
        model, _ = tf_evosyn.synthesize(model, seed=0, generation=generation)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, offspring, mnist_small):
    out = tmp_path_factory.mktemp("export")
    return out, export_model(offspring, out, mnist_small.test_images[:128])


def test_all_artifacts_are_written(exported):
    out, result = exported
    assert (out / "saved_model" / "saved_model.pb").is_file()
    for name, filename in ARTIFACTS.items():
        assert (out / filename).exists()
        assert result["artifacts"][name] == str(out / filename)
        assert result["file_bytes"][name] > 0
    assert result["input_shape"] == [28, 28, 1]


def test_compacted_model_is_smaller_and_plain(exported, offspring):
    out, result = exported
    assert result["parameters"]["model"] == count_flops(offspring).total_params == 431_080
    assert result["parameters"]["exported"] < result["parameters"]["model"]
    assert result["macs"]["exported"] < result["macs"]["model_dense"]
    # model.keras is the compacted model and loads without tf_evosyn's custom objects.
    loaded = keras.models.load_model(out / "model.keras")
    assert not any(isinstance(layer, EvolvableMixin) for layer in loaded.layers)
    assert loaded.count_params() == result["parameters"]["exported"]
    assert loaded.count_params() == compact(offspring).count_params()


def test_tflite_float_matches_keras_on_real_images(exported, offspring, images):
    out, result = exported
    expected = offspring(images, training=False).numpy()
    assert np.abs(expected).max() > 1e-2  # a real, non-trivial output
    actual = run_tflite(out / "model.tflite", images)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4)
    differences = result["max_abs_difference"]
    assert set(differences) == set(ARTIFACTS)
    assert differences["tflite"] < 1e-4
    assert differences["saved_model"] < 1e-4 and differences["keras"] < 1e-4
    # int8 weights change the outputs a little, never wildly.
    assert 0 < differences["tflite_int8"] < 0.1 * np.abs(expected).max()


def test_int8_file_is_smaller_than_float(exported):
    out, _ = exported
    assert (out / "model_int8.tflite").stat().st_size < 0.5 * (out / "model.tflite").stat().st_size


def test_savedmodel_signature_takes_any_batch_of_float_images(exported, offspring, images):
    out, _ = exported
    serve = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    spec = serve.structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 28, 28, 1] and spec.dtype == tf.float32
    for batch in (1, 5):
        outputs = serve(images=tf.constant(images[:batch]))["outputs"].numpy()
        expected = offspring(images[:batch], training=False).numpy()
        np.testing.assert_allclose(outputs, expected, rtol=0, atol=1e-4)


def test_plain_copy_keeps_shapes_and_function(offspring, images):
    copy = plain_copy(offspring)
    assert not any(isinstance(layer, EvolvableMixin) for layer in copy.layers)
    assert copy.count_params() == count_flops(offspring).total_params
    expected = offspring(images, training=False).numpy()
    np.testing.assert_allclose(copy(images, training=False).numpy(), expected, atol=1e-5)


def test_latency_helpers_report_their_runs(exported):
    out, _ = exported
    tflite = tflite_latency(out / "model.tflite", (1, 28, 28, 1), threads=1, runs=7, warmup=2)
    saved = savedmodel_latency(out / "saved_model", (1, 28, 28, 1), runs=7, warmup=2)
    for result in (tflite, saved):
        assert result["runs"] == 7
        assert 0 < result["median_ms"] <= result["p90_ms"]
    assert 0 < tflite["cpu_median_ms"]  # the invoking thread's CPU time (1 thread)


# -- run directories and the binary ------------------------------------------------------------
def _record(generation: int, accepted: bool = True) -> dict:
    return {
        "generation": generation,
        "accuracy": 0.5,
        "synapses": 100 - generation,
        "clusters": 10,
        "synaptic_efficiency": 100 / (100 - generation),
        "cluster_efficiency": 1.0,
        "accepted": accepted,
        "seconds": 0.0,
        "seed": 0,
        "layers": [],
    }


def test_resolve_target_explains_bad_run_directories(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        resolve_target(tmp_path / "missing")
    with pytest.raises(ExportError, match="no lineage.jsonl"):
        resolve_target(tmp_path)
    (tmp_path / "lineage.jsonl").write_text("")
    with pytest.raises(ExportError, match="no finished generation"):
        resolve_target(tmp_path)
    lineage = Lineage(tmp_path)
    lineage.append(_record(0))
    lineage.append(_record(1))
    lineage.append(_record(2, accepted=False))
    with pytest.raises(ExportError, match="best/record.json is missing"):
        resolve_target(tmp_path)
    with pytest.raises(ExportError, match=r"generation 7 not found.*\[0, 1\]"):
        resolve_target(tmp_path, 7)
    with pytest.raises(ExportError, match="generation 2 was rejected"):
        resolve_target(tmp_path, 2)
    with pytest.raises(ExportError, match="config.json is missing"):
        resolve_target(tmp_path, 1)
    (tmp_path / "config.json").write_text(json.dumps({"data": {"name": "mnist"}}))
    with pytest.raises(ExportError, match="gen_0000/model.keras is missing"):
        resolve_target(tmp_path, 1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist_small, mnist_dir) -> Path:
    """A real one-generation run (no training) plus the config.json evosyn-classify writes."""
    workdir = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    settings = EvolutionSettings(
        generations=1,
        epochs_per_generation=0,
        accuracy_tolerance=1.0,
        fit_verbose=0,
        tensorboard_fit_logs=False,
    )
    Evolution(
        workdir,
        compile_fn=lambda model: None,
        train_data=lambda seed: mnist_small.train_dataset(batch_size=64, seed=seed),
        test_data=mnist_small.test_dataset(batch_size=256),
        settings=settings,
    ).run(lenet5(), ancestor_epochs=0)
    data = {
        "name": "mnist",
        "source": "idx",
        "data_dir": str(mnist_dir),
        "tfds_data_dir": "",
        "download": False,
        "train_limit": 100,
        "test_limit": 100,
    }
    (workdir / "config.json").write_text(json.dumps({"data": data}))
    return workdir


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tf_evosyn.bin.export", *args],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow  # trains evolutions for several seconds: the full tier only
def test_binary_exports_the_best_offspring_with_a_report(run_dir, tmp_path):
    out = tmp_path / "out"
    result = _export(
        f"--workdir={run_dir}", f"--output={out}", "--num_images=64", "--latency_runs=5"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for filename in ARTIFACTS.values():
        assert (out / filename).exists()
    report = json.loads((out / "export_report.json").read_text())
    assert report["generation"] == 1 and report["test_images"] == 64
    assert set(report["artifacts"]) == set(ARTIFACTS)
    ancestor, offspring = report["ancestor"], report["offspring"]
    assert MODEL_KEYS <= set(ancestor) and MODEL_KEYS <= set(offspring)
    assert ancestor["generation"] == 0 and ancestor["parameters"] == 431_080
    assert offspring["parameters"] < ancestor["parameters"]
    assert offspring["macs"] < ancestor["macs"]
    for entry in (ancestor, offspring):
        assert set(entry["file_bytes"]) == set(entry["max_abs_difference"]) == set(ARTIFACTS)
        assert entry["max_abs_difference"]["tflite"] < 1e-4
        assert entry["tflite_latency"]["runs"] == 5 and entry["tflite_latency"]["median_ms"] > 0
    assert offspring["file_bytes"]["tflite"] < ancestor["file_bytes"]["tflite"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: tmp, "no lineage.jsonl"),
    ],
    ids=["missing_dir", "no_lineage"],
)
def test_binary_rejects_bad_workdir_without_traceback(tmp_path, make, message):
    result = _export(f"--workdir={make(tmp_path)}", f"--output={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "evosyn-export: error:" in result.stderr and message in result.stderr
    assert "--workdir" in result.stderr  # names the fix
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
