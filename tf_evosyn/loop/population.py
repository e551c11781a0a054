"""Populations: several offspring per generation, the fittest becomes the parent.

Each generation draws candidates k = 0, 1, ... (candidate k uses synthesis attempt k and the
training seed of (seed, generation, k), so the draws are the same whether or not the run was
interrupted). A candidate is *acceptable* when its score (on the decision split) is at least
the floor. Drawing stops once ``population`` candidates are drawn and at least one is
acceptable, or after ``max(population, max_attempts)`` draws (with ``population = 1`` this is
the classic loop: re-draw until one is accepted, at most ``max_attempts`` times).

Fitness of an acceptable candidate (documented choice):

    fitness = score + efficiency_weight * log2(cluster efficiency)

so ``efficiency_weight`` is the score a candidate may give up per doubling of its cluster
efficiency (default 0.005: half a point of accuracy). The fittest acceptable candidate is the
generation's offspring; with ``parents = m`` the next generation breeds from the m fittest
acceptable candidates (tf_evosyn.synthesis.mating).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def fitness(score: float, cluster_efficiency: float, efficiency_weight: float) -> float:
    if not math.isfinite(score):
        return -math.inf
    return score + efficiency_weight * math.log2(max(cluster_efficiency, 1e-12))


def done_drawing(candidates: Sequence[dict], population: int, max_attempts: int) -> bool:
    """Stop once ``population`` are drawn and one is acceptable, or after the draw limit."""
    acceptable = any(c["acceptable"] for c in candidates)
    return (acceptable and len(candidates) >= population) or len(candidates) >= max(
        population, max_attempts
    )


def ranked(candidates: Sequence[dict]) -> list[dict]:
    """Acceptable candidates, fittest first (ties: the earlier draw)."""
    pool = [c for c in candidates if c["acceptable"]]
    return sorted(pool, key=lambda c: (-c["fitness"], c["index"]))


def chosen(candidates: Sequence[dict]) -> dict:
    """The generation's offspring: the fittest acceptable candidate, else the last drawn."""
    best = ranked(candidates)
    return best[0] if best else candidates[-1]


def next_draws(drawn: int, population: int) -> range:
    """The candidates to draw next when ``drawn`` are finished and drawing is not done: the
    rest of the first ``population`` (independent of each other, so drawn side by side by
    several workers), then one re-draw at a time (each depends on the ones before)."""
    return range(drawn, population) if drawn < population else range(drawn, drawn + 1)
