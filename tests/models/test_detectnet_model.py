"""DetectNet: the paper's shapes, serialisation, exact compaction of evolved offspring (on real
KITTI images), and trunk weight loading.

Sizes: only the shape test builds the paper's network (width 1, 384x1248, never run); the
evolution tests use width 0.25 at 192x320 and the weight tests width 0.25 at 64x64.
"""

import numpy as np
import pytest

import tf_evosyn
from tf_evosyn._keras import keras, tf
from tf_evosyn.compaction.plan import plan_compaction
from tf_evosyn.hardware.flops import count_flops
from tf_evosyn.models import build, custom_objects, detectnet
from tf_evosyn.models.detectnet import load_backbone_weights, save_backbone_weights, trunk_layers
from tf_evosyn.models.lrn import CrossChannelLRN

THIN = {"input_shape": (192, 320, 3), "width": 0.25}
TINY = {"input_shape": (64, 64, 3), "width": 0.25}
LRN_FED = ("conv1_7x7_s2", "conv2_3x3")  # their channels flow into pool1/norm1, conv2/norm2

# From detectnet_network.prototxt: num_output of conv1, conv2/3x3_reduce, conv2/3x3, then the
# six convolutions of each of the nine Inception modules, then the two heads.
PROTOTXT_CLUSTERS = (
    (64 + 64 + 192) + (368 + 640 + 624 + 648 + 664 + 704 + 1024 + 1024 + 1264) + (1 + 4)
)
GOOGLENET_CONCAT_WIDTHS = {
    "inception_3a_output": 256,
    "inception_3b_output": 480,
    "inception_4a_output": 512,
    "inception_4b_output": 512,
    "inception_4c_output": 512,
    "inception_4d_output": 528,
    "inception_4e_output": 832,
    "inception_5a_output": 832,
    "inception_5b_output": 1024,
}


@pytest.fixture(scope="module")
def kitti_images(datasets_dir) -> np.ndarray:
    """Three real KITTI images, cropped to the thin test input (192x320), raw pixels."""
    folder = datasets_dir / "kitti" / "training" / "image_2"
    paths = sorted(folder.glob("*.png"))[:3]
    if len(paths) < 3:
        pytest.fail(f"real KITTI images not found in {folder}")
    height, width = THIN["input_shape"][:2]
    crops = []
    for path in paths:
        image = tf.io.decode_png(tf.io.read_file(str(path)), channels=3).numpy()
        top, left = 150, (image.shape[1] - width) // 2  # the road ahead
        crops.append(image[top : top + height, left : left + width])
    return np.stack(crops).astype(np.float32)


def test_paper_configuration_has_detectnets_grid_and_googlenets_layers():
    model = build("detectnet", input_shape=(384, 1248, 3), num_classes=1)
    assert model.output_names == ["coverage", "bbox"]
    assert [tuple(o.shape) for o in model.outputs] == [(None, 24, 78, 1), (None, 24, 78, 4)]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 57 + 2
    assert model.get_layer("conv1_pad").padding == ((3, 3), (3, 3))  # Caffe's pad: 3
    assert model.get_layer("conv1_7x7_s2").padding == "valid"
    assert model.get_layer("conv1_7x7_s2").output.shape[1:3] == (192, 624)  # Caffe's sizes
    assert model.get_layer("pool1_3x3_s2").output.shape[1:3] == (96, 312)
    assert model.get_layer("pool2_3x3_s2").output.shape[1:3] == (48, 156)
    for name, channels in GOOGLENET_CONCAT_WIDTHS.items():
        assert model.get_layer(name).output.shape[-1] == channels, name
    assert sum(conv.filters for conv in convs) == PROTOTXT_CLUSTERS
    assert isinstance(model.get_layer("pool1_norm1"), CrossChannelLRN)
    assert model.get_layer("coverage").activation.__name__ == "sigmoid"


