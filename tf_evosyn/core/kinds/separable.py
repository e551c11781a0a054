"""SeparableConv2D: a producer whose input channel ``c`` is read through depthwise channels
``c * m + j`` and pointwise rows ``c * m + j``. Its pointwise filters are the clusters; its
depthwise taps are synapses shared by every cluster, with a mask and heredity of their own.
Removing an input channel slices both kernels, and a dead input's constant folds through both
into the bias. Every rule here works for any rank (SeparableConv1D: :mod:`.separable1d`)."""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.evolvable_base import PACKAGE, EvolvableMixin
from tf_evosyn.core.kinds.base import LayerRule, finish_producer, register, spatial_axes


class SeparableEvolvable(EvolvableMixin):
    """An evolvable separable convolution: its pointwise filters are the clusters (matrix
    kernel: the pointwise kernel, whose rows ``c * m + j`` read input channel ``c``), and its
    depthwise taps are synapses shared by every cluster, with their own mask
    (``depthwise_mask``) and heredity (``depthwise_heredity``)."""

    kernel_attr = "pointwise_kernel"
    weight_attrs = ("depthwise_kernel", "pointwise_kernel", "bias")

    def build(self, input_shape):
        super().build(input_shape)  # and the masks of the pointwise (clustered) kernel
        shape = self.depthwise_kernel.shape
        self.depthwise_mask = self._buffer("depthwise_mask", shape)
        self.depthwise_heredity = self._buffer("depthwise_heredity", shape)

    def masked_depthwise_kernel(self) -> tf.Tensor:
        kernel = tf.convert_to_tensor(self.depthwise_kernel)
        return kernel * tf.cast(self.depthwise_mask, kernel.dtype)

    def masked_attrs(self):
        owner, values = super().masked_attrs()
        return owner, {"depthwise_kernel": self.masked_depthwise_kernel(), **values}

    def _shared_plain_weights(self) -> dict[str, np.ndarray]:
        return {"depthwise_kernel": self.masked_depthwise_kernel().numpy()}

    def kernel_rows(self, channels: np.ndarray) -> np.ndarray:
        m = int(self.depth_multiplier)
        return (np.asarray(channels)[:, None] * m + np.arange(m)).reshape(-1)

    def living_depthwise_mask(self) -> np.ndarray:
        return self.depthwise_mask.numpy() > 0.5

    def living_synapse_count(self) -> int:
        return int(self.living_synapse_mask().sum()) + int(self.living_depthwise_mask().sum())

    def synapse_count(self) -> int:
        return int(np.prod(self.matrix_shape)) + int(np.prod(self.depthwise_kernel.shape))

    def set_depthwise_mask(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, dtype=np.float32)
        self.depthwise_mask.assign(mask)
        self.depthwise_kernel.assign(self.depthwise_kernel.numpy() * mask)


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoSeparableConv2D(SeparableEvolvable, keras.layers.SeparableConv2D):
    """``SeparableConv2D`` whose pointwise filters (clusters), pointwise weights and depthwise
    taps (synapses) can die."""

    plain_type = keras.layers.SeparableConv2D


class SeparableRule(LayerRule):
    """A separable convolution of any rank: depthwise ``(*taps, C, m)``, pointwise
    ``(*ones, C * m, F)``."""

    def reads_input(self, layer) -> np.ndarray:
        weights = self.masked_weights(layer)
        depthwise, pointwise = weights["depthwise_kernel"], weights["pointwise_kernel"]
        rows = np.any(pointwise.reshape(pointwise.shape[-2:]) != 0, axis=-1)  # (C * m,)
        taps = np.any(depthwise != 0, axis=spatial_axes(depthwise))  # (C, m)
        return np.any(rows.reshape(taps.shape) & taps, axis=-1)

    def compact_weights(self, layer, config, in_keep, out_keep, constants):
        weights = self.masked_weights(layer)
        gone = ~in_keep
        k = np.nan_to_num(constants[gone]).astype(np.float64)
        depthwise, pointwise = weights["depthwise_kernel"], weights["pointwise_kernel"]
        m = depthwise.shape[-1]
        bias = weights.get("bias", np.zeros(pointwise.shape[-1], np.float32)).astype(np.float64)
        if gone.any():
            # depthwise channel (c, j) emits k_c * sum(taps); the pointwise row c*m+j reads it
            taps = depthwise[..., gone, :].sum(axis=spatial_axes(depthwise))  # (gone, m)
            emitted = k[:, None] * taps
            rows = pointwise.reshape(pointwise.shape[-2:]).reshape(-1, m, pointwise.shape[-1])
            rows = rows[gone]  # (gone, m, F)
            bias = bias + np.einsum("gmf,gm->f", rows.astype(np.float64), emitted)
        row_keep = np.repeat(in_keep, m)
        new = [depthwise[..., in_keep, :], pointwise[..., row_keep, :][..., out_keep]]
        return finish_producer(layer, config, new, bias, out_keep)

    def carry_shared_masks(self, source, target, in_keep) -> None:
        for name in ("depthwise_mask", "depthwise_heredity"):
            getattr(target, name).assign(getattr(source, name).numpy()[..., in_keep, :])

    def output_channels(self, layer) -> int:
        return int(layer.pointwise_kernel.shape[-1])

    def mac_weights(self, layer) -> int:
        depthwise, pointwise = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
        return int(np.prod(depthwise) + np.prod(pointwise))


register(SeparableRule(keras.layers.SeparableConv2D, EvoSeparableConv2D))
