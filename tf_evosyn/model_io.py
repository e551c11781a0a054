"""Saving and loading evolvable models (Keras format or SavedModel) with masks intact."""

from __future__ import annotations

from pathlib import Path

from tf_evosyn._keras import keras
from tf_evosyn.layers import custom_objects
from tf_evosyn.models import custom_objects as model_custom_objects

KERAS_FILENAME = "model.keras"


def save_model(model: keras.Model, path: str | Path) -> Path:
    """Save to ``path``: a ``.keras`` file, or a directory that receives ``model.keras``."""
    path = Path(path)
    if path.suffix != ".keras":
        path.mkdir(parents=True, exist_ok=True)
        path = path / KERAS_FILENAME
    model.save(path)
    return path


def load_model(path: str | Path, compile: bool = False) -> keras.Model:
    """Load an evolvable model from a ``.keras`` file, a directory holding ``model.keras``
    (e.g. a run's ``best/``), or a SavedModel directory."""
    path = Path(path)
    if path.is_dir() and (path / KERAS_FILENAME).exists():
        path = path / KERAS_FILENAME
    if not path.exists():
        raise FileNotFoundError(
            f"No model at {path}: expected a .keras file, a directory with {KERAS_FILENAME}, "
            "or a SavedModel directory (saved_model.pb)."
        )
    if path.is_dir() and not (path / "saved_model.pb").exists():
        raise FileNotFoundError(f"{path} holds neither {KERAS_FILENAME} nor saved_model.pb.")
    # The zoo's custom layers (PadShortcut, ...) too, so a ResNet loads in a fresh process.
    with keras.utils.custom_object_scope({**model_custom_objects(), **custom_objects()}):
        return keras.models.load_model(path, compile=compile)
