"""Evolve a classification network: ``evosyn-classify --config=configs/x.py --workdir=DIR``.

Every config knob can be overridden, e.g. ``--config.evolution.generations=3``. Running the same
command again resumes after the last finished generation.

``--strategy=mirrored`` (or ``--config.distribute.strategy=mirrored``; the flag wins) trains on
all local GPUs, or on ``--config.distribute.num_cpu_devices=N`` logical CPU devices without one;
``multi_worker_mirrored`` reads ``TF_CONFIG``; ``tpu`` needs ``--config.distribute.tpu_address``.
``--config.train.mixed_precision=mixed_bfloat16`` and ``--config.train.jit_compile=True`` switch
on mixed precision and XLA. ``--config.train.batch_size`` is the global batch.
"""

from __future__ import annotations

import sys

import ml_collections
from absl import app, flags
from ml_collections import config_flags

import tf_evosyn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tf_evosyn.bin import config_cli
from tf_evosyn.data import DataError
from tf_evosyn.distribute import STRATEGIES
from tf_evosyn.experiment import ConfigError, run_classification

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/lenet5_mnist.py.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created, or resumed).")
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    None,
    list(STRATEGIES),
    "tf.distribute strategy; overrides config.distribute.strategy (default: the config's).",
)
flags.mark_flags_as_required(["config", "workdir"])


def _apply_strategy_flag(config: ml_collections.ConfigDict) -> None:
    if _STRATEGY.value is None:
        return
    with config.unlocked():  # a config file older than the distribute section lacks it
        if "distribute" not in config:
            config.distribute = ml_collections.ConfigDict(
                {"strategy": "default", "tpu_address": "", "num_cpu_devices": 0}
            )
        config.distribute.strategy = _STRATEGY.value


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        _apply_strategy_flag(_CONFIG.value)
        run_classification(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, DataError) as error:
        # Bad input is the user's to fix: say what and how, without a traceback.
        sys.exit(f"evosyn-classify: error: {error}")


def run() -> None:
    """Console-script entry point (a misspelt --config.KEY exits with one line, see config_cli)."""
    app.run(main, flags_parser=config_cli.flags_parser("evosyn-classify"))


if __name__ == "__main__":
    run()
