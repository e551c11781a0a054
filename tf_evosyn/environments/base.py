"""Environmental factor models F(E): how scarce resources limit heredity.

A model maps the heredity of every layer to a pair of factors per layer,
``(cluster_factor, synapse_factor)``, which multiply the heredity probabilities before sampling.
Models are small serialisable objects (``get_config``/``from_config``) like TF-MOT schedules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tf_evosyn.core.heredity import LayerHeredity, expected_survivors
from tf_evosyn.core.layers import evolvable_layers

_REGISTRY: dict[str, type[EnvironmentalFactor]] = {}  # class name -> class (serialization)
_NAMES: dict[str, type[EnvironmentalFactor]] = {}  # config name ("layer_budget") -> class


def snake_name(class_name: str) -> str:
    """``LayerBudget`` -> ``layer_budget``: the name a config uses for a registered class."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def register(cls: type | None = None, *, name: str | None = None):
    """Make an environment known to ``get``, to run directories and to configs.

    Use as ``@register`` or ``@register(name="my_budget")`` on an :class:`EnvironmentalFactor`
    subclass with ``get_config``/``from_config``. A config then chooses it with
    ``config.evolution.environment = dict(name="my_budget", **constructor_kwargs)``; the default
    name is the class name in snake case.
    """

    def add(klass: type) -> type:
        if not (isinstance(klass, type) and issubclass(klass, EnvironmentalFactor)):
            raise TypeError(f"register expects an EnvironmentalFactor subclass, got {klass!r}.")
        key = name or snake_name(klass.__name__)
        known = _NAMES.get(key)
        if known is not None and known.__qualname__ != klass.__qualname__:
            raise ValueError(f"Environment name {key!r} is taken by {known.__name__}.")
        _REGISTRY[klass.__name__] = klass
        _NAMES[key] = klass
        return klass

    return add if cls is None else add(cls)


def registered_names() -> list[str]:
    """The names a config may give ``evolution.environment.name``."""
    return sorted(_NAMES)


def build(name: str, **kwargs) -> EnvironmentalFactor:
    """The registered environment ``name`` (config name or class name) built from ``kwargs``."""
    klass = _NAMES.get(name) or _REGISTRY.get(name)
    if klass is None:
        raise ValueError(f"Unknown environment {name!r}; registered: {registered_names()}.")
    try:
        return klass.from_config(dict(kwargs))
    except TypeError as error:
        raise ValueError(f"environment {name!r}: {error}") from error


class EnvironmentalFactor:
    """Base class. Subclasses implement :meth:`layer_factors` and :meth:`get_config`."""

    def factors(self, layers: Sequence[LayerHeredity]) -> list[tuple[float, float]]:
        """Factors for whole layers, each taken on its own (parent synapses = living ones)."""
        return [self.layer_factors(layer, int(layer.synapse_alive.sum())) for layer in layers]

    def layer_factors(self, layer: LayerHeredity, parent_synapses: int) -> tuple[float, float]:
        """Factors for one layer whose heredity is already restricted by what died upstream.

        Synthesis calls this layer by layer, after the layers feeding ``layer`` were drawn, so
        a resource target can count synapses lost to dead input channels. ``parent_synapses``
        is the layer's living synapse count in the parent.
        """
        raise NotImplementedError

    def check_model(self, model) -> None:
        """Raise ValueError naming the fix if this environment cannot evolve ``model`` (e.g. it
        names layers the model lacks); called before the ancestor trains and before every draw
        (``synthesis.draw_masks``). Wrappers pass it on to their base. Default: any model."""
        del model

    def bind(self, model, plan, heredities) -> EnvironmentalFactor:
        """The environment for drawing one offspring of ``model`` (its coupling ``plan`` and
        parent ``heredities``). Models that budget the whole network (FLOPs, latency) solve
        their factors here; per-layer models return themselves."""
        del model, plan, heredities
        return self

    def adjust_masks(self, model, plan, heredities, masks, rng=None) -> None:
        """Edit the drawn ``masks`` (layer -> (synapses, clusters)) in place after sampling, e.g.
        to align channel counts (``rng``: the draw's random stream). Default: no change."""
        del model, plan, heredities, masks, rng

    def for_attempt(self, attempt: int) -> EnvironmentalFactor:
        """The environment for the ``attempt``-th draw of a generation (0 = first draw).

        A model may ease its pressure when a generation's first offspring was rejected, so a
        re-draw can land between the parent and a step that proved too large. Default: no change.
        """
        del attempt
        return self

    def eased(self, exponent: float) -> EnvironmentalFactor:
        """This environment with its pressure raised to the power ``exponent`` in [0, 1] (0:
        keep every living cluster and synapse, 1: unchanged), for landing on a stop target
        (:mod:`tf_evosyn.environments.landing`). Default: not supported."""
        raise ValueError(
            f"{type(self).__name__} cannot ease its pressure, which landing on the stop target "
            f"(evolution.land_on_stop_target) needs; use evolution.environment='layer_budget' "
            f"or set land_on_stop_target=False."
        )

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> EnvironmentalFactor:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register
class ConstantFactor(EnvironmentalFactor):
    """The papers' setting: one constant factor at cluster and/or synapse level (e.g. 0.8)."""

    def __init__(self, cluster_factor: float = 0.8, synapse_factor: float = 1.0):
        self.cluster_factor = _check_fraction("cluster_factor", cluster_factor)
        self.synapse_factor = _check_fraction("synapse_factor", synapse_factor)

    def layer_factors(self, layer, parent_synapses):
        del layer, parent_synapses
        return self.cluster_factor, self.synapse_factor

    def get_config(self):
        return {"cluster_factor": self.cluster_factor, "synapse_factor": self.synapse_factor}


