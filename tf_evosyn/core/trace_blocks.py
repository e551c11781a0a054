"""Look inside custom blocks: trace a subclassed layer's ``call`` into a functional graph.

A ``keras.layers.Layer`` subclass that composes Keras layers in its ``call`` (keras-cv's
``CrossStagePartial``, a user's residual block) is one opaque layer to the channel analysis, so
none of its filters could evolve. When its ``call`` only calls Keras layers and TF ops, calling it
once on ``keras.Input`` tensors builds the same computation as a functional graph (TF ops become
``TFOpLambda`` layers); :func:`tf_evosyn.core.flatten.flatten_model` then inlines that graph like
a nested model, so the inner layers evolve and compact and the block is rebuilt as part of the
outer graph. A ``Lambda`` layer is traced the same way (its function's TF ops become layers).

A trace is used only when it is safe, and every refusal has a reason (reported by
:func:`tf_evosyn.core.convert.evolvability_report`): the block creates weights itself, its call
branches on ``training`` in Python or fails on symbolic tensors (Python control flow on values),
the traced graph uses variables or layers from outside the block, an inner layer cannot be
rebuilt from its config, or the traced graph's outputs differ from the block's on random inputs.

Protocol: a block the tracer cannot follow may declare its structure with a method
``evosyn_functional(self, *args, **kwargs)`` taking the same (symbolic) arguments as ``call``
and returning the same outputs, built only from the block's own sub-layers and TF ops. The tracer
calls it instead of ``call`` (no ``training``-branch check: the author vouches for it) and still
checks that it reproduces ``call``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from absl import logging

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.trace_checks import (
    HINT,
    PROTOCOL,
    Refused,
    check_graph,
    check_outputs,
    first_line,
    graph_nodes,
    is_symbolic,
    own_weights,
    training_branch,
)

# Modules whose layers are kept as they are: Keras's own wrappers (RNN, Bidirectional,
# TimeDistributed, attention), tf_evosyn's layers, TF-MOT's pruning wrappers.
_LIBRARY_MODULES = (
    "tf_keras.",
    "keras.",
    "tensorflow.",
    "tf_evosyn.core.",
    "tf_evosyn.models.",
    "tensorflow_model_optimization.",
)
# TF ops a Keras-3 op (keras_cv.backend.ops) emits on tf_keras tensors; identities when the
# dtype does not change, so they are dropped from a trace.
_NO_OP_SYMBOLS = ("convert_to_tensor", "cast", "identity")


@dataclass(frozen=True)
class BlockTrace:
    """One call of a block: its traced graph, or the reason it stays whole."""

    name: str
    model: keras.Model | None = None
    reason: str = ""
    input_ids: list[str] = field(default_factory=list)  # outer tensors feeding model.inputs


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # node -> BlockTrace


def is_block(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` is one the tracer looks inside: a ``Lambda``, a layer with an
    ``evosyn_functional`` method, or a layer of a user's (or keras-cv's) class holding layers."""
    if isinstance(layer, (keras.Model, keras.layers.InputLayer)):
        return False
    if callable(getattr(layer, PROTOCOL, None)) or type(layer) is keras.layers.Lambda:
        return True
    if type(layer).__module__.startswith(_LIBRARY_MODULES):
        return False
    return bool(layer._flatten_layers(include_self=False, recursive=False))


def _trace_call(layer: keras.layers.Layer, node) -> BlockTrace:
    """The traced graph of ``layer``'s call at ``node`` (a tf_keras Node), or why not."""
    if node not in _CACHE:
        try:
            model, input_ids = _trace(layer, node)
            _CACHE[node] = BlockTrace(layer.name, model, "", input_ids)
        except Refused as refused:
            reason = str(refused)
            if callable(getattr(layer, PROTOCOL, None)):  # declared: the declaration is at fault
                reason = reason.replace(HINT, f"; fix {PROTOCOL}() to compute what call() does")
            _CACHE[node] = BlockTrace(layer.name, None, reason)
    return _CACHE[node]


def trace_layer(layer: keras.layers.Layer) -> BlockTrace | None:
    """The trace of a block's first call (None if ``layer`` is not a block), for reports."""
    if not is_block(layer):
        return None
    if not layer.inbound_nodes:
        return BlockTrace(layer.name, None, "it was never called on a symbolic input")
    return _trace_call(layer, layer.inbound_nodes[0])


def traced_block(layer: keras.layers.Layer, node) -> BlockTrace | None:
    """The trace to inline for this call, or None (logged) to keep the block whole."""
    if not is_block(layer):
        return None
    trace = _trace_call(layer, node)
    if trace.model is None:
        log = logging.info if type(layer) is keras.layers.Lambda else logging.warning
        log("Block %s (%s) is kept whole: %s", layer.name, type(layer).__name__, trace.reason)
        return None
    return trace


