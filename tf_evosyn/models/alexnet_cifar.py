"""The papers' "AlexNet" for CIFAR-10: Caffe's ``cifar10_full`` model.

This is Krizhevsky's cuda-convnet ``layers-18pct`` network as shipped in Caffe
(``examples/cifar10/cifar10_full_train_test.prototxt``)::

    conv1 32 5x5 pad 2 -> max pool 3 stride 2 -> ReLU -> LRN
    conv2 32 5x5 pad 2 -> ReLU -> avg pool 3 stride 2 -> LRN
    conv3 64 5x5 pad 2 -> ReLU -> avg pool 3 stride 2 -> fc 10 (logits)

Faithful details:

- Caffe pools in ceil mode (32 -> 16 -> 8 -> 4). ``padding="same"`` gives the same windows
  (start ``2i``, clipped at the border; Keras pads 0 before and 1 after) and, like Caffe with
  pad 0, averages only the pixels inside the image, so outputs match Caffe exactly.
- Initialisation is Caffe's: Gaussian std 1e-4 (conv1) and 1e-2 (conv2, conv3, fc), zero biases.
- ``weight_decay`` is the solver's SGD decay (0.004); ``fc`` has Caffe's decay multiplier 250
  (so decay 1.0); biases are not decayed. Keras's L2 adds ``l * sum(w^2)`` (gradient ``2 l w``),
  so it is built with ``l = decay / 2``. Pass ``weight_decay=0`` for none.
- The LRN layers are ``norm_region: WITHIN_CHANNEL`` (local_size 3, alpha 5e-5, beta 0.75): a
  per-channel spatial normalisation, not the usual across-channel LRN, and not a standard Keras
  layer. They are left out by default (``local_response_norm=False``) because the
  channel-dependency analysis treats an unknown layer as a barrier, which would freeze conv1
  and conv2 for channel removal. ``local_response_norm=True`` adds them as
  :class:`~tf_evosyn.models.lrn.WithinChannelLRN` for the exact Caffe network.
- Caffe flattens pool3 in CHW order, Keras in HWC order: the same model up to a fixed
  permutation of fc's input rows (irrelevant when training from scratch).

Counts (32x32x3 input, 10 classes; the same with or without LRN, which has no weights): kernel
weights 2,400 + 25,600 + 51,200 + 10,240 = 89,440 (89,578 parameters with the 138 biases);
clusters 32 + 32 + 64 + 10 = 138.
"""

from __future__ import annotations

from tf_evosyn._keras import keras
from tf_evosyn.models.lrn import WithinChannelLRN

_FC_DECAY_MULT = 250.0  # cifar10_full: ip1 { weight_decay: 250 }


def _l2(decay: float):
    return keras.regularizers.L2(decay / 2.0) if decay > 0 else None


def _conv(filters: int, std: float, name: str, weight_decay: float):
    return keras.layers.Conv2D(
        filters,
        5,
        padding="same",  # Caffe pad 2 for a 5x5 kernel
        kernel_initializer=keras.initializers.RandomNormal(stddev=std),
        bias_initializer="zeros",
        kernel_regularizer=_l2(weight_decay),
        name=name,
    )


def alexnet_cifar(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    local_response_norm: bool = False,
    weight_decay: float = 0.004,
) -> keras.Model:
    """Caffe's cifar10_full ("AlexNet" for CIFAR-10); outputs logits. See module docstring."""

    def lrn(name: str):
        return [WithinChannelLRN(3, 5e-5, 0.75, name=name)] if local_response_norm else []

    return keras.Sequential(
        [
            keras.Input(input_shape, name="input"),
            _conv(32, 1e-4, "conv1", weight_decay),
            keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1"),
            keras.layers.Activation("relu", name="relu1"),
            *lrn("norm1"),
            _conv(32, 1e-2, "conv2", weight_decay),
            keras.layers.Activation("relu", name="relu2"),
            keras.layers.AveragePooling2D(3, 2, padding="same", name="pool2"),
            *lrn("norm2"),
            _conv(64, 1e-2, "conv3", weight_decay),
            keras.layers.Activation("relu", name="relu3"),
            keras.layers.AveragePooling2D(3, 2, padding="same", name="pool3"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.RandomNormal(stddev=1e-2),
                kernel_regularizer=_l2(weight_decay * _FC_DECAY_MULT),
                name="fc",
            ),
        ],
        name="alexnet_cifar",
    )
