"""Evolvable LSTM, GRU and SimpleRNN: the hidden units are the clusters.

Coupling rule. A recurrent layer with ``G`` gates (LSTM 4: i, f, c, o; GRU 3: z, r, h;
SimpleRNN 1), ``n`` input channels and ``u`` units stores

    kernel            (n, G*u)   column g*u + j: gate g of unit j reading the inputs
    recurrent_kernel  (u, G*u)   row i: what unit i's state feeds every gate; column as above
    bias              (G*u,)     (GRU with reset_after: (2, G*u), input and recurrent bias)

Unit ``j`` is one cluster: its ``G`` gate columns of both kernels and its biases live or die
together, and so does row ``j`` of the recurrent kernel (what the unit feeds the others).
Input channel ``c`` is kernel row ``c``: it follows the upstream layer's channels like a Dense
row. The matrix kernel (:class:`tf_evosyn.core.evolvable_base.EvolvableMixin`) stacks both
kernels per gate, inputs first:

    matrix  (G, n + u, u)    matrix[g, c, j] = kernel[c, g*u + j]            (c < n)
                             matrix[g, n + i, j] = recurrent_kernel[i, g*u + j]

so synapses are the entries of both kernels, rows ``n + i`` are the recurrent rows of unit
``i`` (set to dead with it), and the last axis is the clusters as for every other layer.

Why a dead unit is removable exactly: with its gate columns and biases at zero and a zero
initial state, an LSTM unit's cell state stays 0 (c = f c + i tanh(0) = c/2 from c0 = 0) and
its output o * activation(0) = 0; a GRU unit's state stays 0 (h = z h + (1-z) activation(0)); a
SimpleRNN unit emits activation(0). So the twins need ``activation(0) == 0`` (tanh, relu,
linear: the Keras defaults), a stateless layer and batch-major inputs; other layers are not
converted (:func:`unsupported_reason`). A removed input channel that holds a constant adds the
same pre-activation at every time step, so its contribution folds into the (input) bias.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.evolvable_base import PACKAGE, EvolvableMixin

_CELL_WEIGHTS = ("kernel", "recurrent_kernel", "bias")
_RECURRENT_TYPES = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)


def gates_of(layer: keras.layers.Layer) -> int:
    """How many gates each unit of a plain or evolvable recurrent layer has."""
    if isinstance(layer, keras.layers.LSTM):
        return 4
    return 3 if isinstance(layer, keras.layers.GRU) else 1


def unsupported_reason(layer: keras.layers.Layer) -> str | None:
    """Why a recurrent layer cannot become evolvable (None: it can), checked before converting."""
    if getattr(layer, "stateful", False):
        return "stateful recurrent layer (its state outlives a batch)"
    if getattr(layer, "time_major", False):
        return "time_major inputs are not supported"
    activation = keras.activations.get(layer.activation)
    if float(activation(tf.zeros(()))) != 0.0:
        return "its activation(0) != 0, so a dead unit would not emit 0"
    return None


def per_gate(cluster_mask, gates: int):
    """A per-unit mask (array or tensor) repeated for each gate: the layout of a bias."""
    if tf.is_tensor(cluster_mask) or isinstance(cluster_mask, tf.Variable):
        return tf.tile(tf.convert_to_tensor(cluster_mask), [gates])
    return np.tile(np.asarray(cluster_mask), gates)


def to_matrix(kernel, recurrent, gates: int):
    """``(kernel, recurrent_kernel)`` (arrays or tensors) as the ``(G, n + u, u)`` matrix."""
    xp = tf if tf.is_tensor(kernel) else np
    units = recurrent.shape[0]

    def per_gate(value):  # (rows, G*u) -> (G, rows, u)
        return xp.transpose(xp.reshape(value, (value.shape[0], gates, units)), (1, 0, 2))

    blocks = [per_gate(kernel), per_gate(recurrent)]
    return tf.concat(blocks, 1) if xp is tf else np.concatenate(blocks, 1)


def from_matrix(matrix, inputs: int):
    """The inverse of :func:`to_matrix`: ``(kernel, recurrent_kernel)`` in Keras' layouts."""
    xp = tf if tf.is_tensor(matrix) else np
    gates, _, units = matrix.shape

    def back(block):  # (G, rows, u) -> (rows, G*u)
        return xp.reshape(xp.transpose(block, (1, 0, 2)), (block.shape[1], gates * units))

    return back(matrix[:, :inputs, :]), back(matrix[:, inputs:, :])


