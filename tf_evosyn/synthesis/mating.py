"""m-parent synthesis: one offspring bred from the m fittest networks of a generation.

After Chung et al., *The Mating Rituals of Deep Neural Networks* (2017): heredity comes from
the parents' combined cluster and synapse strengths over their aligned layers. All parents
descend from the same ancestor, so their evolvable layers align by name and shape.

Rule (per evolvable layer l, parents p = 1..m, fittest first; w_j^p is parent p's weight of
synapse j, a_j^p = 1 if j is alive in p, else 0):

- alive_j          = max_p a_j^p            (a synapse dead in EVERY parent stays dead; a
                                             cluster likewise)
- combined  |w_j|  = (1/m) sum_p a_j^p |w_j^p|   (a dead synapse counts as 0, as in the
                                             single-parent rule)
- Cluster strength  s_c = sum_{j in c} |w_j|,  P(c) = exp(s_c / Z_l - 1), Z_l = max_c s_c
- Synapse heredity  P(j | c) = exp(|w_j| / z_l - 1), z_l = max_j |w_j|

i.e. the single-parent formulas of docs/method.md on the combined magnitudes; with m = 1 this is
exactly single-parent synthesis. Coupled groups and safeguards apply as usual
(:func:`tf_evosyn.synthesize` draws the masks).

The environment is anchored to the fittest parent: each layer of the offspring is expected to
keep as many clusters and synapses as the fittest parent's single-parent offspring would under
the same environment (:class:`AnchoredToFittest`). A budget counted on the union instead (a
cluster alive in any parent) lets every generation grow back what the fittest parent had
already lost: a 2-parent LeNet-5 run shrank 2.6x in clusters in 7 generations where one parent
shrinks 5x. The offspring inherits, for each surviving
synapse, the weight of the fittest parent in which it is alive (biases and every other weight,
BatchNorm included, from the fittest parent that has the cluster alive / from the fittest).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.convert import clone_with_weights
from tf_evosyn.core.heredity import PAPERS_HEREDITY, Heredity, expected_survivors
from tf_evosyn.core.layers import evolvable_layers
from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.base import EnvironmentalFactor, solve_factor
from tf_evosyn.graph.coupling import plan_coupling
from tf_evosyn.synthesis.offspring import SynthesisRecord, compute_heredity, synthesize

# Factors may rise this far above 1 to keep a layer of the union at the fittest parent's size
# (probabilities clip at 1).
_MAX_ANCHOR_FACTOR = 1e3


def _aligned(parents: Sequence[keras.Model]) -> list[list]:
    """Evolvable layers of every parent, aligned by name (raises if the parents differ)."""
    names = [layer.name for layer in evolvable_layers(parents[0])]
    aligned = []
    for parent in parents[1:]:
        other = [layer.name for layer in evolvable_layers(parent)]
        if other != names:
            raise ValueError(
                "m-parent synthesis needs parents with the same evolvable layers (descendants "
                f"of one ancestor); got {names} and {other}."
            )
    for name in names:
        layers = [parent.get_layer(name) for parent in parents]
        shapes = {tuple(layer.matrix_shape) for layer in layers}
        if len(shapes) != 1:
            raise ValueError(f"layer {name!r} has different kernel shapes in the parents: {shapes}")
        aligned.append(layers)
    return aligned


def combined_strengths(layers: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(combined |w| per synapse, alive synapses, alive clusters) of one aligned layer."""
    alive = np.stack([layer.living_synapse_mask() for layer in layers])
    magnitude = np.stack([np.abs(layer.matrix_kernel().numpy()) for layer in layers]) * alive
    clusters = np.stack([layer.living_cluster_mask() for layer in layers]).any(axis=0)
    return magnitude.mean(axis=0), alive.any(axis=0), clusters


def inherited_kernel(layers: Sequence) -> np.ndarray:
    """Each synapse's weight from the fittest parent in which it is alive (0 if none)."""
    kernel = np.zeros(tuple(layers[0].matrix_shape), np.float32)
    taken = np.zeros(kernel.shape, bool)
    for layer in layers:  # fittest first
        alive = layer.living_synapse_mask() & ~taken
        kernel[alive] = layer.matrix_kernel().numpy()[alive]
        taken |= alive
    return kernel


