"""LatencyBudget: an environment that keeps a fraction (or a number of ms) of measured latency.

Driven by :mod:`tf_evosyn.hardware.latency_model`: for every Conv2D/Dense geometry of the parent
(input
size, kernel, stride) the layer is timed alone on this machine at a small grid of input and
output channel counts (1, multiples of 8 / 16 and the parent's count), cached per machine.
Between grid points the time is linear in input channels and a step in output channels (the next
grid point up: XNNPACK computes output channels in tiles).

A step is the wrong thing to put an *expected* channel count into: a parent just above a tile
boundary would be predicted to save the whole tile for a fraction of a channel, and one just
below to save nothing whatever the factor, so the solved factor either keeps every cluster or
jumps. The budget therefore applies to the expected offspring's *latency*: each layer's living
output count is a sum of independent draws (mean and variance from the cluster probabilities,
normal approximation), and the layer's time is the step function averaged over that count,
which is smooth in the factor. Input counts enter through the linear part at their mean. One
factor shared by all layers is solved by bisection. Only Conv2D/Dense time is modelled
(additions, pooling and pads are not); a ``milliseconds`` target applies to that modelled time.
"""

from __future__ import annotations

import math

import numpy as np

from tf_evosyn.environments import base as environment_lib
from tf_evosyn.environments.base import EnvironmentalFactor, _check_fraction, solve_factor
from tf_evosyn.environments.flops_budget import MacsModel, SolvedFactors
from tf_evosyn.hardware.latency_model import LatencyTable, LayerShape, layer_shapes

IN_STEP, OUT_STEP, MAX_POINTS = 8, 16, 5


def _grid(parent: int, step: int) -> list[int]:
    """Up to MAX_POINTS channel counts in [1, parent], always including 1 and ``parent``."""
    points = list(range(step, parent, step))
    if len(points) > MAX_POINTS - 2:
        picks = np.linspace(0, len(points) - 1, MAX_POINTS - 2).round().astype(int)
        points = [points[i] for i in sorted(set(picks))]
    return sorted(set(points) | {1, parent})


class LayerLatency:
    """Measured time of one layer geometry over a (input, output channels) grid."""

    def __init__(self, shape: LayerShape, table: LatencyTable):
        self.inputs = np.array(_grid(shape.in_channels, IN_STEP), float)
        self.outputs = np.array(_grid(shape.out_channels, OUT_STEP), float)
        times = np.array(
            [
                [table.latency(shape.with_channels(cin, cout)) for cout in self.outputs]
                for cin in self.inputs
            ]
        )
        # A smaller layer is never predicted slower than a larger one: each time is capped by
        # every larger layer's (timing noise, and XNNPACK's slow path for a single output
        # channel, would otherwise lift the whole table).
        flipped = times[::-1, ::-1]
        capped = np.minimum.accumulate(np.minimum.accumulate(flipped, axis=0), axis=1)
        self.times = capped[::-1, ::-1]

    def __call__(self, in_channels: float, out_channels: float, out_std: float = 0.0) -> float:
        """Expected ms at ``in_channels`` inputs and a living output count of mean
        ``out_channels`` and standard deviation ``out_std`` (0: exactly that count)."""
        per_column = np.array(
            [np.interp(in_channels, self.inputs, column) for column in self.times.T]
        )
        if out_std <= 1e-6:
            column = min(
                int(np.searchsorted(self.outputs, out_channels - 1e-9)), len(self.outputs) - 1
            )
            return float(per_column[column])
        # P(count <= boundary) with a continuity correction; column j holds counts in
        # (outputs[j-1], outputs[j]], the last column everything above.
        upper = _normal_cdf((self.outputs[:-1] + 0.5 - out_channels) / out_std)
        probs = np.diff(np.concatenate([[0.0], upper, [1.0]]))
        return float(np.dot(probs, per_column))


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(z, float) / math.sqrt(2.0)))


