"""How a run executes: ``config.distribute.*``, ``train.mixed_precision``/``jit_compile``.

These keys may change when a run is resumed (another machine, more replicas, N population
workers), so they are read with defaults, and configs older than a key still work.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import ml_collections

from tf_evosyn.loop import distribute as distribute_lib
from tf_evosyn.loop import workers as workers_lib
from tf_evosyn.runs.errors import ConfigError, is_number

# Scale knobs, read with these defaults so configs and run directories older than them still work.
SCALE_DEFAULTS = {
    "distribute.strategy": "default",
    "distribute.tpu_address": "",
    "distribute.num_cpu_devices": 0,
    "distribute.collective_timeout_seconds": 600.0,
    "distribute.worker_index": -1,  # population workers (loop/workers.py): -1 = from the
    "distribute.num_workers": 0,  # scheduler's environment (or 0 of 1); 0 = from it (or 1)
    "distribute.worker_wait_seconds": workers_lib.DEFAULT_WAIT_SECONDS,
    "train.mixed_precision": "float32",
    "train.jit_compile": False,
}


@dataclass(frozen=True)
class ScaleSettings:
    """How a run executes: ``config.distribute.*``, ``train.mixed_precision``/``jit_compile``."""

    strategy: str = "default"
    tpu_address: str = ""
    num_cpu_devices: int = 0
    collective_timeout_seconds: float = 600.0
    worker_index: int = -1
    num_workers: int = 0
    worker_wait_seconds: float = workers_lib.DEFAULT_WAIT_SECONDS
    mixed_precision: str = "float32"
    jit_compile: bool = False

    @cached_property
    def workers(self) -> workers_lib.PopulationWorkers:
        """This process's share of the population, resolved once per run (flags, else the
        scheduler's environment), so every part of the run sees the same answer."""
        try:
            return workers_lib.resolve(
                self.worker_index, self.num_workers, self.worker_wait_seconds
            )
        except ValueError as error:
            raise ConfigError(f"distribute: {error}") from error


def _get(config: ml_collections.ConfigDict, dotted: str):
    node = config
    for part in dotted.split("."):
        if node is None or part not in node:
            return SCALE_DEFAULTS[dotted]
        node = node[part]
    return node


def scale_settings(config: ml_collections.ConfigDict) -> ScaleSettings:
    """The scale knobs of ``config`` (defaults for keys an older config does not have)."""
    return ScaleSettings(
        strategy=_get(config, "distribute.strategy"),
        tpu_address=_get(config, "distribute.tpu_address"),
        num_cpu_devices=_get(config, "distribute.num_cpu_devices"),
        collective_timeout_seconds=_get(config, "distribute.collective_timeout_seconds"),
        worker_index=_get(config, "distribute.worker_index"),
        num_workers=_get(config, "distribute.num_workers"),
        worker_wait_seconds=_get(config, "distribute.worker_wait_seconds"),
        mixed_precision=_get(config, "train.mixed_precision"),
        jit_compile=_get(config, "train.jit_compile"),
    )


def validate_scale(config: ml_collections.ConfigDict) -> None:
    scale = scale_settings(config)
    workers = scale.workers
    if workers.count > 1 and scale.strategy == "multi_worker_mirrored":
        raise ConfigError(
            f"distribute: num_workers={workers.count} shares the population between independent "
            "jobs, multi_worker_mirrored splits each training over workers; use one of them "
            "(--num_workers=1, or --strategy=default/mirrored)."
        )
    timeout = scale.collective_timeout_seconds
    if not is_number(timeout) or timeout <= 0:
        raise ConfigError(
            f"distribute.collective_timeout_seconds must be a number of seconds > 0, got "
            f"{timeout!r} (a multi-worker collective that takes longer fails the run)."
        )
    try:
        distribute_lib.check_strategy_args(scale.strategy, scale.tpu_address, scale.num_cpu_devices)
        distribute_lib.check_precision(scale.mixed_precision)
    except distribute_lib.StrategyError as error:
        raise ConfigError(f"distribute: {error}") from error
    if not isinstance(scale.jit_compile, bool):
        raise ConfigError(f"train.jit_compile must be True or False, got {scale.jit_compile!r}.")
    if scale.jit_compile and config.get("deterministic", False):
        raise ConfigError(
            "train.jit_compile=True needs deterministic=False: TensorFlow's op determinism does "
            "not extend to XLA-compiled steps, and XLA refuses some gradients under it (e.g. "
            "MaxPool). Add --config.deterministic=False, or keep jit_compile=False."
        )
