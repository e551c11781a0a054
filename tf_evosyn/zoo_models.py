"""Model families the zoo check covers beyond ``tf_keras.applications``: the kinds of network
users bring that Keras ships no constructor for.

* ``UNet``: an encoder-decoder for segmentation (Ronneberger et al. 2015) with
  ``Conv2DTranspose`` up-sampling and skip concatenations, so the decoder's filters and the
  skip channels it reads must shrink together.
* ``ResidualBlockNet``: a ResNet built from a user's own ``keras.layers.Layer`` subclass
  (:class:`ResidualBlock`), the kind of custom block :mod:`tf_evosyn.core.trace_blocks` looks
  inside.
* keras-cv backbones (``YOLOV8Backbone``, ``CSPDarkNetBackbone``, ``MobileNetV3Backbone``,
  ``EfficientNetV2Backbone``): built from small constructor arguments (presets need a download),
  under ``TF_USE_LEGACY_KERAS`` so they are tf_keras models, nested in a classifier (global
  average pooling + Dense logits). CSPDarkNet's ``CrossStagePartial``, EfficientNetV2's
  ``MBConvBlock``/``FusedMBConvBlock`` and MobileNetV3's ``SqueezeAndExcite2D`` are custom blocks.
* ``RowLSTM``, ``RowGRU``: sequence classifiers reading the image's rows as time steps
  (:func:`tf_evosyn.models.sequence.row_rnn`), whose hidden units are clusters.

Each builder takes ``(input side, classes)`` like :func:`tf_evosyn.zoo.build_application` and
returns a Functional model with random weights.
"""

from __future__ import annotations

from collections.abc import Callable

from tf_evosyn._keras import keras
from tf_evosyn.models.sequence import row_rnn


def _conv_block(x, filters: int, name: str):
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def unet(size: int = 32, classes: int = 10, base: int = 16, depth: int = 3) -> keras.Model:
    """A U-Net: ``depth`` down-sampling blocks, a bottleneck, and ``depth`` Conv2DTranspose
    (stride 2) up-sampling blocks, each concatenated with its encoder block; per-pixel logits."""
    if size % 2**depth:
        raise ValueError(f"UNet: the input side {size} must be a multiple of 2**depth={2**depth}.")
    inputs = keras.Input((size, size, 3))
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base * 2**level, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(name=f"down{level}_pool")(x)
    x = _conv_block(x, base * 2**depth, "bottleneck")
    for level in reversed(range(depth)):
        filters = base * 2**level
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_deconv")(x)
        x = keras.layers.BatchNormalization(name=f"up{level}_deconv_bn")(x)
        x = keras.layers.ReLU(name=f"up{level}_deconv_relu")(x)
        x = keras.layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        x = _conv_block(x, filters, f"up{level}")
    outputs = keras.layers.Conv2D(classes, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name="unet")


@keras.utils.register_keras_serializable(package="tf_evosyn_zoo")
class ResidualBlock(keras.layers.Layer):
    """A user's residual block as a layer subclass: conv-BN-ReLU-conv-BN plus the input (a 1x1
    conv + BN projection when the stride or width changes), then ReLU."""

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides = filters, strides
        conv = dict(padding="same", use_bias=False)
        self.conv1 = keras.layers.Conv2D(filters, 3, strides, name=f"{self.name}_conv1", **conv)
        self.bn1 = keras.layers.BatchNormalization(name=f"{self.name}_bn1")
        self.relu1 = keras.layers.ReLU(name=f"{self.name}_relu1")
        self.conv2 = keras.layers.Conv2D(filters, 3, name=f"{self.name}_conv2", **conv)
        self.bn2 = keras.layers.BatchNormalization(name=f"{self.name}_bn2")
        self.add = keras.layers.Add(name=f"{self.name}_add")
        self.relu2 = keras.layers.ReLU(name=f"{self.name}_out")
        self.projection = self.projection_bn = None

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.projection = keras.layers.Conv2D(
                self.filters, 1, self.strides, use_bias=False, name=f"{self.name}_proj"
            )
            self.projection_bn = keras.layers.BatchNormalization(name=f"{self.name}_proj_bn")
        super().build(input_shape)

    def call(self, inputs):
        x = self.relu1(self.bn1(self.conv1(inputs)))
        x = self.bn2(self.conv2(x))
        shortcut = inputs
        if self.projection is not None:
            shortcut = self.projection_bn(self.projection(inputs))
        return self.relu2(self.add([shortcut, x]))

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def residual_block_net(
    size: int = 32, classes: int = 10, widths: tuple[int, ...] = (16, 32, 64)
) -> keras.Model:
    """A small ResNet of :class:`ResidualBlock` layers: a stem, two blocks per width (the first
    of each later width with stride 2), global average pooling and Dense logits."""
    inputs = keras.Input((size, size, 3))
    x = _conv_block(inputs, widths[0], "stem")
    for stage, width in enumerate(widths):
        x = ResidualBlock(width, 2 if stage else 1, name=f"stage{stage}_block0")(x)
        x = ResidualBlock(width, name=f"stage{stage}_block1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="residual_block_net")


def _keras_cv():
    try:
        import keras_cv
    except ImportError as error:
        raise ImportError(
            "The keras-cv zoo families need keras-cv: pip install keras-cv (0.9, which runs on "
            "tf_keras when TF_USE_LEGACY_KERAS=1, as tf_evosyn sets)."
        ) from error
    if keras_cv.src.backend.config.keras_3():
        raise RuntimeError(
            "keras-cv runs on Keras 3 in this process, so its models are not tf_keras models; "
            "import tf_evosyn before keras_cv (it sets TF_USE_LEGACY_KERAS=1)."
        )
    return keras_cv.models


def _classifier(backbone: keras.Model, size: int, classes: int, name: str) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(x), name=name)