def caffe_max_pool(x: np.ndarray, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Caffe's MAX pooling (ceil mode, windows clipped to the image), NHWC, as pooling_layer.cpp."""

    def size(n):
        out = -(-(n + 2 * pad - kernel) // stride) + 1
        return out - 1 if pad and (out - 1) * stride >= n + pad else out

    height, width = x.shape[1:3]
    out = np.empty((x.shape[0], size(height), size(width), x.shape[3]), x.dtype)
    for i in range(out.shape[1]):
        top = i * stride - pad
        rows = slice(max(top, 0), min(top + kernel, height))
        for j in range(out.shape[2]):
            left = j * stride - pad
            cols = slice(max(left, 0), min(left + kernel, width))
            out[:, i, j] = x[:, rows, cols].max(axis=(1, 2))
    return out


def test_pools_are_caffes_ceil_mode_pools():
    model = detectnet(**TINY)
    x = np.random.default_rng(0).normal(size=(2, 12, 18, 5)).astype(np.float32)  # even sizes
    stride2 = model.get_layer("pool1_3x3_s2")
    np.testing.assert_array_equal(stride2(x).numpy(), caffe_max_pool(x, 3, 2, 0))
    stride1 = model.get_layer("inception_3a_pool")
    np.testing.assert_array_equal(stride1(x).numpy(), caffe_max_pool(x, 3, 1, 1))


def test_cross_channel_lrn_is_caffes_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 30, (2, 3, 4, 9)).astype(np.float32)
    layer = CrossChannelLRN(5, 1e-4, 0.75)
    squares = np.pad(x.astype(np.float64) ** 2, [(0, 0), (0, 0), (0, 0), (2, 2)])
    window = sum(squares[..., i : i + 9] for i in range(5))
    expected = x * (1 + 1e-4 / 5 * window) ** -0.75  # Caffe: alpha / local_size
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5)
    assert CrossChannelLRN.from_config(layer.get_config()).get_config() == layer.get_config()


def test_model_saves_and_loads_with_identical_outputs(tmp_path, kitti_images):
    keras.utils.set_random_seed(3)
    model = detectnet(**THIN, normalization="lrn", pixel_mean=(120.0, 125.0, 130.0))
    path = tmp_path / "detectnet.keras"
    model.save(path)
    with keras.utils.custom_object_scope(custom_objects()):
        loaded = keras.models.load_model(path, compile=False)
    assert loaded.output_names == ["coverage", "bbox"]
    assert isinstance(loaded.get_layer("conv2_norm2"), CrossChannelLRN)
    for expected, actual in zip(model(kitti_images), loaded(kitti_images), strict=True):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    rebuilt = keras.Model.from_config(model.get_config(), custom_objects())
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]


def randomise_batchnorm(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial BN statistics, so dead channels become non-zero constants after BN."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[-1]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            layer.beta.assign(rng.uniform(-0.5, 0.5, c))
            layer.moving_mean.assign(rng.uniform(-0.5, 0.5, c))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c))


@pytest.mark.parametrize("normalization", ["lrn", "batchnorm"])
def test_evolved_detectnet_compacts_exactly(normalization, kitti_images):
    keras.utils.set_random_seed(0)
    plain = detectnet(**THIN, normalization=normalization)
    model = tf_evosyn.evolvable(plain)
    heads = ("cvg_classifier", "bbox_regressor")
    assert all(not model.get_layer(name).evolve_clusters for name in heads)
    randomise_batchnorm(model, np.random.default_rng(1))
    ancestor_clusters = tf_evosyn.count_living(model).clusters
    for generation in (1, 2):
        model, _ = tf_evosyn.synthesize(
            model, tf_evosyn.ConstantFactor(0.8, 0.9), seed=5, generation=generation
        )
    living = tf_evosyn.count_living(model)
    assert 0.3 < 1 - living.clusters / ancestor_clusters < 0.75  # real pressure: ~half die
    alive = {layer.name: layer.living_cluster_mask() for layer in tf_evosyn.evolvable_layers(model)}
    assert all(alive[name].all() for name in heads)  # outputs are protected ...
    head_synapses = [model.get_layer(name).living_synapse_mask() for name in heads]
    assert not all(mask.all() for mask in head_synapses)  # ... but their synapses evolve
    if normalization == "lrn":  # the barrier keeps every channel that flows into an LRN
        assert all(alive[name].all() for name in LRN_FED)
    else:
        assert not all(alive[name].all() for name in LRN_FED)

    plan = plan_compaction(model)
    assert not plan.kept_dead, f"dead groups left in place: {plan.kept_dead}"
    compacted = tf_evosyn.compact(model)
    assert compacted.output_names == ["coverage", "bbox"]
    for name, mask in alive.items():  # no dead channel is left
        assert compacted.get_layer(name).filters == mask.sum(), name
    for expected, actual in zip(
        model(kitti_images, training=False), compacted(kitti_images, training=False), strict=True
    ):
        scale = float(np.abs(expected.numpy()).max())
        assert scale > 1e-3
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=0, atol=1e-4 * scale)
    before, after = count_flops(plain), count_flops(compacted)
    assert after.total_params < before.total_params
    assert after.total_macs < before.total_macs
    assert count_flops(model).total_living_macs < before.total_macs


