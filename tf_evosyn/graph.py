"""Channel tracing through a Keras graph: which evolvable layers read which output channels.

Dead clusters emit zeros. Following those zeros forward through layers that keep a zero a zero
(pooling, ReLU-like activations, dropout, padding, Flatten) tells which input synapses of the
consuming evolvable layers only ever read zeros (they are dead too), and which clusters nobody
reads (they can die too). A layer this module does not understand is a barrier: nothing is
inferred across it. Coupled channels (Add, Concatenate) are the job of a later extension.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.layers import EvolvableMixin

# Activations f with f(0) == 0, so a dead channel stays exactly zero.
_ZERO_PRESERVING_ACTIVATIONS = {
    "linear",
    "relu",
    "relu6",
    "elu",
    "selu",
    "tanh",
    "gelu",
    "swish",
    "silu",
    "leaky_relu",
    "softsign",
    "mish",
}
_PASS_THROUGH_TYPES = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.MaxPooling1D,
    keras.layers.AveragePooling1D,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ZeroPadding2D,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)


def activation_name(layer: keras.layers.Layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def preserves_zero(layer: keras.layers.Layer) -> bool:
    """True if a channel that is all zeros at the input is all zeros at the output."""
    if isinstance(layer, _PASS_THROUGH_TYPES):
        return True
    if isinstance(layer, keras.layers.Activation):
        return activation_name(layer) in _ZERO_PRESERVING_ACTIVATIONS
    return False


@dataclass
class ChannelConsumer:
    """An evolvable layer whose kernel input index i reads producer channel ``index_map[i]``."""

    layer: EvolvableMixin
    index_map: np.ndarray


@dataclass
class ChannelUsage:
    """Where a producer's output channels go. ``fully_traced`` is False if any path leaves the
    known world (a barrier layer or a model output), so no cluster may be killed for lack of
    readers."""

    producer: EvolvableMixin
    consumers: list[ChannelConsumer] = field(default_factory=list)
    fully_traced: bool = True


def _outbound_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return [node.outbound_layer for node in layer.outbound_nodes]


def _model_output_layers(model: keras.Model) -> set[int]:
    return {id(tensor._keras_history.layer) for tensor in model.outputs}


def trace_channel_usage(model: keras.Model) -> dict[str, ChannelUsage]:
    """For every evolvable layer, the evolvable layers that read its channels, and how."""
    outputs = _model_output_layers(model)
    in_model = {id(layer) for layer in model.layers}
    usages: dict[str, ChannelUsage] = {}
    for producer in model.layers:
        if not isinstance(producer, EvolvableMixin):
            continue
        usage = ChannelUsage(producer)
        usages[producer.name] = usage
        if activation_name(producer) not in _ZERO_PRESERVING_ACTIVATIONS:
            usage.fully_traced = False
            continue
        channels = producer.num_clusters
        # Walk forward; each frontier item: (layer whose output we follow, index map of it).
        frontier = [(producer, np.arange(channels))]
        while frontier:
            layer, index_map = frontier.pop()
            if id(layer) in outputs:
                usage.fully_traced = False
            for consumer in _outbound_layers(layer):
                if id(consumer) not in in_model:
                    continue  # a node of another model built on the same layer
                if isinstance(consumer, EvolvableMixin) and len(consumer.inbound_nodes) == 1:
                    usage.consumers.append(ChannelConsumer(consumer, index_map))
                elif isinstance(consumer, keras.layers.Flatten) and _is_channels_last(consumer):
                    spatial = int(np.prod(consumer.input_shape[1:-1] or (1,)))
                    frontier.append((consumer, np.tile(index_map, spatial)))
                elif preserves_zero(consumer) and len(consumer.inbound_nodes) == 1:
                    frontier.append((consumer, index_map))
                else:
                    usage.fully_traced = False
    return usages


def _is_channels_last(layer: keras.layers.Layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"
