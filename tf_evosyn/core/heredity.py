"""Cluster-driven genetic encoding: heredity probabilities and Bernoulli sampling.

Pure NumPy on one layer's kernel (clusters on the last axis), following docs/method.md:

    s_c    = sum_{j in c} |w_j|                       (dead synapses count as 0)
    P(c)   = exp(gamma_c (s_c / Z - 1)),   Z = max_c s_c
    P(j|c) = exp(gamma_s (|w_j| / z - 1)), z = max_j |w_j|

The sharpnesses gamma (``Heredity``) make this a family; gamma = 1 is the papers' model, whose
probabilities span only [1/e, 1]: an environment that must remove 40% of a layer then also
removes strong synapses and strong filters. A larger gamma spans [exp(-gamma), 1], so the same
expected survivors are drawn more from the weak end (gamma -> inf is a magnitude trim; gamma ->
0 a uniform draw). The strongest cluster and synapse keep P = 1 for every gamma.

Dead clusters and synapses have probability 0, which makes heredity monotone. The environmental
factors multiply these probabilities (clipped to [0, 1]) before sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Heredity:
    """The heredity family's sharpnesses: P = exp(gamma (v / max v - 1)), gamma = 1 the papers'."""

    synapse_sharpness: float = 1.0
    cluster_sharpness: float = 1.0

    def __post_init__(self) -> None:
        for name in ("synapse_sharpness", "cluster_sharpness"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and math.isfinite(value) and value > 0
            ):
                raise ValueError(
                    f"Heredity {name} must be a finite number > 0 (1.0 = the papers' "
                    f"exp(|w|/z - 1)), got {value!r}."
                )

    def get_config(self) -> dict:
        return {
            "synapse_sharpness": float(self.synapse_sharpness),
            "cluster_sharpness": float(self.cluster_sharpness),
        }

    @classmethod
    def from_config(cls, config: dict) -> Heredity:
        return cls(**config)


PAPERS_HEREDITY = Heredity()


@dataclass(frozen=True)
class LayerHeredity:
    """Heredity of one layer before the environment is applied."""

    name: str
    cluster_probs: np.ndarray  # (C,)
    synapse_probs: np.ndarray  # kernel shape, conditional on the cluster surviving
    cluster_alive: np.ndarray  # (C,) bool, parent
    synapse_alive: np.ndarray  # kernel shape bool, parent (living synapses of living clusters)
    evolve_clusters: bool = True


def cluster_strengths(weights: np.ndarray, synapse_alive: np.ndarray) -> np.ndarray:
    """Sum of absolute living weights per cluster (last axis)."""
    magnitudes = np.abs(weights) * synapse_alive
    return magnitudes.reshape(-1, weights.shape[-1]).sum(axis=0)


def _normalised_exp(values: np.ndarray, alive: np.ndarray, sharpness: float = 1.0) -> np.ndarray:
    """exp(sharpness (v / max(v) - 1)) on living entries, 0 on dead ones."""
    living = np.where(alive, values, 0.0)
    peak = float(living.max()) if living.size else 0.0
    ratio = living / peak if peak > 0 else np.zeros_like(living)
    return np.where(alive, np.exp(float(sharpness) * (ratio - 1.0)), 0.0)


def cluster_heredity(
    strengths: np.ndarray, cluster_alive: np.ndarray, sharpness: float = 1.0
) -> np.ndarray:
    """P(cluster survives) = exp(gamma (s_c / Z - 1)) for living clusters, 0 for dead ones."""
    return _normalised_exp(
        np.asarray(strengths, np.float64), np.asarray(cluster_alive, bool), sharpness
    )


def synapse_heredity(
    weights: np.ndarray, synapse_alive: np.ndarray, sharpness: float = 1.0
) -> np.ndarray:
    """P(synapse survives | cluster survives) = exp(gamma (|w| / z - 1)), z = max living |w|."""
    return _normalised_exp(
        np.abs(np.asarray(weights, np.float64)), np.asarray(synapse_alive, bool), sharpness
    )


def layer_heredity(
    name: str,
    weights: np.ndarray,
    synapse_alive: np.ndarray,
    cluster_alive: np.ndarray,
    evolve_clusters: bool = True,
    heredity: Heredity = PAPERS_HEREDITY,
) -> LayerHeredity:
    """Heredity probabilities of one layer from its parent weights and masks."""
    synapse_alive = np.asarray(synapse_alive, bool) & np.asarray(cluster_alive, bool)
    strengths = cluster_strengths(weights, synapse_alive)
    cluster_probs = cluster_heredity(strengths, cluster_alive, heredity.cluster_sharpness)
    if not evolve_clusters:
        cluster_probs = np.where(cluster_alive, 1.0, 0.0)
    return LayerHeredity(
        name=name,
        cluster_probs=cluster_probs,
        synapse_probs=synapse_heredity(weights, synapse_alive, heredity.synapse_sharpness),
        cluster_alive=np.asarray(cluster_alive, bool),
        synapse_alive=synapse_alive,
        evolve_clusters=evolve_clusters,
    )


def apply_factor(probs: np.ndarray, factor: float) -> np.ndarray:
    """Environmental factor F(E) times heredity, clipped to a valid probability."""
    return np.clip(probs * float(factor), 0.0, 1.0)


def sample_layer(
    heredity: LayerHeredity,
    cluster_factor: float,
    synapse_factor: float,
    rng: np.random.Generator,
    decided: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw clusters, then synapses inside surviving clusters; returns (synapse, cluster) masks.

    ``decided`` (optional, per cluster: -1 draw it, 0 dead, 1 alive if alive in the parent)
    carries decisions already drawn for the cluster's coupled group in an earlier layer.

    Safeguards: a layer keeps at least one cluster (its strongest), every surviving cluster keeps
    at least one synapse (its strongest, so a cluster never degenerates to a bias-only constant),
    and protected clusters (``evolve_clusters=False``) all survive. A decided cluster with no
    living synapse left stays alive (its group lives on in other layers) and emits its bias.
    """
    p_cluster = apply_factor(heredity.cluster_probs, cluster_factor)
    if not heredity.evolve_clusters:
        p_cluster = heredity.cluster_alive.astype(np.float64)
    p_synapse = apply_factor(heredity.synapse_probs, synapse_factor)

    clusters = (rng.random(p_cluster.shape) < p_cluster) & heredity.cluster_alive
    synapses = (rng.random(p_synapse.shape) < p_synapse) & heredity.synapse_alive
    free = np.ones(clusters.shape, bool) if decided is None else np.asarray(decided) < 0
    if decided is not None:
        clusters = np.where(free, clusters, np.asarray(decided) > 0) & heredity.cluster_alive

    if not clusters.any() and (heredity.cluster_alive & free).any():
        probs = np.where(free, heredity.cluster_probs, -1.0)
        clusters[np.argmax(probs)] = True
    synapses &= clusters  # broadcast over the last axis

    flat_synapses = synapses.reshape(-1, synapses.shape[-1])
    flat_probs = heredity.synapse_probs.reshape(-1, synapses.shape[-1])
    for cluster in np.flatnonzero(clusters & ~flat_synapses.any(axis=0)):
        if flat_probs[:, cluster].max() > 0:
            flat_synapses[np.argmax(flat_probs[:, cluster]), cluster] = True
        elif free[cluster] and heredity.evolve_clusters and clusters.sum() > 1:
            clusters[cluster] = False  # no living synapse left (all inputs dead): it is dead
    return flat_synapses.reshape(synapses.shape), clusters


def expected_survivors(
    heredity: LayerHeredity, cluster_factor: float, synapse_factor: float
) -> tuple[float, float]:
    """Expected living (synapses, clusters) of the offspring layer under the given factors."""
    p_cluster = apply_factor(heredity.cluster_probs, cluster_factor)
    if not heredity.evolve_clusters:
        p_cluster = heredity.cluster_alive.astype(np.float64)
    p_synapse = apply_factor(heredity.synapse_probs, synapse_factor)
    per_cluster = p_synapse.reshape(-1, p_synapse.shape[-1]).sum(axis=0)
    return float((p_cluster * per_cluster).sum()), float(p_cluster.sum())