def _yolo_v8_backbone(size: int = 64, classes: int = 10) -> keras.Model:
    """keras-cv's YOLOv8 backbone (C2f blocks, SPPF; functional), narrower than its "xs"."""
    backbone = _keras_cv().YOLOV8Backbone(
        stackwise_channels=[16, 32, 64, 128],
        stackwise_depth=[1, 1, 1, 1],
        include_rescaling=False,
        input_shape=(size, size, 3),
    )
    return _classifier(backbone, size, classes, "yolo_v8_classifier")


def _csp_darknet_backbone(size: int = 64, classes: int = 10) -> keras.Model:
    """keras-cv's CSPDarkNet (Focus stem, SPP, ``CrossStagePartial`` custom blocks)."""
    backbone = _keras_cv().CSPDarkNetBackbone(
        stackwise_channels=[16, 32, 64, 128],
        stackwise_depth=[1, 1, 1, 1],
        include_rescaling=False,
        input_shape=(size, size, 3),
    )
    return _classifier(backbone, size, classes, "csp_darknet_classifier")


def _mobilenet_v3_backbone(size: int = 64, classes: int = 10) -> keras.Model:
    """keras-cv's MobileNetV3 (hard-swish TF ops, ``SqueezeAndExcite2D`` blocks whose excite
    conv has a layer as its activation), five inverted residual stacks."""
    backbone = _keras_cv().MobileNetV3Backbone(
        stackwise_expansion=[1, 4, 3, 3, 6],
        stackwise_filters=[16, 24, 24, 40, 48],
        stackwise_kernel_size=[3, 3, 3, 5, 5],
        stackwise_stride=[2, 2, 1, 2, 1],
        stackwise_se_ratio=[0.25, None, None, 0.25, 0.25],
        stackwise_activation=["relu", "relu", "relu", "hard_swish", "hard_swish"],
        include_rescaling=False,
        input_shape=(size, size, 3),
    )
    return _classifier(backbone, size, classes, "mobilenet_v3_classifier")


def _efficientnet_v2_backbone(size: int = 64, classes: int = 10) -> keras.Model:
    """keras-cv's EfficientNetV2 (``FusedMBConvBlock`` then ``MBConvBlock`` custom blocks with
    squeeze-and-excite), half width and depth of B0's first four stages."""
    backbone = _keras_cv().EfficientNetV2Backbone(
        include_rescaling=False,
        width_coefficient=0.5,
        depth_coefficient=0.5,
        stackwise_kernel_sizes=[3, 3, 3, 3],
        stackwise_num_repeats=[1, 2, 2, 2],
        stackwise_input_filters=[32, 32, 48, 96],
        stackwise_output_filters=[32, 48, 96, 112],
        stackwise_expansion_ratios=[1, 4, 4, 4],
        stackwise_squeeze_and_excite_ratios=[0, 0, 0.25, 0.25],
        stackwise_strides=[1, 2, 2, 2],
        stackwise_conv_types=["fused", "fused", "unfused", "unfused"],
        input_shape=(size, size, 3),
    )
    return _classifier(backbone, size, classes, "efficientnet_v2_classifier")


# constructor name (as in tf_evosyn.zoo.FAMILIES) -> builder(input side, classes)
def _row_lstm(size: int = 32, classes: int = 10) -> keras.Model:
    """A sequence classifier: an LSTM(64) reading the image's rows as time steps."""
    return row_rnn((size, size, 3), classes, "lstm", 64)


def _row_gru(size: int = 32, classes: int = 10) -> keras.Model:
    """As :func:`_row_lstm` with a GRU(64)."""
    return row_rnn((size, size, 3), classes, "gru", 64)


BUILDERS: dict[str, Callable[[int, int], keras.Model]] = {
    "UNet": unet,
    "ResidualBlockNet": residual_block_net,
    "YOLOV8Backbone": _yolo_v8_backbone,
    "CSPDarkNetBackbone": _csp_darknet_backbone,
    "MobileNetV3Backbone": _mobilenet_v3_backbone,
    "EfficientNetV2Backbone": _efficientnet_v2_backbone,
    "RowLSTM": _row_lstm,
    "RowGRU": _row_gru,
}
