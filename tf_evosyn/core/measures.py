"""Living synapses and clusters of a model, counted exactly as docs/method.md defines them.

synapses: living kernel weights of evolvable layers (biases not counted); clusters: living
filters/units of evolvable layers.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.core.layers import evolvable_layers


@dataclass(frozen=True)
class LayerCount:
    name: str
    synapses: int
    clusters: int
    total_synapses: int
    total_clusters: int


@dataclass(frozen=True)
class ModelCount:
    synapses: int
    clusters: int
    layers: tuple[LayerCount, ...]

    def layers_as_dicts(self) -> list[dict]:
        return [asdict(layer) for layer in self.layers]


def count_living(model: keras.Model) -> ModelCount:
    """Living synapses and clusters, in total and per evolvable layer."""
    layers = []
    for layer in evolvable_layers(model):
        layers.append(
            LayerCount(
                name=layer.name,
                synapses=layer.living_synapse_count(),
                clusters=int(layer.living_cluster_mask().sum()),
                total_synapses=layer.synapse_count(),
                total_clusters=layer.num_clusters,
            )
        )
    if not layers:
        raise ValueError("The model has no evolvable layers; call tf_evosyn.evolvable(model).")
    return ModelCount(
        synapses=sum(layer.synapses for layer in layers),
        clusters=sum(layer.clusters for layer in layers),
        layers=tuple(layers),
    )


def mask_digest(model: keras.Model) -> str:
    """A short fingerprint of every evolvable layer's synapse and cluster masks: processes that
    must draw the same offspring (the workers of one run, a resumed run) log equal digests."""
    digest = hashlib.sha256()
    for layer in evolvable_layers(model):
        digest.update(layer.name.encode())
        for mask in (layer.living_synapse_mask(), layer.living_cluster_mask()):
            digest.update(np.packbits(np.asarray(mask, dtype=bool)).tobytes())
    return digest.hexdigest()[:16]
