"""Evolve a DetectNet on KITTI: ``evosyn-detect --config=configs/x.py --workdir=DIR``.

The detection twin of ``evosyn-classify``: same run directory, resume (run the same command
again), atomic writes, ``--strategy``, mixed precision and XLA switches; every config knob can
be overridden, e.g. ``--config.evolution.generations=3``. ``configs/detectnet_kitti.py`` is the
paper's experiment (1248x384, DetectNet's Adam recipe); ``configs/detectnet_kitti_smoke.py``
runs a thin, low-resolution DetectNet on a few real KITTI images in minutes on a CPU.
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
from tf_evosyn.experiment import ConfigError
from tf_evosyn.runs.detection import run_detection

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/detectnet_kitti.py.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created, or resumed).")
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    None,
    list(STRATEGIES),
    "tf.distribute strategy; overrides config.distribute.strategy (default: the config's).",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config: ml_collections.ConfigDict = _CONFIG.value
    try:
        if _STRATEGY.value is not None:
            with config.unlocked():
                config.distribute.strategy = _STRATEGY.value
        run_detection(config, _WORKDIR.value)
    except (ConfigError, DataError) as error:
        # Bad input is the user's to fix: say what and how, without a traceback.
        sys.exit(f"evosyn-detect: error: {error}")


def run() -> None:
    """Console-script entry point (a misspelt --config.KEY exits with one line, see config_cli)."""
    app.run(main, flags_parser=config_cli.flags_parser("evosyn-detect"))


if __name__ == "__main__":
    run()