@register
class SynapseBudget(EnvironmentalFactor):
    """Resource target: the expected offspring keeps ``fraction`` of each layer's living synapses.

    Solves, per layer and by bisection, for the factor ``f`` that makes the expected number of
    surviving synapses equal the budget. ``level`` says where ``f`` applies: 'cluster',
    'synapse' or 'both' (the same ``f`` at both levels); the other level gets the constant
    ``cluster_factor`` / ``synapse_factor``. ``max_factor`` > 1 lets the environment be
    generous (probabilities are clipped at 1), so a budget above what heredity alone keeps can
    be met; that slows synaptic loss per generation, which is what keeps accuracy.
    """

    LEVELS = ("cluster", "synapse", "both")

    def __init__(
        self,
        fraction: float = 0.5,
        level: str = "both",
        max_factor: float = 1.0,
        cluster_factor: float = 1.0,
        synapse_factor: float = 1.0,
    ):
        self.fraction = _check_fraction("fraction", fraction)
        if level not in self.LEVELS:
            raise ValueError(f"level must be one of {self.LEVELS}, got {level!r}.")
        if max_factor <= 0:
            raise ValueError(f"max_factor must be > 0, got {max_factor}.")
        self.level = level
        self.max_factor = float(max_factor)
        self.cluster_factor = _check_fraction("cluster_factor", cluster_factor)
        self.synapse_factor = _check_fraction("synapse_factor", synapse_factor)

    def _pair(self, f: float) -> tuple[float, float]:
        return (
            f if self.level != "synapse" else self.cluster_factor,
            f if self.level != "cluster" else self.synapse_factor,
        )

    def layer_factors(self, layer, parent_synapses):
        target = self.fraction * float(parent_synapses)
        factor = solve_factor(
            lambda f: expected_survivors(layer, *self._pair(f))[0], target, self.max_factor
        )
        return self._pair(factor)

    def get_config(self):
        return {
            "fraction": self.fraction,
            "level": self.level,
            "max_factor": self.max_factor,
            "cluster_factor": self.cluster_factor,
            "synapse_factor": self.synapse_factor,
        }


def solve_factor(expected, target: float, max_factor: float) -> float:
    """Smallest factor in (0, max_factor] whose ``expected(factor)`` reaches ``target``.

    ``expected`` must be non-decreasing in the factor. If even ``max_factor`` falls short,
    ``max_factor`` is returned (the environment cannot be more generous than that).
    """
    if expected(max_factor) <= target:
        return max_factor
    lo, hi = 0.0, max_factor
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if expected(mid) < target:
            lo = mid
        else:
            hi = mid
    return max(hi, 1e-6)


