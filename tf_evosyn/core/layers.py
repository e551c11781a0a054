"""The evolvable twins of Keras' layers, and the registry of every twin.

Each twin computes what its plain layer computes, on masked weights: the plain layer's own
``call`` with the masked kernel and bias in place (:meth:`EvolvableMixin.call`; see
:mod:`tf_evosyn.core.evolvable_base` for the masks, the heredity buffers and the matrix-kernel
view). A twin lives with the rule of its layer kind in :mod:`tf_evosyn.core.kinds` (recurrent
twins in :mod:`tf_evosyn.core.recurrent`); this module re-exports the twins under their
historical names. :data:`EVOLVABLE_TWINS` maps a plain layer type to its twin, which is what
:func:`tf_evosyn.evolvable` converts; it comes from the kind registry, so it holds every kind.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core import kinds
from tf_evosyn.core.evolvable_base import (
    MASK_NAMES,
    PACKAGE,
    EvolvableMixin,
    PlainCallOnMaskedWeights,
)
from tf_evosyn.core.kinds.conv import EvoConv1D, EvoConv2D, EvoConv3D
from tf_evosyn.core.kinds.dense import EvoDense
from tf_evosyn.core.kinds.depthwise import EvoDepthwiseConv2D
from tf_evosyn.core.kinds.separable import EvoSeparableConv2D, SeparableEvolvable
from tf_evosyn.core.kinds.transposed import EvoConv1DTranspose, EvoConv2DTranspose
from tf_evosyn.core.recurrent import EvoGRU, EvoLSTM, EvoSimpleRNN

__all__ = [
    "EVOLVABLE_LAYER_TYPES",
    "EVOLVABLE_TWINS",
    "MASK_NAMES",
    "PACKAGE",
    "EvoConv1D",
    "EvoConv1DTranspose",
    "EvoConv2D",
    "EvoConv2DTranspose",
    "EvoConv3D",
    "EvoDense",
    "EvoDepthwiseConv2D",
    "EvoGRU",
    "EvoLSTM",
    "EvoSeparableConv2D",
    "EvoSimpleRNN",
    "EvolvableMixin",
    "PlainCallOnMaskedWeights",
    "SeparableEvolvable",
    "custom_objects",
    "evolvable_layers",
    "matrix_kernel_of",
    "twin_of",
]

# Every twin of the registry (new kinds included), in registration order.
EVOLVABLE_LAYER_TYPES = kinds.evolvable_types()

# Plain Keras layer type -> its evolvable twin. Exact types only: other subclasses of Conv2D
# such as Conv2DTranspose have different kernel layouts and must not be converted silently.
EVOLVABLE_TWINS = kinds.twins()


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
