"""Turn a plain Sequential or Functional Keras model into an evolvable one, by cloning.

Like TF-MOT's ``prune_low_magnitude``, the model is rebuilt with ``clone_model`` and a clone
function; here the function swaps ``Conv2D``/``Dense`` for their evolvable twins and the weights
are copied over, so the evolvable model computes exactly what the original did.
"""

from __future__ import annotations

from dataclasses import dataclass

from absl import logging

from tf_evosyn._keras import keras
from tf_evosyn.core.flatten import flatten_model
from tf_evosyn.core.kinds import rule_for
from tf_evosyn.core.layer_kinds import ELEMENTWISE, SPATIAL, layer_kind
from tf_evosyn.core.layers import EVOLVABLE_TWINS, EvolvableMixin
from tf_evosyn.core.trace_blocks import trace_layer

# Layers with weights that are not synaptic kernels; they are kept as they are without a warning.
_NON_SYNAPTIC_WEIGHTED = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.Normalization,
)


@dataclass(frozen=True)
class SkippedLayer:
    name: str
    type: str
    reason: str


def _check_model(model: keras.Model) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"evolvable() takes a tf_keras Model, got {type(model).__name__}. If you built it with "
            "Keras 3 (`import keras`), build it with `import tf_keras as keras` instead."
        )
    is_sequential = isinstance(model, keras.Sequential)
    if not (is_sequential or getattr(model, "_is_graph_network", False)):
        raise TypeError(
            f"{model.name} is a subclassed model; evolvable() needs a Sequential or Functional "
            "model. Rebuild it with keras.Input(...) and the functional API."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"{model.name} is not built; give its first layer an input shape, e.g. "
            "keras.Sequential([keras.Input((28, 28, 1)), ...])."
        )


def evolvability_report(model: keras.Model) -> list[SkippedLayer]:
    """Layers with weights that evolution leaves untouched, and why (inside nested models and
    traced custom blocks too; a custom block that cannot be traced safely is named with why)."""
    skipped = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            skipped.extend(evolvability_report(layer))
            continue
        block = trace_layer(layer)  # a custom block: inlined when its call traces safely
        if block is not None and block.model is not None:
            skipped.extend(evolvability_report(block.model))
            continue
        if block is not None and layer.weights:
            reason = f"kept whole: {block.reason}"
            skipped.append(SkippedLayer(layer.name, type(layer).__name__, reason))
            continue
        if not layer.weights or isinstance(layer, EvolvableMixin):
            continue
        if type(layer) in EVOLVABLE_TWINS:
            if reason := rule_for(layer).unsupported_reason(layer):
                skipped.append(SkippedLayer(layer.name, type(layer).__name__, reason))
            continue
        if isinstance(layer, _NON_SYNAPTIC_WEIGHTED) or all(
            w.shape.rank <= 1 for w in layer.weights
        ):
            continue  # per-channel parameters (normalisation, ConvNeXt's LayerScale), no synapses
        skipped.append(
            SkippedLayer(
                layer.name,
                type(layer).__name__,
                "no evolvable twin (supported: "
                + ", ".join(t.__name__ for t in EVOLVABLE_TWINS)
                + "); kept unchanged",
            )
        )
    return skipped


def output_layers(model: keras.Model) -> set[str]:
    """Names of the layers whose units are model outputs, looking back through layers that
    only transform values (softmax, dropout, ...), so a classifier keeps all its classes."""
    names = set()
    for tensor in model.outputs:
        layer = tensor._keras_history.layer
        while not _is_convertible(layer) and len(layer.inbound_nodes) == 1:
            inbound = layer.inbound_nodes[0].inbound_layers
            if isinstance(inbound, list) or not (
                layer_kind(layer)[0] in (ELEMENTWISE, SPATIAL)
                or isinstance(layer, (keras.layers.Activation, keras.layers.Softmax))
            ):
                break
            layer = inbound
        names.add(layer.name)
    return names


def _is_convertible(layer) -> bool:
    return isinstance(layer, EvolvableMixin) or type(layer) in EVOLVABLE_TWINS


def evolvable(
    model: keras.Model, *, protect_outputs: bool = True, strict: bool = False
) -> keras.Model:
    """A flat clone of ``model`` in which every layer with an evolvable twin (Conv1D/2D/3D,
    Dense, DepthwiseConv2D, SeparableConv1D/2D, Conv1D/2D/3DTranspose, LSTM/GRU/SimpleRNN: every
    rule of :mod:`tf_evosyn.core.kinds` with a twin) is evolvable, weights kept; nested models
    inlined.

    Args:
      model: a built Sequential or Functional tf_keras model.
      protect_outputs: keep every unit of the layers that produce the model's outputs (a
        classifier never loses a class); their synapses still evolve.
      strict: raise instead of warn when a layer with weights cannot be evolved.
    """
    _check_model(model)
    model = flatten_model(model)  # nested Functional/Sequential models become one graph
    skipped = evolvability_report(model)
    if skipped:
        lines = "\n".join(f"  {s.name} ({s.type}): {s.reason}" for s in skipped)
        if strict:
            raise ValueError(f"These layers of {model.name} cannot be evolved:\n{lines}")
        logging.warning("These layers of %s are not evolved:\n%s", model.name, lines)
    skipped_names = {s.name for s in skipped}
    protected = output_layers(model) if protect_outputs else set()

    def clone_layer(layer):
        config = layer.get_config()
        twin = EVOLVABLE_TWINS.get(type(layer))
        if twin is not None and layer.name not in skipped_names:
            config["evolve_clusters"] = layer.name not in protected
            return twin.from_config(config)
        if isinstance(layer, EvolvableMixin) and layer.name in protected:
            config["evolve_clusters"] = False
        return type(layer).from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    for source in model.layers:
        target = clone.get_layer(source.name)
        if isinstance(target, EvolvableMixin) and not isinstance(source, EvolvableMixin):
            target.copy_plain_weights(source)
        elif source.weights:
            target.set_weights(source.get_weights())
    return clone


def clone_with_weights(model: keras.Model) -> keras.Model:
    """An independent copy of an (evolvable) model: same architecture, same weights and masks."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone
