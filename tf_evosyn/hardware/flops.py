"""Parameters and multiply-accumulates (MACs) per layer, for one example.

Evolution is meant to shrink the cost of a network, so the cost has to be measured. Conventions:

* A MAC is one multiply plus one add of a kernel weight with an input value; bias additions,
  activations and pooling are not counted (0 MACs), as in most papers' FLOPs tables.
* BatchNormalization counts 0 MACs: at inference it folds into the preceding convolution's
  kernel and bias. Its 4 parameters per channel are counted.
* Each layer's rule (:mod:`tf_evosyn.core.kinds`) counts its MACs (a subclass as its base type).
  Conv (1D/2D/3D, grouped): output positions x kernel weights. Conv*Transpose: input positions
  x kernel weights. DepthwiseConv: output positions x depthwise weights. SeparableConv:
  depthwise plus pointwise. Dense: kernel weights x positions of its leading axes (1 for 2D).
  LSTM/GRU/SimpleRNN: time steps x (kernel + recurrent kernel weights).
* Evolvable layers: ``dense_macs`` counts every kernel weight (what the masked model computes),
  ``living_macs`` only living synapses (what a compacted, sparse-aware network would compute);
  ``macs`` is ``living_macs``. For other layers the two are equal.
* Shared layers are counted once per call; a nested model is counted recursively.
* Parameters exclude the mask and heredity buffers of evolvable layers (a plain model's count).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.evolvable_base import EvolvableMixin
from tf_evosyn.core.kinds import nearest_rule


@dataclass(frozen=True)
class LayerFlops:
    name: str
    type: str
    macs: int
    dense_macs: int
    living_macs: int
    params: int
    living_params: int
    note: str = ""


@dataclass(frozen=True)
class FlopsReport:
    """Per-layer costs and their totals."""

    layers: tuple[LayerFlops, ...]

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_dense_macs(self) -> int:
        return sum(layer.dense_macs for layer in self.layers)

    @property
    def total_living_macs(self) -> int:
        return sum(layer.living_macs for layer in self.layers)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def total_living_params(self) -> int:
        return sum(layer.living_params for layer in self.layers)

    def layer(self, name: str) -> LayerFlops:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def format(self) -> str:
        """Aligned text table with totals."""
        header = ("layer", "type", "dense MACs", "living MACs", "params", "living params")
        rows = [header]
        for r in self.layers:
            rows.append(
                (
                    r.name,
                    r.type,
                    f"{r.dense_macs:,}",
                    f"{r.living_macs:,}",
                    f"{r.params:,}",
                    f"{r.living_params:,}" + (f"  ({r.note})" if r.note else ""),
                )
            )
        rows.append(
            (
                "total",
                "",
                f"{self.total_dense_macs:,}",
                f"{self.total_living_macs:,}",
                f"{self.total_params:,}",
                f"{self.total_living_params:,}",
            )
        )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        lines = []
        for row in rows:
            cells = [
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row[:-1], widths, strict=True))
            ]
            lines.append("  ".join(cells + [row[-1]]).rstrip())
        return "\n".join(lines)


def layer_params(layer: keras.layers.Layer) -> int:
    """Parameters as a plain model has them (mask/heredity buffers of evolvable layers left out)."""
    if not layer.built:
        return 0
    if isinstance(layer, EvolvableMixin):
        return sum(
            int(np.prod(getattr(layer, attr).shape))
            for attr in layer.weight_attrs
            if attr != "bias" or layer.use_bias
        )
    return int(layer.count_params())


def _living_params(layer: keras.layers.Layer) -> int:
    if not isinstance(layer, EvolvableMixin):
        return layer_params(layer)
    clusters = int(layer.living_cluster_mask().sum())
    if not layer.use_bias:
        return layer.living_synapse_count()
    per_cluster = int(np.prod(layer.bias.shape)) // layer.num_clusters  # gates of a unit
    return layer.living_synapse_count() + clusters * per_cluster


def _calls(model: keras.Model, layer: keras.layers.Layer) -> list[tuple[tuple, tuple]]:
    """(input shape, output shape) of every call of ``layer`` inside ``model``."""
    calls = []
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.layer is layer and not node.is_input:
                inputs = node.keras_inputs
                outputs = node.outputs
                out = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
                calls.append((tuple(inputs[0].shape) if inputs else (), tuple(out.shape)))
    return calls


def _dense_macs(layer: keras.layers.Layer, in_shape: tuple, out_shape: tuple) -> int | None:
    """MACs of one call with every kernel weight computed (by the layer's rule,
    :meth:`tf_evosyn.core.kinds.LayerRule.dense_macs`; subclasses count as their base type);
    None if not modelled."""
    rule = nearest_rule(layer)
    return None if rule is None else rule.dense_macs(layer, in_shape, out_shape)


def count_flops(model: keras.Model) -> FlopsReport:
    """MACs and parameters of every layer of a built Sequential/Functional model."""
    if not getattr(model, "_is_graph_network", False):
        raise TypeError(f"{model.name}: count_flops needs a built Sequential/Functional model.")
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        params, living_params = layer_params(layer), _living_params(layer)
        if isinstance(layer, keras.Model):
            sub = count_flops(layer)
            calls = max(len(_calls(model, layer)), 1)
            rows.append(
                LayerFlops(
                    layer.name,
                    type(layer).__name__,
                    sub.total_macs * calls,
                    sub.total_dense_macs * calls,
                    sub.total_living_macs * calls,
                    sub.total_params,
                    sub.total_living_params,
                    "nested model",
                )
            )
            continue
        dense = living = 0
        note = ""
        for in_shape, out_shape in _calls(model, layer):
            macs = _dense_macs(layer, in_shape, out_shape)
            if macs is None:
                if layer.weights and not isinstance(layer, keras.layers.BatchNormalization):
                    note = "MACs not modelled"
                continue
            dense += macs
            if isinstance(layer, EvolvableMixin):  # per input position for a transposed conv
                living += nearest_rule(layer).living_macs(layer, in_shape, out_shape)
            else:
                living += macs
        rows.append(
            LayerFlops(
                layer.name, type(layer).__name__, living, dense, living, params, living_params, note
            )
        )
    return FlopsReport(tuple(rows))
