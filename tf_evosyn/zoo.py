"""Keras Applications coverage: does a zoo model evolve, compact exactly and shrink?

The way Torch-Pruning tests torchvision: build each ``tf_keras.applications`` constructor with
``weights=None``, the smallest input it accepts and 10 classes, give its BatchNormalization
layers non-trivial statistics (so dead channels emit constants that compaction must fold), then
``evolvable`` -> ``synthesize`` (a constant factor that kills about a third of the clusters) ->
``compact``, and compare the compacted model's outputs with the offspring's.
:func:`check_application` does one constructor; ``tests/package/test_zoo_coverage.py`` and
``benchmarks/zoo_coverage.py`` run the families of :data:`FAMILIES`.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.compaction.plan import compact
from tf_evosyn.core.convert import evolvable
from tf_evosyn.core.layers import evolvable_layers
from tf_evosyn.environments.base import ConstantFactor
from tf_evosyn.hardware.flops import layer_params
from tf_evosyn.synthesis.offspring import synthesize
from tf_evosyn.zoo_models import BUILDERS

_REGNET_SIZES = ("002", "004", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320")

# family -> [(constructor, smallest input side)]; the first constructor is the family's default.
FAMILIES: dict[str, list[tuple[str, int]]] = {
    "VGG": [("VGG16", 32), ("VGG19", 32)],
    "ResNet": [("ResNet50", 32), ("ResNet101", 32), ("ResNet152", 32)],
    "ResNetV2": [("ResNet50V2", 32), ("ResNet101V2", 32), ("ResNet152V2", 32)],
    "Inception": [("InceptionV3", 75), ("InceptionResNetV2", 75)],
    "Xception": [("Xception", 71)],
    "MobileNet": [("MobileNet", 32)],
    "MobileNetV2": [("MobileNetV2", 32)],
    "MobileNetV3": [("MobileNetV3Small", 32), ("MobileNetV3Large", 32)],
    "DenseNet": [("DenseNet121", 32), ("DenseNet169", 32), ("DenseNet201", 32)],
    "NASNet": [("NASNetMobile", 32), ("NASNetLarge", 32)],
    "EfficientNet": [(f"EfficientNetB{i}", 32) for i in range(8)],
    "EfficientNetV2": [(f"EfficientNetV2{v}", 32) for v in ("B0", "B1", "B2", "B3", "S", "M", "L")],
    "RegNet": [
        (f"RegNet{kind}{size}", 32)
        for kind in ("Y", "X")
        for size in (
            "002",
            "004",
            "006",
            "008",
            "016",
            "032",
            "040",
            "064",
            "080",
            "120",
            "160",
            "320",
        )
    ],
    "ConvNeXt": [(f"ConvNeXt{size}", 32) for size in ("Tiny", "Small", "Base", "Large", "XLarge")],
    # Families Keras Applications lacks (tf_evosyn.zoo_models).
    "U-Net": [("UNet", 32)],
    # Custom blocks (layer subclasses holding layers) and keras-cv backbones, from constructor
    # arguments (tf_evosyn.zoo_models).
    "Custom residual block": [("ResidualBlockNet", 32)],
    "keras-cv YOLOv8": [("YOLOV8Backbone", 64)],
    "keras-cv CSPDarkNet": [("CSPDarkNetBackbone", 64)],
    "keras-cv MobileNetV3": [("MobileNetV3Backbone", 64)],
    "keras-cv EfficientNetV2": [("EfficientNetV2Backbone", 64)],
    "Recurrent (rows as steps)": [("RowLSTM", 32), ("RowGRU", 32)],
}

# A ConstantFactor cluster factor that kills about a third of the clusters of a freshly
# initialised model (whose cluster heredities are close to 1); synapses keep their heredity.
_CLUSTER_FACTOR = 0.7


@dataclass
class ZooResult:
    """One constructor's run: passes = exact (relative difference <= tolerance) and smaller."""

    family: str
    constructor: str
    input_size: int
    passes: bool
    params_before: int
    params_after: int
    clusters_before: int
    clusters_after: int
    relative_difference: float
    seconds: float
    error: str = ""

    @property
    def removed_fraction(self) -> float:
        return 1.0 - self.params_after / self.params_before if self.params_before else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "removed_fraction": self.removed_fraction}


