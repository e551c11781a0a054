"""Flatten nested models: one functional graph out of models inside models.

The transfer-learning pattern
``Sequential([MobileNetV2(include_top=False), GlobalAveragePooling2D(), Dense(10)])`` and
ConvNeXt's stem put a model inside a model. The channel analysis, compaction and
synthesis work on one graph of plain layers, so :func:`flatten_model` replays every nested
Functional/Sequential model (at any depth) inline: each inner layer becomes a layer of the outer
graph, with its weights. Layer names stay as they were; a name already taken by another layer gets
the nested model's name as a prefix (``<model>_<layer>``, then a number if still taken).
Custom blocks (subclassed layers composing Keras layers, ``Lambda`` layers) whose call traces
into a functional graph (:mod:`tf_evosyn.core.trace_blocks`) are inlined the same way.
"""

from __future__ import annotations

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.trace_blocks import is_block, traced_block


def _has_nested_models(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.Model) for layer in model.layers)


def _is_graph_model(model: keras.Model) -> bool:
    return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)


def _check_nested(model: keras.Model, path: str) -> None:
    for layer in model.layers:
        if not isinstance(layer, keras.Model):
            continue
        where = f"{path}/{layer.name}"
        if not getattr(layer, "_is_graph_network", False):
            raise ValueError(
                f"Nested model {where!r} is a subclassed or unbuilt model; only nested Functional "
                "and Sequential models with known input shapes can be flattened. Give the inner "
                "model an input shape (keras.Input(...)) or build it with the functional API."
            )
        _check_nested(layer, where)


def _ordered_nodes(model: keras.Model):
    for depth in sorted(model._nodes_by_depth, reverse=True):
        yield from model._nodes_by_depth[depth]


class _Flattener:
    """Replays a model's graph with fresh copies of its plain layers, descending into models."""

    def __init__(self, model: keras.Model):
        self.taken = {layer.name for layer in model.layers if not isinstance(layer, keras.Model)}
        self.copies: dict[int, keras.layers.Layer] = {}  # id(original layer) -> copy
        self.sources: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def unique_name(self, layer: keras.layers.Layer, prefix: str) -> str:
        if layer.name not in self.taken:
            name = layer.name
        else:
            base = f"{prefix}_{layer.name}"
            name, number = base, 1
            while name in self.taken:
                number += 1
                name = f"{base}_{number}"
        self.taken.add(name)
        return name

    def copy(self, layer: keras.layers.Layer, prefix: str | None) -> keras.layers.Layer:
        if id(layer) not in self.copies:
            config = layer.get_config()
            config["name"] = layer.name if prefix is None else self.unique_name(layer, prefix)
            self.copies[id(layer)] = type(layer).from_config(config)
            self.sources.append((layer, self.copies[id(layer)]))
        return self.copies[id(layer)]

    def replay(self, model: keras.Model, inputs: list, prefix: str | None) -> list:
        """Outputs of ``model`` called on ``inputs`` (flat lists), every layer inlined."""
        tensors = {str(id(t)): x for t, x in zip(model.inputs, inputs, strict=True)}

        def swap(value):
            return tensors.get(str(id(value)), value) if hasattr(value, "shape") else value

        for node in _ordered_nodes(model):
            if node.is_input:
                continue
            layer = node.layer
            if isinstance(layer, keras.Model):
                inner_inputs = [tensors[t] for t in node.flat_input_ids]
                inner_prefix = layer.name if prefix is None else f"{prefix}_{layer.name}"
                outputs = self.replay(layer, inner_inputs, inner_prefix)
            elif (block := traced_block(layer, node)) is not None:
                inner_inputs = [tensors[t] for t in block.input_ids]
                inner_prefix = layer.name if prefix is None else f"{prefix}_{layer.name}"
                outputs = self.replay(block.model, inner_inputs, inner_prefix)
            else:
                args = tf.nest.map_structure(swap, node.call_args)
                kwargs = tf.nest.map_structure(swap, dict(node.call_kwargs or {}))
                outputs = tf.nest.flatten(self.copy(layer, prefix)(*args, **kwargs))
            for tid, out in zip(node.flat_output_ids, outputs, strict=True):
                tensors[tid] = out
        return [tensors[str(id(t))] for t in model.outputs]


def flatten_model(model: keras.Model) -> keras.Model:
    """A functional model computing the same as ``model`` with every nested model inlined.

    Weights are copied, so the result is independent of ``model``. A model without nested
    models or custom blocks is returned unchanged.
    """
    if not _has_nested_models(model) and not any(is_block(layer) for layer in model.layers):
        return model
    _check_nested(model, model.name)
    flattener = _Flattener(model)
    inputs = [
        keras.Input(tuple(t.shape[1:]), dtype=t.dtype, name=t._keras_history.layer.name)
        for t in model.inputs
    ]
    outputs = flattener.replay(model, inputs, None)
    flat = keras.Model(
        tf.nest.pack_sequence_as(model._nested_inputs, inputs)
        if not isinstance(model, keras.Sequential)
        else inputs[0],
        tf.nest.pack_sequence_as(model._nested_outputs, outputs)
        if not isinstance(model, keras.Sequential)
        else outputs[0],
        name=model.name,
    )
    for source, copy in flattener.sources:
        if source.weights:
            copy.set_weights(source.get_weights())
    return flat
