"""Parent -> offspring: clone the parent and draw the offspring's masks from its heredity.

Layers are sampled in topological order so that a synapse reading a channel that just died is
dead before its own layer is drawn (it would only ever read zeros or a constant). Coupled
clusters (residual additions, depthwise channels) are drawn once per group (see coupling.py).
After sampling, groups that no living synapse reads any more die as well, when every reader is
known.
Drawing is deterministic for a given (seed, generation, attempt).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.convert import clone_with_weights
from tf_evosyn.core.heredity import (
    PAPERS_HEREDITY,
    Heredity,
    LayerHeredity,
    apply_factor,
    layer_heredity,
    sample_layer,
    synapse_heredity,
)
from tf_evosyn.core.layers import EvolvableMixin, SeparableEvolvable, evolvable_layers
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.graph.coupling import CouplingPlan, group_cluster_probs, plan_coupling


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


def compute_heredity(
    model: keras.Model,
    write_buffers: bool = True,
    plan: CouplingPlan | None = None,
    heredity: Heredity = PAPERS_HEREDITY,
) -> list[LayerHeredity]:
    """Heredity probabilities of every evolvable layer from the current weights and masks.

    Coupled clusters share one probability per group (see :mod:`tf_evosyn.graph.coupling`). With
    ``write_buffers`` the probabilities are stored in the layers' heredity buffers, so a saved
    parent carries the probabilities its next offspring will be drawn from.
    """
    plan = plan or plan_coupling(model)
    heredities = [
        layer_heredity(
            layer.name,
            layer.matrix_kernel().numpy(),
            layer.living_synapse_mask(),
            layer.living_cluster_mask(),
            evolve_clusters=layer.evolve_clusters,
            heredity=heredity,
        )
        for layer in evolvable_layers(model)
    ]
    group_probs = group_cluster_probs(plan, heredities, heredity.cluster_sharpness)
    heredities = [replace(h, cluster_probs=group_probs[h.name]) for h in heredities]
    if write_buffers:
        for layer, heredity in zip(evolvable_layers(model), heredities, strict=True):
            layer.set_heredity(heredity.synapse_probs, heredity.cluster_probs)
    return heredities


def _input_alive(layer, plan: CouplingPlan, group_alive: dict[int, bool]) -> np.ndarray:
    """Boolean (kernel input dim,) mask: False where the input reads a dead group."""
    alive = np.ones(layer.matrix_shape[-2], dtype=bool)
    for group, rows in plan.reads(layer.name):
        if group_alive.get(group) is False:
            alive[rows] = False
    return alive


def _kill_unread_groups(
    plan: CouplingPlan, masks: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    """A group no living synapse reads any more dies (its output is never used), repeatedly:
    every death can leave the groups its members read unread in turn."""
    changed = True
    while changed:
        changed = False
        for group in reversed(plan.groups):
            if not (group.may_die and group.readers_known and group.readers):
                continue
            if not any(masks[name][1][channel] for name, channel in group.members):
                continue
            read = any(
                masks[reader][0].reshape(-1, *masks[reader][0].shape[-2:])[:, rows, :].any()
                for reader, rows in group.readers
            )
            last = any(masks[name][1].sum() <= 1 for name, _ in group.members)
            if read or last:
                continue
            for name, channel in group.members:
                synapses, clusters = masks[name]
                clusters = clusters.copy()
                clusters[channel] = False
                masks[name] = (synapses & clusters, clusters)
            changed = True


def draw_masks(
    model: keras.Model,
    environment: environment_lib.EnvironmentalFactor,
    rng: np.random.Generator,
    heredity: Heredity = PAPERS_HEREDITY,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple[float, float]]]:
    """Sample new (synapse_mask, cluster_mask) for every evolvable layer of ``model``.

    Layers are drawn in topological order; a coupled group is decided at its first member and
    every later member follows that decision. Synapses reading a dead group die with it. An
    environment that names layers the model lacks is refused here, before anything is drawn.
    """
    environment.check_model(model)
    plan = plan_coupling(model)
    heredities = compute_heredity(model, plan=plan, heredity=heredity)
    layers = {layer.name: layer for layer in evolvable_layers(model)}
    environment = environment.bind(model, plan, heredities)

    masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    factors: dict[str, tuple[float, float]] = {}
    group_alive: dict[int, bool] = {}
    for heredity in heredities:
        parent_synapses = int(heredity.synapse_alive.sum())
        input_alive = _input_alive(layers[heredity.name], plan, group_alive)
        synapse_alive = heredity.synapse_alive & input_alive[..., :, None]
        groups = plan.layer_groups[heredity.name]
        decided = np.array(
            [int(group_alive.get(int(g), -1 if plan.groups[g].may_die else 1)) for g in groups]
        )
        heredity = replace(
            heredity,
            synapse_probs=np.where(synapse_alive, heredity.synapse_probs, 0.0),
            synapse_alive=synapse_alive,
        )
        factors[heredity.name] = environment.layer_factors(heredity, parent_synapses)
        synapses, clusters = sample_layer(heredity, *factors[heredity.name], rng, decided)
        masks[heredity.name] = (synapses, clusters)
        for channel, group in enumerate(groups):
            if int(group) not in group_alive:
                group_alive[int(group)] = bool(clusters[channel])
    _kill_unread_groups(plan, masks)
    environment.adjust_masks(model, plan, heredities, masks, rng)
    return masks, factors


def _draw_shared_synapses(
    model: keras.Model,
    masks: dict[str, tuple[np.ndarray, np.ndarray]],
    factors: dict[str, tuple[float, float]],
    rng: np.random.Generator,
    heredity: Heredity = PAPERS_HEREDITY,
) -> dict[str, np.ndarray]:
    """Depthwise taps of separable layers (synapses shared by all clusters), after ``masks``.

    A depthwise channel lives while a living pointwise synapse reads it; its taps survive with
    P(j) = exp(gamma (|w_j| / z - 1)) times the layer's synapse factor, and it keeps its
    strongest tap.
    The heredity is written to the layer's ``depthwise_heredity`` buffer.
    """
    shared = {}
    for layer in evolvable_layers(model):
        if not isinstance(layer, SeparableEvolvable):
            continue
        synapses = masks[layer.name][0]
        rows_read = synapses.reshape(-1, *synapses.shape[-2:]).any(axis=(0, 2))
        kernel = layer.depthwise_kernel.numpy()  # (*taps, C, m)
        alive = layer.living_depthwise_mask() & rows_read.reshape(kernel.shape[-2:])
        probs = synapse_heredity(kernel, alive, heredity.synapse_sharpness)
        layer.depthwise_heredity.assign(probs.astype(np.float32))
        drawn = (rng.random(kernel.shape) < apply_factor(probs, factors[layer.name][1])) & alive
        channels = int(np.prod(kernel.shape[-2:]))  # depthwise channels (c, j)
        flat_drawn, flat_probs = drawn.reshape(-1, channels), probs.reshape(-1, channels)
        for channel in np.flatnonzero(alive.reshape(-1, channels).any(axis=0)):
            if not flat_drawn[:, channel].any():
                flat_drawn[np.argmax(flat_probs[:, channel]), channel] = True
        shared[layer.name] = flat_drawn.reshape(kernel.shape)
    return shared


def synthesize(
    parent: keras.Model,
    environment: environment_lib.EnvironmentalFactor | dict | None = None,
    *,
    seed: int = 0,
    generation: int = 1,
    attempt: int = 0,
    reinitialize: bool = False,
    heredity: Heredity | None = None,
) -> tuple[keras.Model, SynthesisRecord]:
    """Breed one offspring of ``parent`` (which is left unchanged apart from its heredity buffers).

    Args:
      parent: an evolvable model (see :func:`tf_evosyn.evolvable`).
      environment: an environmental factor model; default ``ConstantFactor(0.8, 1.0)``.
      seed, generation, attempt: select the random stream; the same triple gives the same masks.
      reinitialize: architecture-only heredity: the offspring gets fresh initial weights instead
        of inheriting the parent's surviving weights.
      heredity: the heredity family's sharpnesses; default the papers' model (gamma = 1).
    """
    environment = environment_lib.get(environment)
    heredity = heredity or PAPERS_HEREDITY
    if not evolvable_layers(parent):
        raise ValueError("The parent has no evolvable layers; call tf_evosyn.evolvable(model).")
    rng = synthesis_rng(seed, generation, attempt)
    masks, factors = draw_masks(parent, environment.for_attempt(attempt), rng, heredity)
    shared = _draw_shared_synapses(parent, masks, factors, rng, heredity)

    offspring = clone_with_weights(parent)
    if reinitialize:
        keras.utils.set_random_seed(int(rng.integers(2**31 - 1)))
        fresh = keras.models.clone_model(parent)
        for layer in fresh.layers:
            if isinstance(layer, EvolvableMixin):
                offspring.get_layer(layer.name).copy_plain_weights(layer)
    for layer in evolvable_layers(offspring):
        layer.set_masks(*masks[layer.name])
        if layer.name in shared:
            layer.set_depthwise_mask(shared[layer.name])
    return offspring, SynthesisRecord(int(seed), int(generation), int(attempt), factors)