@register
class LayerBudget(EnvironmentalFactor):
    """Resource targets per layer: keep a fraction of the parent's clusters AND of its synapses.

    For each layer the cluster factor is solved so the expected offspring keeps
    ``cluster_fraction`` of the layer's living clusters; then, with that cluster factor, the
    synapse factor is solved so it keeps ``synapse_fraction`` of the layer's living synapses
    (counting synapses already lost to dead input channels and to dying clusters; if those
    alone exceed the budget, the synapse factor is ``max_factor``, i.e. no extra loss).

    ``overrides`` maps layer names to their own ``{"cluster_fraction": .., "synapse_fraction":
    ..}``: layers differ in what they can spare. In LeNet-5, fc1 holds 93% of the synapses and
    tolerates losing clusters fast, while conv1 has 20 filters of 25 synapses each, and every
    filter it loses starves everything downstream; one global factor treats them alike.
    """

    def __init__(
        self,
        cluster_fraction: float = 0.8,
        synapse_fraction: float = 0.6,
        max_factor: float = 10.0,
        overrides: dict[str, dict[str, float]] | None = None,
        retry_relief: float = 0.0,
    ):
        if not 0.0 <= retry_relief < 1.0:
            raise ValueError(f"retry_relief must be in [0, 1), got {retry_relief}.")
        self.retry_relief = float(retry_relief)
        self.cluster_fraction = _check_fraction("cluster_fraction", cluster_fraction)
        self.synapse_fraction = _check_fraction("synapse_fraction", synapse_fraction)
        if max_factor < 1.0:
            raise ValueError(f"max_factor must be >= 1, got {max_factor}.")
        self.max_factor = float(max_factor)
        self.overrides: dict[str, dict[str, float]] = {}
        for layer_name, values in dict(overrides or {}).items():
            unknown = set(values) - {"cluster_fraction", "synapse_fraction"}
            if unknown:
                raise ValueError(
                    f"overrides[{layer_name!r}] has unknown keys {sorted(unknown)}; use "
                    "cluster_fraction and/or synapse_fraction."
                )
            self.overrides[str(layer_name)] = {
                key: _check_fraction(f"overrides[{layer_name!r}].{key}", value)
                for key, value in values.items()
            }

    def check_model(self, model) -> None:
        check_layer_names("layer_budgets (LayerBudget overrides)", self.overrides, model)

    def fractions(self, layer_name: str) -> tuple[float, float]:
        """(cluster_fraction, synapse_fraction) that apply to ``layer_name``."""
        override = self.overrides.get(layer_name, {})
        return (
            override.get("cluster_fraction", self.cluster_fraction),
            override.get("synapse_fraction", self.synapse_fraction),
        )

    def for_attempt(self, attempt: int) -> LayerBudget:
        """Re-draw ``k`` keeps ``fraction ** ((1 - retry_relief) ** k)`` of every budget: with
        relief 0.5 the first re-draw takes half the (logarithmic) step, the next a quarter."""
        if attempt <= 0 or self.retry_relief == 0.0:
            return self
        return self.eased((1.0 - self.retry_relief) ** int(attempt))

    def eased(self, exponent: float) -> LayerBudget:
        """Every fraction to the power ``exponent`` (0: keep everything, 1: unchanged)."""
        if not 0.0 <= exponent <= 1.0:
            raise ValueError(f"an easing exponent is in [0, 1], got {exponent}.")
        return LayerBudget(
            self.cluster_fraction**exponent,
            self.synapse_fraction**exponent,
            self.max_factor,
            {
                name: {key: value**exponent for key, value in values.items()}
                for name, values in self.overrides.items()
            },
            self.retry_relief,
        )

    def layer_factors(self, layer, parent_synapses):
        cluster_fraction, synapse_fraction = self.fractions(layer.name)
        cluster_target = cluster_fraction * float(layer.cluster_alive.sum())
        cluster_factor = solve_factor(
            lambda f: expected_survivors(layer, f, self.max_factor)[1],
            cluster_target,
            self.max_factor,
        )
        synapse_target = synapse_fraction * float(parent_synapses)
        synapse_factor = solve_factor(
            lambda f: expected_survivors(layer, cluster_factor, f)[0],
            synapse_target,
            self.max_factor,
        )
        return cluster_factor, synapse_factor

    def get_config(self):
        return {
            "cluster_fraction": self.cluster_fraction,
            "synapse_fraction": self.synapse_fraction,
            "max_factor": self.max_factor,
            "overrides": {name: dict(values) for name, values in self.overrides.items()},
            "retry_relief": self.retry_relief,
        }


def check_layer_names(what: str, given, model) -> None:
    """ValueError if ``given`` names layers that are not evolvable layers of ``model``: a
    misspelt layer in a per-layer setting would otherwise be ignored without a word."""
    if not given:
        return
    names = [layer.name for layer in evolvable_layers(model)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(
            f"{what} names {unknown}, which are not evolvable layers of {model.name}; use some "
            f"of {names}."
        )


def _check_fraction(name: str, value: float) -> float:
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}.")
    return float(value)


def get(identifier: EnvironmentalFactor | dict | None) -> EnvironmentalFactor:
    """Environment from an instance, ``{"class_name": ..., "config": {...}}``, or None (0.8)."""
    if identifier is None:
        return ConstantFactor()
    if isinstance(identifier, EnvironmentalFactor):
        return identifier
    if isinstance(identifier, dict) and "class_name" in identifier:
        name = identifier["class_name"]
        if name not in _REGISTRY:
            raise ValueError(f"Unknown environment {name!r}; known: {sorted(_REGISTRY)}.")
        return _REGISTRY[name].from_config(dict(identifier.get("config", {})))
    raise TypeError(f"Cannot build an environmental factor from {identifier!r}.")


def serialize(environment: EnvironmentalFactor) -> dict:
    return {"class_name": type(environment).__name__, "config": environment.get_config()}
