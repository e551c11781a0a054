"""LSTM, GRU and SimpleRNN: producers whose units are their channels (the twins and the
coupling rule of gates, recurrent rows and columns: :mod:`tf_evosyn.core.recurrent`). The cell
owns the weights; input channel ``c`` is kernel row ``c`` of every gate of every unit; MACs count
both kernels at every time step; TFLite fuses them only at a static batch size."""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import EvolvableMixin
from tf_evosyn.core.kinds.base import LayerRule, register
from tf_evosyn.core.recurrent import (
    EvoGRU,
    EvoLSTM,
    EvoSimpleRNN,
    from_matrix,
    gates_of,
    per_gate,
    recurrent_weights,
    to_matrix,
    unsupported_reason,
)


class RecurrentRule(LayerRule):
    macs_per_input = True  # per time step
    tfmot_prunes = True
    static_batch_export = True

    def unsupported_reason(self, layer) -> str | None:
        return super().unsupported_reason(layer) or unsupported_reason(layer)

    def reads_input(self, layer) -> np.ndarray:  # input row c of every gate of every unit
        evolved = isinstance(layer, EvolvableMixin)
        matrix = layer.masked_kernel().numpy() if evolved else self.matrix_kernel(layer)
        return np.any(matrix[:, : layer.cell.kernel.shape[0]] != 0, axis=(0, 2))

    def compact_weights(self, layer, config, in_keep, out_keep, constants):
        return recurrent_weights(layer, config, in_keep, out_keep, constants)

    def output_channels(self, layer) -> int:
        return int(layer.units)

    def mac_weights(self, layer) -> int:
        cell = layer.cell
        return int(cell.kernel.shape.num_elements() + cell.recurrent_kernel.shape.num_elements())

    def weights_owner(self, layer):
        return layer.cell

    def pruned_kernels(self, layer) -> list:
        return [layer.cell.kernel, layer.cell.recurrent_kernel]  # TF-MOT's RNN rule

    def kernels_to_matrix(self, layer, values):
        return to_matrix(values[0], values[1], gates_of(layer))

    def matrix_to_kernels(self, layer, matrix, shapes):
        return list(from_matrix(matrix, int(shapes[0][0])))

    def bias_variable(self, layer):
        return layer.cell.bias

    def bias_alive(self, layer, clusters) -> np.ndarray:
        return per_gate(np.asarray(clusters, bool), gates_of(layer))


register(RecurrentRule(keras.layers.LSTM, EvoLSTM))
register(RecurrentRule(keras.layers.GRU, EvoGRU))
register(RecurrentRule(keras.layers.SimpleRNN, EvoSimpleRNN))
