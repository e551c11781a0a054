"""The shape of one timed layer: what the latency model measures and caches per machine.

Kept apart from :mod:`tf_evosyn.hardware.latency_model` (which times shapes) so that the layer
rules (:mod:`tf_evosyn.core.kinds`) can say which shape their layers have without importing the
timing code. ``kind`` names the latency entry of a rule (``"conv"``, ``"deconv"``, ``"dense"``).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass


@dataclass(frozen=True)
class LayerShape:
    """Everything a dense layer's latency depends on (batch 1)."""

    kind: str  # "conv" | "deconv" (Conv2DTranspose; height/width: its input) | "dense"
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel: int = 1
    stride: int = 1
    padding: str = "valid"

    def key(self) -> str:
        return "/".join(str(v) for v in astuple(self))

    def with_channels(self, in_channels: int, out_channels: int) -> LayerShape:
        return LayerShape(
            self.kind,
            self.height,
            self.width,
            int(in_channels),
            int(out_channels),
            self.kernel,
            self.stride,
            self.padding,
        )

    def macs(self) -> int:
        if self.kind == "dense":
            return self.in_channels * self.out_channels
        if self.kind == "deconv":  # every input pixel meets every tap
            return self.height * self.width * self.kernel**2 * self.in_channels * self.out_channels
        out_h = -(-self.height // self.stride) if self.padding == "same" else None
        if out_h is None:
            out_h = (self.height - self.kernel) // self.stride + 1
            out_w = (self.width - self.kernel) // self.stride + 1
        else:
            out_w = -(-self.width // self.stride)
        return out_h * out_w * self.kernel**2 * self.in_channels * self.out_channels
