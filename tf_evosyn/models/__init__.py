"""Model zoo: the papers' ancestor networks, built as plain tf_keras models."""

from tf_evosyn.models.lenet5 import lenet5

_MODELS = {"lenet5": lenet5}


def build(name: str, **kwargs):
    """Build a model of the zoo by name."""
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}; known models: {sorted(_MODELS)}.")
    return _MODELS[name](**kwargs)


def names() -> list[str]:
    return sorted(_MODELS)


__all__ = ["build", "lenet5", "names"]