def _trace(layer: keras.layers.Layer, node) -> tuple[keras.Model, list[str]]:
    protocol = callable(getattr(layer, PROTOCOL, None))
    own = own_weights(layer)
    if own:
        raise Refused(
            f"it creates weights itself ({', '.join(own)}), which a functional graph cannot "
            "hold; move them into a sub-layer"
        )
    function = getattr(layer, PROTOCOL) if protocol else layer.call
    if not protocol and type(layer) is not keras.layers.Lambda:
        line = training_branch(type(layer).call)
        if line is not None:
            raise Refused(
                f"its call branches on `training` in Python ({line}); one trace keeps one "
                f"branch only{HINT}"
            )
    ids, inputs = _unique_inputs(node)
    by_id = dict(zip(ids, inputs, strict=True))

    def swap(value):
        return by_id.get(str(id(value)), value) if is_symbolic(value) else value

    args = tf.nest.map_structure(swap, node.call_args)
    kwargs = tf.nest.map_structure(swap, _call_kwargs(layer, node))
    try:
        outputs = tf.nest.flatten(function(*args, **kwargs))
    except Exception as error:  # any failure: not traceable
        raise Refused(
            f"its {'evosyn_functional' if protocol else 'call'} cannot be traced on symbolic "
            f"inputs (Python control flow on tensor values?): {first_line(error)}{HINT}"
        ) from error
    if not outputs or not all(is_symbolic(t) for t in outputs):
        raise Refused(f"its call returns values that are not built from its inputs{HINT}")
    try:
        training = node.call_kwargs.get("training") if node.call_kwargs else None
        model, copies = _simplify(
            keras.Model(inputs, outputs, name=f"{layer.name}_traced"),
            training if isinstance(training, bool) else None,
        )
    except Exception as error:
        raise Refused(f"its trace is not a functional graph: {first_line(error)}{HINT}") from error
    check_graph(layer, model, copies)
    check_outputs(layer, node, model)
    return model, ids


def _unique_inputs(node) -> tuple[list[str], list]:
    ids, inputs = [], []
    for tensor in node.keras_inputs:
        if str(id(tensor)) in ids:
            continue
        if tensor.shape.rank is None or type(tensor).__name__ != "KerasTensor":
            raise Refused("an input of unknown rank, sparse or ragged cannot be traced")
        ids.append(str(id(tensor)))
        inputs.append(keras.Input(tuple(tensor.shape[1:]), dtype=tensor.dtype))
    return ids, inputs


def _call_kwargs(layer: keras.layers.Layer, node) -> dict:
    kwargs = dict(node.call_kwargs or {})
    if not layer._expects_training_arg:
        kwargs.pop("training", None)
    if not layer._expects_mask_arg:
        kwargs.pop("mask", None)
    return kwargs


def _is_no_op(node) -> bool:
    layer = node.layer
    if type(layer).__name__ != "TFOpLambda" or layer.symbol not in _NO_OP_SYMBOLS:
        return False
    ins, outs = node.keras_inputs, tf.nest.flatten(node.outputs)
    return (
        len(ins) == 1
        and len(outs) == 1
        and ins[0].dtype == outs[0].dtype
        and ins[0].shape.as_list() == outs[0].shape.as_list()
    )


def _layer_activation(layer: keras.layers.Layer) -> keras.layers.Layer | None:
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.Model) or not isinstance(activation, keras.layers.Layer):
        return None
    return activation


def _split_activation(layer: keras.layers.Layer, args: tuple, kwargs: dict):
    """``layer`` (a Conv/Dense whose ``activation`` is a layer instance, as in keras-cv's
    squeeze-and-excite) as a linear copy followed by the activation layer, traced."""
    config = layer.get_config()
    config["activation"] = "linear"
    linear = type(layer).from_config(config)
    outputs = linear(*args, **kwargs)
    linear.set_weights(layer.get_weights())
    activation = layer.activation
    if type(activation).__module__.startswith(_LIBRARY_MODULES):
        return linear, activation(outputs)
    return linear, activation.call(outputs)


def _simplify(model: keras.Model, training: bool | None) -> tuple[keras.Model, set[int]]:
    """``model`` without identity casts/conversions (Keras-3 ops emit them on tf_keras
    tensors) and with layer-instance activations split off, so the channel analysis sees
    the ops behind them; also the ids of the weights of the linear copies made.

    ``training``: the block's call fixed it (``block(x, training=False)``), so Keras passed it
    to every inner layer that was not given one; the inlined layers get it written in (a nested
    block or model that does not take ``training`` cannot: refused)."""
    nodes = [node for node in graph_nodes(model) if not node.is_input]
    if training is None and not any(
        _is_no_op(node) or _layer_activation(node.layer) for node in nodes
    ):
        return model, set()
    tensors = {str(id(t)): t for t in model.inputs}
    copies: set[int] = set()

    def swap(value):
        return tensors.get(str(id(value)), value) if hasattr(value, "shape") else value

    for node in nodes:
        args = tf.nest.map_structure(swap, node.call_args)
        kwargs = tf.nest.map_structure(swap, dict(node.call_kwargs or {}))
        if training is not None and node.layer._expects_training_arg:
            kwargs["training"] = training if kwargs.get("training") is None else kwargs["training"]
        elif training is not None and any(
            sub._expects_training_arg for sub in node.layer._flatten_layers(include_self=False)
        ):  # Keras passes it on inside node.layer, which the node does not record
            raise Refused(
                f"it is called with training={training}, which cannot be written into its "
                f"inner {node.layer.name!r} ({type(node.layer).__name__}); call it without "
                "`training` and freeze its BatchNormalization layers with trainable = False"
            )
        if _is_no_op(node):
            outputs = [tensors[node.flat_input_ids[0]]]
        elif _layer_activation(node.layer) is not None:
            linear, outputs = _split_activation(node.layer, args, kwargs)
            copies.update(id(w) for w in linear.weights)
            outputs = tf.nest.flatten(outputs)
        else:
            outputs = tf.nest.flatten(node.layer(*args, **kwargs))
        tensors.update(zip(node.flat_output_ids, outputs, strict=True))
    outputs = [tensors[str(id(t))] for t in model.outputs]
    return keras.Model(model.inputs, outputs, name=model.name), copies