def family_of(constructor: str) -> str:
    for family, members in FAMILIES.items():
        if constructor in (name for name, _ in members):
            return family
    raise KeyError(f"{constructor} is not a tf_keras.applications constructor in FAMILIES")


def input_size(constructor: str) -> int:
    return dict(FAMILIES[family_of(constructor)])[constructor]


def build_application(constructor: str, size: int | None = None, classes: int = 10):
    """``tf_keras.applications.<constructor>`` (or a :mod:`tf_evosyn.zoo_models` builder) with
    random weights and logits outputs."""
    size = size or input_size(constructor)
    if constructor in BUILDERS:
        return BUILDERS[constructor](size, classes)
    build = getattr(keras.applications, constructor)
    kwargs = dict(weights=None, input_shape=(size, size, 3), classes=classes)
    try:
        return build(**kwargs, classifier_activation=None)
    except TypeError:  # constructors without the argument
        return build(**kwargs)


def randomize_batchnorm(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial BatchNorm statistics (gamma, beta, moving mean and variance), so that dead
    channels emit non-zero constants that compaction must fold; nested models and custom blocks
    (layers holding layers) too."""
    children = (
        model.layers
        if isinstance(model, keras.Model)
        else model._flatten_layers(include_self=False, recursive=False)
    )
    for layer in children:
        if not isinstance(layer, keras.layers.BatchNormalization):
            randomize_batchnorm(layer, rng)
        elif layer.built:  # a block may hold a BatchNormalization it never calls
            c = layer.moving_mean.shape[-1]
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            if layer.center:
                layer.beta.assign(rng.uniform(-0.5, 0.5, c))
            layer.moving_mean.assign(rng.uniform(-0.5, 0.5, c))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c))


def plain_params(model: keras.Model) -> int:
    """Parameters as a plain Keras model has them (no mask/heredity buffers)."""
    return sum(
        plain_params(layer) if isinstance(layer, keras.Model) else layer_params(layer)
        for layer in model.layers
    )


def _clusters(model: keras.Model) -> int:
    return sum(int(layer.living_cluster_mask().sum()) for layer in evolvable_layers(model))


def relative_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| / max |expected| (inf if the reference is all zeros)."""
    scale = float(np.abs(expected).max())
    return float(np.abs(expected - actual).max()) / scale if scale > 0 else float("inf")


def check_application(
    constructor: str,
    images: np.ndarray,
    *,
    cluster_factor: float = _CLUSTER_FACTOR,
    synapse_factor: float = 1.0,
    seed: int = 0,
    tolerance: float = 1e-4,
) -> ZooResult:
    """Build, evolve, synthesize and compact one constructor; ``images`` at its input size."""
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = build_application(constructor, images.shape[1])
    randomize_batchnorm(model, np.random.default_rng(seed))
    before = plain_params(model)
    parent = evolvable(model)
    del model  # the largest models need several GB per copy: keep as few alive as possible
    clusters_before = _clusters(parent)
    offspring, _ = synthesize(parent, ConstantFactor(cluster_factor, synapse_factor), seed=seed)
    del parent
    compacted = compact(offspring)
    expected = offspring(images, training=False).numpy()
    difference = relative_difference(expected, compacted(images, training=False).numpy())
    after = plain_params(compacted)
    result = ZooResult(
        family=family_of(constructor),
        constructor=constructor,
        input_size=int(images.shape[1]),
        passes=bool(difference <= tolerance and after < before),
        params_before=before,
        params_after=after,
        clusters_before=clusters_before,
        clusters_after=_clusters(offspring),
        relative_difference=difference,
        seconds=time.perf_counter() - start,
    )
    del offspring, compacted
    keras.backend.clear_session()  # Keras keeps graph state per model; free it for the next one
    gc.collect()
    return result
