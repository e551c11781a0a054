"""NVIDIA's DetectNet (KITTI): a GoogLeNet trunk with a coverage head and a bbox head.

As ``examples/kitti/detectnet_network.prototxt`` of NVIDIA/caffe: raw pixels minus a mean
(the deploy net's ``Power shift: -127``), GoogLeNet up to ``inception_5b`` without pool4 (total
stride 16, see :mod:`tf_evosyn.models.googlenet`), ``Dropout(0.4)`` (``pool5/drop_s1``), then two
1x1 convolutions on the same features:

- ``coverage`` (``cvg/classifier`` + ``coverage/sig``): ``num_classes`` channels, sigmoid; per grid
  cell the probability that an object of class c covers it.
- ``bbox`` (``bbox/regressor``): ``4 * num_classes`` linear channels; channels ``4c .. 4c + 3``
  are class c's box corners (x1, y1, x2, y2) in pixels relative to the cell, as DetectNet's
  ground-truth transform writes them. Both heads get Caffe's xavier filler and zero bias.

For a 384x1248 image the grid is 24x78. The model's outputs are exactly these two tensors,
named ``coverage`` and ``bbox`` (``model.output_names``), so ``compile(loss={"coverage": ...,
"bbox": ...})`` works. Both heads are model outputs, so evolution never kills their units.

Trunk weights (e.g. an ImageNet GoogLeNet converted to Keras layout) load by layer name with
:func:`load_backbone_weights`; without them the network trains from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tf_evosyn._keras import keras
from tf_evosyn.models import googlenet
from tf_evosyn.models.custom_layers import custom_objects

HEAD_LAYERS = ("pool5_drop_s1", "cvg_classifier", "coverage", "bbox_regressor", "bbox")
OUTPUT_NAMES = ("coverage", "bbox")
_CAFFE_MEAN = 127.0  # detectnet_network.prototxt: transform_param { mean_value: 127 }


def detectnet(
    input_shape: Sequence[int] = (384, 1248, 3),
    num_classes: int = 1,
    width: float = 1.0,
    normalization: str = "lrn",
    backbone_weights: str | Path | None = None,
    dropout: float = 0.4,
    *,
    pixel_mean: float | Sequence[float] = _CAFFE_MEAN,
    weight_decay: float = 0.0,
) -> keras.Model:
    """DetectNet as a plain Functional model: raw RGB in [0, 255] -> {coverage, bbox}.

    Args:
      input_shape: (height, width, 3), both multiples of 16 (KITTI: pad 375x1242 to 384x1248).
      num_classes: coverage maps (DetectNet's KITTI example: 1, cars).
      width: multiplies every trunk convolution's filter count (rounded, at least 4);
        1.0 is the paper's network, a thin one (e.g. 0.25) runs on a CPU.
      normalization: what sits at GoogLeNet's ``norm1``/``norm2``. ``"lrn"`` is the paper's
        (NVIDIA's) network: Caffe's cross-channel LRN, which mixes neighbouring channels, so
        the channels of conv1 and conv2/3x3 that feed it are never removed by evolution.
        ``"batchnorm"`` puts BatchNormalization there instead (all channels evolve freely);
        ``"none"`` leaves both out.
      backbone_weights: optional trunk weights (.npz / .h5 / .keras), see
        :func:`load_backbone_weights`; they need ``width=1.0`` and the same normalization.
      dropout: rate of ``pool5/drop_s1`` before the heads (the prototxt's 0.4).
      pixel_mean: subtracted from the raw pixels, one value or one per channel (RGB order);
        DetectNet's KITTI example uses 127 for every channel.
      weight_decay: SGD weight decay on every kernel (0 = none), as an L2 loss of ``d / 2``.
    """
    shape = googlenet.check_input_shape(input_shape)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1) (the paper's is 0.4), got {dropout!r}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}.")
    mean = np.broadcast_to(np.asarray(pixel_mean, dtype=np.float64), (3,))

    inputs = keras.Input(shape, name="image")
    x = keras.layers.Rescaling(1.0, offset=[-float(m) for m in mean], name="mean_subtraction")(
        inputs
    )
    x = googlenet.googlenet_trunk(x, width, normalization, weight_decay)
    x = keras.layers.Dropout(dropout, name="pool5_drop_s1")(x)

    def head(filters: int, name: str):
        return keras.layers.Conv2D(
            filters,
            1,
            kernel_initializer=googlenet.caffe_xavier(),
            bias_initializer="zeros",
            kernel_regularizer=googlenet.l2_decay(weight_decay),
            name=name,
        )(x)

    coverage = keras.layers.Activation("sigmoid", name="coverage")(
        head(num_classes, "cvg_classifier")
    )
    bbox = keras.layers.Activation("linear", name="bbox")(head(4 * num_classes, "bbox_regressor"))
    model = keras.Model(inputs, [coverage, bbox], name="detectnet")
    if backbone_weights is not None:
        load_backbone_weights(model, backbone_weights)
    return model


def trunk_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The GoogLeNet layers of a DetectNet (everything but the input and the heads)."""
    return [
        layer
        for layer in model.layers
        if layer.name not in HEAD_LAYERS and not isinstance(layer, keras.layers.InputLayer)
    ]


def save_backbone_weights(model: keras.Model, path: str | Path) -> Path:
    """Write the trunk weights of a plain DetectNet to ``path`` (.npz, keys ``layer/index``)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"save_backbone_weights writes .npz files, got {path.name!r}.")
    arrays = {
        f"{layer.name}/{i}": value
        for layer in trunk_layers(model)
        for i, value in enumerate(layer.get_weights())
    }
    np.savez(path, **arrays)
    return path


def _read_weights_file(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> weight arrays (in ``layer.get_weights()`` order) from a weights file.

    Formats: ``.npz`` with keys ``<layer name>/<index>``; ``.h5``/``.hdf5`` as written by
    ``model.save_weights("x.h5")`` or ``model.save("x.h5")`` (not ``"x.weights.h5"``, which keys
    weights by layer class); ``.keras`` (a whole saved model).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix in (".h5", ".hdf5"):
        return _read_h5(path)
    if suffix == ".keras":
        with keras.utils.custom_object_scope(custom_objects()):
            saved = keras.models.load_model(path, compile=False)
        return {layer.name: layer.get_weights() for layer in saved.layers}
    raise ValueError(
        f"backbone weights {path.name!r}: unknown format; use .npz (keys 'layer/index'), "
        ".h5/.hdf5 (Keras HDF5 weights) or .keras."
    )


def _read_npz(path: Path) -> dict[str, list[np.ndarray]]:
    found: dict[str, dict[int, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            name, _, index = key.rpartition("/")
            if not name or not index.isdigit():
                raise ValueError(
                    f"{path.name}: key {key!r} is not '<layer name>/<weight index>' (e.g. "
                    "'conv1_7x7_s2/0' for the kernel, '.../1' for the bias)."
                )
            found.setdefault(name, {})[int(index)] = data[key]
    weights = {}
    for name, arrays in found.items():
        if sorted(arrays) != list(range(len(arrays))):
            raise ValueError(f"{path.name}: layer {name!r} has weight indices {sorted(arrays)}.")
        weights[name] = [arrays[i] for i in range(len(arrays))]
    return weights


def _read_h5(path: Path) -> dict[str, list[np.ndarray]]:
    import h5py

    def text(value) -> str:
        return value.decode("utf8") if isinstance(value, bytes) else str(value)

    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{path.name} has no layer names (a '.weights.h5' file keys weights by layer "
                "class, not name): write it with model.save_weights('trunk.h5') or use .npz "
                "or .keras."
            )
        weights = {}
        for name in map(text, root.attrs["layer_names"]):
            group = root[name]
            names = [text(w) for w in group.attrs.get("weight_names", [])]
            weights[name] = [np.asarray(group[w]) for w in names]
    return weights


def load_backbone_weights(model: keras.Model, path: str | Path) -> list[str]:
    """Load every trunk layer of ``model`` from ``path`` by name, after checking all shapes.

    Weights converted from a Caffe GoogLeNet need Keras layout (kernels ``(kh, kw, in, out)``,
    i.e. Caffe's ``(out, in, kh, kw)`` transposed by ``(2, 3, 1, 0)``) and, as Caffe reads BGR
    while this model takes RGB, conv1's input-channel axis reversed; ``pixel_mean`` should then
    be the one the weights were trained with. Returns the names of the layers that received
    weights. Raises ``ValueError`` naming the
    first mismatching layers (missing, different shapes, or weights where the model has none)
    before any weight is written.
    """
    weights = _read_weights_file(path)
    problems, loads = [], []
    for layer in trunk_layers(model):
        expected = [tuple(w.shape) for w in layer.get_weights()]
        given = weights.get(layer.name)
        if given is None:
            if expected:
                problems.append(f"{layer.name}: missing from the file")
            continue
        shapes = [tuple(np.shape(w)) for w in given]
        if shapes != expected:
            problems.append(f"{layer.name}: file has {shapes}, model expects {expected}")
        elif expected:
            loads.append((layer, given))
    if problems:
        shown = "\n  ".join(problems[:8]) + ("\n  ..." if len(problems) > 8 else "")
        raise ValueError(
            f"backbone weights {Path(path).name} do not fit this DetectNet trunk:\n  {shown}\n"
            "Build the model with width=1.0 and the normalization the weights were trained with "
            "(normalization='lrn' for a GoogLeNet with LRN, 'batchnorm' for one with "
            "BatchNormalization at norm1/norm2), and give kernels in Keras layout (kh, kw, in, "
            "out) with layer names as in tf_evosyn.models.googlenet."
        )
    for layer, given in loads:
        layer.set_weights(given)
    return [layer.name for layer, _ in loads]
