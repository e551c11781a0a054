"""DetectNet heads on the pretrained MobileNetV2 trunk: weights, errors, box coding, config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tf_evosyn._keras import keras, tf
from tf_evosyn.loop.learning_curve import LearningCurve, read_learning_curve
from tf_evosyn.models import build
from tf_evosyn.models.box_coding import LogDistanceCorners
from tf_evosyn.models.detectnet_mobilenetv2 import WEIGHTS_FILE, resolve_weights
from tf_evosyn.runs.config_checks import ConfigError
from tf_evosyn.runs.detection import (
    detection_model_kwargs,
    detection_task,
    validate_detection_config,
)
from tf_evosyn.tasks import ClassificationTask

REPO = Path(__file__).resolve().parents[2]
SMALL = (64, 96, 3)


@pytest.fixture(scope="module")
def weights_file(datasets_dir: Path) -> Path:
    path = datasets_dir.parent / "weights" / WEIGHTS_FILE
    if not path.is_file():
        pytest.fail(f"shared trunk weights {path} not found (CI provides ../shared/weights)")
    return path


def _config():
    path = REPO / "configs" / "detectnet_mobilenetv2_kitti.py"
    spec = importlib.util.spec_from_file_location("mnv2_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def test_trunk_loads_the_shared_imagenet_weights(weights_file, monkeypatch, datasets_dir):
    monkeypatch.setenv("EVOSYN_DATA_DIR", str(datasets_dir))
    model = build("detectnet_mobilenetv2", input_shape=SMALL, backbone_weights="default")
    reference = keras.applications.MobileNetV2(
        input_shape=SMALL, alpha=1.0, include_top=False, weights=None
    )
    reference.load_weights(str(weights_file))
    for name in ("Conv1", "block_5_depthwise", "block_13_expand"):
        for ours, theirs in zip(
            model.get_layer(name).get_weights(),
            reference.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(ours, theirs)
    random = build("detectnet_mobilenetv2", input_shape=SMALL, backbone_weights=None)
    assert not np.array_equal(
        random.get_layer("Conv1").get_weights()[0], model.get_layer("Conv1").get_weights()[0]
    )
    assert model.output_names == ["coverage", "bbox"]
    coverage, bbox = model(np.zeros((1, *SMALL), np.float32))
    assert coverage.shape == (1, 4, 6, 1) and bbox.shape == (1, 4, 6, 4)
    assert all(not layer.trainable for layer in model.layers if "BN" in layer.name)


def test_missing_weights_get_an_error_naming_the_fix(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.h5"
    with pytest.raises(FileNotFoundError, match="do not exist: give the path of"):
        build("detectnet_mobilenetv2", input_shape=SMALL, backbone_weights=str(missing))
    monkeypatch.delenv("EVOSYN_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="EVOSYN_DATA_DIR is not set"):
        resolve_weights("default")
    config = _config()
    config.model.backbone_weights = str(missing)
    with pytest.raises(ConfigError, match="nowhere.h5 do not exist"):
        validate_detection_config(config)


def test_config_builds_the_committed_recipe(weights_file):
    config = _config()
    config.model.backbone_weights = str(weights_file)
    validate_detection_config(config)
    kwargs = detection_model_kwargs(config)
    assert kwargs["bbox_hidden"] == 256 and kwargs["box_coding"] == "log_distance"
    task = detection_task(config)
    assert task.loss_weights() == {"coverage": 1.0, "bbox": 10.0}
    assert task.decode.rect_eps == 0.2 and task.decode.rect_threshold == 1
    config.model.width = 0.5  # a DetectNet (GoogLeNet) key this builder does not take
    with pytest.raises(ConfigError, match="model.width=0.5 is not an argument"):
        validate_detection_config(config)


def test_log_distance_coding_gives_corner_offsets_from_the_cell():
    layer = LogDistanceCorners(16)
    raw = np.zeros((1, 1, 1, 4), np.float32)
    raw[..., 2] = np.log(3.0)  # right side 3 strides from the centre
    x1, y1, x2, y2 = np.asarray(layer(raw))[0, 0, 0]
    assert (x1, y1) == (-8.0, -8.0)  # one stride left/up of the centre at (8, 8)
    np.testing.assert_allclose([x2, y2], [8.0 + 48.0, 24.0], rtol=1e-6)
    clone = LogDistanceCorners.from_config(layer.get_config())
    assert clone.stride == 16
    with pytest.raises(ValueError, match="4 channels per class"):
        layer(np.zeros((1, 1, 1, 3), np.float32))


def test_learning_curve_records_train_and_validation_scores(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")

    def data():
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    task = ClassificationTask()
    task.compile(model, keras.optimizers.Adam(0.1))
    path = tmp_path / "learning_curve.json"
    curve = LearningCurve(task, data, data, every=2, path=path)
    model.fit(data(), epochs=5, verbose=0, callbacks=[curve])
    written = read_learning_curve(tmp_path)
    assert [p["epoch"] for p in written["points"]] == [2, 4]
    assert written["metric"] == "accuracy"
    assert written["points"][-1]["train"] > 0.8  # a separable problem is learnt
    assert read_learning_curve(tmp_path / "empty") is None
    with pytest.raises(ValueError, match="every must be an integer"):
        LearningCurve(task, data, data, every=0)


def test_config_keeps_every_residual_stream_of_the_trunk():
    """The default config keeps the filters of the layers that write the trunk's residual
    streams (measured: evolving them costs half the AP a generation keeps). Its list of names
    must cover every coupled group with more than one producer in the built detector, so a
    renamed layer cannot silently start evolving."""
    import tf_evosyn
    from tf_evosyn.graph.coupling import plan_coupling

    config = _config()
    module_path = REPO / "configs" / "detectnet_mobilenetv2_kitti.py"
    spec = importlib.util.spec_from_file_location("mnv2_config_names", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kept = set(module.RESIDUAL_STREAM_LAYERS)
    assert set(config.evolution.layer_budgets) == kept
    assert all(config.evolution.layer_budgets[n].cluster_fraction == 1.0 for n in kept)
    model = tf_evosyn.evolvable(
        build("detectnet_mobilenetv2", input_shape=SMALL, backbone_weights=None)
    )
    depthwise = {
        layer.name for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)
    }
    # Residual adds couple several convolutions; a depthwise layer couples with its producer.
    streams = {
        name
        for group in plan_coupling(model).groups
        if len(group.family) > 1 and not depthwise & set(group.family)
        for name in group.family
    }
    assert streams, "the trunk's residual adds should couple the project layers"
    assert streams <= kept, f"residual-stream layers the config lets evolve: {streams - kept}"
