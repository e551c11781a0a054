"""Evolvable layers: standard Keras layers plus the state that evolution needs.

Each layer keeps its trainable weights and four non-trainable buffers, so masks survive
``model.save()``/``load_model()`` and SavedModel export like any other weight:

* ``synapse_mask``      (matrix kernel shape)  1 = synapse alive
* ``cluster_mask``      (clusters,)            1 = cluster (filter / unit / channel) alive
* ``synapse_heredity``  (matrix kernel shape)  P(synapse survives | its cluster survives)
* ``cluster_heredity``  (clusters,)            P(cluster survives); both for the next synthesis

A cluster is one output channel: the last axis of the *matrix kernel* (the kernel of Conv1D,
Conv2D, Conv3D and Dense, the pointwise kernel of SeparableConv2D, the depthwise kernel seen as
``(kh, kw, 1, C*m)`` for DepthwiseConv2D, and the kernel of Conv1DTranspose/Conv2DTranspose with
its last two axes swapped: Keras stores those as ``(..., filters, inputs)``). SeparableConv2D's
depthwise taps are synapses shared by all its clusters, with a ``depthwise_mask`` and
``depthwise_heredity`` of their own. The forward pass uses masked
kernels and ``bias * cluster_mask``, so a dead cluster emits exactly zero and can later be removed
physically without changing the network's function.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras, tf

_PACKAGE = "tf_evosyn"
MASK_NAMES = ("synapse_mask", "cluster_mask", "synapse_heredity", "cluster_heredity")


class EvolvableMixin:
    """Buffers, masking and accessors shared by all evolvable layers.

    ``evolve_clusters=False`` protects the layer's clusters (e.g. the class outputs of a
    classifier): its synapses still evolve, its units never die.

    Synthesis sees every layer's clustered weights as a *matrix kernel* ``(..., inputs,
    clusters)``: the kernel itself for Conv2D/Dense, the pointwise kernel of a SeparableConv2D,
    ``(kh, kw, 1, C * m)`` for a DepthwiseConv2D (output channel ``c * m + j`` reads input ``c``).
    Masks and heredity buffers have the matrix kernel's shape.
    """

    plain_type: type  # the plain Keras layer this one evolves
    kernel_attr = "kernel"  # the variable holding the clustered weights
    weight_attrs: tuple[str, ...] = ("kernel", "bias")  # the plain layer's weights, in order
    # Transposed convolutions store (..., filters, inputs): the matrix view swaps the last axes.
    swaps_kernel_axes = False

    def _init_evolvable(self, evolve_clusters: bool) -> None:
        self.evolve_clusters = bool(evolve_clusters)

    @classmethod
    def matrix_shape_of(cls, shape) -> tuple[int, ...]:
        """Shape of the matrix-kernel view of a clustered-weights variable of ``shape``."""
        shape = tuple(int(d) for d in shape)
        return (*shape[:-2], shape[-1], shape[-2]) if cls.swaps_kernel_axes else shape

    @classmethod
    def matrix_view(cls, value, variable_shape=None):
        """``value`` (array or tensor, in the variable's layout) in the matrix-kernel layout;
        with ``variable_shape``, the inverse: a matrix-kernel value back in the variable's."""
        is_tensor = tf.is_tensor(value) or isinstance(value, tf.Variable)
        if cls.swaps_kernel_axes:  # a swap of the last two axes is its own inverse
            rank = len(value.shape)
            perm = [*range(rank - 2), rank - 1, rank - 2]
            return tf.transpose(value, perm) if is_tensor else np.transpose(value, perm)
        shape = cls.matrix_shape_of(value.shape) if variable_shape is None else variable_shape
        return tf.reshape(value, shape) if is_tensor else np.reshape(value, shape)

    @property
    def matrix_shape(self) -> tuple[int, ...]:
        return self.matrix_shape_of(getattr(self, self.kernel_attr).shape)

    def matrix_kernel(self) -> tf.Tensor:
        return self.matrix_view(tf.convert_to_tensor(getattr(self, self.kernel_attr)))

    def _buffer(self, name, shape):
        return self.add_weight(
            name=name, shape=shape, initializer="ones", trainable=False, dtype=self.dtype
        )

    def _build_buffers(self) -> None:
        shape = self.matrix_shape
        self.synapse_mask = self._buffer("synapse_mask", shape)
        self.cluster_mask = self._buffer("cluster_mask", (shape[-1],))
        self.synapse_heredity = self._buffer("synapse_heredity", shape)
        self.cluster_heredity = self._buffer("cluster_heredity", (shape[-1],))

    def masked_kernel(self) -> tf.Tensor:
        """The matrix kernel the forward pass uses: dead synapses and dead clusters are zero."""
        kernel = self.matrix_kernel()
        return kernel * tf.cast(self.synapse_mask * self.cluster_mask, kernel.dtype)

    def _masked_variable(self) -> tf.Tensor:
        """``masked_kernel`` in the variable's own layout."""
        return self.matrix_view(self.masked_kernel(), getattr(self, self.kernel_attr).shape)

    def masked_bias(self) -> tf.Tensor | None:
        if not self.use_bias:
            return None
        bias = tf.convert_to_tensor(self.bias)
        return bias * tf.cast(self.cluster_mask, bias.dtype)

    # -- plain twin: conversion and export -------------------------------------------------------
    def plain_config(self) -> dict:
        config = self.get_config()
        config.pop("evolve_clusters", None)
        return config

    def plain_weights(self) -> list[np.ndarray]:
        """The plain twin's weights with the masks applied (dead synapses are plain zeros)."""
        values = {self.kernel_attr: self._masked_variable().numpy()}
        if self.use_bias:
            values["bias"] = self.masked_bias().numpy()
        values.update(self._shared_plain_weights())
        return [values[attr] for attr in self.weight_attrs if attr in values]

    def _shared_plain_weights(self) -> dict[str, np.ndarray]:
        return {}

    def copy_plain_weights(self, source: keras.layers.Layer) -> None:
        """Take the weights of a plain (or evolvable) twin; masks and buffers are untouched."""
        for attr in self.weight_attrs:
            if attr != "bias" or self.use_bias:
                getattr(self, attr).assign(getattr(source, attr))

    # -- numpy accessors used by synthesis, measures and tests ---------------------------------
    @property
    def num_clusters(self) -> int:
        return int(self.matrix_shape[-1])

    def living_synapse_mask(self) -> np.ndarray:
        """Boolean mask of synapses that are alive and belong to a living cluster."""
        return (self.synapse_mask.numpy() > 0.5) & (self.cluster_mask.numpy() > 0.5)

    def living_cluster_mask(self) -> np.ndarray:
        return self.cluster_mask.numpy() > 0.5

    def living_synapse_count(self) -> int:
        """Living synapses, including weights shared by all clusters (separable depthwise)."""
        return int(self.living_synapse_mask().sum())

    def synapse_count(self) -> int:
        return int(np.prod(self.matrix_shape))

    def kernel_rows(self, channels: np.ndarray) -> np.ndarray:
        """Matrix-kernel input rows that read the given input channels."""
        return np.asarray(channels)

    def set_masks(self, synapse_mask: np.ndarray, cluster_mask: np.ndarray) -> None:
        """Write new masks and zero dead weights, so dead synapses really hold 0."""
        synapse_mask = np.asarray(synapse_mask, dtype=np.float32)
        cluster_mask = np.asarray(cluster_mask, dtype=np.float32)
        if synapse_mask.shape != self.matrix_shape:
            raise ValueError(
                f"{self.name}: synapse mask shape {synapse_mask.shape} != kernel shape "
                f"{self.matrix_shape}"
            )
        if cluster_mask.shape != (self.num_clusters,):
            raise ValueError(
                f"{self.name}: cluster mask shape {cluster_mask.shape} != ({self.num_clusters},)"
            )
        self.synapse_mask.assign(synapse_mask)
        self.cluster_mask.assign(cluster_mask)
        variable = getattr(self, self.kernel_attr)
        masked = self.matrix_kernel().numpy() * synapse_mask * cluster_mask
        variable.assign(self.matrix_view(masked, variable.shape))
        if self.use_bias:
            self.bias.assign(self.bias.numpy() * cluster_mask)

    def get_prunable_weights(self) -> list[tf.Variable]:
        """TF-MOT's ``PrunableLayer`` protocol: ``prune_low_magnitude`` can wrap evolvable layers
        (its registry only knows exact built-in types); TF-MOT's mask applies on top of ours."""
        return [getattr(self, self.kernel_attr)]

    def set_heredity(self, synapse_heredity: np.ndarray, cluster_heredity: np.ndarray) -> None:
        self.synapse_heredity.assign(np.asarray(synapse_heredity, dtype=np.float32))
        self.cluster_heredity.assign(np.asarray(cluster_heredity, dtype=np.float32))

    def _evolvable_config(self, config: dict) -> dict:
        config.update({"evolve_clusters": self.evolve_clusters})
        return config


@keras.utils.register_keras_serializable(package=_PACKAGE)
class EvoConv2D(EvolvableMixin, keras.layers.Conv2D):
    """``Conv2D`` whose filters (clusters) and kernel weights (synapses) can die. Grouped
    convolutions too: the channel analysis couples each group's inputs and outputs."""

    plain_type = keras.layers.Conv2D

    def __init__(self, *args, evolve_clusters: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding == "causal":
            raise ValueError("EvoConv2D does not support causal padding.")
        self._init_evolvable(evolve_clusters)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_buffers()

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

    def get_config(self):
        return self._evolvable_config(super().get_config())


@keras.utils.register_keras_serializable(package=_PACKAGE)
class EvoConv1D(EvolvableMixin, keras.layers.Conv1D):
    """``Conv1D`` (also causal or grouped) whose filters and kernel weights can die."""

    plain_type = keras.layers.Conv1D

    def __init__(self, *args, evolve_clusters: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_evolvable(evolve_clusters)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_buffers()

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

    def get_config(self):
        return self._evolvable_config(super().get_config())


@keras.utils.register_keras_serializable(package=_PACKAGE)
class EvoDense(EvolvableMixin, keras.layers.Dense):
    """``Dense`` whose units (clusters) and kernel weights (synapses) can die."""

    plain_type = keras.layers.Dense

    def __init__(self, *args, evolve_clusters: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_evolvable(evolve_clusters)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_buffers()

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

    def get_config(self):
        return self._evolvable_config(super().get_config())


@keras.utils.register_keras_serializable(package=_PACKAGE)
class EvoDepthwiseConv2D(EvolvableMixin, keras.layers.DepthwiseConv2D):
    """``DepthwiseConv2D`` whose output channels (clusters, each coupled with the input channel it
    reads) and kernel taps (synapses) can die. Matrix kernel: ``(kh, kw, 1, C * m)``."""

    plain_type = keras.layers.DepthwiseConv2D
    kernel_attr = "depthwise_kernel"
    weight_attrs = ("depthwise_kernel", "bias")

    def __init__(self, *args, evolve_clusters: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_evolvable(evolve_clusters)

    @classmethod
    def matrix_shape_of(cls, shape) -> tuple[int, ...]:
        kh, kw, channels, multiplier = (int(d) for d in shape)
        return (kh, kw, 1, channels * multiplier)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_buffers()

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

    def get_config(self):
        return self._evolvable_config(super().get_config())


@keras.utils.register_keras_serializable(package=_PACKAGE)
class EvoSeparableConv2D(EvolvableMixin, keras.layers.SeparableConv2D):
    """``SeparableConv2D``: its pointwise filters are the clusters (matrix kernel: the pointwise
    kernel, whose rows ``c * m + j`` read input channel ``c``), and its depthwise taps are
    synapses shared by every cluster, with their own mask (``depthwise_mask``) and heredity
    (``depthwise_heredity``)."""

    plain_type = keras.layers.SeparableConv2D
    kernel_attr = "pointwise_kernel"
    weight_attrs = ("depthwise_kernel", "pointwise_kernel", "bias")

    def __init__(self, *args, evolve_clusters: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_evolvable(evolve_clusters)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_buffers()
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

    def get_config(self):
        return self._evolvable_config(super().get_config())


class PlainCallOnMaskedWeights(EvolvableMixin):
    """An evolvable twin whose forward pass is the plain layer's own ``call`` on masked weights.

    For layers whose ``call`` reads ``self.kernel`` and ``self.bias`` once (transposed and 3-D
    convolutions): both attributes are swapped for their masked tensors, outside Keras'
    tracking, for the length of the call, so gradients reach the variables through the masks
    and the plain layer's shape logic (``output_padding``, dilation) is reused as it is.
    """

    def __init__(self, *args, evolve_clusters: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_evolvable(evolve_clusters)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_buffers()

    def call(self, inputs):
        kernel, bias = self.kernel, self.bias
        object.__setattr__(self, "kernel", self._masked_variable())
        if self.use_bias:
            object.__setattr__(self, "bias", self.masked_bias())
        try:
            return super().call(inputs)
        finally:
            object.__setattr__(self, "kernel", kernel)
            object.__setattr__(self, "bias", bias)

    def get_config(self):
        return self._evolvable_config(super().get_config())


@keras.utils.register_keras_serializable(package=_PACKAGE)
class EvoConv2DTranspose(PlainCallOnMaskedWeights, keras.layers.Conv2DTranspose):
    """``Conv2DTranspose`` whose filters (clusters) and kernel weights (synapses) can die; its
    matrix kernel is the kernel with the filter and input axes swapped."""

    plain_type = keras.layers.Conv2DTranspose
    swaps_kernel_axes = True


@keras.utils.register_keras_serializable(package=_PACKAGE)
class EvoConv1DTranspose(PlainCallOnMaskedWeights, keras.layers.Conv1DTranspose):
    """``Conv1DTranspose``: as :class:`EvoConv2DTranspose`."""

    plain_type = keras.layers.Conv1DTranspose
    swaps_kernel_axes = True


@keras.utils.register_keras_serializable(package=_PACKAGE)
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
)

# Plain Keras layer type -> its evolvable twin. Exact types only: other subclasses of Conv2D
# such as Conv2DTranspose have different kernel layouts and must not be converted silently.
EVOLVABLE_TWINS = {cls.plain_type: cls for cls in EVOLVABLE_LAYER_TYPES}


def matrix_kernel_of(layer: keras.layers.Layer) -> np.ndarray:
    """The matrix kernel (see :class:`EvolvableMixin`) of an evolvable or plain twin layer."""
    twin = type(layer) if isinstance(layer, EvolvableMixin) else EVOLVABLE_TWINS[type(layer)]
    return twin.matrix_view(getattr(layer, twin.kernel_attr).numpy())


def evolvable_layers(model: keras.Model) -> list[EvolvableMixin]:
    """All evolvable layers of ``model`` in topological (``model.layers``) order."""
    return [layer for layer in model.layers if isinstance(layer, EvolvableMixin)]


def custom_objects() -> dict:
    """Custom objects needed to load a model that contains evolvable layers."""
    return {cls.__name__: cls for cls in EVOLVABLE_LAYER_TYPES}