class RecurrentEvolvable(EvolvableMixin):
    """Masks, heredity and the masked forward pass of an evolvable recurrent layer."""

    weight_attrs = _CELL_WEIGHTS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        reason = unsupported_reason(self)
        if reason:
            raise ValueError(f"{type(self).__name__} {self.name}: {reason}.")

    # The cell owns the variables; these read them (assign through them) by the plain names.
    @property
    def kernel(self):
        return self.cell.kernel

    @property
    def recurrent_kernel(self):
        return self.cell.recurrent_kernel

    @property
    def bias(self):
        return self.cell.bias

    @property
    def gates(self) -> int:
        return gates_of(self)

    @property
    def input_channels(self) -> int:
        return int(self.cell.kernel.shape[0])

    @property
    def matrix_shape(self) -> tuple[int, ...]:
        return (self.gates, self.input_channels + int(self.units), int(self.units))

    @classmethod
    def plain_matrix_kernel(cls, layer: keras.layers.Layer) -> np.ndarray:
        cell = layer.cell
        return to_matrix(cell.kernel.numpy(), cell.recurrent_kernel.numpy(), gates_of(layer))

    def matrix_kernel(self) -> tf.Tensor:
        cell = self.cell
        kernel, recurrent = tf.convert_to_tensor(cell.kernel), cell.recurrent_kernel
        return to_matrix(kernel, tf.convert_to_tensor(recurrent), self.gates)

    def assign_matrix_kernel(self, matrix: np.ndarray) -> None:
        kernel, recurrent = from_matrix(np.asarray(matrix, np.float32), self.input_channels)
        self.cell.kernel.assign(kernel)
        self.cell.recurrent_kernel.assign(recurrent)

    def bias_mask(self, cluster_mask):
        """The cluster mask repeated per gate (broadcasts over GRU's two bias rows)."""
        return per_gate(cluster_mask, self.gates)

    def kept_rows(self, in_keep: np.ndarray, out_keep: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(in_keep, bool), np.asarray(out_keep, bool)])

    def set_masks(self, synapse_mask: np.ndarray, cluster_mask: np.ndarray) -> None:
        """As for every layer, and a dead unit's recurrent row dies with it."""
        synapse_mask = np.array(synapse_mask, dtype=np.float32)
        cluster_mask = np.asarray(cluster_mask, dtype=np.float32)
        if synapse_mask.shape == self.matrix_shape and cluster_mask.shape == (self.num_clusters,):
            synapse_mask[:, self.input_channels + np.flatnonzero(cluster_mask < 0.5), :] = 0
        super().set_masks(synapse_mask, cluster_mask)

    def plain_weights(self) -> list[np.ndarray]:
        kernel, recurrent = from_matrix(self.masked_kernel().numpy(), self.input_channels)
        return [kernel, recurrent] + ([self.masked_bias().numpy()] if self.use_bias else [])

    def copy_plain_weights(self, source: keras.layers.Layer) -> None:
        for attr in self.weight_attrs:
            if attr != "bias" or self.use_bias:
                getattr(self.cell, attr).assign(getattr(source.cell, attr))

    def get_prunable_weights(self) -> list[tf.Variable]:
        return [self.cell.kernel, self.cell.recurrent_kernel]

    def masked_attrs(self) -> tuple[object, dict[str, tf.Tensor]]:
        """The cell's kernels and bias, masked (the cell owns the variables its call reads)."""
        kernel, recurrent = from_matrix(self.masked_kernel(), self.input_channels)
        values = {"kernel": kernel, "recurrent_kernel": recurrent}
        if self.use_bias:
            values["bias"] = self.masked_bias()
        return self.cell, values

    def call(self, inputs, mask=None, training=None, initial_state=None):
        """The shared call path (:meth:`EvolvableMixin.call`) with the RNN's signature: Keras
        reads ``mask``/``training`` from it, so it cannot be the one-argument ``call``."""
        with self.masked_weights_in_place():
            outputs = super(EvolvableMixin, self).call(
                inputs, mask=mask, training=training, initial_state=initial_state
            )
        return outputs


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoLSTM(RecurrentEvolvable, keras.layers.LSTM):
    """``LSTM`` whose units (clusters, four gates each) and kernel weights can die."""

    plain_type = keras.layers.LSTM


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoGRU(RecurrentEvolvable, keras.layers.GRU):
    """``GRU`` whose units (clusters, three gates each) and kernel weights can die."""

    plain_type = keras.layers.GRU


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoSimpleRNN(RecurrentEvolvable, keras.layers.SimpleRNN):
    """``SimpleRNN`` whose units (clusters) and kernel weights can die."""

    plain_type = keras.layers.SimpleRNN


def recurrent_weights(
    layer: keras.layers.Layer,
    config: dict,
    in_keep: np.ndarray,
    out_keep: np.ndarray,
    constants: np.ndarray,
) -> list[np.ndarray]:
    """Compacted ``[kernel, recurrent_kernel, bias]`` of a recurrent layer (``config`` updated).

    Kept input rows, the kept units' gate columns and recurrent rows; a removed input channel's
    constant (NaN counts as 0) moves into the input bias, the same at every step.
    """
    if isinstance(layer, EvolvableMixin):
        kernel, recurrent, *bias = layer.plain_weights()
    else:
        cell = layer.cell
        kernel, recurrent = cell.kernel.numpy(), cell.recurrent_kernel.numpy()
        bias = [cell.bias.numpy()] if layer.use_bias else []
    columns = np.tile(np.asarray(out_keep, bool), gates_of(layer))
    gone = ~np.asarray(in_keep, bool)
    shift = np.nan_to_num(constants[gone]).astype(np.float64) @ kernel[gone].astype(np.float64)
    if np.any(shift != 0) and not bias:
        config["use_bias"] = True
        zeros = np.zeros(kernel.shape[1], np.float32)
        bias = [np.stack([zeros, zeros]) if getattr(layer, "reset_after", False) else zeros]
    if bias:
        value = bias[0].astype(np.float64)
        if value.ndim == 2:
            value[0] += shift  # GRU reset_after: the input bias row
        else:
            value += shift
        bias = [value[..., columns].astype(np.float32)]
    config["units"] = int(np.sum(out_keep))
    return [kernel[in_keep][:, columns], recurrent[out_keep][:, columns], *bias]
