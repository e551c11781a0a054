"""Evolvable layers: standard Keras layers plus the state that evolution needs.

Each layer keeps its trainable ``kernel``/``bias`` and four non-trainable buffers, so masks survive
``model.save()``/``load_model()`` and SavedModel export like any other weight:

* ``synapse_mask``      (kernel shape)  1 = synapse alive
* ``cluster_mask``      (clusters,)     1 = cluster (filter / unit) alive
* ``synapse_heredity``  (kernel shape)  P(synapse survives | its cluster survives)
* ``cluster_heredity``  (clusters,)     P(cluster survives); both for the next synthesis

A cluster is one output channel: the last kernel axis for both Conv2D and Dense. The forward pass
uses ``kernel * synapse_mask * cluster_mask`` and ``bias * cluster_mask``, so a dead cluster emits
exactly zero and can later be removed physically without changing the network's function.
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
    """

    def _init_evolvable(self, evolve_clusters: bool) -> None:
        self.evolve_clusters = bool(evolve_clusters)

    def _build_buffers(self) -> None:
        kernel_shape = self.kernel.shape
        clusters = kernel_shape[-1]

        def buffer(name, shape):
            return self.add_weight(
                name=name, shape=shape, initializer="ones", trainable=False, dtype=self.dtype
            )

        self.synapse_mask = buffer("synapse_mask", kernel_shape)
        self.cluster_mask = buffer("cluster_mask", (clusters,))
        self.synapse_heredity = buffer("synapse_heredity", kernel_shape)
        self.cluster_heredity = buffer("cluster_heredity", (clusters,))

    def masked_kernel(self) -> tf.Tensor:
        """The kernel the forward pass uses: dead synapses and dead clusters are zero."""
        kernel = tf.convert_to_tensor(self.kernel)
        return kernel * tf.cast(self.synapse_mask * self.cluster_mask, kernel.dtype)

    def masked_bias(self) -> tf.Tensor | None:
        if not self.use_bias:
            return None
        bias = tf.convert_to_tensor(self.bias)
        return bias * tf.cast(self.cluster_mask, bias.dtype)

    # -- numpy accessors used by synthesis, measures and tests ---------------------------------
    @property
    def num_clusters(self) -> int:
        return int(self.kernel.shape[-1])

    def living_synapse_mask(self) -> np.ndarray:
        """Boolean mask of synapses that are alive and belong to a living cluster."""
        return (self.synapse_mask.numpy() > 0.5) & (self.cluster_mask.numpy() > 0.5)

    def living_cluster_mask(self) -> np.ndarray:
        return self.cluster_mask.numpy() > 0.5

    def set_masks(self, synapse_mask: np.ndarray, cluster_mask: np.ndarray) -> None:
        """Write new masks and zero dead weights, so dead synapses really hold 0."""
        synapse_mask = np.asarray(synapse_mask, dtype=np.float32)
        cluster_mask = np.asarray(cluster_mask, dtype=np.float32)
        if synapse_mask.shape != tuple(self.kernel.shape):
            raise ValueError(
                f"{self.name}: synapse mask shape {synapse_mask.shape} != kernel shape "
                f"{tuple(self.kernel.shape)}"
            )
        if cluster_mask.shape != (self.num_clusters,):
            raise ValueError(
                f"{self.name}: cluster mask shape {cluster_mask.shape} != ({self.num_clusters},)"
            )
        self.synapse_mask.assign(synapse_mask)
        self.cluster_mask.assign(cluster_mask)
        self.kernel.assign(self.kernel.numpy() * synapse_mask * cluster_mask)
        if self.use_bias:
            self.bias.assign(self.bias.numpy() * cluster_mask)

    def get_prunable_weights(self) -> list[tf.Variable]:
        """TF-MOT's ``PrunableLayer`` protocol: ``prune_low_magnitude`` can wrap evolvable layers
        (its registry only knows exact built-in types); TF-MOT's mask applies on top of ours."""
        return [self.kernel]

    def set_heredity(self, synapse_heredity: np.ndarray, cluster_heredity: np.ndarray) -> None:
        self.synapse_heredity.assign(np.asarray(synapse_heredity, dtype=np.float32))
        self.cluster_heredity.assign(np.asarray(cluster_heredity, dtype=np.float32))

    def _evolvable_config(self, config: dict) -> dict:
        config.update({"evolve_clusters": self.evolve_clusters})
        return config


@keras.utils.register_keras_serializable(package=_PACKAGE)
class EvoConv2D(EvolvableMixin, keras.layers.Conv2D):
    """``Conv2D`` whose filters (clusters) and kernel weights (synapses) can die."""

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
class EvoDense(EvolvableMixin, keras.layers.Dense):
    """``Dense`` whose units (clusters) and kernel weights (synapses) can die."""

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


EVOLVABLE_LAYER_TYPES = (EvoConv2D, EvoDense)

# Plain Keras layer type -> its evolvable twin. Exact types only: subclasses of Conv2D such as
# Conv2DTranspose have different kernel layouts and must not be converted silently.
EVOLVABLE_TWINS = {
    keras.layers.Conv2D: EvoConv2D,
    keras.layers.Dense: EvoDense,
}


def evolvable_layers(model: keras.Model) -> list[EvolvableMixin]:
    """All evolvable layers of ``model`` in topological (``model.layers``) order."""
    return [layer for layer in model.layers if isinstance(layer, EvolvableMixin)]


def custom_objects() -> dict:
    """Custom objects needed to load a model that contains evolvable layers."""
    return {cls.__name__: cls for cls in EVOLVABLE_LAYER_TYPES}
