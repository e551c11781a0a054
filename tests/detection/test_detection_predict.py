"""Detection for a user: images of any size in, boxes in their own pixels out.

Tiny hand-made detectors with known answers stand in for a trained DetectNet (no training):
``box_model`` outputs fixed coverage/bbox maps whose decoded box is ``BOX`` in canvas pixels,
whatever the image; ``bright_cell_model`` covers each 16x16 cell whose mean is bright and
proposes that cell, so it finds a white square where the square is. Then: padding and scaling
(and their undoing), KITTI result files read back by the project's own label parser, PNGs,
one-line errors for bad images, and ``evosyn-predict`` in process.
"""

import io
from pathlib import Path

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from tf_evosyn import save_model
from tf_evosyn._keras import keras, tf
from tf_evosyn.bin import predict_detection as cli
from tf_evosyn.data import DataError
from tf_evosyn.data.kitti_labels import parse_label_file
from tf_evosyn.detection import draw_detections, load_image, predict, write_kitti_results
from tf_evosyn.detection.inference import fit_image
from tf_evosyn.storage import io_utils
from tf_evosyn.tasks.detection import DecodeSettings, DetectionTask

REPO = Path(__file__).resolve().parents[2]
INPUT_HW = (64, 128)
STRIDE = 16
BOX = np.array([40.0, 8.0, 88.0, 56.0])  # x1 y1 x2 y2 on the canvas, 48 px tall
BOX_CELLS = [(r, c) for r in (1, 2) for c in (2, 3, 4)]  # 6 proposals: confidence log(6)


def _constant_map(pooled, values: np.ndarray, name: str):
    """A layer output equal to ``values`` for any input (zero kernel, the map as bias)."""
    dense = keras.layers.Dense(values.size, name=f"{name}_dense")
    flat = dense(pooled)
    dense.set_weights([np.zeros(dense.kernel.shape, np.float32), values.reshape(-1)])
    return keras.layers.Reshape(values.shape, name=name)(flat)


