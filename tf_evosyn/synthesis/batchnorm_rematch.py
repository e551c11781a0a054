"""Re-match an offspring's frozen BatchNorm statistics to its parent's, before fine-tuning.

Why: a frozen BatchNorm layer (``trainable=False``, as a pretrained trunk fine-tuned on a few
images keeps it) normalises with fixed moving statistics. When the layers before it lose filters
and synapses its input shifts and shrinks, the fixed statistics no longer fit, and every later
layer sees a distorted input that fine-tuning cannot re-estimate (the statistics are not trained).
On KITTI's MobileNetV2 DetectNet, 5% of the filters removed by L1 norm take validation Car AP
from 19.9% to 0.7%; re-matched, 6.1%; after 10 epochs of fine-tuning 22.9% against 14.5%.
Inside that config's evolution loop (heredity draws, distillation) it did not help, so the
config leaves it off (docs/detection.md).

Method. For a frozen BatchNorm layer with scale g, offset b and epsilon e, let m and s be the
per-channel mean and standard deviation of the offspring's input to it, and M and S those of
the parent's output of it, over the calibration images and every position. Its new statistics

    sqrt(var' + e) = |g| s / S,        mean' = m - sign(g) (M - b) s / S

give the offspring's output the parent's mean M and standard deviation S per channel. On an
unchanged network they are the layer's own statistics (the re-match is the identity). The layers
are re-matched in topological order within one forward pass (each sees its input after the
layers before it were re-matched). A channel keeps its statistics where the offspring's input is
constant (a dead cluster, s ~ 0), the parent's output is constant (S ~ 0) or g ~ 0.

Trainable BatchNorm layers are left alone: fine-tuning re-estimates their statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
from absl import logging

from tf_evosyn._keras import keras, tf

# Below this a standard deviation counts as a constant channel (a dead cluster reads zeros).
_MIN_STD = 1e-5
_MIN_ABS_GAMMA = 1e-8


def frozen_batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's non-trainable BatchNorm layers, nested models included, in a stable order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)  # noqa: SLF001
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.trainable
    ]


def calibration_inputs(
    data: tf.data.Dataset | Callable[[int], tf.data.Dataset], count: int, seed: int = 0
):
    """The first ``count`` inputs of a batched ``(inputs, targets, ...)`` dataset (or of
    ``data(seed)``), concatenated: the images both networks are measured on."""
    if count < 1:
        raise ValueError(f"calibration needs at least 1 image, got count={count}.")
    dataset = data(seed) if callable(data) else data
    parts, seen = [], 0
    for element in dataset:
        inputs = element[0] if isinstance(element, (tuple, list)) else element
        parts.append(inputs)
        seen += int(tf.shape(tf.nest.flatten(inputs)[0])[0])
        if seen >= count:
            break
    if not parts:
        raise ValueError("calibration_inputs got an empty dataset; pass the training data.")
    return tf.nest.map_structure(lambda *batches: tf.concat(batches, 0)[:count], *parts)


def rematch_batchnorm(parent: keras.Model, offspring: keras.Model, inputs) -> int:
    """Re-match ``offspring``'s frozen BatchNorm layers to ``parent`` on ``inputs`` (in place).

    Parent and offspring must have the same frozen BatchNorm layers (names and channel counts):
    call it on the masked offspring, before it is compacted. ``inputs`` go through each network
    as one batch (every layer needs the statistics of all of them before its output is used),
    so memory grows with their number: 16 KITTI images at 1248x384 fit in 24 GB here, 61 did
    not. Returns the number of layers re-matched."""
    parent_layers = frozen_batchnorm_layers(parent)
    offspring_layers = frozen_batchnorm_layers(offspring)
    _check_pairs(parent_layers, offspring_layers)
    if not offspring_layers:
        return 0
    targets: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def record_output(index: int, layer, call, inputs_, kwargs):
        outputs = call(inputs_, **kwargs)
        targets.setdefault(index, _moments(layer, outputs))
        return outputs

    with _intercepted_calls(parent_layers, record_output):
        parent(inputs, training=False)
    if len(targets) != len(parent_layers):
        missing = [parent_layers[i].name for i in range(len(parent_layers)) if i not in targets]
        raise ValueError(f"the parent's forward pass never reached BatchNorm layers {missing}.")

    done: set[int] = set()

    def rematch_then_call(index: int, layer, call, inputs_, kwargs):
        if index not in done:  # a shared layer is re-matched at its first call only
            _set_statistics(layer, _moments(layer, inputs_), targets[index])
            done.add(index)
        return call(inputs_, **kwargs)

    with _intercepted_calls(offspring_layers, rematch_then_call):
        offspring(inputs, training=False)
    logging.info("Re-matched %d frozen BatchNorm layer(s) to the parent.", len(done))
    return len(done)


def _check_pairs(parent_layers: list, offspring_layers: list) -> None:
    names = ([layer.name for layer in parent_layers], [layer.name for layer in offspring_layers])
    if names[0] != names[1]:
        raise ValueError(
            f"parent and offspring have different frozen BatchNorm layers ({names[0][:5]}... "
            f"against {names[1][:5]}...): re-match the offspring its parent bred, before "
            f"compacting it."
        )
    for ours, theirs in zip(parent_layers, offspring_layers, strict=True):
        if ours.moving_mean.shape != theirs.moving_mean.shape:
            raise ValueError(
                f"BatchNorm {ours.name} has {ours.moving_mean.shape} channels in the parent and "
                f"{theirs.moving_mean.shape} in the offspring: re-match before compacting."
            )


@contextmanager
def _intercepted_calls(layers: list, hook):
    """Route each layer's ``call`` through ``hook(index, layer, call, inputs, kwargs)``."""
    try:
        for index, layer in enumerate(layers):
            call = layer.call

            def intercepted(inputs_, _index=index, _layer=layer, _call=call, **kwargs):
                return hook(_index, _layer, _call, inputs_, kwargs)

            layer.call = intercepted
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)


def _moments(layer, tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over every axis but the layer's own."""
    rank = tensor.shape.rank
    kept = {axis % rank for axis in layer.axis}
    axes = [axis for axis in range(rank) if axis not in kept]
    mean, variance = tf.nn.moments(tf.cast(tensor, tf.float64), axes=axes)
    return mean.numpy(), np.sqrt(np.maximum(variance.numpy(), 0.0))


def _set_statistics(layer, offspring_input, parent_output) -> None:
    mean_in, std_in = offspring_input
    mean_out, std_out = parent_output
    shape = layer.moving_mean.shape
    gamma = layer.gamma.numpy().astype(np.float64) if layer.scale else np.ones(shape)
    beta = layer.beta.numpy().astype(np.float64) if layer.center else np.zeros(shape)
    eps = float(layer.epsilon)
    matchable = (std_in > _MIN_STD) & (std_out > _MIN_STD) & (np.abs(gamma) > _MIN_ABS_GAMMA)
    safe_std_out = np.where(matchable, std_out, 1.0)
    scale = np.abs(gamma) * std_in / safe_std_out  # sqrt(var' + eps)
    new_var = np.maximum(scale**2 - eps, 0.0)
    new_mean = mean_in - np.sign(gamma) * (mean_out - beta) * std_in / safe_std_out
    old_mean = layer.moving_mean.numpy()
    old_var = layer.moving_variance.numpy()
    dtype = layer.moving_mean.dtype
    layer.moving_mean.assign(tf.cast(np.where(matchable, new_mean, old_mean), dtype))
    layer.moving_variance.assign(tf.cast(np.where(matchable, new_var, old_var), dtype))
