"""Latency of exported models: TFLite (XNNPACK) per invoke and SavedModel per call."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from tf_evosyn._keras import tf

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "images"


def _interpreter(tflite_path: str | Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(tflite_path), num_threads=threads)


def _summary(seconds: list[float], cpu_seconds: list[float] | None = None) -> dict:
    ms = np.asarray(seconds) * 1e3
    summary = {
        "median_ms": float(statistics.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "runs": len(ms),
    }
    if cpu_seconds is not None:
        summary["cpu_median_ms"] = float(statistics.median(cpu_seconds)) * 1e3
    return summary


def tflite_latency(
    tflite_path: str | Path,
    input_shape: tuple[int, ...] | None,
    threads: int = 1,
    runs: int = 200,
    warmup: int = 20,
) -> dict:
    """Per-invoke latency of a TFLite model (XNNPACK, the default delegate), inputs filled once.

    ``input_shape`` includes the batch axis, e.g. (1, 28, 28, 1), and resizes the (single) input;
    None keeps every input at the shape the model declares (models with several inputs).
    Returns median_ms, p90_ms, runs and cpu_median_ms (the invoking thread's CPU time).
    """
    interpreter = _interpreter(tflite_path, threads)
    inputs = interpreter.get_input_details()
    if input_shape is not None:
        interpreter.resize_tensor_input(inputs[0]["index"], list(input_shape), strict=False)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], rng.random(detail["shape"], dtype=np.float32))
    for _ in range(warmup):
        interpreter.invoke()
    seconds, cpu_seconds = [], []
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), time.thread_time()
        interpreter.invoke()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.thread_time() - cpu_start)
    return _summary(seconds, cpu_seconds)


def savedmodel_latency(
    saved_model_dir: str | Path,
    input_shape: tuple[int, ...],
    runs: int = 200,
    warmup: int = 20,
) -> dict:
    """Per-call latency of the ``serving_default`` signature (eager call, result materialised).

    TF's thread pools are process-wide: set ``tf.config.threading`` before TF initialises to
    control them. Returns median_ms, p90_ms, runs.
    """
    serve = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE_KEY]
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random(input_shape, dtype=np.float32))
    for _ in range(warmup):
        _materialise(serve(**{INPUT_NAME: images}))
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        _materialise(serve(**{INPUT_NAME: images}))
        seconds.append(time.perf_counter() - start)
    return _summary(seconds)


def _materialise(outputs: dict) -> None:
    for value in outputs.values():
        value.numpy()
