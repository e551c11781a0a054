"""Evolve a classification network: ``evosyn-classify --config=configs/x.py --workdir=DIR``.

Every config knob can be overridden, e.g. ``--config.evolution.generations=3``. Running the same
command again resumes after the last finished generation.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

import tf_evosyn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tf_evosyn.data import DataError
from tf_evosyn.experiment import ConfigError, run_classification

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/lenet5_mnist.py.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created, or resumed).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        run_classification(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, DataError) as error:
        # Bad input is the user's to fix: say what and how, without a traceback.
        sys.exit(f"evosyn-classify: error: {error}")


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
