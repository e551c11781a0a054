"""What exporting a run needs to know of its task (:class:`ExportSpec`)."""

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
