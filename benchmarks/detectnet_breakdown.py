"""DetectNet's op families and CrossChannelLRN's two lowerings, for the latency breakdown
(benchmarks/latency_breakdown_detectnet.py; kept free of flags so tests can import it)."""

from __future__ import annotations

import collections

import numpy as np
import tflite_ops

from tf_evosyn._keras import keras
from tf_evosyn.hardware.latency_model import LatencyTable, layer_shapes
from tf_evosyn.models.detectnet import HEAD_LAYERS
from tf_evosyn.models.lrn import CrossChannelLRN

STEM_CONVS = ("conv1_7x7_s2", "conv2_3x3_reduce", "conv2_3x3")  # full resolution, before 3a
FAMILIES = (
    "stem conv",
    "inception conv",
    "head conv",
    "LRN",
    "max pool",
    "concat",
    "pad+mean",
    "sigmoid",
)


class BuiltinLRN(CrossChannelLRN):
    """CrossChannelLRN computed by TF's LRN op (TFLite: builtin LOCAL_RESPONSE_NORMALIZATION),
    as the layer did before; the benchmark's "before" lowering."""

    def call(self, inputs):
        return self.tf_lrn(inputs)


def with_builtin_lrn(model: keras.Model) -> keras.Model:
    """``model`` with every CrossChannelLRN computed by TF's LRN op (same weights)."""

    def clone(layer):
        if isinstance(layer, CrossChannelLRN):
            return BuiltinLRN.from_config(layer.get_config())
        return type(layer).from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def family(layer: keras.layers.Layer) -> str | None:
    """The op family a layer lowers to, or None for layers that vanish (input, dropout)."""
    if isinstance(layer, keras.layers.Conv2D):
        if layer.name in STEM_CONVS:
            return "stem conv"
        return "head conv" if layer.name in HEAD_LAYERS else "inception conv"
    kinds = {
        CrossChannelLRN: "LRN",
        keras.layers.MaxPooling2D: "max pool",
        keras.layers.Concatenate: "concat",
        keras.layers.ZeroPadding2D: "pad+mean",
        keras.layers.Rescaling: "pad+mean",
    }
    for kind, name in kinds.items():
        if isinstance(layer, kind):
            return name
    if isinstance(layer, keras.layers.Activation):
        return "sigmoid" if layer.get_config()["activation"] == "sigmoid" else None
    return None


def family_ms(model: keras.Model, table: LatencyTable, runs: int) -> dict[str, float]:
    """Family -> summed 1-thread ms of its layers, each alone, less the invoke overhead."""
    convs = {name: table.latency(shape) for name, shape in layer_shapes(model).items()}
    times = collections.defaultdict(float)
    for layer in model.layers:
        kind = family(layer)
        if kind is None:
            continue
        if layer.name in convs:
            times[kind] += convs[layer.name]
        else:
            times[kind] += max(tflite_ops.layer_ms(layer, 1, runs) - table.overhead(), 0.0)
    table.save()
    return {kind: times.get(kind, 0.0) for kind in FAMILIES}


def lrn_ms(model: keras.Model, table: LatencyTable, runs: int) -> float:
    """Summed 1-thread ms of the model's LRN layers, each alone, less the invoke overhead."""
    return sum(
        max(tflite_ops.layer_ms(layer, 1, runs) - table.overhead(), 0.0)
        for layer in model.layers
        if isinstance(layer, CrossChannelLRN)
    )


def max_relative_difference(a: keras.Model, b: keras.Model) -> float:
    """Largest |a - b| over an output's largest |a|, both outputs, one random [0, 255] image."""
    image = np.random.default_rng(0).uniform(0, 255, (1, *a.inputs[0].shape[1:]))
    image = image.astype(np.float32)
    return max(
        float(np.max(np.abs(x.numpy() - y.numpy())) / np.max(np.abs(x.numpy())))
        for x, y in zip(a(image), b(image), strict=True)
    )
