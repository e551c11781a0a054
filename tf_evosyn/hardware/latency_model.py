"""A measured latency model: what each Conv2D, Conv2DTranspose and Dense layer costs on this
machine, by channels.

MACs do not predict latency on dense hardware: XNNPACK computes output channels in tiles (16
floats on x86 with AVX2/AVX-512), so a convolution shrunk from 16 to 13 output channels costs
what 16 cost, while its input channels scale almost linearly. This module times every layer
*shape* alone, as a one-layer TFLite model run by the interpreter (XNNPACK, batch 1, the chosen
threads), and caches the times per machine, so predictions are cheap after the first call.

Measuring command (writes the cache; the cache key is the CPU model and the thread count)::

    python -m tf_evosyn.bin.latency_table --model=resnet56 --threads=1

A model's predicted latency is the sum of its layers' times, each less the cost of invoking the
smallest one-layer model (paid once per invoke, not once per layer); the other ops --
additions, pooling, padding -- are not modelled (their share is reported beside predictions).
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
from pathlib import Path

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.kinds import latency_rule, nearest_rule
from tf_evosyn.core.layer_shape import LayerShape
from tf_evosyn.hardware.latency import tflite_latency
from tf_evosyn.storage import io_utils

_CACHE_ENV = "EVOSYN_LATENCY_CACHE"


_OVERHEAD_SHAPE = LayerShape("dense", 1, 1, 1, 1)


def layer_shapes(model: keras.Model) -> dict[str, LayerShape]:
    """The shape of every timed layer of a plain model: each layer's rule
    (:meth:`tf_evosyn.core.kinds.LayerRule.latency_shape`) says whether and how it is timed
    (Conv2D, Conv2DTranspose and Dense today; depthwise and separable layers are not)."""
    shapes = {}
    for layer in model.layers:
        rule = nearest_rule(layer)
        shape = rule.latency_shape(layer) if rule is not None else None
        if shape is not None:
            shapes[layer.name] = shape
    return shapes


def _one_layer_model(shape: LayerShape) -> keras.Model:
    if shape.kind == "dense":
        inputs = keras.Input((shape.in_channels,))
    else:
        inputs = keras.Input((shape.height, shape.width, shape.in_channels))
    return keras.Model(inputs, latency_rule(shape.kind).timed_layer(shape)(inputs))


def _measure_shape(shape: LayerShape, threads: int = 1, runs: int = 100) -> float:
    """Median ms of one invoke of ``shape`` as a one-layer TFLite model (XNNPACK); with one
    thread the calling thread's CPU time (robust to other processes' load)."""
    model = _one_layer_model(shape)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with tempfile.TemporaryDirectory(prefix="evosyn_layer_") as tmp:
        path = Path(tmp) / "layer.tflite"
        path.write_bytes(converter.convert())
        input_shape = (1, *model.inputs[0].shape[1:])
        result = tflite_latency(path, input_shape, threads, runs=runs, warmup=10)
        return result["cpu_median_ms"] if threads == 1 else result["median_ms"]


def _machine_id(threads: int) -> str:
    """The cache key: CPU model, cores and threads (latency tables do not travel)."""
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"model name\s*:\s*(.+)", text)
        cpu = match.group(1) if match else cpu
    except OSError:
        pass
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{cpu}-{os.cpu_count()}cpu-{threads}t").strip("-")
    return slug.lower()


def _default_cache_dir() -> Path:
    return Path(os.environ.get(_CACHE_ENV, Path.home() / ".cache" / "tf_evosyn" / "latency"))


class LatencyTable:
    """Measured layer times on this machine, cached as JSON (one file per machine/threads)."""

    def __init__(self, threads: int = 1, cache_dir: str | Path | None = None, runs: int = 100):
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}.")
        self.threads = int(threads)
        self.runs = int(runs)
        self.path = Path(cache_dir or _default_cache_dir()) / f"{_machine_id(self.threads)}.json"
        self.times: dict[str, float] = {}
        if self.path.is_file():
            self.times = dict(json.loads(self.path.read_text())["times_ms"])
        self._dirty = False

    def raw_latency(self, shape: LayerShape) -> float:
        """Median ms of an invoke of ``shape`` alone (measured once, then read from the cache)."""
        key = shape.key()
        if key not in self.times:
            self.times[key] = _measure_shape(shape, self.threads, self.runs)
            self._dirty = True
        return self.times[key]

    def overhead(self) -> float:
        """Ms of invoking the smallest model (Dense 1 -> 1): paid once per invoke, not per layer."""
        return self.raw_latency(_OVERHEAD_SHAPE)

    def latency(self, shape: LayerShape) -> float:
        """Ms ``shape`` adds to a model's invoke: its time alone minus the invoke overhead."""
        return max(self.raw_latency(shape) - self.overhead(), 0.0)

    def save(self) -> None:
        if self._dirty:
            io_utils.atomic_write_json(
                self.path,
                {
                    "machine": _machine_id(self.threads),
                    "threads": self.threads,
                    "times_ms": self.times,
                },
            )
            self._dirty = False

    def predict(self, model: keras.Model) -> dict[str, float]:
        """Layer name -> predicted ms for every modelled layer of a plain (compacted) model."""
        times = {name: self.latency(shape) for name, shape in layer_shapes(model).items()}
        self.save()
        return times


def predicted_speedup(table: LatencyTable, ancestor: keras.Model, offspring: keras.Model) -> float:
    """Sum of the ancestor's modelled layer times over the offspring's."""
    return float(sum(table.predict(ancestor).values()) / sum(table.predict(offspring).values()))
