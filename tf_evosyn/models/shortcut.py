"""``PadShortcut``: the parameter-free option-A shortcut of CIFAR ResNets (He et al. 2016).

Where a residual stage halves the resolution and widens the channels, option A keeps the
shortcut an identity: subsample spatially and pad the new channels with zeros. Writing it as one
layer with an explicit channel map (instead of a Lambda) lets it be saved, loaded, converted to
TFLite, and lets channel-dependency analysis and compaction see exactly which output channel
carries which input channel.
"""

from __future__ import annotations

from collections.abc import Sequence

from tf_evosyn._keras import keras, tf


def centred_positions(in_channels: int, out_channels: int) -> list[int]:
    """Option A's layout: the input channels in the middle, ``(out - in) // 2`` zeros before."""
    if out_channels < in_channels:
        raise ValueError(
            f"PadShortcut cannot map {in_channels} input channels into {out_channels} outputs."
        )
    start = (out_channels - in_channels) // 2
    return list(range(start, start + in_channels))


@keras.utils.register_keras_serializable(package="tf_evosyn")
class PadShortcut(keras.layers.Layer):
    """Identity shortcut with spatial subsampling and zero channels (ResNet option A).

    Semantics, exactly: for an input ``x`` of shape ``(B, H, W, C_in)``,
    ``y = PadShortcut(stride, out_channels, positions)(x)`` has shape
    ``(B, ceil(H / stride), ceil(W / stride), out_channels)`` and

    - ``y[:, :, :, positions[i]] == x[:, ::stride, ::stride, i]`` for every input channel ``i``;
    - every output channel not in ``positions`` is exactly zero.

    ``positions`` (distinct, each in ``[0, out_channels)``, one per input channel, any order)
    defaults to :func:`centred_positions`: ``range((out - in) // 2, (out - in) // 2 + in)``. So
    input channel ``i`` flows only to output channel ``positions[i]``: removing an input channel
    removes its position; removing a zero output channel needs no input change. The layer has no
    weights. It is computed as a gather over the input channels plus one appended zero channel
    (a static index map built in ``build``), which XLA and TFLite both support.
    """

    def __init__(
        self,
        stride: int,
        out_channels: int,
        positions: Sequence[int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(stride) < 1:
            raise ValueError(f"PadShortcut stride must be >= 1, got {stride}.")
        if int(out_channels) < 1:
            raise ValueError(f"PadShortcut out_channels must be >= 1, got {out_channels}.")
        self.stride = int(stride)
        self.out_channels = int(out_channels)
        self.positions = None if positions is None else [int(p) for p in positions]
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.index_map: list[int] | None = None  # output channel -> input channel (C_in = zero)

    def resolved_positions(self, in_channels: int) -> list[int]:
        """Output channel of each input channel, validated for ``in_channels`` inputs."""
        if self.positions is None:
            return centred_positions(in_channels, self.out_channels)
        positions = self.positions
        if len(positions) != in_channels:
            raise ValueError(
                f"{self.name}: positions has {len(positions)} entries but the input has "
                f"{in_channels} channels."
            )
        if len(set(positions)) != len(positions):
            raise ValueError(f"{self.name}: positions {positions} are not distinct.")
        if any(p < 0 or p >= self.out_channels for p in positions):
            raise ValueError(
                f"{self.name}: positions {positions} must lie in [0, {self.out_channels})."
            )
        return list(positions)

    def build(self, input_shape) -> None:
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"{self.name}: the channel dimension must be known.")
        in_channels = int(in_channels)
        index_map = [in_channels] * self.out_channels  # in_channels = the appended zero channel
        for i, p in enumerate(self.resolved_positions(in_channels)):
            index_map[p] = i
        self.index_map = index_map
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: in_channels})
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        s = self.stride
        x = inputs[:, ::s, ::s, :] if s > 1 else inputs
        x = tf.concat([x, tf.zeros_like(x[..., :1])], axis=-1)
        return tf.gather(x, self.index_map, axis=-1)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()

        def sub(d):
            return None if d is None else -(-d // self.stride)

        return tf.TensorShape([shape[0], sub(shape[1]), sub(shape[2]), self.out_channels])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"stride": self.stride, "out_channels": self.out_channels, "positions": self.positions}
        )
        return config
