"""DetectNet's ground-truth transform and losses against values computed by hand.

Image 192x320, stride 16: a 12x20 grid. Cell (row gy, col gx) spans x [16gx, 16gx+16),
y [16gy, 16gy+16).
"""

import numpy as np
import pytest

from tf_evosyn._keras import keras, tf
from tf_evosyn.detection import (
    DETECTNET_LOSS_WEIGHTS,
    BboxLoss,
    CoverageLoss,
    corners_from_target,
    encode,
    split_bbox_target,
)

SHAPE = (192, 320)
CAR, VAN, PEDESTRIAN, DONTCARE = 0, 1, 3, 8


def covered_cells(coverage, channel=0):
    return sorted(map(tuple, np.argwhere(np.asarray(coverage)[..., channel] > 0).tolist()))


def cells(rows, cols):
    return sorted((r, c) for r in rows for c in cols)


def test_big_box_coverage_is_0_4_of_the_box_with_corner_targets_and_norms():
    # 200x100 box: coverage rectangle 80x40 centred at (200,100): x [160,240], y [80,120].
    target = encode([[100.0, 50.0, 300.0, 150.0]], [CAR], image_shape=SHAPE)
    assert covered_cells(target["coverage"]) == cells(range(5, 8), range(10, 15))
    parts = {k: np.asarray(v) for k, v in split_bbox_target(target["bbox"]).items()}
    # Cell (5, 10) has its top-left corner at (160, 80).
    np.testing.assert_allclose(parts["corners"][5, 10, 0], [-60.0, -30.0, 140.0, 70.0])
    np.testing.assert_allclose(parts["inv_w"][5, 10, 0], 1 / 200)
    np.testing.assert_allclose(parts["inv_h"][5, 10, 0], 1 / 100)
    np.testing.assert_allclose(parts["obj_norm"][5, 10, 0], 256 / (80 * 40))
    np.testing.assert_array_equal(parts["mask"][..., 0], np.asarray(target["coverage"])[..., 0])
    # Outside the coverage rectangle every field is zero.
    assert np.all(np.asarray(target["bbox"])[0, 0] == 0)


def test_small_box_coverage_grows_to_20_px():
    # 20x30 box: 0.4x would be 8x12, GRIDBOX_MIN makes it 20x20 around (20,25): x [10,30],
    # y [15,35] -> columns 0-1, rows 0-2.
    target = encode([[10.0, 10.0, 30.0, 40.0]], [CAR], image_shape=SHAPE)
    assert covered_cells(target["coverage"]) == cells(range(0, 3), range(0, 2))
    parts = split_bbox_target(target["bbox"])
    np.testing.assert_allclose(parts["obj_norm"][2, 1, 0], 256 / 400)
    np.testing.assert_allclose(parts["corners"][2, 1, 0], [10 - 16, 10 - 32, 30 - 16, 40 - 32])


def test_tiny_box_coverage_is_clamped_to_the_box_size():
    # 10x8 box: max(20, 0.4x) = 20 exceeds the box, so the rectangle is the box itself.
    target = encode([[200.0, 100.0, 210.0, 108.0]], [CAR], image_shape=SHAPE)
    assert covered_cells(target["coverage"]) == [(6, 12), (6, 13)]
    np.testing.assert_allclose(split_bbox_target(target["bbox"])["obj_norm"][6, 12, 0], 256 / 80)


def test_a_cell_touched_by_a_sliver_is_covered_and_a_touching_edge_is_not():
    # 20x20 box exactly on cells x [32,48+..]: rectangle x [32,52] covers columns 2 and 3
    # (4 px of column 3); y [32,52] likewise; x=32 touches column 1 only at its edge.
    target = encode([[32.0, 32.0, 52.0, 52.0]], [CAR], image_shape=SHAPE)
    assert covered_cells(target["coverage"]) == cells(range(2, 4), range(2, 4))


def test_later_object_wins_shared_cells():
    first, second = [100.0, 50.0, 300.0, 150.0], [150.0, 60.0, 250.0, 140.0]
    target = encode(
        [first, second], [CAR, PEDESTRIAN], class_ids=(CAR, PEDESTRIAN), image_shape=SHAPE
    )
    coverage = np.asarray(target["coverage"])
    # Second box: 100x80 -> 40x32 around (200,100): x [180,220], y [84,116] -> cols 11-13, rows 5-7.
    assert covered_cells(coverage, 1) == cells(range(5, 8), range(11, 14))
    assert coverage[6, 12].tolist() == [0.0, 1.0]  # the pedestrian took the car's cell
    assert coverage[6, 10].tolist() == [1.0, 0.0]
    parts = split_bbox_target(target["bbox"])
    cell_x, cell_y = 12 * 16, 6 * 16
    np.testing.assert_allclose(
        parts["corners"][6, 12, 1], [150 - cell_x, 60 - cell_y, 250 - cell_x, 140 - cell_y]
    )
    np.testing.assert_array_equal(parts["corners"][6, 12, 0], [0, 0, 0, 0])
    np.testing.assert_allclose(parts["inv_w"][6, 12], [0.0, 1 / 100])


