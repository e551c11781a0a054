"""Parent -> offspring: clone the parent and draw the offspring's masks from its heredity.

Layers are sampled in topological order so that a synapse reading a channel that just died is
dead before its own layer is drawn (it would only ever read zeros). After sampling, clusters that
no living synapse reads any more die as well, when every reader is known (see graph.py).
Drawing is deterministic for a given (seed, generation, attempt).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf_evosyn import environment as environment_lib
from tf_evosyn._keras import keras
from tf_evosyn.convert import clone_with_weights
from tf_evosyn.graph import trace_channel_usage
from tf_evosyn.heredity import LayerHeredity, layer_heredity, sample_layer
from tf_evosyn.layers import EvolvableMixin, evolvable_layers


@dataclass(frozen=True)
class SynthesisRecord:
    """What was drawn: the environment's factors per layer, for the lineage."""

    seed: int
    generation: int
    attempt: int
    factors: dict[str, tuple[float, float]]


def synthesis_rng(seed: int, generation: int, attempt: int = 0) -> np.random.Generator:
    """One independent random stream per (seed, generation, attempt): resumable and repeatable."""
    return np.random.default_rng([int(seed), int(generation), int(attempt), 0x45564F])


def _input_alive(layer: EvolvableMixin, readers: dict[str, list], clusters_now: dict) -> np.ndarray:
    """Boolean (kernel input dim,) mask: False where the input reads a dead channel."""
    alive = np.ones(layer.kernel.shape[-2], dtype=bool)
    for producer_name, index_map in readers.get(layer.name, []):
        alive &= clusters_now[producer_name][index_map]
    return alive


def compute_heredity(model: keras.Model, write_buffers: bool = True) -> list[LayerHeredity]:
    """Heredity probabilities of every evolvable layer from the current weights and masks.

    With ``write_buffers`` the probabilities are stored in the layers' heredity buffers, so a
    saved parent carries the probabilities its next offspring will be drawn from.
    """
    heredities = []
    for layer in evolvable_layers(model):
        heredity = layer_heredity(
            layer.name,
            layer.kernel.numpy(),
            layer.living_synapse_mask(),
            layer.living_cluster_mask(),
            evolve_clusters=layer.evolve_clusters,
        )
        if write_buffers:
            layer.set_heredity(heredity.synapse_probs, heredity.cluster_probs)
        heredities.append(heredity)
    return heredities


def _readers_by_consumer(model: keras.Model):
    usages = trace_channel_usage(model)
    readers: dict[str, list] = {}
    for usage in usages.values():
        for consumer in usage.consumers:
            readers.setdefault(consumer.layer.name, []).append(
                (usage.producer.name, consumer.index_map)
            )
    return usages, readers


def draw_masks(
    model: keras.Model,
    environment: environment_lib.EnvironmentalFactor,
    rng: np.random.Generator,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple[float, float]]]:
    """Sample new (synapse_mask, cluster_mask) for every evolvable layer of ``model``."""
    heredities = compute_heredity(model)
    usages, readers = _readers_by_consumer(model)
    layers = {layer.name: layer for layer in evolvable_layers(model)}

    masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    factors: dict[str, tuple[float, float]] = {}
    clusters_now: dict[str, np.ndarray] = {}
    for heredity in heredities:
        parent_synapses = int(heredity.synapse_alive.sum())
        input_alive = _input_alive(layers[heredity.name], readers, clusters_now)
        synapse_alive = heredity.synapse_alive & input_alive[..., :, None]
        heredity = LayerHeredity(
            heredity.name,
            heredity.cluster_probs,
            np.where(synapse_alive, heredity.synapse_probs, 0.0),
            heredity.cluster_alive,
            synapse_alive,
            heredity.evolve_clusters,
        )
        factors[heredity.name] = environment.layer_factors(heredity, parent_synapses)
        synapses, clusters = sample_layer(heredity, *factors[heredity.name], rng)
        masks[heredity.name] = (synapses, clusters)
        clusters_now[heredity.name] = clusters

    # Backward: a cluster that no living synapse reads can die (its output is never used).
    for name in reversed(list(masks)):
        usage = usages[name]
        layer = layers[name]
        if not usage.fully_traced or not usage.consumers or not layer.evolve_clusters:
            continue
        read = np.zeros(layer.num_clusters, dtype=bool)
        for consumer in usage.consumers:
            consumer_synapses = masks[consumer.layer.name][0]
            rows = consumer_synapses.reshape(-1, *consumer_synapses.shape[-2:]).any(axis=(0, 2))
            np.logical_or.at(read, consumer.index_map[rows], True)
        synapses, clusters = masks[name]
        if (clusters & read).any():
            clusters = clusters & read
            masks[name] = (synapses & clusters, clusters)
    return masks, factors


def synthesize(
    parent: keras.Model,
    environment: environment_lib.EnvironmentalFactor | dict | None = None,
    *,
    seed: int = 0,
    generation: int = 1,
    attempt: int = 0,
    reinitialize: bool = False,
) -> tuple[keras.Model, SynthesisRecord]:
    """Breed one offspring of ``parent`` (which is left unchanged apart from its heredity buffers).

    Args:
      parent: an evolvable model (see :func:`tf_evosyn.evolvable`).
      environment: an environmental factor model; default ``ConstantFactor(0.8, 1.0)``.
      seed, generation, attempt: select the random stream; the same triple gives the same masks.
      reinitialize: architecture-only heredity: the offspring gets fresh initial weights instead
        of inheriting the parent's surviving weights.
    """
    environment = environment_lib.get(environment)
    if not evolvable_layers(parent):
        raise ValueError("The parent has no evolvable layers; call tf_evosyn.evolvable(model).")
    rng = synthesis_rng(seed, generation, attempt)
    masks, factors = draw_masks(parent, environment, rng)

    offspring = clone_with_weights(parent)
    if reinitialize:
        keras.utils.set_random_seed(int(rng.integers(2**31 - 1)))
        fresh = keras.models.clone_model(parent)
        for layer in fresh.layers:
            if isinstance(layer, EvolvableMixin):
                target = offspring.get_layer(layer.name)
                target.kernel.assign(layer.kernel)
                if layer.use_bias:
                    target.bias.assign(layer.bias)
    for layer in evolvable_layers(offspring):
        layer.set_masks(*masks[layer.name])
    return offspring, SynthesisRecord(int(seed), int(generation), int(attempt), factors)
