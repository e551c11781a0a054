"""Evolved models <-> TF-MOT pruned models, output for output and mask for mask.

TF-MOT (``tensorflow_model_optimization``) keeps one mask per prunable weight in its
``PruneLowMagnitude`` wrapper (``wrapper.pruning_vars``: ``(kernel, mask, threshold)``) and
multiplies the kernel by it before every training forward pass. An evolved layer keeps two masks,
``synapse_mask`` (kernel shape) and ``cluster_mask`` (one per filter/unit), and also silences the
bias of a dead cluster. The conversions here map one onto the other:

* :func:`to_tfmot`: every evolvable layer whose kernel TF-MOT prunes (Conv1D/2D/3D,
  Conv2D/3DTranspose, Dense, LSTM/GRU/SimpleRNN: ``LayerRule.tfmot_prunes``) becomes its plain
  twin in a PruneLowMagnitude wrapper whose mask is ``synapse_mask & cluster_mask``; kernels are
  the masked kernels and the biases of dead clusters are 0, so a dead cluster emits
  ``activation(0)`` in both models and the outputs are identical. Wrappers use
  :class:`KeepMasks`, a schedule under which TF-MOT never recomputes masks
  (``Pruning.conditional_mask_update`` only runs when the schedule's ``should_prune`` is True),
  so fine-tuning with ``UpdatePruningStep`` keeps the evolved pattern.
* :func:`from_tfmot`: wrapped (or already stripped) Conv2D/Dense become evolvable again; a synapse
  lives iff its TF-MOT mask is 1 (after ``strip_pruning``: iff its weight is non-zero) and a cluster
  lives iff any of its synapses lives, so evolution can continue from a TF-MOT-pruned model.

TF-MOT masks kernels only: during plain TF-MOT training the bias of a dead cluster keeps learning.
:func:`from_tfmot` warns when that happened, because the evolvable model silences dead clusters.
For the same reason a cluster that tf_evosyn keeps alive without any living synapse (possible in a
coupled group, where it emits its bias) reads back from TF-MOT as dead.
EvoConv2D/EvoDense also implement TF-MOT's ``PrunableLayer`` protocol, so ``prune_low_magnitude``
can wrap an evolvable model directly; :func:`from_tfmot` then combines both sets of masks.
"""

from __future__ import annotations

import numpy as np
import tensorflow_model_optimization as tfmot
from absl import logging

# The wrapper class is not in TF-MOT's public API; strip_pruning uses the same one.
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
    PruneLowMagnitude,
)

from tf_evosyn._keras import keras, tf
from tf_evosyn.core.convert import _check_model, output_layers
from tf_evosyn.core.kinds import nearest_rule
from tf_evosyn.core.layers import EVOLVABLE_TWINS, EvolvableMixin, evolvable_layers

# Layers whose kernels TF-MOT prunes (its prune_registry) say so in their rules
# (LayerRule.tfmot_prunes); other evolvable layers (depthwise, separable, Conv1DTranspose)
# become plain, fixed layers. Each rule also says which kernels TF-MOT masks and how they map
# onto the matrix view (a recurrent layer: its cell's kernel and recurrent kernel).


@keras.utils.register_keras_serializable(package="tf_evosyn")
class KeepMasks(tfmot.sparsity.keras.PruningSchedule):
    """A TF-MOT schedule that never prunes by magnitude: wrapper masks stay what was written.

    ``should_prune`` is False at every step, so TF-MOT's wrapper never runs its magnitude mask
    update; it still multiplies kernels by the masks every training step and at every epoch end
    (``UpdatePruningStep``), so masked weights stay 0. Reported sparsity is 0 (no target).
    """

    def __call__(self, step):
        del step
        return tf.constant(False), tf.constant(0.0, dtype=tf.float32)

    def get_config(self) -> dict:
        # TF-MOT's schedule format: the wrapper stores and deserialises the whole dict.
        return {"class_name": keras.utils.get_registered_name(type(self)), "config": {}}


def kernel_pruning_vars(wrapper: PruneLowMagnitude) -> tuple[tf.Variable, tf.Variable]:
    """The wrapped layer's ``(kernel, mask)`` variables (a recurrent layer's input kernel)."""
    return _pruned_pairs(wrapper)[0]


def _is_evolvable_wrapper(layer: keras.layers.Layer) -> bool:
    """A PruneLowMagnitude wrapper around a layer that evolution can drive (Conv2D/Dense/Evo*)."""
    if not isinstance(layer, PruneLowMagnitude):
        return False
    inner = layer.layer
    return isinstance(inner, EvolvableMixin) or type(inner) in EVOLVABLE_TWINS