def test_backbone_weights_load_by_name_and_mismatches_are_named(tmp_path):
    keras.utils.set_random_seed(1)
    source = detectnet(**TINY, num_classes=2, normalization="batchnorm")
    for layer in source.layers:  # a trained trunk has non-default BN statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.linspace(-1, 1, layer.moving_mean.shape[-1]))
    npz = save_backbone_weights(source, tmp_path / "trunk.npz")
    h5 = tmp_path / "source.h5"
    source.save_weights(h5)
    source.save_weights(tmp_path / "source.weights.h5")  # keyed by layer class, not name

    for path in (npz, h5):
        keras.utils.set_random_seed(2)
        target = detectnet(**TINY, num_classes=1, normalization="batchnorm", backbone_weights=path)
        for layer in trunk_layers(source):
            for want, got in zip(
                layer.get_weights(), target.get_layer(layer.name).get_weights(), strict=True
            ):
                np.testing.assert_array_equal(got, want)
        # The heads are not part of the backbone (and differ in size here): left as built.
        assert target.get_layer("cvg_classifier").kernel.shape[-1] == 1

    wider = detectnet(**{**TINY, "width": 0.5}, normalization="batchnorm")
    before = wider.get_layer("conv1_7x7_s2").get_weights()[0].copy()
    with pytest.raises(ValueError, match=r"conv1_7x7_s2.*\n[\s\S]*width=1\.0"):
        load_backbone_weights(wider, npz)
    np.testing.assert_array_equal(wider.get_layer("conv1_7x7_s2").get_weights()[0], before)
    with pytest.raises(ValueError, match="pool1_norm1.*model expects"):
        detectnet(**TINY, normalization="lrn", backbone_weights=npz)
    with pytest.raises(ValueError, match="no layer names"):
        load_backbone_weights(wider, tmp_path / "source.weights.h5")
    (tmp_path / "trunk.txt").write_text("not weights")
    with pytest.raises(ValueError, match="unknown format"):
        detectnet(**TINY, backbone_weights=tmp_path / "trunk.txt")


def test_detectnet_trains_with_named_losses_after_evolvable(kitti_images):
    keras.utils.set_random_seed(4)
    model = tf_evosyn.evolvable(detectnet(**TINY))
    model.compile(  # eager: tracing a train step of 59 layers would cost ~15 s
        optimizer=keras.optimizers.SGD(1e-4),
        loss={"coverage": "mse", "bbox": "mae"},
        run_eagerly=True,
    )
    images = kitti_images[:2, :64, :64]
    targets = {"coverage": np.zeros((2, 4, 4, 1)), "bbox": np.zeros((2, 4, 4, 4))}
    losses = model.train_on_batch(images, targets, return_dict=True)
    assert set(losses) == {"loss", "coverage_loss", "bbox_loss"}
    assert np.isfinite(losses["loss"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (375, 1242, 3)}, "multiples of 16"),
        ({"normalization": "groupnorm"}, "normalization must be one of"),
        ({"num_classes": 0}, "num_classes"),
        ({"width": 0}, "width must be > 0"),
    ],
)
def test_bad_arguments_are_rejected_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        detectnet(**{**TINY, **kwargs})
