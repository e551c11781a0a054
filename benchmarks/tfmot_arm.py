"""The TF-MOT arm of the benchmarks: a plain model's Conv2D/Dense layers wrapped in
``prune_low_magnitude``, the schedules (PolynomialDecay to a sparsity, or 2:4), fine-tuning with
``UpdatePruningStep`` then ``strip_pruning``, what survives (non-zero weights and channels), and
a cache of finished arms so a killed benchmark resumes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import ml_collections
from absl import logging
from common import BenchmarkError

import tf_evosyn  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn._keras import keras, tf
from tf_evosyn.data import ClassificationData
from tf_evosyn.export.artifacts import plain_copy
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.loop.recipes import make_compile_fn
from tf_evosyn.storage import io_utils
from tf_evosyn.tasks.classification import evaluate_accuracy

KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)


@dataclass
class Arm:
    """One TF-MOT configuration."""

    name: str
    sparsity: float | None  # PolynomialDecay final sparsity; None for 2:4
    m_by_n: tuple[int, int] | None = None


def parse_arms(sparsities: list[str], m_by_n: bool) -> list[Arm]:
    arms = []
    for text in sparsities:
        try:
            value = float(text)
        except ValueError:
            raise BenchmarkError(
                f"--sparsities: {text!r} is not a number; pass e.g. --sparsities=0.9,0.99."
            ) from None
        if not 0.0 < value < 1.0:
            raise BenchmarkError(f"--sparsities: {value} is outside (0, 1); e.g. 0.99 = 99% zeros.")
        arms.append(Arm(f"tfmot poly {value:g}", value))
    if len({a.name for a in arms}) != len(arms):
        raise BenchmarkError(f"--sparsities has duplicates: {sparsities}.")
    if m_by_n:
        arms.append(Arm("tfmot 2:4", None, (2, 4)))
    if not arms:
        raise BenchmarkError("No TF-MOT arm: pass --sparsities=... and/or --m_by_n=true.")
    return arms


def prune_wrapped(plain: keras.Model, **prune_kwargs) -> keras.Model:
    """``plain`` with every Conv2D/Dense wrapped in ``prune_low_magnitude(**prune_kwargs)``.

    ``plain`` is consumed: its layers are wrapped in place (TF-MOT's documented clone pattern).
    """
    import tensorflow_model_optimization as tfmot  # after tf_evosyn has selected Keras 2

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, KERNEL_LAYERS):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, **prune_kwargs)
        return layer

    return keras.models.clone_model(plain, clone_function=wrap)


def polynomial_steps(total_steps: int) -> tuple[int, int]:
    """(end_step, frequency): end ~70% into training, frequency 100 (fewer for tiny runs).

    end_step is a multiple of frequency so the last mask update lands exactly on the final
    sparsity (TF-MOT only prunes at begin_step + k * frequency, k >= 0, up to end_step).
    """
    target = max(1, int(0.7 * total_steps))
    frequency = min(100, max(1, target // 10))
    return max(frequency, target // frequency * frequency), frequency


def tfmot_schedule(arm: Arm, total_steps: int) -> tuple[dict, dict]:
    """prune_low_magnitude keyword arguments and a JSON description of them."""
    import tensorflow_model_optimization as tfmot  # after tf_evosyn has selected Keras 2

    sparsity = tfmot.sparsity.keras
    if arm.m_by_n is not None:
        schedule = sparsity.ConstantSparsity(0.5, begin_step=0, frequency=100)
        return (
            {"pruning_schedule": schedule, "sparsity_m_by_n": arm.m_by_n},
            {"schedule": schedule.get_config(), "sparsity_m_by_n": list(arm.m_by_n)},
        )
    end_step, frequency = polynomial_steps(total_steps)
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=arm.sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )
    return {"pruning_schedule": schedule}, {"schedule": schedule.get_config()}


def kernel_counts(model: keras.Model) -> dict:
    """Non-zero kernel weights and channels with any, per Conv2D/Dense layer and in total.

    ``sparse_macs``: MACs if a sparse engine skipped every zero weight (for information).
    """
    flops = count_flops(model)
    layers = []
    for layer in model.layers:
        if not isinstance(layer, KERNEL_LAYERS):
            continue
        kernel = layer.kernel.numpy()
        nonzero = kernel != 0
        size = int(kernel.size)
        dense_macs = flops.layer(layer.name).dense_macs
        layers.append(
            {
                "name": layer.name,
                "synapses": int(nonzero.sum()),
                "total_synapses": size,
                "clusters": int(nonzero.reshape(-1, kernel.shape[-1]).any(axis=0).sum()),
                "total_clusters": int(kernel.shape[-1]),
                "sparse_macs": dense_macs * int(nonzero.sum()) // size,
            }
        )
    return {
        "synapses": sum(x["synapses"] for x in layers),
        "clusters": sum(x["clusters"] for x in layers),
        "sparse_macs": sum(x["sparse_macs"] for x in layers),
        "layers": layers,
    }


def train_tfmot_arm(
    ancestor: keras.Model,
    arm: Arm,
    data: ClassificationData,
    test_data: tf.data.Dataset,
    config: ml_collections.ConfigDict,
    epochs: int,
    seed: int,
    fit_verbose: int = 2,
) -> tuple[keras.Model, dict]:
    """Prune a plain copy of ``ancestor`` with TF-MOT while fine-tuning; the stripped model."""
    import tensorflow_model_optimization as tfmot

    batch_size = config.train.batch_size
    steps_per_epoch = -(-len(data.train_labels) // batch_size)
    kwargs, described = tfmot_schedule(arm, epochs * steps_per_epoch)

    # plain_copy: the ancestor's weights in plain layers (consumed: wrapped in place).
    model = prune_wrapped(plain_copy(ancestor), **kwargs)
    keras.utils.set_random_seed(seed)
    make_compile_fn(config.evolution, epochs, steps_per_epoch)(model)
    start = time.time()
    history = model.fit(
        data.train_dataset(batch_size=batch_size, seed=seed),
        epochs=epochs,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), keras.callbacks.TerminateOnNaN()],
        verbose=fit_verbose,
    )
    fit_seconds = time.time() - start
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    accuracy = evaluate_accuracy(stripped, test_data)
    losses = history.history.get("loss", [])
    return stripped, {
        "accuracy": accuracy,
        "train_seconds": time.time() - start,
        "fit_seconds": fit_seconds,
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "final_loss": float(losses[-1]) if losses else None,
        "seed": seed,
        "pruning": described,
    }


def cached_arm(folder: Path | None, key: dict) -> tuple[keras.Model, dict] | None:
    if folder is None or not (folder / "record.json").is_file():
        return None
    record = io_utils.read_json(folder / "record.json")
    if record.get("key") != json.loads(io_utils.dumps_json(key)):
        logging.info("%s holds an arm trained with other settings; retraining it.", folder)
        return None
    return keras.models.load_model(folder / "model.keras", compile=False), record["result"]


def store_arm(folder: Path, key: dict, model: keras.Model, result: dict) -> None:
    def write(tmp: Path) -> None:
        model.save(tmp / "model.keras")
        io_utils.atomic_write_json(tmp / "record.json", {"key": key, "result": result})

    folder.parent.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_replace_dir(folder, write)


def tfmot_version() -> str:
    import tensorflow_model_optimization as tfmot

    return getattr(tfmot, "__version__", "unknown")
