"""Tests of the KITTI reader, splits, padded pipelines, DetectNet augmentation and TFDS conversion.

Real data: the 103-pair KITTI object subset (shared/datasets/kitti, see its SOURCE.md). Bad folders
are built in tmp_path from real files plus hand-written label lines. The TFDS conversion is tested
on a record encoded by TFDS's own kitti feature spec and box builder (offline, nothing downloaded).
"""

import shutil
from collections import Counter
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from tf_evosyn._keras import tf
from tf_evosyn.data import (
    KITTI_TYPES,
    DataError,
    DetectNetAugmentation,
    class_ids,
    load_kitti_data,
    parse_label_file,
    parse_label_line,
    scan_kitti_folder,
)
from tf_evosyn.data.kitti_augment import augment_example
from tf_evosyn.data.kitti_tfds import kitti_type_table, tfds_example_to_kitti

NO_AUGMENTATION = dict(
    crop_prob=0.0, flip_prob=0.0, scale_prob=0.0, hue_rotation_prob=0.0, desaturation_prob=0.0
)


def _config(kitti_dir: Path, **overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(
        {
            "name": "kitti",
            "source": "local",
            "data_dir": str(kitti_dir),
            "tfds_data_dir": "",
            "download": False,
            "train_limit": 0,
            "validation_fraction": 0.2,
            "image_height": 384,
            "image_width": 1248,
            "max_boxes": 64,
            "augment": True,
        }
    )
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@pytest.fixture(scope="module")
def records(kitti_dir):
    return scan_kitti_folder(kitti_dir)


def _decoded(record_or_path) -> np.ndarray:
    path = getattr(record_or_path, "image_path", record_or_path)
    return tf.io.decode_png(tf.io.read_file(str(path)), channels=3).numpy()


def _copy_pairs(kitti_dir: Path, root: Path, ids=("000000", "000001")) -> Path:
    for sub, ext in (("image_2", ".png"), ("label_2", ".txt")):
        (root / "training" / sub).mkdir(parents=True, exist_ok=True)
        for image_id in ids:
            src = kitti_dir / "training" / sub / f"{image_id}{ext}"
            shutil.copy(src, root / "training" / sub / src.name)
    return root


# ---- labels and folder validation ----


def test_all_real_labels_parse_with_expected_counts(records):
    assert len(records) == 103
    counts = Counter(obj.type for record in records for obj in record.objects)
    assert counts["Car"] == 315
    assert counts["DontCare"] == 239
    assert sum(counts.values()) == 692
    ids = [int(r.image_id) for r in records]
    assert ids == sorted(ids) and ids[-2:] == [1545, 7091]
    dont_care = next(o for r in records for o in r.objects if o.type == "DontCare")
    assert (dont_care.truncated, dont_care.occluded) == (-1.0, -1)


def test_png_header_sizes_match_decoded_images(records):
    by_id = {r.image_id: r for r in records}
    for image_id, expected in (("000000", (370, 1224)), ("000024", (376, 1241))):
        record = by_id[image_id]
        assert (record.height, record.width) == expected
        assert _decoded(record).shape == (*expected, 3)


def test_label_fields_are_all_kept(kitti_dir):
    objects = parse_label_file(kitti_dir / "training" / "label_2" / "000000.txt")
    line = (kitti_dir / "training" / "label_2" / "000000.txt").read_text().split()
    assert len(objects) == 1
    obj = objects[0]
    assert obj.type == line[0] and obj.occluded == int(line[2])
    values = [obj.truncated, obj.alpha, *obj.bbox, obj.height, obj.width, obj.length]
    values += [obj.x, obj.y, obj.z, obj.rotation_y]
    assert values == [float(line[1]), *(float(v) for v in line[3:15])]
    assert obj.score is None
    result_line = " ".join(line[:15] + ["0.87"])
    assert parse_label_line(result_line, "results.txt, line 1", allow_score=True).score == 0.87
    with pytest.raises(DataError, match="results.txt, line 1: 16 fields, expected 15"):
        parse_label_line(result_line, "results.txt, line 1")


def test_missing_folder_says_layout_and_how_to_point_at_it(tmp_path):
    with pytest.raises(DataError) as err:
        scan_kitti_folder(tmp_path / "nowhere")
    message = str(err.value)
    for part in ("training/image_2", "training/label_2", "EVOSYN_DATA_DIR", "data.data_dir"):
        assert part in message


def test_unmatched_image_or_label_is_named(kitti_dir, tmp_path):
    root = _copy_pairs(kitti_dir, tmp_path / "a")
    (root / "training" / "label_2" / "000001.txt").unlink()
    with pytest.raises(DataError, match=r"000001\.png has no matching label file"):
        scan_kitti_folder(root)
    root = _copy_pairs(kitti_dir, tmp_path / "b")
    (root / "training" / "image_2" / "000000.png").unlink()
    with pytest.raises(DataError, match=r"000000\.txt has no matching image"):
        scan_kitti_folder(root)


@pytest.mark.parametrize(
    "bad_line, expected",
    [
        (
            "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70",
            "14 fields",
        ),
        (
            "Car 0.00 0 left 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
            "field 'alpha' is 'left'",
        ),
        (
            "Bus 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
            "unknown object type 'Bus'",
        ),
    ],
)
def test_bad_label_line_names_file_line_and_problem(kitti_dir, tmp_path, bad_line, expected):
    root = _copy_pairs(kitti_dir, tmp_path)
    label = root / "training" / "label_2" / "000001.txt"
    lines = label.read_text().splitlines()
    label.write_text("\n".join([lines[0], bad_line, *lines[1:]]) + "\n")
    with pytest.raises(DataError) as err:
        scan_kitti_folder(root)
    assert f"{label}, line 2" in str(err.value)
    assert expected in str(err.value)


def test_too_many_objects_names_the_knob(kitti_dir, tmp_path):
    root = _copy_pairs(kitti_dir, tmp_path)
    with pytest.raises(DataError, match=r"000001\.txt has 7 objects.*data\.max_boxes=3"):
        scan_kitti_folder(root, max_boxes=3)


def test_bad_png_fails_up_front_and_corrupt_png_fails_naming_the_file(kitti_dir, tmp_path):
    root = _copy_pairs(kitti_dir, tmp_path / "sig")
    (root / "training" / "image_2" / "000001.png").write_bytes(b"GIF89a" + bytes(40))
    with pytest.raises(DataError, match=r"000001\.png is not a PNG"):
        scan_kitti_folder(root)
    # A valid header but a truncated body: refused when the folder is loaded, not in tf.data.
    root = _copy_pairs(kitti_dir, tmp_path / "body", ids=("000000", "000001", "000002"))
    png = root / "training" / "image_2" / "000002.png"
    png.write_bytes(png.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"000002\.png is damaged"):
        load_kitti_data(_config(root, validation_fraction=0.34, image_height=16))


def test_class_ids_validates_names():
    assert class_ids(("Car",)) == [0]
    assert class_ids(["Car", "Pedestrian", "Cyclist"]) == [0, 3, 5]
    assert KITTI_TYPES[class_ids("DontCare")[0]] == "DontCare"
    with pytest.raises(DataError, match="Unknown KITTI class 'car'"):
        class_ids(("car",))


# ---- split and pipelines ----


def test_id_block_split_is_contiguous_and_deterministic(kitti_dir, records):
    data = load_kitti_data(_config(kitti_dir))
    train_ids, _ = data.train_split.image_ids_and_sizes()
    val_ids, val_sizes = data.validation_image_info()
    all_ids = [r.image_id for r in records]
    test_ids, _ = data.test_split.image_ids_and_sizes()
    assert (data.num_train, data.num_validation, data.num_test) == (61, 21, 21)
    assert train_ids + val_ids + test_ids == all_ids
    assert val_ids == all_ids[-42:-21] and test_ids == all_ids[-21:]
    assert val_sizes.shape == (21, 2) and val_sizes.dtype == np.int32
    assert "NOT KITTI's benchmark split" in data.description
    again = load_kitti_data(_config(kitti_dir))
    assert again.validation_image_info()[0] == val_ids
    limited = load_kitti_data(_config(kitti_dir, train_limit=10))
    assert limited.train_split.image_ids_and_sizes()[0] == all_ids[:10]
    assert limited.validation_image_info()[0] == val_ids


def test_validation_pads_bottom_right_and_keeps_kitti_coordinates(kitti_dir, records):
    data = load_kitti_data(_config(kitti_dir, test_fraction=0.03))  # 000100, 001545, 007091
    images, gt = next(iter(data.test_dataset(2)))
    assert images.shape == (2, 384, 1248, 3) and images.dtype == tf.float32
    assert gt["boxes"].shape == (2, 64, 4) and gt["types"].shape == (2, 64)
    for i, record in enumerate(records[-3:-1]):
        h, w = record.height, record.width
        image = images[i].numpy()
        np.testing.assert_array_equal(image[:h, :w], _decoded(record).astype(np.float32))
        assert not image[h:].any() and not image[:, w:].any()
        n = len(record.objects)
        expected = np.array([o.bbox for o in record.objects], np.float32)
        np.testing.assert_array_equal(gt["boxes"][i, :n].numpy(), expected)
        assert gt["types"][i, :n].numpy().tolist() == [o.type_id for o in record.objects]
        assert (gt["types"][i, n:].numpy() == -1).all() and not gt["boxes"][i, n:].numpy().any()
        assert gt["occluded"][i, :n].numpy().tolist() == [o.occluded for o in record.objects]
        assert gt["image_size"][i].numpy().tolist() == [h, w]
        assert gt["image_id"][i].numpy().decode() == record.image_id


def test_smaller_input_crops_bottom_right_and_clips_boxes(kitti_dir, records):
    data = load_kitti_data(_config(kitti_dir, image_height=192, image_width=640))
    images, gt = next(iter(data.validation_dataset(4)))
    assert images.shape == (4, 192, 640, 3)
    for i, record in enumerate(records[-42:-38]):
        np.testing.assert_array_equal(images[i].numpy(), _decoded(record)[:192, :640])
        clipped = [
            (min(o.x1, 640), min(o.y1, 192), min(o.x2, 640), min(o.y2, 192), o.type_id)
            for o in record.objects
        ]
        kept = [c for c in clipped if c[2] > c[0] and c[3] > c[1]]
        n = len(kept)
        np.testing.assert_allclose(
            gt["boxes"][i, :n].numpy(), np.array([c[:4] for c in kept]).reshape(n, 4)
        )
        assert gt["types"][i, :n].numpy().tolist() == [c[4] for c in kept]
        assert (gt["types"][i, n:].numpy() == -1).all()


def _example(record, max_boxes: int = 64):
    """(float32 image tensor, padded gt dict, numpy boxes [n, 4]) of a real record."""
    n = len(record.objects)
    boxes = np.zeros((max_boxes, 4), np.float32)
    boxes[:n] = [o.bbox for o in record.objects]
    types = np.full(max_boxes, -1, np.int32)
    types[:n] = [o.type_id for o in record.objects]
    gt = {"boxes": tf.constant(boxes), "types": tf.constant(types)}
    gt["truncated"], gt["occluded"] = tf.zeros(max_boxes), tf.zeros(max_boxes, tf.int32)
    return tf.constant(_decoded(record), tf.float32), gt, boxes[:n]


def _only(**params) -> DetectNetAugmentation:
    return DetectNetAugmentation(**{**NO_AUGMENTATION, **params})


def test_flip_maps_x_to_width_minus_x_exactly(records):
    record = records[5]
    image, gt, boxes = _example(record)
    params = _only(flip_prob=1.0)
    out, out_gt = augment_example(image, gt, 384, 1248, params, tf.constant([1, 2], tf.int64))
    w, n = np.float32(record.width), len(boxes)
    np.testing.assert_array_equal(
        out.numpy()[: record.height, : record.width], image.numpy()[:, ::-1]
    )
    flipped = out_gt["boxes"].numpy()[:n]
    np.testing.assert_array_equal(flipped[:, 0], w - boxes[:, 2])
    np.testing.assert_array_equal(flipped[:, 2], w - boxes[:, 0])
    np.testing.assert_array_equal(flipped[:, [1, 3]], boxes[:, [1, 3]])


def test_scale_resizes_image_and_boxes_together(records):
    record = records[5]  # 1242 x 375
    image, gt, boxes = _example(record)
    params = _only(scale_prob=1.0, scale_min=0.5, scale_max=0.5)
    out, out_gt = augment_example(image, gt, 384, 1248, params, tf.constant([3, 4], tf.int64))
    new_h, new_w = 188, 621  # round(187.5) half away from zero, 1242 / 2
    factors = np.array([new_w / 1242, new_h / 375] * 2, np.float32)
    np.testing.assert_allclose(out_gt["boxes"].numpy()[: len(boxes)], boxes * factors, rtol=1e-6)
    out = out.numpy()
    assert not out[new_h:].any() and not out[:, new_w:].any()
    assert out[new_h - 1].any() and out[:, new_w - 1].any()
    np.testing.assert_allclose(out[:new_h, :new_w].mean(), image.numpy().mean(), atol=1.0)


def test_shift_moves_image_and_boxes_by_the_same_offset(records):
    record = records[5]
    image, gt, boxes = _example(record)
    original = image.numpy()
    params = _only(crop_prob=1.0)  # shift 32: offsets in [-16, 1242 - 1248 + 16] x [-16, 7]
    offsets = set()
    for seed in range(6):
        out, out_gt = augment_example(image, gt, 384, 1248, params, tf.constant([seed, 0]))
        out, moved = out.numpy(), out_gt["boxes"].numpy()[: len(boxes)]
        inside = (moved[:, :2] > 0).all(1) & (moved[:, 2] < 1248) & (moved[:, 3] < 384)
        assert inside.any()
        delta = boxes[inside, :2] - moved[inside, :2]
        ox, oy = (int(round(v)) for v in delta[0])
        np.testing.assert_allclose(delta, np.broadcast_to([ox, oy], delta.shape), atol=1e-4)
        assert -16 <= ox <= 10 and -16 <= oy <= 7
        offsets.add((ox, oy))
        # Canvas pixel (y, x) shows original pixel (y + oy, x + ox); zeros elsewhere.
        ys = slice(max(-oy, 0), min(384, 375 - oy))
        xs = slice(max(-ox, 0), min(1248, 1242 - ox))
        np.testing.assert_array_equal(
            out[ys, xs], original[ys.start + oy : ys.stop + oy, xs.start + ox : xs.stop + ox]
        )
        out[ys, xs] = 0.0
        assert not out.any()
    assert len(offsets) > 1


def test_colour_changes_keep_value_and_scale_saturation(records):
    record = records[5]
    image, gt, boxes = _example(record)
    original = image.numpy()
    seed = tf.constant([7, 8], tf.int64)
    hue, hue_gt = augment_example(image, gt, 375, 1242, _only(hue_rotation_prob=1.0), seed)
    np.testing.assert_array_equal(hue_gt["boxes"].numpy()[: len(boxes)], boxes)
    assert np.abs(hue.numpy() - original).max() > 10.0
    np.testing.assert_allclose(hue.numpy().max(-1), original.max(-1), atol=0.05)
    params = _only(desaturation_prob=1.0, desaturation_max=1.0)
    desat = augment_example(image, gt, 375, 1242, params, seed)[0].numpy()
    spread, new_spread = np.ptp(original, -1), np.ptp(desat, -1)
    factor = new_spread[spread > 100].mean() / spread[spread > 100].mean()
    assert 0.0 <= factor < 1.0
    np.testing.assert_allclose(new_spread, factor * spread, atol=0.1)
    np.testing.assert_allclose(desat.max(-1), original.max(-1), atol=0.05)


def test_augmented_training_is_deterministic_per_seed_and_boxes_stay_inside(kitti_dir):
    data = load_kitti_data(_config(kitti_dir, train_limit=8, image_height=192, image_width=640))
    assert data.augmentation == DetectNetAugmentation()

    def first_epoch(seed):
        return [
            (x.numpy(), {k: v.numpy() for k, v in gt.items()})
            for x, gt in data.train_dataset(4, seed=seed)
        ]

    a, b, c = first_epoch(5), first_epoch(5), first_epoch(6)
    for (xa, ga), (xb, gb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ga["boxes"], gb["boxes"])
    assert any(not np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c, strict=True))
    for x, gt in a + c:
        assert x.shape[1:] == (192, 640, 3) and 0.0 <= x.min() and x.max() <= 255.0
        valid = gt["types"] >= 0
        boxes = gt["boxes"][valid]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 640).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 192).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert not gt["boxes"][~valid].any()
        # Valid rows come first in every example.
        assert all(np.array_equal(row, np.sort(row)[::-1]) for row in valid.astype(int))


