"""Saving and loading evolvable models (Keras format or SavedModel) with masks intact.

Paths may be local or on any TensorFlow filesystem (:mod:`tf_evosyn.storage.fs`); a remote
``.keras``
file is written locally first and uploaded in one piece, so it is never seen half-written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tf_evosyn._keras import keras
from tf_evosyn.core.layers import custom_objects
from tf_evosyn.models.custom_layers import custom_objects as model_custom_objects
from tf_evosyn.storage import fs

KERAS_FILENAME = "model.keras"


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> fs.RunPath:
    """Save to ``path``: a ``.keras`` file, or a directory that receives ``model.keras``."""
    path = fs.path(path)
    if not str(path).endswith(".keras"):
        fs.makedirs(path)
        path = fs.join(path, KERAS_FILENAME)
    if fs.is_remote(path):
        with tempfile.TemporaryDirectory(prefix="evosyn_model_") as tmp:
            local = Path(tmp) / KERAS_FILENAME
            model.save(local)
            fs.copy_file(local, path)
    else:
        model.save(path)
    return path


def load_model(path: str | os.PathLike[str], compile: bool = False) -> keras.Model:
    """Load an evolvable model from a ``.keras`` file, a directory holding ``model.keras``
    (e.g. a run's ``best/``), or a SavedModel directory."""
    path = fs.path(path)
    if fs.isdir(path) and fs.exists(fs.join(path, KERAS_FILENAME)):
        path = fs.join(path, KERAS_FILENAME)
    if not fs.exists(path):
        raise FileNotFoundError(
            f"No model at {path}: expected a .keras file, a directory with {KERAS_FILENAME}, "
            "or a SavedModel directory (saved_model.pb)."
        )
    if fs.isdir(path) and not fs.exists(fs.join(path, "saved_model.pb")):
        raise FileNotFoundError(f"{path} holds neither {KERAS_FILENAME} nor saved_model.pb.")
    # The zoo's custom layers (PadShortcut, ...) too, so a ResNet loads in a fresh process.
    with keras.utils.custom_object_scope({**model_custom_objects(), **custom_objects()}):
        return keras.models.load_model(path, compile=compile)
