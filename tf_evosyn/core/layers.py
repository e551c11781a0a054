"""The evolvable twins of Keras' convolution and dense layers, and the registry of every twin.

Each twin computes what its plain layer computes, on masked weights (see
:mod:`tf_evosyn.core.evolvable_base` for the masks, the heredity buffers and the matrix-kernel
view); recurrent twins live in :mod:`tf_evosyn.core.recurrent`. :data:`EVOLVABLE_TWINS` maps a
plain layer type to its twin, which is what :func:`tf_evosyn.evolvable` converts.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.evolvable_base import (
    MASK_NAMES,
    PACKAGE,
    EvolvableMixin,
    PlainCallOnMaskedWeights,
)
from tf_evosyn.core.recurrent import EvoGRU, EvoLSTM, EvoSimpleRNN

__all__ = ["MASK_NAMES", "EvolvableMixin", "PlainCallOnMaskedWeights"]  # and the twins below


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv2D(EvolvableMixin, keras.layers.Conv2D):
    """``Conv2D`` whose filters (clusters) and kernel weights (synapses) can die. Grouped
    convolutions too: the channel analysis couples each group's inputs and outputs."""

    plain_type = keras.layers.Conv2D

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding == "causal":
            raise ValueError("EvoConv2D does not support causal padding.")

    def call(self, inputs):
        kernel = self.masked_kernel()
        if self.groups > 1:
            outputs = self._jit_compiled_convolution_op(inputs, kernel)
        else:
            outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.masked_bias(), data_format=self._tf_data_format)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv1D(EvolvableMixin, keras.layers.Conv1D):
    """``Conv1D`` (also causal or grouped) whose filters and kernel weights can die."""

    plain_type = keras.layers.Conv1D

    def call(self, inputs):
        if self._is_causal:
            inputs = tf.pad(inputs, self._compute_causal_padding(inputs))
        kernel = self.masked_kernel()
        if self.groups > 1:
            outputs = self._jit_compiled_convolution_op(inputs, kernel)
        else:
            outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.masked_bias(), data_format=self._tf_data_format)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoDense(EvolvableMixin, keras.layers.Dense):
    """``Dense`` whose units (clusters) and kernel weights (synapses) can die."""

    plain_type = keras.layers.Dense

    def call(self, inputs):
        if inputs.dtype.base_dtype != self._compute_dtype_object.base_dtype:
            inputs = tf.cast(inputs, dtype=self._compute_dtype_object)
        kernel = self.masked_kernel()
        rank = inputs.shape.rank
        if rank == 2 or rank is None:
            outputs = tf.matmul(inputs, kernel)
        else:
            outputs = tf.tensordot(inputs, kernel, [[rank - 1], [0]])
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.masked_bias())
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


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

    def call(self, inputs):
        outputs = keras.backend.depthwise_conv2d(
            inputs,
            self._masked_variable(),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            outputs = keras.backend.bias_add(
                outputs, self.masked_bias(), data_format=self.data_format
            )
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoSeparableConv2D(EvolvableMixin, keras.layers.SeparableConv2D):
    """``SeparableConv2D``: its pointwise filters are the clusters (matrix kernel: the pointwise
    kernel, whose rows ``c * m + j`` read input channel ``c``), and its depthwise taps are
    synapses shared by every cluster, with their own mask (``depthwise_mask``) and heredity
    (``depthwise_heredity``)."""

    plain_type = keras.layers.SeparableConv2D
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

    def call(self, inputs):
        outputs = tf.nn.separable_conv2d(
            inputs,
            self.masked_depthwise_kernel(),
            self.masked_kernel(),
            strides=(1,) + tuple(self.strides) + (1,),
            padding=self.padding.upper(),
            dilations=self.dilation_rate,
            data_format="NHWC",
        )
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.masked_bias(), data_format="NHWC")
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv2DTranspose(PlainCallOnMaskedWeights, keras.layers.Conv2DTranspose):
    """``Conv2DTranspose`` whose filters (clusters) and kernel weights (synapses) can die; its
    matrix kernel is the kernel with the filter and input axes swapped."""

    plain_type = keras.layers.Conv2DTranspose
    swaps_kernel_axes = True


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv1DTranspose(PlainCallOnMaskedWeights, keras.layers.Conv1DTranspose):
    """``Conv1DTranspose``: as :class:`EvoConv2DTranspose`."""

    plain_type = keras.layers.Conv1DTranspose
    swaps_kernel_axes = True


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv3D(PlainCallOnMaskedWeights, keras.layers.Conv3D):
    """``Conv3D`` whose filters (clusters) and kernel weights (synapses) can die."""

    plain_type = keras.layers.Conv3D


EVOLVABLE_LAYER_TYPES = (
    EvoConv2D,
    EvoConv1D,
    EvoDense,
    EvoDepthwiseConv2D,
    EvoSeparableConv2D,
    EvoConv2DTranspose,
    EvoConv1DTranspose,
    EvoConv3D,
    EvoLSTM,
    EvoGRU,
    EvoSimpleRNN,
)

# Plain Keras layer type -> its evolvable twin. Exact types only: other subclasses of Conv2D
# such as Conv2DTranspose have different kernel layouts and must not be converted silently.
EVOLVABLE_TWINS = {cls.plain_type: cls for cls in EVOLVABLE_LAYER_TYPES}


def twin_of(layer: keras.layers.Layer) -> type[EvolvableMixin]:
    """The evolvable class of ``layer``: its own if evolvable, else its plain type's twin."""
    return type(layer) if isinstance(layer, EvolvableMixin) else EVOLVABLE_TWINS[type(layer)]


def matrix_kernel_of(layer: keras.layers.Layer) -> np.ndarray:
    """The matrix kernel (see :class:`EvolvableMixin`) of an evolvable or plain twin layer."""
    return twin_of(layer).plain_matrix_kernel(layer)


def evolvable_layers(model: keras.Model) -> list[EvolvableMixin]:
    """All evolvable layers of ``model`` in topological (``model.layers``) order."""
    return [layer for layer in model.layers if isinstance(layer, EvolvableMixin)]


def custom_objects() -> dict:
    """Custom objects needed to load a model that contains evolvable layers."""
    return {cls.__name__: cls for cls in EVOLVABLE_LAYER_TYPES}