def test_augmentation_config_round_trip_and_validation():
    params = DetectNetAugmentation(flip_prob=0.3, shift_x=8)
    assert DetectNetAugmentation.from_config(params.get_config()) == params
    assert DetectNetAugmentation().get_config()["scale_max"] == 1.2
    with pytest.raises(DataError, match="Unknown data.augmentation keys"):
        DetectNetAugmentation.from_config({"flip": 0.5})
    with pytest.raises(DataError, match="flip_prob"):
        DetectNetAugmentation(flip_prob=1.5)


def test_config_errors_are_clear(kitti_dir):
    with pytest.raises(DataError, match="validation_fraction"):
        load_kitti_data(_config(kitti_dir, validation_fraction=1.0))
    with pytest.raises(DataError, match="train_limit=500 exceeds the 61"):
        load_kitti_data(_config(kitti_dir, train_limit=500))
    with pytest.raises(DataError, match="data.source"):
        load_kitti_data(_config(kitti_dir, source="idx"))
    with pytest.raises(DataError, match="max_boxes"):
        load_kitti_data(_config(kitti_dir, max_boxes=0))


# ---- TFDS ----


def test_tfds_record_converts_back_to_kitti_pixels(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.datasets.kitti import kitti_dataset_builder as tfds_kitti

    builder = tfds.builder("kitti", data_dir=str(tmp_path))  # info only: offline, no download
    features = builder.info.features
    names = features["objects"]["type"].names
    # The builder's own box encoding, checked against hand numbers.
    raw = tfds_kitti.RawBoundingBox(top=100.0, bottom=200.0, left=300.0, right=500.0)
    bbox = tfds_kitti._build_bounding_box(raw, 375, 1242)
    np.testing.assert_allclose(
        list(bbox), [(375 - 200) / 375, 300 / 1242, (375 - 100) / 375, 500 / 1242]
    )
    extras = {"alpha": 0.1, "dimensions": [1.5, 1.6, 3.9], "location": [1, 2, 9], "rotation_y": 0}
    record = {
        "image": np.zeros((375, 1242, 3), np.uint8),
        "image/file_name": "000042.png",
        "objects": [
            {"type": "Cyclist", "truncated": 0.5, "occluded": 2, "bbox": bbox, **extras},
            {
                "type": "Car",
                "truncated": 0.0,
                "occluded": 0,
                "bbox": tfds_kitti._build_bounding_box(
                    tfds_kitti.RawBoundingBox(0.0, 374.0, 0.0, 1241.5), 375, 1242
                ),
                **extras,
            },
        ],
    }
    example = features.deserialize_example(
        features.serialize_example(features.encode_example(record))
    )
    image, gt = tfds_example_to_kitti(example, kitti_type_table(names), max_boxes=4)
    assert image.shape == (375, 1242, 3) and image.dtype == tf.float32
    np.testing.assert_allclose(
        gt["boxes"].numpy(),
        [[300, 100, 500, 200], [0, 0, 1241.5, 374], [0] * 4, [0] * 4],
        atol=1e-3,
    )
    assert [KITTI_TYPES[t] for t in gt["types"].numpy()[:2]] == ["Cyclist", "Car"]
    assert gt["types"].numpy()[2:].tolist() == [-1, -1]
    np.testing.assert_allclose(gt["truncated"].numpy(), [0.5, 0, 0, 0])
    assert gt["occluded"].numpy().tolist() == [2, 0, 0, 0]
    assert gt["image_size"].numpy().tolist() == [375, 1242]
    assert gt["image_id"].numpy() == b"000042"
    with pytest.raises(tf.errors.InvalidArgumentError, match="data.max_boxes=1"):
        tfds_example_to_kitti(example, kitti_type_table(names), max_boxes=1)


def test_unprepared_tfds_is_a_clear_error_without_download(tmp_path, kitti_dir):
    pytest.importorskip("tensorflow_datasets")
    cfg = _config(kitti_dir, source="tfds", tfds_data_dir=str(tmp_path), download=False)
    with pytest.raises(DataError, match="not prepared.*download=True"):
        load_kitti_data(cfg)


def test_auto_source_uses_the_local_folder_if_there_else_tfds(kitti_dir, tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setenv("EVOSYN_DATA_DIR", str(kitti_dir.parent))
    cfg = _config(kitti_dir, source="auto", data_dir="", tfds_data_dir=str(tmp_path))
    assert load_kitti_data(cfg).description.startswith(f"KITTI local folder {kitti_dir}")
    monkeypatch.setenv("EVOSYN_DATA_DIR", str(tmp_path))  # no kitti/ inside: TFDS, not prepared
    with pytest.raises(DataError, match="TFDS 'kitti' is not prepared"):
        load_kitti_data(cfg)


@pytest.fixture(scope="module")
def tfds_kitti_builder(tmp_path_factory, kitti_dir):
    """TFDS kitti (its features, its own label parser and box encoding) prepared offline from 5
    real images of the local folder: train 000001-000003, validation 000004-000005."""
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.datasets.kitti import kitti_dataset_builder as tfds_kitti

    folder = kitti_dir / "training"

    class KittiFromFolder(tfds_kitti.Builder):
        @classmethod
        def _get_pkg_dir_path(cls):  # read TFDS kitti's metadata
            return tfds_kitti.Builder._get_pkg_dir_path()

        def _split_generators(self, dl_manager):
            splits = (
                ("train", ("000001", "000002", "000003")),
                ("validation", ("000004", "000005")),
            )
            return [tfds.core.SplitGenerator(name, gen_kwargs={"ids": ids}) for name, ids in splits]

        def _generate_examples(self, ids):  # the builder's, with tf instead of cv2 for decoding
            for image_id in ids:
                with open(folder / "label_2" / f"{image_id}.txt", "rb") as f:
                    objects = tfds_kitti._parse_kitti_annotations(f)
                image = _decoded(folder / "image_2" / f"{image_id}.png")
                for obj in objects:
                    obj["bbox"] = tfds_kitti._build_bounding_box(
                        obj.pop("bbox_raw"), *image.shape[:2]
                    )
                record = {"image": image, "image/file_name": f"{image_id}.png", "objects": objects}
                yield image_id, record

    builder = KittiFromFolder(data_dir=str(tmp_path_factory.mktemp("tfds")))
    builder.download_and_prepare()
    return builder


def test_tfds_source_matches_local_labels(tfds_kitti_builder, kitti_dir, records, monkeypatch):
    import tf_evosyn.data.kitti as kitti_module

    monkeypatch.setattr(kitti_module, "prepared_kitti_builder", lambda *_: tfds_kitti_builder)
    data = load_kitti_data(_config(kitti_dir, source="tfds"))
    assert (data.num_train, data.num_validation) == (3, 2)
    assert "NOT KITTI's benchmark split" in data.description and "DontCare" in data.description
    ids, sizes = data.validation_image_info()
    assert sorted(ids) == ["000004", "000005"] and sizes.tolist() == [[375, 1242]] * 2
    by_id = {r.image_id: r for r in records}
    images, gt = next(iter(data.validation_dataset(2)))
    for i, image_id in enumerate(ids):
        record = by_id[image_id]
        kept = [o for o in record.objects if o.type != "DontCare"]  # TFDS drops DontCare
        expected = np.array([o.bbox for o in kept], np.float32)
        np.testing.assert_allclose(gt["boxes"][i, : len(kept)].numpy(), expected, atol=1e-3)
        assert gt["types"][i].numpy().tolist() == [o.type_id for o in kept] + [-1] * (
            64 - len(kept)
        )
        np.testing.assert_array_equal(images[i].numpy()[:375, :1242], _decoded(record))
    batch, batch_gt = next(iter(data.train_dataset(3, seed=0, augment=False)))
    assert sorted(batch_gt["image_id"].numpy()) == [b"000001", b"000002", b"000003"]
    assert batch.shape == (3, 384, 1248, 3) and batch_gt["boxes"].shape == (3, 64, 4)
