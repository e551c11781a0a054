"""Safety checks of a traced custom block (:mod:`tf_evosyn.core.trace_blocks`).

A trace replaces a block by the layers its ``call`` composes, so it must compute exactly what
the block computes and own everything it computes with: these checks refuse, with a reason
that names the fix, a block that creates weights itself, branches on ``training`` in Python,
uses variables or layers from outside, holds a layer that cannot be rebuilt from its config, or
whose traced graph gives other outputs than the block on random inputs.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import numpy as np

from tf_evosyn._keras import keras, tf

PROTOCOL = "evosyn_functional"  # the method a block may define to declare its structure

_RANDOM_LAYERS = (
    keras.layers.Dropout,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)
_BRANCH_CALLS = {"cond", "smart_cond", "in_train_phase", "in_test_phase", "where"}
_TOLERANCE = 1e-5  # max |block - trace| / max(|block|, 1) in float32


def is_symbolic(value) -> bool:
    """A tf_keras symbolic tensor (``is_keras_tensor`` raises on Python values)."""
    try:
        return keras.backend.is_keras_tensor(value)
    except ValueError:
        return False


class Refused(Exception):
    """Why a block cannot be traced safely."""


HINT = f"; define {PROTOCOL}() on the block to declare its structure (docs/models.md)"


def own_weights(layer: keras.layers.Layer) -> list[str]:
    """Names of the weights ``layer`` creates itself (not held by a sub-layer): an inlined
    graph would have no layer to hold them."""
    inner = {id(w) for sub in layer._flatten_layers(include_self=False) for w in sub.weights}
    return [w.name for w in layer.weights if id(w) not in inner]


def training_branch(function) -> str | None:
    """``file:line`` of Python control flow on ``training`` in ``function``'s source, if any."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
        first = function.__code__.co_firstlineno
    except (OSError, TypeError, SyntaxError, AttributeError):
        return None

    def mentions_training(tree_node) -> bool:
        return any(isinstance(n, ast.Name) and n.id == "training" for n in ast.walk(tree_node))

    for item in ast.walk(tree):
        tests = []
        if isinstance(item, (ast.If, ast.IfExp, ast.While, ast.Assert)):
            tests = [item.test]
        elif isinstance(item, ast.Call):
            callee = item.func.attr if isinstance(item.func, ast.Attribute) else None
            callee = item.func.id if isinstance(item.func, ast.Name) else callee
            tests = item.args[:1] if callee in _BRANCH_CALLS else []
        if any(mentions_training(test) for test in tests):
            return f"{inspect.getsourcefile(function)}:{first + item.lineno - 1}"
    return None


def first_line(error: Exception) -> str:
    """The informative line of an error (Keras wraps the cause in "Exception encountered")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("Exception encountered")]
    line = (causes or lines or [""])[0].removeprefix("Exception encountered:").strip()
    return f"{type(error).__name__}: {line if len(line) <= 160 else line[:157] + '...'}"


def graph_nodes(model: keras.Model):
    for depth in sorted(model._nodes_by_depth, reverse=True):
        yield from model._nodes_by_depth[depth]


def _graph_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False):
            yield from _graph_layers(layer)


def check_graph(block: keras.layers.Layer, model: keras.Model, copies: set[int]) -> None:
    """Everything the traced graph computes with belongs to the block and can be copied."""
    allowed = {id(w) for w in block.weights} | copies
    foreign = [w.name for w in model.weights if id(w) not in allowed]
    if foreign:
        raise Refused(f"its call uses weights of layers outside the block ({foreign[0]})")
    for layer in _graph_layers(model):
        if isinstance(layer, keras.Model) and not getattr(layer, "_is_graph_network", False):
            raise Refused(f"it holds the subclassed model {layer.name!r}, which has no graph")
    graphs = [model] + [sub for sub in _graph_layers(model) if isinstance(sub, keras.Model)]
    for graph in graphs:
        for node in graph_nodes(graph):
            captured = [
                v
                for v in tf.nest.flatten((node.call_args, node.call_kwargs))
                if isinstance(v, tf.Variable)
            ]
            if captured:
                raise Refused(
                    f"its call uses the variable {captured[0].name!r} directly in a TF op "
                    f"({node.layer.name}); a copied graph would not own it{HINT}"
                )
    for layer in _graph_layers(model):
        if isinstance(layer, (keras.Model, keras.layers.InputLayer)):
            continue
        try:
            type(layer).from_config(layer.get_config())
        except Exception as error:
            raise Refused(
                f"its inner layer {layer.name!r} ({type(layer).__name__}) cannot be rebuilt "
                f"from its config ({first_line(error)}); give that class a get_config that "
                "round-trips"
            ) from error


def _concrete(tensors: list, rng: np.random.Generator) -> list:
    values = []
    for tensor in tensors:
        shape = [2] + [32 if d is None else d for d in tensor.shape[1:]]
        if tensor.dtype.is_floating:
            values.append(tf.constant(rng.normal(size=shape), dtype=tensor.dtype))
        else:
            values.append(tf.zeros(shape, dtype=tensor.dtype))
    return values


def check_outputs(layer: keras.layers.Layer, node, model: keras.Model) -> None:
    """The traced graph reproduces the block at inference (and in training when the
    block is deterministic) on random inputs; weights are restored afterwards."""
    ids = [str(id(t)) for t in node.keras_inputs]
    unique = list(dict.fromkeys(ids))
    values = _concrete([node.keras_inputs[ids.index(i)] for i in unique], np.random.default_rng(0))
    by_id = dict(zip(unique, values, strict=True))

    def swap(value):
        return by_id.get(str(id(value)), value) if is_symbolic(value) else value

    args = tf.nest.map_structure(swap, node.call_args)
    kwargs = tf.nest.map_structure(swap, dict(node.call_kwargs or {}))
    modes = [False]
    if "training" not in kwargs and not any(
        isinstance(sub, _RANDOM_LAYERS) or hasattr(sub, "_random_generator")
        for sub in _graph_layers(model)
    ):
        modes.append(True)
    saved = [w.numpy() for w in layer.weights]
    try:
        for training in modes:
            mode = {} if "training" in kwargs else {"training": training}
            expected = tf.nest.flatten(layer(*args, **kwargs, **mode))
            actual = tf.nest.flatten(model(values, **mode))
            for want, got in zip(expected, actual, strict=True):
                want, got = np.asarray(want), np.asarray(got)
                scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
                if want.shape != got.shape:
                    raise Refused(f"its trace returns shape {got.shape}, the block {want.shape}")
                difference = float(np.abs(want - got).max(initial=0.0)) / scale
                if not difference <= _TOLERANCE:
                    raise Refused(
                        f"its traced graph's outputs differ from the block's "
                        f"({'training' if training else 'inference'}: relative difference "
                        f"{difference:.1e}){HINT}"
                    )
    except Refused:
        raise
    except Exception as error:
        raise Refused(f"its trace cannot be run: {first_line(error)}{HINT}") from error
    finally:
        for variable, value in zip(layer.weights, saved, strict=True):
            variable.assign(value)
