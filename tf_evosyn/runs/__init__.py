"""Whole experiments from a config, one module per task (what the absl binaries run), and
what ``evosyn-export`` needs to know of each task (:func:`export_spec`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ExportSpec:
    """What exporting a run of some task needs: real images as the model is fed them, the
    SavedModel's post-processing, and the paper's input size for latency (None: the run's)."""

    task: str
    images: np.ndarray
    description: str
    postprocess: Any = None  # outputs dict -> dict of more tensors (TF ops), or None
    decoding: str = ""  # how a user decodes the raw TFLite outputs
    paper_input_shape: tuple[int, int, int] | None = None


def is_detection(config: Any) -> bool:
    """Detection runs are the ones with a ``detection`` section (configs/detectnet_*.py)."""
    return "detection" in config


def export_spec(config: Any, num_images: int) -> ExportSpec:
    """The :class:`ExportSpec` of a run's config (raises DataError/ConfigError on bad data)."""
    if is_detection(config):
        from tf_evosyn.runs.detection import detection_export_spec

        return detection_export_spec(config, num_images)
    from tf_evosyn.runs.classification import classification_export_spec

    return classification_export_spec(config, num_images)
