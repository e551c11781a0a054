"""What the CIFAR-10 benchmark measures beyond the lineage: batch-1 TFLite latency of every
generation's compacted network, and the training throughput of the ancestor against the
compacted best offspring."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import common
import ml_collections
import numpy as np

import tf_evosyn  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn._keras import tf
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.model_io import load_model
from tf_evosyn.loop.recipes import make_compile_fn


def _checkpoint(workdir: Path, generation: int) -> Path | None:
    path = workdir / "generations" / f"gen_{generation:04d}"
    return path if (path / "model.keras").is_file() else None


def measure_latency(
    workdir: Path,
    records: list[dict],
    images: np.ndarray,
    threads: int,
    runs: int,
    warmup: int,
    rounds: int,
) -> dict[int, dict]:
    """Batch-1 TFLite latency of every generation's compacted network (ancestor: its plain
    copy), interleaved over rounds; plus the TFLite-vs-Keras check on real images."""
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="evosyn_cifar_bench_") as tmp:
        files = {}
        for record in records:
            generation = record["generation"]
            path = _checkpoint(workdir, generation)
            if path is None:
                continue
            masked = load_model(path)
            info = common.checked_tflite(
                compact(masked), Path(tmp) / f"gen_{generation:04d}", masked, images
            )
            files[generation] = info["tflite"]
            results[generation] = {
                "tflite_bytes": info["tflite_bytes"],
                "tflite_max_abs_difference": info["tflite_max_abs_difference"],
            }
        shape = (1, *images.shape[1:])
        timings = common.interleaved_tflite_latency(files, shape, threads, runs, warmup, rounds)
    for generation, timing in timings.items():
        results[generation]["round_medians_ms"] = timing["round_medians_ms"]
        results[generation]["median_ms"] = timing["median_ms"]
    return results


def measure_throughput(
    workdir: Path,
    best_generation: int,
    config: ml_collections.ConfigDict,
    data,
    strategy: tf.distribute.Strategy,
    rounds: int = 3,
    warmup_steps: int = 5,
) -> dict:
    """Images/s of one training epoch of the ancestor and of the compacted best offspring:
    the same pipeline, batch size and optimizer (the evolution's), after a warm-up."""
    batch_size = config.train.batch_size
    steps_per_epoch = -(-len(data.train_labels) // batch_size)
    compile_fn = make_compile_fn(config.evolution, 1, steps_per_epoch)
    variants = {"ancestor": 0, "compact_best": best_generation}
    models = {}
    with strategy.scope():
        for name, generation in variants.items():
            model = compact(load_model(_checkpoint(workdir, generation)))
            compile_fn(model)
            warmup = data.train_dataset(batch_size=batch_size, seed=1).take(warmup_steps)
            model.fit(warmup, epochs=1, verbose=0)  # traces the train step
            models[name] = model
    seconds = {name: [] for name in variants}
    for round_index in range(rounds):
        for name, model in models.items():
            dataset = data.train_dataset(batch_size=batch_size, seed=2 + round_index)
            start = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0)
            seconds[name].append(time.perf_counter() - start)
    images = len(data.train_labels)
    result = {
        "batch_size": batch_size,
        "images_per_epoch": images,
        "replicas": int(strategy.num_replicas_in_sync),
        "best_generation": best_generation,
    }
    for name in variants:
        median = float(statistics.median(seconds[name]))
        result[name] = {
            "epoch_seconds": seconds[name],
            "images_per_second": images / median,
            "parameters": int(models[name].count_params()),
        }
    result["speedup"] = (
        result["compact_best"]["images_per_second"] / result["ancestor"]["images_per_second"]
    )
    return result