def wrapped_layers(model: keras.Model) -> dict[str, PruneLowMagnitude]:
    """Evolvable PruneLowMagnitude wrappers of ``model`` keyed by the wrapped layer's name."""
    return {layer.layer.name: layer for layer in model.layers if _is_evolvable_wrapper(layer)}


def _pruned_pairs(wrapper: PruneLowMagnitude) -> list[tuple[tf.Variable, tf.Variable]]:
    """``(weight, mask)`` of every kernel TF-MOT prunes in ``wrapper``: the kernel, and for a
    recurrent layer the cell's kernel and recurrent kernel (TF-MOT's RNN rule)."""
    if not wrapper.built:
        raise ValueError(f"{wrapper.name} is not built; build the model before reading masks.")
    inner = wrapper.layer
    weights = nearest_rule(inner).pruned_kernels(inner)
    masks = {id(weight): mask for weight, mask, _ in wrapper.pruning_vars}
    missing = [w.name for w in weights if id(w) not in masks]
    if missing:
        raise ValueError(f"{wrapper.name}: TF-MOT does not prune {missing} of {inner.name}.")
    return [(weight, masks[id(weight)]) for weight in weights]


def _as_matrix(inner: keras.layers.Layer, values: list[np.ndarray]) -> np.ndarray:
    """Per-kernel arrays (Keras' layouts, :func:`_pruned_pairs` order) as one matrix view."""
    return nearest_rule(inner).kernels_to_matrix(inner, values)


def _as_kernels(inner: keras.layers.Layer, matrix: np.ndarray, shapes) -> list[np.ndarray]:
    """The inverse of :func:`_as_matrix`."""
    return nearest_rule(inner).matrix_to_kernels(inner, matrix, shapes)


def bias_variable(inner: keras.layers.Layer) -> tf.Variable:
    """The bias of a plain or evolvable layer (a recurrent layer's lives in its cell)."""
    return nearest_rule(inner).bias_variable(inner)


def bias_alive(inner: keras.layers.Layer, clusters: np.ndarray) -> np.ndarray:
    """Which bias entries belong to living clusters (a recurrent unit's bias: one per gate)."""
    return nearest_rule(inner).bias_alive(inner, clusters)


def read_masks(layer: keras.layers.Layer) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(synapse, cluster)`` masks of a wrapper, an evolvable or a plain layer.

    A synapse lives iff TF-MOT's mask (if wrapped), the evolved masks (if evolvable) and, for a
    plain stripped layer, a non-zero weight say so; a cluster lives iff any of its synapses does.
    """
    inner = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
    kernel = nearest_rule(inner).matrix_kernel(inner)
    if isinstance(layer, PruneLowMagnitude):  # TF-MOT's masks have the kernels' own layouts
        masks = [mask.numpy() > 0.5 for _, mask in _pruned_pairs(layer)]
        synapses = _as_matrix(inner, masks)
    elif isinstance(inner, EvolvableMixin):
        synapses = np.ones(kernel.shape, dtype=bool)
    else:
        synapses = kernel != 0
    if isinstance(inner, EvolvableMixin):
        synapses &= inner.living_synapse_mask()
    clusters = synapses.reshape(-1, kernel.shape[-1]).any(axis=0)
    return synapses, clusters


def write_masks(wrapper: PruneLowMagnitude, synapses: np.ndarray, clusters: np.ndarray) -> None:
    """Write ``synapses & clusters`` into TF-MOT's masks, zero dead kernels and dead biases."""
    inner = wrapper.layer
    synapses = np.asarray(synapses, bool) & np.asarray(clusters, bool)
    pairs = _pruned_pairs(wrapper)
    layouts = _as_kernels(inner, synapses, [tuple(weight.shape) for weight, _ in pairs])
    for (weight, mask), alive in zip(pairs, layouts, strict=True):
        mask.assign(alive.astype(mask.dtype.as_numpy_dtype))
        weight.assign(weight.numpy() * alive)
    if inner.use_bias:
        bias = bias_variable(inner)
        bias.assign(bias.numpy() * bias_alive(inner, clusters))
    if isinstance(inner, EvolvableMixin):
        inner.set_masks(synapses, clusters)


