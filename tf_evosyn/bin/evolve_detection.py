"""Evolve a DetectNet on KITTI: ``evosyn-detect --config=configs/x.py --workdir=DIR``.

The detection twin of ``evosyn-classify``: same run directory, resume (run the same command
again), atomic writes, ``--strategy``, mixed precision and XLA switches; every config knob can
be overridden, e.g. ``--config.evolution.generations=3``. ``configs/detectnet_kitti.py`` is the
paper's experiment (1248x384, DetectNet's Adam recipe); ``configs/detectnet_kitti_smoke.py``
runs a thin, low-resolution DetectNet on a few real KITTI images in minutes on a CPU.
"""

from __future__ import annotations

import tf_evosyn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tf_evosyn.bin import _app as experiment_app


def run() -> None:
    """Console-script entry point (flags and error handling: experiment_app)."""
    experiment_app.run_app("evosyn-detect", "detection")


if __name__ == "__main__":
    run()
