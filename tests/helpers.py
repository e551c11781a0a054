"""Helpers shared by tests: real images, random BatchNorm statistics, exactness, and running
the binaries as subprocesses (start, kill, read the lineage).

Kept out of conftest.py on purpose: these are plain functions, imported where they are used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tf_evosyn._keras import tf
from tf_evosyn.loop.lineage import without_timing
from tf_evosyn.zoo import plain_params, randomize_batchnorm
from tf_evosyn.zoo import relative_difference as zoo_relative_difference

__all__ = [
    "adam_compile",
    "assert_compacts_exactly",
    "binary_command",
    "binary_env",
    "cifar_images",
    "plain_params",
    "random_bn",
    "read_lineage",
    "relative_difference",
    "residual",
    "run_and_kill",
    "run_binary",
    "small_evolution",
    "without_timing",
]

CIFAR_SUBSET = Path("cifar10_subset") / "cifar10_data_batch_1_first4000.npz"


def cifar_images(datasets_dir: Path, count: int = 32, size: int = 32) -> np.ndarray:
    """The first ``count`` images of the real CIFAR-10 subset in [0, 1], resized to ``size``."""
    path = datasets_dir / CIFAR_SUBSET
    if not path.is_file():
        pytest.fail(f"real CIFAR-10 subset {path} not found")
    with np.load(path) as data:
        images = data["x"][:count].astype(np.float32) / 255.0
    if size != images.shape[1]:
        images = tf.image.resize(images, (size, size)).numpy()
    return images


# Non-trivial BatchNorm statistics (random gamma, beta, moving mean and variance), so that dead
# channels emit non-zero constants that compaction must fold; nested models too.
random_bn = randomize_batchnorm


def relative_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| / max |expected|, refusing an all-zero (vacuous) reference."""
    assert np.abs(expected).max() > 0, "the reference output is all zeros: the check is vacuous"
    return zoo_relative_difference(expected, actual)


# -- the binaries, run as a user runs them (subprocesses from the repository root) ---------------
REPO = Path(__file__).resolve().parent.parent


def binary_command(module: str, config: Path, workdir: Path, *overrides: str) -> list[str]:
    """``python -m tf_evosyn.bin.<module> --config=... --workdir=... [overrides]``."""
    return [
        sys.executable,
        "-m",
        f"tf_evosyn.bin.{module}",
        f"--config={config}",
        f"--workdir={workdir}",
        *overrides,
    ]


def binary_env(datasets_dir: Path) -> dict:
    return dict(os.environ, EVOSYN_DATA_DIR=str(datasets_dir), TF_CPP_MIN_LOG_LEVEL="2")


def run_binary(
    args: list[str], datasets_dir: Path, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run ``args``; with ``check`` a non-zero exit fails with the end of its stderr."""
    result = subprocess.run(
        args,
        env=binary_env(datasets_dir),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"binary failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def read_lineage(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(workdir) / "lineage.jsonl").read_text().splitlines()]


def run_and_kill(
    args: list[str], datasets_dir: Path, workdir: Path, lines_before_kill: int, timeout: float
) -> None:
    """Start ``args`` and SIGKILL it once lineage.jsonl has ``lines_before_kill`` lines."""
    process = subprocess.Popen(
        args,
        env=binary_env(datasets_dir),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lineage = Path(workdir) / "lineage.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if lineage.exists() and len(lineage.read_text().splitlines()) >= lines_before_kill:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()


# -- a small evolution in Python (the loop's tests) ----------------------------------------------
def adam_compile(model, epochs=None) -> None:
    """Adam 1e-3 on logits; ``epochs`` is accepted (and ignored) like the recipes' compile."""
    from tf_evosyn._keras import keras

    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def small_evolution(workdir, data, compile_fn=adam_compile, **settings):
    """An Evolution on a small real data set: 2 generations of 1 epoch, tolerant acceptance,
    decisions on the first 256 test images (``settings`` override any of it)."""
    from tf_evosyn import Evolution, EvolutionSettings

    knobs = dict(
        generations=2,
        epochs_per_generation=1,
        accuracy_tolerance=0.5,
        seed=5,
        fit_verbose=0,
        tensorboard_fit_logs=False,
    )
    knobs.update(settings)
    return Evolution(
        workdir,
        compile_fn=compile_fn,
        train_data=lambda seed: data.train_dataset(batch_size=64, seed=seed),
        test_data=data.test_dataset(256),
        validation_data=data.test_dataset(256).take(1),
        settings=EvolutionSettings(**knobs),
    )


def residual(width: int = 24):
    """Stem + one identity block + a projection block: coupled families of width 24 and 40."""
    from tf_evosyn._keras import keras

    layers = keras.layers

    def conv_bn(x, filters, name, strides=1, kernel=3):
        x = layers.Conv2D(filters, kernel, strides, padding="same", name=name)(x)
        return layers.BatchNormalization(name=f"{name}_bn")(x)

    inputs = keras.Input((16, 16, 3))
    x = layers.ReLU()(conv_bn(inputs, width, "stem"))
    y = conv_bn(layers.ReLU()(conv_bn(x, width, "b1_conv1")), width, "b1_conv2")
    x = layers.ReLU()(layers.Add()([x, y]))
    y = conv_bn(layers.ReLU()(conv_bn(x, 40, "b2_conv1", strides=2)), 40, "b2_conv2")
    x = layers.ReLU()(layers.Add()([conv_bn(x, 40, "b2_proj", 2, 1), y]))
    outputs = layers.Dense(10, name="logits")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def assert_compacts_exactly(model, images: np.ndarray) -> None:
    """The compacted model computes what the masked one does, and drops every dead cluster."""
    from tf_evosyn.compaction.plan import compact, plan_compaction

    assert not plan_compaction(model).kept_dead
    expected = model(images, training=False).numpy()
    actual = compact(model)(images, training=False).numpy()
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)


def gt_image(objects):
    """One image's KITTI ground truth from (type name, box, truncated, occluded) tuples."""
    from tf_evosyn.detection.kitti_types import KITTI_TYPE_INDEX

    return {
        "boxes": np.array([o[1] for o in objects], np.float32).reshape(-1, 4),
        "types": np.array([KITTI_TYPE_INDEX[o[0]] for o in objects], np.int32),
        "truncated": np.array([o[2] for o in objects], np.float32),
        "occluded": np.array([o[3] for o in objects], np.int32),
    }


def det_image(boxes, scores, classes=None):
    """One image's detections (keras-cv dict) from boxes, scores and class indices."""
    return {
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
        "confidence": np.array(scores, np.float32),
        "classes": np.zeros(len(scores), np.int64) if classes is None else np.array(classes),
    }
