"""Dense: a producer whose units are its channels (kernel row ``c`` reads input ``c``, also
after a channels-last Flatten); MACs per position of its leading axes; latency entry
``"dense"`` for 2-D inputs."""

from __future__ import annotations

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import PACKAGE, EvolvableMixin
from tf_evosyn.core.kinds.base import LayerRule, register
from tf_evosyn.core.layer_shape import LayerShape


@keras.utils.register_keras_serializable(package=PACKAGE)
class EvoDense(EvolvableMixin, keras.layers.Dense):
    """``Dense`` whose units (clusters) and kernel weights (synapses) can die."""

    plain_type = keras.layers.Dense


class DenseRule(LayerRule):
    tfmot_prunes = True
    latency_kind = "dense"

    def latency_shape(self, layer: keras.layers.Layer) -> LayerShape | None:
        if len(layer.input_shape) != 2:
            return None
        return LayerShape(self.latency_kind, 1, 1, layer.input_shape[-1], layer.units)

    def timed_layer(self, shape: LayerShape) -> keras.layers.Layer:
        return keras.layers.Dense(shape.out_channels)


register(DenseRule(keras.layers.Dense, EvoDense))