class LatencyBudget(EnvironmentalFactor):
    """Resource target on measured latency: keep ``fraction`` of the parent's modelled time, or
    at most ``milliseconds`` of it (exactly one of the two).

    ``fraction`` applies to the part of the time that shrinking can remove: the time of the
    smallest offspring (every layer at one channel, protected clusters kept) is a floor that no
    factor goes below, so the target is ``floor + fraction * (parent - floor)``. Without that, a
    network whose modelled time is mostly a fixed cost (LeNet-5's first convolution costs the
    same at 1 and at 16 filters) has to cut everything else to nothing to save its fraction.

    Args:
      fraction / milliseconds: the budget per offspring.
      threads: TFLite threads the cost model is measured with (the deployment's).
      max_factor: > 1 lets the environment be generous (probabilities clip at 1).
      cache_dir: where the per-machine table lives (default ~/.cache/tf_evosyn/latency or
        $EVOSYN_LATENCY_CACHE).
      synapse_factor: the constant synapse factor (as FlopsBudget's ``count='dense'``: dense
        latency does not depend on synapses within living clusters); above 1 it is generous.
    """

    def __init__(
        self,
        fraction: float | None = None,
        milliseconds: float | None = None,
        threads: int = 1,
        max_factor: float = 10.0,
        cache_dir: str | None = None,
        synapse_factor: float = 1.0,
    ):
        if (fraction is None) == (milliseconds is None):
            raise ValueError("LatencyBudget needs exactly one of fraction= or milliseconds=.")
        self.fraction = None if fraction is None else _check_fraction("fraction", fraction)
        if milliseconds is not None and not float(milliseconds) > 0:
            raise ValueError(f"milliseconds must be > 0, got {milliseconds}.")
        self.milliseconds = None if milliseconds is None else float(milliseconds)
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}.")
        self.threads = int(threads)
        if max_factor < 1.0:
            raise ValueError(f"max_factor must be >= 1, got {max_factor}.")
        self.max_factor = float(max_factor)
        self.cache_dir = cache_dir
        if not 0.0 < float(synapse_factor) <= self.max_factor:
            raise ValueError(
                f"synapse_factor must be in (0, max_factor={self.max_factor}], got "
                f"{synapse_factor}."
            )
        self.synapse_factor = float(synapse_factor)

    def layer_factors(self, layer, parent_synapses):
        raise RuntimeError(
            "LatencyBudget times the whole model: call bind(model, plan, heredities) first "
            "(tf_evosyn.synthesize does)."
        )

    def cost_model(self, model, plan, heredities) -> tuple[MacsModel, dict[str, LayerLatency]]:
        table = LatencyTable(self.threads, self.cache_dir)
        shapes = layer_shapes(model)
        macs = MacsModel(model, plan, heredities, "dense")
        parent = [(1e9, 1e9)] * len(macs.layers)
        cin, cout, _ = self.expected_channels(macs, parent)
        layers = {}
        for cost, i_alive, o_alive in zip(macs.layers, cin, cout, strict=True):
            name = cost.heredity.name
            if name in shapes:
                shape = shapes[name].with_channels(round(i_alive), round(o_alive))
                layers[name] = LayerLatency(shape, table)
        table.save()
        return macs, layers

    @staticmethod
    def expected_channels(macs: MacsModel, factors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every layer's expected living input rows, and the mean and standard deviation of its
        living output channels, under ``factors``."""
        group_p = macs.group_probs(factors)
        cin = np.array(
            [np.where(c.input_groups >= 0, group_p[c.input_groups], 1.0).sum() for c in macs.layers]
        )
        alive = [group_p[c.groups] * c.heredity.cluster_alive for c in macs.layers]
        cout = np.array([p.sum() for p in alive])
        cout_std = np.sqrt([(p * (1.0 - p)).sum() for p in alive])
        return cin, cout, cout_std

    def predicted_ms(self, macs: MacsModel, layers: dict[str, LayerLatency], factors) -> float:
        """Modelled ms of the expected offspring under ``factors`` (see the module docstring)."""
        cin, cout, cout_std = self.expected_channels(macs, factors)
        return sum(
            layers[c.heredity.name](i, o, s)
            for c, i, o, s in zip(macs.layers, cin, cout, cout_std, strict=True)
            if c.heredity.name in layers
        )

    def bind(self, model, plan, heredities) -> EnvironmentalFactor:
        macs, layers = self.cost_model(model, plan, heredities)
        n = len(macs.layers)
        parent_ms = self.predicted_ms(macs, layers, [(1e9, 1e9)] * n)
        floor_ms = self.predicted_ms(macs, layers, [(0.0, 1.0)] * n)
        if self.fraction is None:
            target = self.milliseconds
        else:  # a fraction of what shrinking can remove (see the class docstring)
            target = floor_ms + self.fraction * (parent_ms - floor_ms)
        factor = solve_factor(
            lambda f: self.predicted_ms(macs, layers, [(f, 1.0)] * n), target, self.max_factor
        )
        names = [c.heredity.name for c in macs.layers]
        return SolvedFactors(self, {name: (factor, self.synapse_factor) for name in names})

    def get_config(self):
        return {
            "fraction": self.fraction,
            "milliseconds": self.milliseconds,
            "threads": self.threads,
            "max_factor": self.max_factor,
            "cache_dir": self.cache_dir,
            "synapse_factor": self.synapse_factor,
        }


environment_lib.register(LatencyBudget)
