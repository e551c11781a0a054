"""What every evolvable layer shares: masks, heredity buffers and the matrix-kernel view.

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
``depthwise_heredity`` of their own. The forward pass is the plain layer's own ``call`` on
masked kernels and ``bias * cluster_mask`` (:meth:`EvolvableMixin.call`, shared by every twin),
so a dead cluster emits exactly zero and can later be removed physically without changing the
network's function. The twins live with their layer kinds' rules in :mod:`tf_evosyn.core.kinds`.
"""

from __future__ import annotations

import contextlib

import numpy as np

from tf_evosyn._keras import keras, tf

PACKAGE = "tf_evosyn"  # the Keras serialisation package of every evolvable layer
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

    def __init__(self, *args, evolve_clusters: bool = True, **kwargs):
        super().__init__(*args, **kwargs)  # the plain Keras layer's
        self.evolve_clusters = bool(evolve_clusters)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_buffers()

    def get_config(self):
        return {**super().get_config(), "evolve_clusters": self.evolve_clusters}

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
        if tuple(value.shape) == tuple(shape):
            return value
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

    def bias_mask(self, cluster_mask):
        """The multiplier of the bias for ``cluster_mask``: one bias per cluster here (a
        recurrent unit has one per gate)."""
        return cluster_mask

    def masked_bias(self) -> tf.Tensor | None:
        if not self.use_bias:
            return None
        bias = tf.convert_to_tensor(self.bias)
        return bias * tf.cast(self.bias_mask(self.cluster_mask), bias.dtype)

    # -- the forward pass: the plain layer's own call on masked weights --------------------------
    def masked_attrs(self) -> tuple[object, dict[str, tf.Tensor]]:
        """(owner, attribute -> masked tensor): what the plain ``call`` reads, masked."""
        values = {self.kernel_attr: self._masked_variable()}
        if self.use_bias:
            values["bias"] = self.masked_bias()
        return self, values

    @contextlib.contextmanager
    def masked_weights_in_place(self):
        """For the length of the block, the weight attributes the plain ``call`` reads are the
        masked tensors (set outside Keras' tracking), so gradients reach the variables through
        the masks; the variables are put back afterwards, whatever happens."""
        owner, values = self.masked_attrs()
        saved = {attr: getattr(owner, attr) for attr in values}
        for attr, value in values.items():
            object.__setattr__(owner, attr, value)
        try:
            yield
        finally:
            for attr, value in saved.items():
                object.__setattr__(owner, attr, value)

    def call(self, inputs):
        """The plain layer's ``call`` on masked weights: the same ops as the plain layer (shape
        logic such as causal or output padding, groups and dilation included), so an
        evolvable twin with all masks at 1 computes exactly what its plain layer computes.
        Recurrent twins call with their own signature (:mod:`tf_evosyn.core.recurrent`)."""
        with self.masked_weights_in_place():
            outputs = super().call(inputs)
        return outputs

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
        self.assign_matrix_kernel(self.matrix_kernel().numpy() * synapse_mask * cluster_mask)
        if self.use_bias:
            self.bias.assign(self.bias.numpy() * self.bias_mask(cluster_mask))

    def assign_matrix_kernel(self, matrix: np.ndarray) -> None:
        """Write a matrix-kernel value back into the clustered-weights variable."""
        variable = getattr(self, self.kernel_attr)
        variable.assign(self.matrix_view(np.asarray(matrix, np.float32), variable.shape))

    @classmethod
    def plain_matrix_kernel(cls, layer: keras.layers.Layer) -> np.ndarray:
        """The matrix kernel of ``layer``, this twin's plain type (or this twin)."""
        return cls.matrix_view(getattr(layer, cls.kernel_attr).numpy())

    def kept_rows(self, in_keep: np.ndarray, out_keep: np.ndarray) -> np.ndarray:
        """Matrix-kernel rows that survive when ``in_keep`` inputs and ``out_keep`` clusters do."""
        rows = np.zeros(self.matrix_shape[-2], dtype=bool)
        rows[self.kernel_rows(np.flatnonzero(in_keep))] = True
        return rows

    def get_prunable_weights(self) -> list[tf.Variable]:
        """TF-MOT's ``PrunableLayer`` protocol: ``prune_low_magnitude`` can wrap evolvable layers
        (its registry only knows exact built-in types); TF-MOT's mask applies on top of ours."""
        return [getattr(self, self.kernel_attr)]

    def set_heredity(self, synapse_heredity: np.ndarray, cluster_heredity: np.ndarray) -> None:
        self.synapse_heredity.assign(np.asarray(synapse_heredity, dtype=np.float32))
        self.cluster_heredity.assign(np.asarray(cluster_heredity, dtype=np.float32))


# The name of the shared call path before every twin used it (EvolvableMixin.call).
PlainCallOnMaskedWeights = EvolvableMixin
