"""DepthwiseConv2D: output channel ``c * m + j`` lives and dies with the input channel ``c`` it
reads (kind ``DEPTHWISE``); its matrix kernel is ``(kh, kw, 1, C * m)``. A channel whose taps
are all zero (dead in an evolvable layer) emits its bias whatever it reads. DepthwiseConv1D has
no twin: its rule counts MACs only (the channel analysis treats it as a barrier)."""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import PACKAGE, EvolvableMixin
from tf_evosyn.core.kinds.base import DEPTHWISE, LayerRule, register, spatial_axes


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoDepthwiseConv2D(EvolvableMixin, keras.layers.DepthwiseConv2D):
    """``DepthwiseConv2D`` whose output channels (clusters, each coupled with the input channel it
    reads) and kernel taps (synapses) can die. Matrix kernel: ``(kh, kw, 1, C * m)``."""

    plain_type = keras.layers.DepthwiseConv2D
    kernel_attr = "depthwise_kernel"
    weight_attrs = ("depthwise_kernel", "bias")

    @classmethod
    def matrix_shape_of(cls, shape) -> tuple[int, ...]:
        kh, kw, channels, multiplier = (int(d) for d in shape)
        return (kh, kw, 1, channels * multiplier)


class DepthwiseRule(LayerRule):
    channel_kind = DEPTHWISE

    def output_atoms(self, layer, input_atoms: np.ndarray) -> np.ndarray:
        return np.repeat(input_atoms, int(layer.depth_multiplier))

    def compact_weights(self, layer, config, in_keep, out_keep, constants):
        """The kept input channels (and their ``m`` outputs each)."""
        weights = self.masked_weights(layer)
        new = [weights["depthwise_kernel"][..., in_keep, :]]
        if "bias" in weights:
            m = weights["depthwise_kernel"].shape[-1]
            new.append(weights["bias"].reshape(-1, m)[in_keep].reshape(-1))
        return new

    def output_constants(self, layer, k: np.ndarray, pads: bool) -> np.ndarray:
        """Output constants for input constants ``k``; with zero padding a channel is constant
        only where its input is exactly 0."""
        weights = self.masked_weights(layer)
        kernel = weights["depthwise_kernel"]  # (*taps, C, m)
        m = kernel.shape[-1]
        bias = weights.get("bias", np.zeros(kernel.shape[-2] * m)).astype(np.float64)
        ks = np.repeat(k, m)
        taps = spatial_axes(kernel)
        sums = kernel.sum(axis=taps).reshape(-1).astype(np.float64)
        silent = ~np.any(kernel != 0, axis=taps).reshape(-1)
        out = np.where(ks == 0, bias, np.nan) if pads else ks * sums + bias
        return np.where(silent, bias, out)

    def kept_rows_and_clusters(self, layer, in_keep, out_keep):
        return None, np.repeat(in_keep, int(layer.depth_multiplier))

    def output_channels(self, layer) -> int:
        shape = layer.depthwise_kernel.shape
        return int(shape[-2] * shape[-1])

    def mac_weights(self, layer) -> int:
        return int(np.prod(layer.depthwise_kernel.shape))


register(DepthwiseRule(keras.layers.DepthwiseConv2D, EvoDepthwiseConv2D))
register(DepthwiseRule(keras.layers.DepthwiseConv1D))  # MACs only: no twin yet
