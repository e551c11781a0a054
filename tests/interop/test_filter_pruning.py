"""L1-norm filter pruning (tf_evosyn.interop.filter_pruning) on small hand-made models: the
weakest filters go, coupled groups go whole, compaction is exact, prune_to_macs lands within one
filter step of its target, and bad input is refused with the fix."""

from __future__ import annotations

import numpy as np
import pytest

import tf_evosyn  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tf_evosyn._keras import keras
from tf_evosyn.interop import filter_l1_norms, prune_filters, prune_to_macs
from tf_evosyn.zoo import randomize_batchnorm

IMAGES = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype(np.float32)


def _set_filter_scales(layer: keras.layers.Layer, scales, seed: int) -> None:
    """Kernel of random signs whose output channel c has |w| = scales[c] everywhere, so its L1
    norm is scales[c] x (weights per filter)."""
    kernel = layer.kernel.numpy()
    signs = np.where(np.random.default_rng(seed).random(kernel.shape) < 0.5, -1.0, 1.0)
    layer.kernel.assign((signs * np.asarray(scales, dtype=np.float64)).astype(np.float32))


def _chain() -> keras.Model:
    """conv_a (6 filters) -> BN -> ReLU -> conv_b (4) -> BN -> ReLU -> pool -> logits (3)."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="chain")
    randomize_batchnorm(model, np.random.default_rng(1))  # dead channels emit constants
    _set_filter_scales(model.get_layer("conv_a"), [0.5, 0.1, 0.4, 0.2, 0.6, 0.3], seed=2)
    _set_filter_scales(model.get_layer("conv_b"), [0.2, 0.1, 0.3, 0.4], seed=3)
    return model


def _residual() -> keras.Model:
    """stem (4) -> conv_a (4) -> conv_b (4) + stem -> conv_c (3) -> pool -> logits (2): the
    stem's and conv_b's channels are one coupled family (the addition)."""
    inputs = keras.Input((8, 8, 3))
    stem = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(stem)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    x = keras.layers.Add(name="add")([stem, x])
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv_c")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x), name="residual")
    randomize_batchnorm(model, np.random.default_rng(4))
    # Norms (weights per filter: stem 27, conv_b 36): stem 27, 135, 54, 81 and conv_b 144, 18,
    # 72, 108; summed per channel 171, 153, 126, 189: the family's weakest are 2, then 1 (alone,
    # the stem would lose 0 and 2, conv_b 1 and 2).
    _set_filter_scales(model.get_layer("stem"), [1.0, 5.0, 2.0, 3.0], seed=5)
    _set_filter_scales(model.get_layer("conv_b"), [4.0, 0.5, 2.0, 3.0], seed=6)
    _set_filter_scales(model.get_layer("conv_a"), [0.3, 0.1, 0.4, 0.2], seed=7)
    return model


def _relative_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    assert np.abs(expected).max() > 0, "all-zero reference: the check would be vacuous"
    return float(np.abs(expected - actual).max() / np.abs(expected).max())


def _assert_exact(result) -> None:
    masked = result.masked(IMAGES, training=False).numpy()
    compacted = result.compacted(IMAGES, training=False).numpy()
    assert _relative_difference(masked, compacted) < 1e-5


def test_smallest_l1_norms_are_removed():
    model = _chain()
    before = [w.copy() for w in model.get_weights()]
    norms = filter_l1_norms(tf_evosyn.evolvable(model))
    expected = 27 * np.array([0.5, 0.1, 0.4, 0.2, 0.6, 0.3])
    np.testing.assert_allclose(norms["conv_a"], expected, rtol=1e-5)
    result = prune_filters(model, 0.5)
    assert result.removed == {"conv_a": [1, 3, 5], "conv_b": [0, 1]}  # the logits never lose one
    assert result.masked.get_layer("conv_a").living_cluster_mask().tolist() == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    # Physically gone, and the kept filters keep their weights (conv_b: the rows it still reads).
    conv_a, conv_b = (result.compacted.get_layer(n) for n in ("conv_a", "conv_b"))
    assert conv_a.kernel.shape[-1] == 3 and conv_b.kernel.shape[-2:] == (3, 2)
    original = model.get_layer("conv_a").kernel.numpy()
    np.testing.assert_array_equal(conv_a.kernel.numpy(), original[..., [0, 2, 4]])
    original_b = model.get_layer("conv_b").kernel.numpy()
    np.testing.assert_array_equal(conv_b.kernel.numpy(), original_b[:, :, [0, 2, 4]][..., [2, 3]])
    assert result.macs < result.base_macs and result.params < result.base_params
    _assert_exact(result)
    for old, new in zip(before, model.get_weights(), strict=True):  # the input is untouched
        np.testing.assert_array_equal(old, new)


def test_equal_norms_prune_the_lower_channels_first():
    model = _chain()
    _set_filter_scales(model.get_layer("conv_a"), [0.2] * 6, seed=8)
    first, second = prune_filters(model, 0.34), prune_filters(model, 0.34)
    assert first.removed["conv_a"] == second.removed["conv_a"] == [0, 1]


def test_per_layer_fractions_and_skipped_layers():
    model = _chain()
    result = prune_filters(model, 0.5, fractions={"conv_b": 0.25})
    assert result.removed == {"conv_a": [1, 3, 5], "conv_b": [1]}
    assert result.fraction is None
    skipped = prune_filters(model, 0.5, skip_layers=["conv_a"])
    assert skipped.removed == {"conv_b": [0, 1]}
    _assert_exact(skipped)


def test_coupled_groups_are_skipped_by_default():
    result = prune_filters(_residual(), 0.5)
    assert set(result.removed) == {"conv_a", "conv_c"}  # not the residual stream
    assert result.removed["conv_a"] == [1, 3]
    _assert_exact(result)


def test_coupled_groups_are_removed_whole():
    result = prune_filters(_residual(), 0.5, skip_coupled=False)
    # One decision per channel of the addition, ranked by the summed norms of both producers.
    assert result.removed["stem"] == result.removed["conv_b"] == [1, 2]
    assert result.compacted.get_layer("stem").kernel.shape[-1] == 2
    assert result.compacted.get_layer("conv_b").kernel.shape[-1] == 2
    assert result.compacted.get_layer("add").output.shape[-1] == 2
    _assert_exact(result)


def _steps(result) -> list[float]:
    return sorted({k / len(f.groups) for f in result.families for k in range(len(f.groups))})


@pytest.mark.parametrize("target", [0.9, 0.6, 0.35])
def test_prune_to_macs_lands_within_one_filter_step(target):
    model = _chain()
    result = prune_to_macs(model, target)
    assert result.macs <= target * result.base_macs
    steps = _steps(result)
    index = steps.index(result.fraction)
    assert index > 0  # these targets need pruning
    one_less = prune_filters(model, steps[index - 1])  # one filter step less pruning
    assert one_less.macs > target * result.base_macs
    _assert_exact(result)


def test_prune_to_macs_hits_a_reachable_target_exactly():
    model = _residual()
    reachable = prune_filters(model, 0.5, skip_coupled=False)
    result = prune_to_macs(model, reachable.macs / reachable.base_macs, skip_coupled=False)
    assert result.macs == reachable.macs and result.removed == reachable.removed


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5])
def test_fraction_outside_the_unit_interval_is_refused(fraction):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\).*0\.1 prunes 10%"):
        prune_filters(_chain(), fraction)
    with pytest.raises(ValueError, match=r"fractions\['conv_a'\].*must be in \[0, 1\)"):
        prune_filters(_chain(), 0.1, fractions={"conv_a": fraction})


def test_no_prunable_layer_is_refused_with_the_fix():
    inputs = keras.Input((8, 8, 3))
    dense_only = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="no prunable filter.*include_dense=True"):
        prune_filters(dense_only, 0.5)
    stream_only = _residual()
    with pytest.raises(ValueError, match="no prunable filter.*skip_coupled=False"):
        prune_filters(stream_only, 0.5, skip_layers=["conv_a", "conv_c"])
    with pytest.raises(ValueError, match="skip_layers names.*use names from"):
        prune_filters(stream_only, 0.5, skip_layers=["conv_z"])
    with pytest.raises(ValueError, match="fractions names.*prunable:"):
        prune_filters(stream_only, 0.5, fractions={"stem": 0.5})


def test_bad_macs_targets_are_refused():
    with pytest.raises(ValueError, match=r"in \(0, 1\].*offspring MACs / ancestor MACs"):
        prune_to_macs(_chain(), 0.0)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        prune_to_macs(_chain(), 1.2)
    with pytest.raises(ValueError, match="reaches at most.*skip_coupled=False"):
        prune_to_macs(_residual(), 0.01)