def _inherited_bias(layers: Sequence) -> np.ndarray | None:
    if not layers[0].use_bias:
        return None
    shape, clusters = tuple(layers[0].bias.shape), layers[0].num_clusters
    bias = np.zeros((int(np.prod(shape)) // clusters, clusters), np.float32)  # (gates, clusters)
    taken = np.zeros(clusters, bool)
    for layer in layers:
        alive = layer.living_cluster_mask() & ~taken
        bias[:, alive] = layer.bias.numpy().reshape(bias.shape)[:, alive]
        taken |= alive
    return bias.reshape(shape)


def heredity_model(parents: Sequence[keras.Model]) -> keras.Model:
    """A copy of the fittest parent whose evolvable kernels hold the combined magnitudes (with
    the inherited weights' signs) and the union of the parents' masks: what the offspring's
    heredity probabilities are computed from."""
    model = clone_with_weights(parents[0])
    for layers in _aligned(parents):
        magnitude, alive, clusters = combined_strengths(layers)
        target = model.get_layer(layers[0].name)
        sign = np.where(inherited_kernel(layers) < 0, -1.0, 1.0)
        target.assign_matrix_kernel(sign * magnitude)
        target.synapse_mask.assign(alive.astype(np.float32))
        target.cluster_mask.assign(clusters.astype(np.float32))
    return model


class AnchoredToFittest(EnvironmentalFactor):
    """``environment`` for drawing from the parents' union, sized by the fittest parent.

    Bound to the heredity model of the union, it solves each layer's factors so the expected
    offspring keeps the (synapses, clusters) that ``environment`` would leave of the fittest
    parent's layer: the budget's resources are the fittest parent's, the union only decides
    which clusters and synapses compete for them. Channel alignment and other mask edits of
    ``environment`` still apply after the draw.
    """

    def __init__(
        self,
        environment: EnvironmentalFactor,
        fittest: keras.Model,
        targets: dict[str, tuple[float, float]] | None = None,
        heredity: Heredity = PAPERS_HEREDITY,
    ):
        self.environment = environment
        self.fittest = fittest
        self.targets = dict(targets or {})  # layer -> expected (synapses, clusters), once bound
        self.heredity = heredity

    def check_model(self, model) -> None:
        self.environment.check_model(model)

    def for_attempt(self, attempt: int) -> AnchoredToFittest:
        return AnchoredToFittest(
            self.environment.for_attempt(attempt), self.fittest, heredity=self.heredity
        )

    def bind(self, model, plan, heredities) -> AnchoredToFittest:
        """Solves ``environment`` on the fittest parent only: the union's factors come from
        :meth:`layer_factors`, and mask edits (:meth:`adjust_masks`) need no binding."""
        del model, plan, heredities
        fittest_plan = plan_coupling(self.fittest)
        fittest_heredities = compute_heredity(
            self.fittest, False, plan=fittest_plan, heredity=self.heredity
        )
        bound = self.environment.bind(self.fittest, fittest_plan, fittest_heredities)
        targets = {
            layer.name: expected_survivors(
                layer, *bound.layer_factors(layer, int(layer.synapse_alive.sum()))
            )
            for layer in fittest_heredities
        }
        return AnchoredToFittest(self.environment, self.fittest, targets, self.heredity)

    def layer_factors(self, layer, parent_synapses):
        synapses, clusters = self.targets[layer.name]
        cluster_factor = solve_factor(
            lambda f: expected_survivors(layer, f, _MAX_ANCHOR_FACTOR)[1],
            clusters,
            _MAX_ANCHOR_FACTOR,
        )
        synapse_factor = solve_factor(
            lambda f: expected_survivors(layer, cluster_factor, f)[0],
            synapses,
            _MAX_ANCHOR_FACTOR,
        )
        return cluster_factor, synapse_factor

    def adjust_masks(self, model, plan, heredities, masks, rng=None) -> None:
        self.environment.adjust_masks(model, plan, heredities, masks, rng)

    def get_config(self) -> dict:
        return {"environment": environment_lib.serialize(self.environment)}


def synthesize_from_parents(
    parents: Sequence[keras.Model],
    environment: environment_lib.EnvironmentalFactor | dict | None = None,
    *,
    seed: int = 0,
    generation: int = 1,
    attempt: int = 0,
    reinitialize: bool = False,
    heredity: Heredity | None = None,
) -> tuple[keras.Model, SynthesisRecord]:
    """Breed one offspring of ``parents`` (fittest first) by the rule in the module docstring.

    With one parent this is :func:`tf_evosyn.synthesize`.
    """
    if not parents:
        raise ValueError("synthesize_from_parents needs at least one parent.")
    if len(parents) == 1:
        return synthesize(
            parents[0],
            environment,
            seed=seed,
            generation=generation,
            attempt=attempt,
            reinitialize=reinitialize,
            heredity=heredity,
        )
    heredity = heredity or PAPERS_HEREDITY
    aligned = _aligned(parents)
    offspring, record = synthesize(
        heredity_model(parents),
        AnchoredToFittest(environment_lib.get(environment), parents[0], heredity=heredity),
        seed=seed,
        generation=generation,
        attempt=attempt,
        reinitialize=reinitialize,
        heredity=heredity,
    )
    if not reinitialize:
        for layers in aligned:
            target = offspring.get_layer(layers[0].name)
            living = target.living_synapse_mask()
            target.assign_matrix_kernel(inherited_kernel(layers) * living)
            bias = _inherited_bias(layers)
            if bias is not None:
                clusters = target.living_cluster_mask()
                target.bias.assign((bias.reshape(-1, clusters.size) * clusters).reshape(bias.shape))
    return offspring, record
