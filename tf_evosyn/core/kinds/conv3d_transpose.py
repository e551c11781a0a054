"""Conv3DTranspose: a transposed convolution (see :mod:`.transposed`) over volumes. Its kernel
is stored as ``(kd, kh, kw, filters, inputs)``; the matrix view swaps the last two axes, so its
filters are the clusters and compaction, MACs (per input position) and TF-MOT's kernel mask all
follow the transposed rule. Not timed by the latency model."""

from __future__ import annotations

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import PACKAGE, EvolvableMixin
from tf_evosyn.core.kinds.base import register
from tf_evosyn.core.kinds.transposed import TransposedRule


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoConv3DTranspose(EvolvableMixin, keras.layers.Conv3DTranspose):
    """``Conv3DTranspose`` whose filters (clusters) and kernel weights (synapses) can die."""

    plain_type = keras.layers.Conv3DTranspose
    swaps_kernel_axes = True


register(TransposedRule(keras.layers.Conv3DTranspose, EvoConv3DTranspose))
