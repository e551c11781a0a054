"""What the latency breakdowns share: a model's TFLite ops, which of them XNNPACK runs, each Keras
layer timed alone, and whole models timed in interleaved rounds.

The pip interpreter has no op profiler, so an op's cost is estimated by timing its Keras layer
alone as a one-layer TFLite model at the shapes it sees in the network (as
tf_evosyn.hardware.latency_model does for Conv2D/Dense) less the cost of invoking the smallest
model.
With 1 thread every time is the invoking thread's CPU time (a loaded machine's waits left out).
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import common

from tf_evosyn._keras import keras, tf
from tf_evosyn.export.artifacts import convert_to_tflite, save_serving_model
from tf_evosyn.hardware.latency import tflite_latency

DELEGATE = "DELEGATE"


def export_tflite(model: keras.Model, directory: str | Path) -> Path:
    """``model`` as deployed (serving SavedModel -> float TFLite): ``directory/model.tflite``."""
    directory = Path(directory)
    saved = save_serving_model(model, directory / "saved_model")
    return convert_to_tflite(saved, directory / "model.tflite")


def _ops(path: str | Path, threads: int = 1) -> list[dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()  # applies the default XNNPACK delegate
    return interpreter._get_ops_details()


def op_histogram(path: str | Path) -> dict[str, int]:
    """TFLite op name -> count, as converted (before any delegate)."""
    return dict(
        collections.Counter(op["op_name"] for op in _ops(path) if op["op_name"] != DELEGATE)
    )


def delegation(path: str | Path) -> dict:
    """Which ops XNNPACK takes: ``{"partitions": n, "undelegated": [op names in graph order]}``.

    After delegation the interpreter lists the original ops and one DELEGATE node per partition;
    a partition holds every op between its inputs and its outputs, so the ops reached walking
    back from its outputs (stopping at its inputs) are delegated and the others run as builtins.
    """
    ops = _ops(path)
    producer = {t: op["index"] for op in ops if op["op_name"] != DELEGATE for t in op["outputs"]}
    inside: set[int] = set()
    partitions = [op for op in ops if op["op_name"] == DELEGATE]
    for partition in partitions:
        stop, stack = set(partition["inputs"]), list(partition["outputs"])
        while stack:
            tensor = stack.pop()
            if tensor in stop or tensor not in producer or producer[tensor] in inside:
                continue
            inside.add(producer[tensor])
            stack.extend(ops[producer[tensor]]["inputs"])
    undelegated = [
        op["op_name"] for op in ops if op["op_name"] != DELEGATE and op["index"] not in inside
    ]
    return {"partitions": len(partitions), "undelegated": undelegated}


def one_layer_model(layer: keras.layers.Layer) -> keras.Model:
    """A fresh copy of ``layer`` (same config and weights) on inputs of the shapes it sees."""
    shapes = layer.input_shape if isinstance(layer.input_shape, list) else [layer.input_shape]
    inputs = [keras.Input(tuple(shape[1:])) for shape in shapes]
    fresh = type(layer).from_config(layer.get_config())
    outputs = fresh(inputs if len(inputs) > 1 else inputs[0])
    if layer.weights:
        fresh.set_weights(layer.get_weights())
    return keras.Model(inputs, outputs)


def layer_ms(layer: keras.layers.Layer, threads: int = 1, runs: int = 50) -> float:
    """Median ms of ``layer`` alone as a one-layer TFLite model (invoke overhead included)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(one_layer_model(layer))
    with tempfile.TemporaryDirectory(prefix="evosyn_op_") as tmp:
        path = Path(tmp) / "layer.tflite"
        path.write_bytes(converter.convert())
        result = tflite_latency(path, None, threads, runs, warmup=5)
        return result["cpu_median_ms" if threads == 1 else "median_ms"]


def interleaved_ms(
    paths: dict[str, Path],
    input_shape: tuple[int, ...],
    threads: int,
    rounds: int,
    runs: int,
    warmup: int = 3,
) -> dict[str, list[float]]:
    """name -> per-round median ms of each model, the models interleaved in every round (so a
    change of load hits all alike); 1 thread: CPU time, more threads: wall time."""
    timings = common.interleaved_tflite_latency(paths, input_shape, threads, runs, warmup, rounds)
    key = "round_cpu_medians_ms" if threads == 1 else "round_medians_ms"
    return {name: timing[key] for name, timing in timings.items()}