def to_tfmot(evolved: keras.Model) -> keras.Model:
    """A TF-MOT pruned twin of ``evolved``: plain Conv2D/Dense in PruneLowMagnitude wrappers.

    Wrapper masks equal the evolved living synapses, kernels the masked kernels, dead-cluster
    biases are 0, and the wrappers use :class:`KeepMasks`, so ``fit`` with ``UpdatePruningStep``
    fine-tunes without changing the sparsity pattern and ``strip_pruning`` gives a plain model.
    """
    _check_model(evolved)
    if not evolvable_layers(evolved):
        raise ValueError(
            f"{evolved.name} has no evolvable layers; call tf_evosyn.evolvable(model) first, or "
            "use tfmot.sparsity.keras.prune_low_magnitude for a plain model."
        )

    def clone_layer(layer):
        config = layer.get_config()
        if isinstance(layer, EvolvableMixin):
            plain = layer.plain_type.from_config(layer.plain_config())
            if not nearest_rule(layer).tfmot_prunes:
                return plain
            return PruneLowMagnitude(plain, pruning_schedule=KeepMasks())
        return type(layer).from_config(config)

    pruned = keras.models.clone_model(evolved, clone_function=clone_layer)
    wrappers = wrapped_layers(pruned)
    for layer in evolved.layers:
        if isinstance(layer, EvolvableMixin) and layer.name not in wrappers:
            pruned.get_layer(layer.name).set_weights(layer.plain_weights())
        elif isinstance(layer, EvolvableMixin):
            inner = wrappers[layer.name].layer
            rule = nearest_rule(layer)
            owner, source = rule.weights_owner(inner), rule.weights_owner(layer)
            for attr in layer.weight_attrs:
                if attr != "bias" or layer.use_bias:
                    getattr(owner, attr).assign(getattr(source, attr))
            write_masks(wrappers[layer.name], *read_masks(layer))
        elif layer.weights:
            pruned.get_layer(layer.name).set_weights(layer.get_weights())
    return pruned


def _warn_dead_biases(name: str, bias: np.ndarray, clusters: np.ndarray) -> None:
    dead = np.abs(bias[..., ~clusters])
    if dead.size and dead.max() > 0:
        logging.warning(
            "%s: %d dead clusters (all synapses masked) carry a non-zero bias (max |b| = %.3g); "
            "the evolvable model silences dead clusters, so its outputs differ from the TF-MOT "
            "model's. Train with EvolutionaryPruningCallback, which keeps these biases at 0.",
            name,
            int((dead > 0).sum()),
            float(dead.max()),
        )


def from_tfmot(
    pruned: keras.Model, *, protect_outputs: bool = True, evolve_unwrapped: bool = True
) -> keras.Model:
    """An evolvable model from a TF-MOT pruned model, before or after ``strip_pruning``.

    Every wrapped Conv2D/Dense/evolvable layer becomes evolvable with masks read by
    :func:`read_masks`; so does every unwrapped Conv2D/Dense unless ``evolve_unwrapped`` is False
    (then it stays plain and fixed, which is what evolution inside ``fit`` needs). Other wrappers
    are stripped. ``protect_outputs`` keeps the units of the output layers alive in later
    generations, as :func:`tf_evosyn.evolvable` does. A cluster with no living synapse is dead,
    so its bias is dropped (a warning says so when it was not 0).
    """
    _check_model(pruned)

    def evolves(layer) -> bool:
        if isinstance(layer, PruneLowMagnitude):
            return _is_evolvable_wrapper(layer)
        return isinstance(layer, EvolvableMixin) or (
            evolve_unwrapped and type(layer) in EVOLVABLE_TWINS
        )

    def clone_layer(layer):
        inner = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
        config = inner.get_config()
        if evolves(layer) and not isinstance(inner, EvolvableMixin):
            return EVOLVABLE_TWINS[type(inner)].from_config(config)
        return type(inner).from_config(config)

    evolved = keras.models.clone_model(pruned, clone_function=clone_layer)
    for source in pruned.layers:
        inner = source.layer if isinstance(source, PruneLowMagnitude) else source
        if not inner.weights:
            continue
        target = evolved.get_layer(inner.name)
        if isinstance(inner, EvolvableMixin):
            target.set_weights(inner.get_weights())  # heredity buffers come along
        elif isinstance(target, EvolvableMixin):
            target.copy_plain_weights(inner)
        else:
            target.set_weights(inner.get_weights())
            continue
        synapses, clusters = read_masks(source)
        if inner.use_bias:
            _warn_dead_biases(inner.name, bias_variable(inner).numpy(), bias_alive(inner, clusters))
        target.set_masks(synapses, clusters)
    if protect_outputs:
        for name in output_layers(evolved):
            layer = evolved.get_layer(name)
            if isinstance(layer, EvolvableMixin):
                layer.evolve_clusters = False
    return evolved
