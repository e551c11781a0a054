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

import tf_evosyn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tf_evosyn.bin import _app as experiment_app


def run() -> None:
    """Console-script entry point (flags and error handling: experiment_app)."""
    experiment_app.run_app("evosyn-classify", "classification")


if __name__ == "__main__":
    run()
