"""Conv1DTranspose and Conv2DTranspose: producers whose kernels Keras stores as ``(..., filters,
inputs)``; every rule works on the matrix view ``(..., inputs, filters)``
(:meth:`tf_evosyn.core.evolvable_base.EvolvableMixin.matrix_view`). A transposed convolution
spreads each input pixel over a window that overlaps its neighbours' unevenly (stride,
cropping), so a constant input channel does not give a constant output: compaction never folds
one. MACs count input positions; Conv2DTranspose has the latency entry ``"deconv"``."""

from __future__ import annotations

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import PACKAGE, EvolvableMixin
from tf_evosyn.core.kinds.base import LayerRule, register
from tf_evosyn.core.kinds.conv import square_latency_shape
from tf_evosyn.core.layer_shape import LayerShape


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv2DTranspose(EvolvableMixin, keras.layers.Conv2DTranspose):
    """``Conv2DTranspose`` whose filters (clusters) and kernel weights (synapses) can die; its
    matrix kernel is the kernel with the filter and input axes swapped."""

    plain_type = keras.layers.Conv2DTranspose
    swaps_kernel_axes = True


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv1DTranspose(EvolvableMixin, keras.layers.Conv1DTranspose):
    """``Conv1DTranspose``: as :class:`EvoConv2DTranspose`."""

    plain_type = keras.layers.Conv1DTranspose
    swaps_kernel_axes = True


class TransposedRule(LayerRule):
    """A transposed convolution of any rank (matrix view: the last two axes swapped)."""

    folds_constants = False
    macs_per_input = True

    def __init__(self, plain, twin, tfmot_prunes: bool = True):
        super().__init__(plain, twin)
        self.tfmot_prunes = tfmot_prunes

    def matrix_weights(self, layer):
        weights = self.masked_weights(layer)
        weights["kernel"] = self.twin.matrix_view(weights["kernel"])
        return weights

    def from_matrix(self, kernel):
        return self.twin.matrix_view(kernel)  # back to Keras' (..., filters, inputs)

    def output_channels(self, layer) -> int:
        return int(layer.kernel.shape[-2])  # stored as (..., filters, inputs)


class Conv2DTransposeRule(TransposedRule):
    latency_kind = "deconv"  # height/width: its input

    def latency_shape(self, layer) -> LayerShape | None:
        if layer.output_padding is not None:
            return None  # not one of the timed shapes
        return square_latency_shape(layer, self.latency_kind)

    def timed_layer(self, shape: LayerShape) -> keras.layers.Layer:
        return keras.layers.Conv2DTranspose(
            shape.out_channels, shape.kernel, shape.stride, padding=shape.padding
        )


register(Conv2DTransposeRule(keras.layers.Conv2DTranspose, EvoConv2DTranspose))
# TF-MOT's prune registry does not list Conv1DTranspose: it becomes a plain, fixed layer there.
register(TransposedRule(keras.layers.Conv1DTranspose, EvoConv1DTranspose, tfmot_prunes=False))
