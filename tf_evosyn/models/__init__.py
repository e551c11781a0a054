"""Model zoo: the papers' ancestor networks, built as plain tf_keras models (logits out)."""

import inspect

from tf_evosyn.models.alexnet_cifar import alexnet_cifar
from tf_evosyn.models.box_coding import LogDistanceCorners
from tf_evosyn.models.custom_layers import custom_objects
from tf_evosyn.models.detectnet import detectnet
from tf_evosyn.models.detectnet_mobilenetv2 import detectnet_mobilenetv2
from tf_evosyn.models.lenet5 import lenet5
from tf_evosyn.models.lrn import CrossChannelLRN, WithinChannelLRN
from tf_evosyn.models.resnet_cifar import resnet20, resnet56, resnet_cifar
from tf_evosyn.models.sequence import lstm_rows, row_rnn
from tf_evosyn.models.shortcut import PadShortcut

_MODELS = {
    "lenet5": lenet5,
    "alexnet_cifar": alexnet_cifar,
    "detectnet": detectnet,
    "detectnet_mobilenetv2": detectnet_mobilenetv2,
    "resnet20": resnet20,
    "resnet56": resnet56,
    "lstm_rows": lstm_rows,
}


def build(name: str, **kwargs):
    """Build a model of the zoo by name."""
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}; known models: {sorted(_MODELS)}.")
    return _MODELS[name](**kwargs)


# Builders that pass their ``**kwargs`` on to another builder: what that one takes counts.
_FORWARDS_TO = {"resnet20": resnet_cifar, "resnet56": resnet_cifar}


def accepts_keyword(name: str, keyword: str) -> bool:
    """Can ``build(name, ...)`` take ``keyword`` (e.g. ``weight_decay``)? A builder with
    ``**kwargs`` is judged by the builder it forwards them to (``resnet56`` -> ``resnet_cifar``)."""
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}; known models: {sorted(_MODELS)}.")
    builder = _FORWARDS_TO.get(name, _MODELS[name])
    parameters = inspect.signature(builder).parameters.values()
    return any(p.name == keyword or p.kind is p.VAR_KEYWORD for p in parameters)


def names() -> list[str]:
    return sorted(_MODELS)


__all__ = [
    "CrossChannelLRN",
    "LogDistanceCorners",
    "PadShortcut",
    "WithinChannelLRN",
    "accepts_keyword",
    "alexnet_cifar",
    "build",
    "custom_objects",
    "detectnet",
    "detectnet_mobilenetv2",
    "lenet5",
    "lstm_rows",
    "names",
    "resnet20",
    "resnet56",
    "resnet_cifar",
    "row_rnn",
]
