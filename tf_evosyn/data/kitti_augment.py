"""DetectNet's training augmentation and the fit of one KITTI image to the network input, in TF ops.

Follows DIGITS/NVIDIA-Caffe ``DetectNetTransformationLayer`` (src/caffe/layers/
detectnet_transform_layer.cpp) with the parameters of ``examples/kitti/detectnet_network.prototxt``
(``detectnet_augmentation_param``), for one image at a time:

1. flip left-right with probability ``flip_prob``;
2. with probability ``scale_prob`` resize (bicubic) by s ~ U[scale_min, scale_max];
3. take an input-sized window at offset ``round(u * (scaled - input + shift) - shift // 2)``
   per axis, u ~ U[0, 1], with probability ``crop_prob`` (so the window moves up to
   ``shift // 2`` pixels beyond the image on each side; zeros fill what lies outside);
4. rotate the hue by U[-hue_rotation, hue_rotation] degrees with probability
   ``hue_rotation_prob`` and multiply the saturation by 1 - U[0, desaturation_max] with
   probability ``desaturation_prob``.

Deviations, on purpose: without crop (and at evaluation) the window is the top-left corner, not
the centre, so the unaugmented training view equals the evaluation view (pad at bottom/right, never
resize); the flip maps x to W - x (DIGITS: W - x - 1); the colour step runs after the window is
cut (cheaper; pointwise, so identical up to interpolation); rotation (prototxt
``rotation_prob: 0``) is not implemented. Boxes move with the image, are clipped to the window,
and boxes left without area become padding rows. All randomness is stateless from one seed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tf_evosyn._keras import tf
from tf_evosyn.data.errors import DataError

_NUM_UNIFORMS = 10


@dataclasses.dataclass(frozen=True)
class DetectNetAugmentation:
    """Parameters of :func:`augment_example`; defaults are the DetectNet KITTI prototxt's."""

    crop_prob: float = 1.0
    shift_x: int = 32
    shift_y: int = 32
    flip_prob: float = 0.5
    scale_prob: float = 0.4
    scale_min: float = 0.8
    scale_max: float = 1.2
    hue_rotation_prob: float = 0.8
    hue_rotation: float = 30.0
    desaturation_prob: float = 0.8
    desaturation_max: float = 0.8

    def __post_init__(self) -> None:
        for name in ("crop_prob", "flip_prob", "scale_prob", "hue_rotation_prob"):
            self._check(name, 0.0 <= getattr(self, name) <= 1.0, "a probability in [0, 1]")
        self._check("desaturation_prob", 0.0 <= self.desaturation_prob <= 1.0, "in [0, 1]")
        self._check("desaturation_max", 0.0 <= self.desaturation_max <= 1.0, "in [0, 1]")
        for name in ("shift_x", "shift_y"):
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            self._check(name, ok, "an integer >= 0 (pixels)")
        self._check("scale_min", 0.0 < self.scale_min <= self.scale_max, "in (0, scale_max]")
        self._check("hue_rotation", 0.0 <= self.hue_rotation <= 180.0, "in [0, 180] degrees")

    def _check(self, name: str, ok: bool, what: str) -> None:
        if not ok:
            raise DataError(f"data.augmentation.{name}={getattr(self, name)!r} must be {what}.")

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Any) -> DetectNetAugmentation:
        """From a dict/ConfigDict of overrides; unknown keys are an error."""
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise DataError(
                f"Unknown data.augmentation keys {unknown}; known: {', '.join(sorted(known))}."
            )
        return cls(**config)


def _compact(gt: dict[str, tf.Tensor], boxes: tf.Tensor, keep: tf.Tensor) -> dict[str, tf.Tensor]:
    """``gt`` with ``boxes``, kept rows first (in their order) and the others zeroed padding."""
    order = tf.argsort(tf.cast(tf.logical_not(keep), tf.int32), stable=True)
    keep = tf.gather(keep, order)
    out = dict(gt)
    out["boxes"] = tf.where(keep[:, None], tf.gather(boxes, order), 0.0)
    out["types"] = tf.where(keep, tf.gather(gt["types"], order), -1)
    out["truncated"] = tf.where(keep, tf.gather(gt["truncated"], order), 0.0)
    out["occluded"] = tf.where(keep, tf.gather(gt["occluded"], order), 0)
    return out


