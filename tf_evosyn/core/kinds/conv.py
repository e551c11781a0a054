"""Conv1D, Conv2D and Conv3D (grouped too): producers that read input ``c`` through kernel row
``c``; a grouped convolution (``groups > 1``, kind ``GROUPED``) couples every input channel of a
group with the group's output channels, so a group lives, or dies and is removed whole, and the
remaining groups stay equally wide as Keras requires. Conv2D has a latency-model entry."""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import PACKAGE, EvolvableMixin
from tf_evosyn.core.kinds.base import GROUPED, LayerRule, register
from tf_evosyn.core.layer_shape import LayerShape


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv2D(EvolvableMixin, keras.layers.Conv2D):
    """``Conv2D`` whose filters (clusters) and kernel weights (synapses) can die. Grouped
    convolutions too: the channel analysis couples each group's inputs and outputs."""

    plain_type = keras.layers.Conv2D

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding == "causal":
            raise ValueError("EvoConv2D does not support causal padding.")


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv1D(EvolvableMixin, keras.layers.Conv1D):
    """``Conv1D`` (also causal or grouped) whose filters and kernel weights can die."""

    plain_type = keras.layers.Conv1D


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv3D(EvolvableMixin, keras.layers.Conv3D):
    """``Conv3D`` whose filters (clusters) and kernel weights (synapses) can die."""

    plain_type = keras.layers.Conv3D


def _grouped_atoms(groups: int, input_atoms: np.ndarray, output_atoms: np.ndarray):
    """(atoms, atoms) pairs to couple: every input and output channel of one convolution group."""
    gin, gout = len(input_atoms) // groups, len(output_atoms) // groups
    for g in range(groups):
        block = np.concatenate(
            [input_atoms[g * gin : (g + 1) * gin], output_atoms[g * gout : (g + 1) * gout]]
        )
        yield from ((block[0], atom) for atom in block[1:])


class ConvRule(LayerRule):
    """A convolution: a producer, or ``GROUPED`` with ``groups > 1``."""

    tfmot_prunes = True

    def kind(self, layer: keras.layers.Layer) -> tuple[str, str]:
        kind, reason = super().kind(layer)
        if kind == self.channel_kind and getattr(layer, "groups", 1) != 1:
            return GROUPED, ""
        return kind, reason

    def coupled_atoms(self, layer, input_atoms, output_atoms):
        if int(getattr(layer, "groups", 1)) == 1:
            return ()
        return _grouped_atoms(int(layer.groups), input_atoms, output_atoms)

    def compact_weights(self, layer, config, in_keep, out_keep, constants):
        if int(getattr(layer, "groups", 1)) == 1:
            return super().compact_weights(layer, config, in_keep, out_keep, constants)
        return self.grouped_weights(layer, config, in_keep, out_keep)

    def grouped_weights(
        self, layer: keras.layers.Layer, config: dict, in_keep: np.ndarray, out_keep: np.ndarray
    ) -> list[np.ndarray]:
        """Compacted weights of a grouped convolution: whole groups go (their inputs with them)."""
        weights = self.masked_weights(layer)
        groups = int(layer.groups)
        in_groups = in_keep.reshape(groups, -1)
        out_groups = out_keep.reshape(groups, -1)
        whole = (in_groups.all(axis=1) | ~in_groups.any(axis=1)) & (
            out_groups.all(axis=1) | ~out_groups.any(axis=1)
        )
        if not whole.all() or not np.array_equal(in_groups.all(axis=1), out_groups.all(axis=1)):
            raise ValueError(
                f"{layer.name}: grouped convolution would lose part of a group; the channel "
                "analysis couples whole groups, so this is a bug in tf_evosyn."
            )
        config["groups"] = int(out_groups.all(axis=1).sum())
        config["filters"] = int(out_keep.sum())
        new = [weights["kernel"][..., out_keep]]
        if "bias" in weights:
            new.append(weights["bias"][out_keep])
        return new

    def kept_rows_and_clusters(self, layer, in_keep, out_keep):
        if int(getattr(layer, "groups", 1)) != 1:  # whole groups go: each kept one reads all rows
            return None, out_keep
        return super().kept_rows_and_clusters(layer, in_keep, out_keep)


class Conv2DRule(ConvRule):
    """Conv2D, and its latency-model entry ``"conv"`` (square kernel and stride, ungrouped,
    undilated)."""

    latency_kind = "conv"

    def latency_shape(self, layer: keras.layers.Layer) -> LayerShape | None:
        return square_latency_shape(layer, self.latency_kind)

    def timed_layer(self, shape: LayerShape) -> keras.layers.Layer:
        return keras.layers.Conv2D(
            shape.out_channels, shape.kernel, shape.stride, padding=shape.padding
        )


def square_latency_shape(layer: keras.layers.Layer, kind: str) -> LayerShape | None:
    """The latency model's shape of a 2-D (transposed) convolution with a square kernel and
    stride, one group and no dilation (the timed shapes); None for any other."""
    if layer.kernel_size[0] != layer.kernel_size[1] or layer.strides[0] != layer.strides[1]:
        return None
    if layer.groups != 1 or layer.dilation_rate != (1, 1):
        return None
    _, height, width, channels = layer.input_shape
    kernel, stride = layer.kernel_size[0], layer.strides[0]
    return LayerShape(kind, height, width, channels, layer.filters, kernel, stride, layer.padding)


register(Conv2DRule(keras.layers.Conv2D, EvoConv2D))
register(ConvRule(keras.layers.Conv1D, EvoConv1D))
register(ConvRule(keras.layers.Conv3D, EvoConv3D))