def test_only_requested_types_are_encoded():
    boxes = [[100.0, 50.0, 300.0, 150.0], [10.0, 10.0, 30.0, 40.0], [0.0, 0.0, 0.0, 0.0]]
    target = encode(boxes, [DONTCARE, VAN, -1], class_ids=(CAR,), image_shape=SHAPE)
    assert not np.any(np.asarray(target["coverage"]))
    assert not np.any(np.asarray(target["bbox"]))
    merged = encode(boxes, [DONTCARE, VAN, -1], class_ids=((CAR, VAN),), image_shape=SHAPE)
    assert covered_cells(merged["coverage"]) == cells(range(0, 3), range(0, 2))


def test_batched_graph_mode_and_tf_data_map_agree_with_single_images():
    boxes = np.array(
        [[[100, 50, 300, 150], [0, 0, 0, 0]], [[10, 10, 30, 40], [200, 100, 210, 108]]],
        np.float32,
    )
    types = np.array([[CAR, -1], [CAR, CAR]], np.int32)
    batched = tf.function(lambda b, t: encode(b, t, image_shape=SHAPE))(boxes, types)
    dataset = tf.data.Dataset.from_tensor_slices((boxes, types)).map(
        lambda b, t: encode(b, t, image_shape=SHAPE)
    )
    for i, mapped in enumerate(dataset):
        single = encode(boxes[i], types[i], image_shape=SHAPE)
        for key in ("coverage", "bbox"):
            np.testing.assert_allclose(batched[key][i], single[key], rtol=1e-6)
            np.testing.assert_allclose(mapped[key], single[key], rtol=1e-6)
    assert batched["bbox"].shape == (2, 12, 20, 8)


def test_crop_to_image_clips_boxes_first():
    target = encode([[-40.0, 0.0, 40.0, 40.0]], [CAR], image_shape=SHAPE, crop_to_image=True)
    np.testing.assert_allclose(split_bbox_target(target["bbox"])["inv_w"][0, 0, 0], 1 / 40)


def test_bad_input_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match="multiple of stride"):
        encode([[0.0, 0, 1, 1]], [CAR], image_shape=(375, 1242))
    with pytest.raises(ValueError, match="type index"):
        encode([[0.0, 0, 1, 1]], [CAR], class_ids=(12,), image_shape=SHAPE)


# ---- losses ----


def test_coverage_loss_is_half_the_squared_error_over_the_batch():
    y_true = np.zeros((2, 2, 2, 1), np.float32)
    y_pred = np.zeros((2, 2, 2, 1), np.float32)
    y_pred[0, 0, 0, 0], y_pred[1, 1, 1, 0] = 0.5, 1.0  # squared errors 0.25 and 1
    assert float(CoverageLoss()(y_true, y_pred)) == pytest.approx((0.25 + 1.0) / (2 * 2))


def test_bbox_loss_masks_and_normalises_like_detectnet():
    target = encode([[100.0, 50.0, 300.0, 150.0]], [CAR], image_shape=SHAPE)["bbox"]
    y_true = tf.stack([target, target])
    perfect = corners_from_target(y_true).numpy()
    y_pred = perfect.copy()
    y_pred[0, 5, 10, 0] += 10.0  # x1 off by 10 px in a covered cell
    y_pred[0, 5, 10, 3] -= 5.0  # y2 off by 5 px
    y_pred[1, 0, 0] = [50.0, -20.0, 3.0, 7.0]  # anything outside the coverage costs nothing
    obj_norm = 256 / 3200
    expected = (10 / 200 * obj_norm + 5 / 100 * obj_norm) / 2  # L1 sum / batch of 2
    assert float(BboxLoss()(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    assert float(BboxLoss()(y_true, perfect)) == 0.0
    with pytest.raises(ValueError, match="4 \\* 1 channels"):
        BboxLoss()(y_true, np.zeros((2, 12, 20, 8), np.float32))


def test_losses_compile_with_detectnet_weights_and_round_trip_config():
    image = keras.Input((12, 20, 1))
    model = keras.Model(
        image,
        {
            "coverage": keras.layers.Conv2D(1, 1, activation="sigmoid", name="coverage")(image),
            "bbox": keras.layers.Conv2D(4, 1, name="bbox")(image),
        },
    )
    model.compile(
        loss={"coverage": CoverageLoss(), "bbox": BboxLoss()}, loss_weights=DETECTNET_LOSS_WEIGHTS
    )
    targets = encode(
        [[[100.0, 50.0, 300.0, 150.0]], [[10.0, 10.0, 30.0, 40.0]]],
        [[CAR], [CAR]],
        image_shape=SHAPE,
    )
    x = np.random.default_rng(0).normal(size=(2, 12, 20, 1)).astype(np.float32)
    result = model.evaluate(x, targets, batch_size=2, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    coverage = float(CoverageLoss()(targets["coverage"], pred["coverage"]))
    bbox = float(BboxLoss()(targets["bbox"], pred["bbox"]))
    assert result["loss"] == pytest.approx(coverage + 2.0 * bbox, rel=1e-4)
    for loss in (CoverageLoss(), BboxLoss(name="box")):
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