def _place_on_canvas(
    image: tf.Tensor,
    gt: dict[str, tf.Tensor],
    height: int,
    width: int,
    offset_y: tf.Tensor | int = 0,
    offset_x: tf.Tensor | int = 0,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Cut the ``height`` x ``width`` window at (offset_y, offset_x) of ``image`` (zeros where it
    lies outside the image) and move, clip and drop the boxes to match."""
    offset_y = tf.cast(offset_y, tf.int32)
    offset_x = tf.cast(offset_x, tf.int32)
    shape = tf.shape(image)
    y0 = tf.clip_by_value(offset_y, 0, shape[0])
    y1 = tf.clip_by_value(offset_y + height, 0, shape[0])
    x0 = tf.clip_by_value(offset_x, 0, shape[1])
    x1 = tf.clip_by_value(offset_x + width, 0, shape[1])
    top = tf.clip_by_value(y0 - offset_y, 0, height)
    left = tf.clip_by_value(x0 - offset_x, 0, width)
    crop = image[y0:y1, x0:x1]
    canvas = tf.pad(
        crop,
        [[top, height - top - (y1 - y0)], [left, width - left - (x1 - x0)], [0, 0]],
    )
    canvas = tf.ensure_shape(canvas, [height, width, 3])
    shift = tf.cast(tf.stack([offset_x, offset_y, offset_x, offset_y]), tf.float32)
    limit = tf.constant([width, height, width, height], tf.float32)
    boxes = tf.clip_by_value(gt["boxes"] - shift, 0.0, limit)
    keep = (gt["types"] >= 0) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return canvas, _compact(gt, boxes, keep)


def fit_to_input(
    image: tf.Tensor, gt: dict[str, tf.Tensor], height: int, width: int
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The evaluation view: pad at bottom/right (or crop there if the input is smaller); KITTI
    pixel coordinates are unchanged, boxes beyond a crop are clipped or dropped."""
    return _place_on_canvas(image, gt, height, width)


def _round(x: tf.Tensor) -> tf.Tensor:
    """Round half away from zero, like C++ ``round`` (tf.round rounds half to even)."""
    return tf.cast(tf.sign(x) * tf.floor(tf.abs(x) + 0.5), tf.int32)


def _adjust_colour(image: tf.Tensor, hue_degrees: tf.Tensor, saturation: tf.Tensor) -> tf.Tensor:
    """Rotate the HSV hue by ``hue_degrees`` and scale the saturation (fused TF kernels, which
    are scale-invariant, so pixels stay in 0-255)."""
    image = tf.image.adjust_hue(image, hue_degrees / 360.0)
    return tf.clip_by_value(tf.image.adjust_saturation(image, saturation), 0.0, 255.0)


def augment_example(
    image: tf.Tensor,
    gt: dict[str, tf.Tensor],
    height: int,
    width: int,
    params: DetectNetAugmentation,
    seed: tf.Tensor,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """DetectNet augmentation of one image (float32 [H, W, 3] in [0, 255]) and its ground truth
    (boxes in that image's pixels), giving a ``height`` x ``width`` input; ``seed`` is a stateless
    seed of shape [2]: the same seed gives the same result."""
    u = tf.random.stateless_uniform([_NUM_UNIFORMS], seed=seed)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    boxes = gt["boxes"]

    flip = u[4] < params.flip_prob
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    flipped = tf.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], axis=1)
    boxes = tf.where(flip, flipped, boxes)

    scale = params.scale_min + (params.scale_max - params.scale_min) * u[6]
    do_scale = u[5] < params.scale_prob
    new_h = tf.where(do_scale, _round(h * scale), shape[0])
    new_w = tf.where(do_scale, _round(w * scale), shape[1])
    image = tf.cond(
        do_scale,
        lambda: tf.clip_by_value(
            tf.image.resize(image, tf.stack([new_h, new_w]), method="bicubic"), 0.0, 255.0
        ),
        lambda: image,
    )
    factors = tf.stack([tf.cast(new_w, tf.float32) / w, tf.cast(new_h, tf.float32) / h])
    boxes = boxes * tf.tile(factors, [2])[None, :]

    crop = u[7] < params.crop_prob
    offset_x = _round(
        u[8] * tf.cast(new_w - width + params.shift_x, tf.float32) - params.shift_x // 2
    )
    offset_y = _round(
        u[9] * tf.cast(new_h - height + params.shift_y, tf.float32) - params.shift_y // 2
    )
    offset_x = tf.where(crop, offset_x, 0)
    offset_y = tf.where(crop, offset_y, 0)
    gt = dict(gt, boxes=boxes)
    image, gt = _place_on_canvas(image, gt, height, width, offset_y, offset_x)

    hue = tf.where(u[0] < params.hue_rotation_prob, (2.0 * u[1] - 1.0) * params.hue_rotation, 0.0)
    saturation = tf.where(
        u[2] < params.desaturation_prob, 1.0 - u[3] * params.desaturation_max, 1.0
    )
    image = tf.cond(
        tf.logical_or(tf.not_equal(hue, 0.0), tf.not_equal(saturation, 1.0)),
        lambda: _adjust_colour(image, hue, saturation),
        lambda: image,
    )
    return image, gt