def box_model(classes: int = 1) -> keras.Model:
    """Coverage 0.9 on ``BOX_CELLS`` (class 0), each proposing ``BOX``: any image decodes
    (DetectNet clustering) to exactly ``BOX`` in canvas pixels."""
    grid = (INPUT_HW[0] // STRIDE, INPUT_HW[1] // STRIDE)
    coverage = np.zeros((*grid, classes), np.float32)
    bbox = np.zeros((*grid, 4 * classes), np.float32)
    for r, c in BOX_CELLS:
        coverage[r, c, 0] = 0.9
        bbox[r, c, :4] = BOX - np.array([c, r, c, r]) * STRIDE
    inputs = keras.Input((*INPUT_HW, 3))
    pooled = keras.layers.Flatten()(keras.layers.AveragePooling2D(STRIDE)(inputs))
    outputs = [_constant_map(pooled, coverage, "coverage"), _constant_map(pooled, bbox, "bbox")]
    return keras.Model(inputs, outputs)


def bright_cell_model(input_hw=INPUT_HW) -> keras.Model:
    """Fully convolutional: coverage = sigmoid(0.1 * (cell mean - 128)), box = the cell."""
    inputs = keras.Input((*input_hw, 3))
    pooled = keras.layers.AveragePooling2D(STRIDE)(inputs)
    cov = keras.layers.Conv2D(1, 1, activation="sigmoid", name="coverage")
    box = keras.layers.Conv2D(4, 1, name="bbox")
    outputs = [cov(pooled), box(pooled)]
    cov.set_weights([np.full((1, 1, 3, 1), 0.1 / 3, np.float32), np.array([-12.8], np.float32)])
    box.set_weights([np.zeros((1, 1, 3, 4), np.float32), np.array([0, 0, 16, 16], np.float32)])
    return keras.Model(inputs, outputs)


CELL_TASK = DetectionTask(decode=DecodeSettings(method="nms", min_height=0.0))


def _union(boxes: np.ndarray) -> list[float]:
    assert len(boxes), "nothing detected"
    return [*boxes[:, :2].min(0).tolist(), *boxes[:, 2:].max(0).tolist()]


def _square(height, width, x1, y1, x2, y2) -> np.ndarray:
    image = np.full((height, width, 3), 20.0, np.float32)
    image[y1:y2, x1:x2] = 255.0
    return image


def _png(path, array: np.ndarray):
    Image.fromarray(array.astype(np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture(scope="module")
def model():
    return box_model()


# ---- predict: padding, scaling and their undoing ----------------------------------------------


def test_an_image_that_fits_is_padded_and_its_box_clipped_to_it(model):
    exact = predict(model, np.zeros((*INPUT_HW, 3), np.uint8))
    assert set(exact) == {"boxes", "classes", "confidence"}
    np.testing.assert_allclose(exact["boxes"], [BOX])
    assert exact["boxes"].dtype == np.float32 and exact["classes"].tolist() == [0]
    np.testing.assert_allclose(exact["confidence"], [np.log(6)], rtol=1e-6)
    small = predict(model, np.zeros((50, 100, 3), np.float32))  # padded, never resized
    np.testing.assert_allclose(small["boxes"], [[40, 8, 88, 50]])  # clipped to the image


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((128, 256), BOX * 2),  # twice the canvas: boxes twice as large
        ((100, 512), [160, 32, 352, 100]),  # width limits (x4), clipped to the 100 rows
        ((150, 300), BOX * [300 / 128, 150 / 64, 300 / 128, 150 / 64]),  # not a power of two
    ],
)
def test_a_larger_image_is_scaled_down_and_boxes_come_back_in_its_pixels(model, size, expected):
    found = predict(model, np.zeros((*size, 3), np.float32))
    np.testing.assert_allclose(found["boxes"], [expected], rtol=1e-5)


def test_fit_image_keeps_the_aspect_ratio_and_pads_at_bottom_right():
    canvas, scale = fit_image(np.full((100, 512, 3), 7.0, np.float32), *INPUT_HW)
    assert canvas.shape == (*INPUT_HW, 3) and scale == (0.25, 0.25)
    assert (canvas[:25] == 7.0).all() and (canvas[25:] == 0.0).all()
    canvas, scale = fit_image(np.full((10, 20, 3), 5.0, np.float32), *INPUT_HW)
    assert scale == (1.0, 1.0) and (canvas[:10, :20] == 5).all() and canvas.sum() == 5 * 600


def test_the_detector_sees_the_content_where_it_is_after_padding_and_scaling():
    detector = bright_cell_model()
    small = predict(detector, _square(60, 100, 32, 16, 64, 48), CELL_TASK)
    assert _union(small["boxes"]) == [32, 16, 64, 48] and len(small["boxes"]) == 4
    large = predict(detector, _square(128, 256, 64, 32, 128, 96), CELL_TASK)  # scaled by 1/2
    np.testing.assert_allclose(_union(large["boxes"]), [64, 32, 128, 96])
    empty = predict(detector, _square(128, 256, 0, 0, 0, 0), CELL_TASK)
    assert empty["boxes"].shape == (0, 4)


def test_lists_batches_and_paths_keep_their_order(model, tmp_path):
    large = _png(tmp_path / "large.png", np.zeros((128, 256, 3)))
    found = predict(model, [np.zeros((50, 100, 3)), large, np.zeros((64, 128, 3))], batch_size=2)
    assert isinstance(found, list) and len(found) == 3
    np.testing.assert_allclose(found[0]["boxes"], [[40, 8, 88, 50]])
    np.testing.assert_allclose(found[1]["boxes"], [BOX * 2])
    np.testing.assert_allclose(found[2]["boxes"], [BOX])
    np.testing.assert_allclose(predict(model, str(large))["boxes"], [BOX * 2])  # one path: a dict
    batch = predict(model, tf.zeros((2, 50, 100, 3)))  # an N x H x W x 3 tensor: a list
    assert [b["boxes"].tolist() for b in batch] == [[[40, 8, 88, 50]]] * 2


def test_a_fully_convolutional_model_needs_the_canvas_size():
    detector = bright_cell_model(input_hw=(None, None))
    image = _square(128, 256, 64, 32, 128, 96)
    with pytest.raises(ValueError, match="input_shape"):
        predict(detector, image, CELL_TASK)
    found = predict(detector, image, CELL_TASK, input_shape=INPUT_HW)
    np.testing.assert_allclose(_union(found["boxes"]), [64, 32, 128, 96])
    found = predict(detector, image, CELL_TASK, input_shape=(128, 256))  # fits: no scaling
    assert _union(found["boxes"]) == [64, 32, 128, 96] and len(found["boxes"]) == 16


def test_the_task_must_name_the_models_classes():
    with pytest.raises(ValueError, match="2 classes"):
        predict(box_model(classes=2), np.zeros((64, 128, 3)))
    two = DetectionTask(class_names=("Car", "Pedestrian"))
    assert predict(box_model(classes=2), np.zeros((64, 128, 3)), two)["classes"].tolist() == [0]


def test_an_exported_savedmodel_signature_predicts_the_same(model, tmp_path):
    from tf_evosyn.export.artifacts import save_serving_model

    save_serving_model(model, tmp_path / "saved_model")
    serve = tf.saved_model.load(str(tmp_path / "saved_model"))
    found = predict(serve, np.zeros((128, 256, 3)))
    np.testing.assert_allclose(found["boxes"], [BOX * 2])


# ---- images: reading and one-line errors ------------------------------------------------------


def test_load_image_reads_png_and_jpeg_as_float_rgb(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    image = load_image(_png(tmp_path / "a.png", pixels))
    assert image.dtype == np.float32 and image.shape == (20, 30, 3)
    np.testing.assert_array_equal(image, pixels)
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "b.jpg", quality=95)
    jpeg = load_image(tmp_path / "b.jpg")
    assert jpeg.shape == (20, 30, 3) and np.abs(jpeg - 200).max() <= 2


def test_a_real_kitti_image_loads_exactly_and_gets_boxes_in_its_pixels(model, kitti_dir):
    path = kitti_dir / "training" / "image_2" / "000001.png"
    image = load_image(path)
    reference = tf.io.decode_png(tf.io.read_file(str(path)), channels=3).numpy()
    assert image.shape == (375, 1242, 3) and image.dtype == np.float32
    np.testing.assert_array_equal(image, reference)
    found = predict(model, path)  # 375x1242 on a 64x128 canvas: scaled to 39x128
    sx, sy = 1242 / 128, 375 / 39
    expected = [40 * sx, 8 * sy, 88 * sx, 375]  # y2 = 56 * sy lies below the image: clipped
    np.testing.assert_allclose(found["boxes"], [expected], rtol=1e-5)


def _bad_files(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(tmp_path / "rgba.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "grey.jpg")
    (tmp_path / "notes.png").write_text("not an image\n")
    good = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good, format="PNG")
    (tmp_path / "truncated.png").write_bytes(good.getvalue()[:40])
    return {
        "missing.png": "no such image file",
        "notes.png": "not a PNG or JPEG",
        "grey.png": "greyscale image (1 channel)",
        "grey.jpg": "greyscale image (1 channel)",
        "rgba.png": "RGBA",
        "truncated.png": "truncated or corrupt",
    }


def test_bad_image_files_fail_in_one_line_naming_the_file_and_the_fix(tmp_path):
    for name, problem in _bad_files(tmp_path).items():
        path = tmp_path / name
        with pytest.raises(DataError) as error:
            load_image(path)
        message = str(error.value)
        assert str(path) in message and problem in message and "\n" not in message, message
        assert ValueError in type(error.value).__mro__
        if "channel" in problem or problem == "RGBA":
            assert "convert it to 3-channel RGB" in message


@pytest.mark.parametrize(
    ("shape", "problem"),
    [((8, 8), "greyscale"), ((8, 8, 4), "RGBA"), ((8, 8, 5), "H x W x 3"), ((0, 8, 3), "H x W")],
)
def test_bad_arrays_are_refused_before_the_model_runs(shape, problem):
    with pytest.raises(DataError, match=problem) as error:
        predict(object(), [np.zeros((8, 8, 3)), np.zeros(shape)])  # not even a model: never run
    assert "images[1]" in str(error.value) and "\n" not in str(error.value)


# ---- KITTI result files and pictures ----------------------------------------------------------


def test_kitti_result_files_read_back_with_the_same_boxes_and_scores(tmp_path):
    detections = {
        "boxes": np.array([[10.123, 20.5, 110.0, 80.25], [0, 0, 5, 30]], np.float32),
        "classes": np.array([1, 0]),
        "confidence": np.array([0.875, 2.5], np.float32),
    }
    path = write_kitti_results(tmp_path / "000007.txt", detections, ("Car", "Pedestrian"))
    objects = parse_label_file(path, allow_score=True)
    assert [o.type for o in objects] == ["Pedestrian", "Car"]
    np.testing.assert_allclose([o.bbox for o in objects], detections["boxes"], atol=0.005)
    np.testing.assert_allclose([o.score for o in objects], detections["confidence"], atol=1e-6)
    first = objects[0]
    assert (first.truncated, first.occluded, first.alpha, first.rotation_y) == (-1, -1, -10, -10)
    assert (first.height, first.width, first.length) == (-1, -1, -1)
    assert (first.x, first.y, first.z) == (-1000, -1000, -1000)
    assert len((tmp_path / "000007.txt").read_text().splitlines()[0].split()) == 16
    none = {"boxes": np.zeros((0, 4)), "classes": np.zeros(0, int), "confidence": np.zeros(0)}
    assert parse_label_file(write_kitti_results(tmp_path / "8.txt", none, ("Car",))) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000007.txt", "8.txt"]  # no temps
    with pytest.raises(ValueError, match="do not index"):
        write_kitti_results(tmp_path / "9.txt", detections, ("Car",))


def test_draw_detections_writes_a_png_with_the_box_drawn(tmp_path):
    image = np.full((60, 100, 3), 30.0, np.float32)
    detections = {"boxes": np.array([[20.0, 25, 80, 55]]), "classes": [0], "confidence": [0.9]}
    path = draw_detections(image, detections, ("Car",), tmp_path / "d.png")
    drawn = np.asarray(Image.open(path))
    assert drawn.shape == (60, 100, 3) and drawn.dtype == np.uint8
    assert tuple(drawn[40, 20]) == (255, 40, 40)  # the left edge of the box
    assert tuple(drawn[40, 50]) == (30, 30, 30)  # inside: untouched
    assert tf.io.decode_png(tf.io.read_file(str(path))).shape == (60, 100, 3)


# ---- evosyn-predict ---------------------------------------------------------------------------


def _run_cli(**values) -> None:
    """``evosyn-predict`` in process: absl parses these flags, then main runs.

    Only the given flags are parsed and validated: other binaries imported into the same test
    process define required flags of their own that this command never sees.
    """
    parsed = {name: str(value) for name, value in values.items()}
    with flagsaver.as_parsed(**parsed):
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        cli.main(["evosyn-predict"])


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    _png(folder / "000001.png", np.zeros((50, 100, 3)))
    Image.fromarray(np.zeros((128, 256, 3), np.uint8)).save(folder / "000002.jpg")
    (folder / "README.txt").write_text("not an image, not listed")
    return folder


def _fake_run_directory(path, model, classes=("Van",)):
    """What evosyn-detect leaves: lineage.jsonl, config.json (decoding, classes), best/."""
    from tf_evosyn.bin.config_cli import load_config_file

    config = load_config_file(str(REPO / "configs" / "detectnet_kitti_smoke.py"))
    config.data.classes = classes
    config.data.image_height, config.data.image_width = INPUT_HW
    path.mkdir()
    io_utils.atomic_write_json(path / "config.json", config.to_dict())
    (path / "lineage.jsonl").write_text("")
    save_model(model, path / "best")
    io_utils.atomic_write_json(path / "best" / "record.json", {"generation": 0})
    return path


def test_the_command_writes_kitti_results_and_pictures_per_image(model, tmp_path, image_folder):
    model_file = save_model(model, tmp_path / "model.keras")
    out = tmp_path / "out"
    _run_cli(model=model_file, images=image_folder, output_dir=out)
    assert sorted(p.name for p in out.iterdir()) == [
        "000001.png",
        "000001.txt",
        "000002.png",
        "000002.txt",
    ]
    for image_id, box in (("000001", [40, 8, 88, 50]), ("000002", BOX * 2)):
        (car,) = parse_label_file(out / f"{image_id}.txt", allow_score=True)
        assert car.type == "Car"  # no run config: DetectNet's defaults, class Car
        np.testing.assert_allclose(car.bbox, box, atol=0.005)
        np.testing.assert_allclose(car.score, np.log(6), atol=1e-6)
    assert load_image(out / "000002.png").shape == (128, 256, 3)
    # A higher threshold than the coverage (0.9): nothing found, empty result files.
    _run_cli(model=model_file, images=image_folder / "*.png", output_dir=out, threshold=0.95)
    assert (out / "000001.txt").read_text() == ""


def test_the_command_decodes_a_run_directory_with_its_config(model, tmp_path, image_folder):
    workdir = _fake_run_directory(tmp_path / "run", model)
    out = tmp_path / "out"
    _run_cli(model=workdir, images=image_folder, output_dir=out)
    (van,) = parse_label_file(out / "000002.txt", allow_score=True)
    assert van.type == "Van"  # the run's config.data.classes
    np.testing.assert_allclose(van.bbox, BOX * 2, atol=0.005)


def test_the_command_runs_an_export_savedmodel_decoded_as_its_run(model, tmp_path, image_folder):
    from tf_evosyn.export.artifacts import save_serving_model

    workdir = _fake_run_directory(tmp_path / "run", model)
    export = tmp_path / "export"
    save_serving_model(model, export / "saved_model")  # what evosyn-export writes, no .keras
    io_utils.atomic_write_json(export / "export_report.json", {"workdir": str(workdir)})
    out = tmp_path / "out"
    _run_cli(model=export, images=image_folder / "*.jpg", output_dir=out)
    (van,) = parse_label_file(out / "000002.txt", allow_score=True)
    assert van.type == "Van"  # found the run's config through the report
    np.testing.assert_allclose(van.bbox, BOX * 2, atol=0.005)


def _cli_error(**values) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _run_cli(**values)
    message = str(exit_info.value.code)
    assert message.startswith("evosyn-predict: error: ") and "\n" not in message, message
    return message


def test_bad_input_stops_the_command_in_one_line_before_any_model_work(
    tmp_path, image_folder, monkeypatch
):
    def no_model_work(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(cli, "load_detector", no_model_work)
    model_file = save_model(box_model(), tmp_path / "model.keras")
    _bad_files(image_folder)
    out = tmp_path / "out"
    message = _cli_error(model=model_file, images=image_folder, output_dir=out)
    assert str(image_folder / "grey.jpg") in message  # the first bad file in sorted order
    message = _cli_error(model=model_file, images=image_folder / "rgba.png", output_dir=out)
    assert "RGBA" in message and "rgba.png" in message
    message = _cli_error(model=model_file, images=tmp_path / "nothing*.png", output_dir=out)
    assert "matches no file" in message
    good = tmp_path / "good"
    good.mkdir()
    _png(good / "1.png", np.zeros((8, 8, 3)))
    for bad_model, problem in ((tmp_path / "nope", "does not exist"), (good, "holds neither")):
        message = _cli_error(model=bad_model, images=good, output_dir=out)
        assert problem in message and str(bad_model) in message
    run = _fake_run_directory(tmp_path / "run", box_model())
    (run / "best" / "model.keras").unlink()
    assert "best/model.keras" in _cli_error(model=run, images=good, output_dir=out)
    assert "(0, 1)" in _cli_error(model=model_file, images=good, output_dir=out, threshold=1.5)
    assert not out.exists()
