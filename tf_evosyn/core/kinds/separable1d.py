"""SeparableConv1D: a separable convolution (see :mod:`.separable`) over sequences, also causal.
Depthwise kernel ``(k, C, m)``, pointwise ``(1, C * m, F)``: its pointwise filters are the
clusters and its depthwise taps shared synapses; compaction, the channel rule and MACs are the
separable rule's, which works for any rank."""

from __future__ import annotations

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import PACKAGE
from tf_evosyn.core.kinds.base import register
from tf_evosyn.core.kinds.separable import SeparableEvolvable, SeparableRule


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoSeparableConv1D(SeparableEvolvable, keras.layers.SeparableConv1D):
    """``SeparableConv1D`` whose pointwise filters (clusters), pointwise weights and depthwise
    taps (synapses) can die."""

    plain_type = keras.layers.SeparableConv1D


register(SeparableRule(keras.layers.SeparableConv1D, EvoSeparableConv1D))
