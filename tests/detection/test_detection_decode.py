"""Decoders: OpenCV-style rectangle grouping by hand, and decode(encode(boxes)) == boxes."""

import numpy as np
import pytest

from tf_evosyn._keras import tf
from tf_evosyn.detection import (
    cluster_detections,
    corners_from_target,
    decode_nms,
    detections_to_list,
    encode,
    ground_truth_from_targets,
    group_rectangles,
)

SHAPE = (192, 320)
# Covered cells: 18 (x [160.15, 240.15] reaches column 15), 6 and 6.
BOXES = np.array([[100.3, 50.0, 300.0, 150.0], [10.0, 10.0, 30.0, 40.0], [150, 20, 190, 100]])


def as_predictions(boxes, types, class_ids=(0,)):
    """Encoded targets fed back as if a perfect model had predicted them (batch of one)."""
    target = encode(boxes, types, class_ids=class_ids, image_shape=SHAPE)
    return target["coverage"].numpy()[None], corners_from_target(target["bbox"]).numpy()[None]


def by_x1(boxes):
    boxes = np.asarray(boxes)
    return boxes[np.argsort(boxes[:, 0])]


# ---- group_rectangles (OpenCV's groupRectangles) ----


def test_group_rectangles_needs_more_than_threshold_members():
    four = np.tile([10.0, 10.0, 20.0, 30.0], (4, 1))
    rects, weights = group_rectangles(four, group_threshold=3, eps=0.2)
    np.testing.assert_array_equal(rects, [[10, 10, 20, 30]])
    np.testing.assert_array_equal(weights, [4])
    assert len(group_rectangles(four[:3], group_threshold=3, eps=0.2)[0]) == 0


def test_group_rectangles_similarity_is_transitive_and_clusters_are_averaged():
    # delta = 0.1 * (100 + 100) / 2 = 10: x 0~8 and 8~16, but 0 and 16 differ by 16.
    chain = np.array([[0.0, 0, 100, 100], [8, 0, 100, 100], [16, 0, 100, 100]])
    rects, weights = group_rectangles(chain, group_threshold=2, eps=0.1)
    np.testing.assert_array_equal(rects, [[8, 0, 100, 100]])
    np.testing.assert_array_equal(weights, [3])
    apart = np.array([[0.0, 0, 100, 100], [0, 0, 100, 100], [30, 0, 100, 100]])
    assert group_rectangles(apart, group_threshold=1, eps=0.1)[1].tolist() == [2]


def test_group_rectangles_drops_a_weaker_cluster_nested_in_a_bigger_one():
    big = np.tile([0.0, 0.0, 100.0, 100.0], (5, 1))
    small = np.tile([10.0, 10.0, 20.0, 20.0], (4, 1))
    rects, weights = group_rectangles(np.concatenate([big, small]), 3, 0.2)
    np.testing.assert_array_equal(rects, [[0, 0, 100, 100]])
    # As strong as the big one (n2 > max(3, n1) fails): both kept.
    rects, weights = group_rectangles(np.concatenate([big, np.tile(small[0], (5, 1))]), 3, 0.2)
    assert weights.tolist() == [5, 5]


def test_group_rectangles_threshold_zero_returns_input():
    rects, weights = group_rectangles([[1.5, 2, 3, 4]], 0, 0.2, integer_rects=False)
    np.testing.assert_array_equal(rects, [[1.5, 2, 3, 4]])
    assert weights.tolist() == [1]


# ---- DetectNet clustering ----


@pytest.mark.parametrize("integer_rects", [True, False])
def test_clustering_recovers_encoded_boxes(integer_rects):
    coverage, bbox = as_predictions(BOXES, [0, 0, 0])
    (found,) = cluster_detections(coverage, bbox, min_height=0, integer_rects=integer_rects)
    order = np.argsort(found["boxes"][:, 0])
    np.testing.assert_allclose(found["boxes"][order], by_x1(BOXES), atol=1.0)
    # confidence = log(number of cells voting for the box)
    np.testing.assert_allclose(found["confidence"][order], np.log([6, 18, 6]), rtol=1e-6)
    assert found["classes"].tolist() == [0, 0, 0]


def test_clustering_thresholds_and_min_height():
    coverage, bbox = as_predictions(BOXES, [0, 0, 0])
    (tall,) = cluster_detections(coverage, bbox, min_height=35)  # drops the 30 px high box
    np.testing.assert_allclose(by_x1(tall["boxes"]), by_x1(BOXES[[0, 2]]), atol=1.0)
    (none,) = cluster_detections(coverage * 0.5, bbox, threshold=0.6)
    assert none["boxes"].shape == (0, 4)


def test_clustering_per_class():
    coverage, bbox = as_predictions(BOXES, [0, 3, 3], class_ids=(0, 3))
    (found,) = cluster_detections(coverage, bbox, min_height=0, integer_rects=False)
    np.testing.assert_allclose(found["boxes"][found["classes"] == 0], BOXES[:1], atol=1e-4)
    np.testing.assert_allclose(by_x1(found["boxes"][found["classes"] == 1]), BOXES[1:], atol=1e-4)


def test_ground_truth_from_targets_lists_each_encoded_box_once():
    coverage, bbox = as_predictions(BOXES, [0, 0, 0])
    (truth,) = ground_truth_from_targets(coverage, bbox)
    np.testing.assert_allclose(by_x1(truth["boxes"]), by_x1(BOXES), atol=1e-4)


# ---- keras-cv NMS ----


def test_nms_recovers_encoded_boxes_batched_and_padded():
    first = as_predictions(BOXES, [0, 0, 0])
    second = as_predictions(BOXES[:1], [0])
    coverage = np.concatenate([first[0], second[0]])
    bbox = np.concatenate([first[1], second[1]])
    result = decode_nms(coverage, bbox, threshold=0.5, max_detections=5)
    assert result["boxes"].shape == (2, 5, 4)
    assert np.asarray(result["num_detections"]).tolist() == [3, 1]
    assert np.all(np.asarray(result["classes"])[1, 1:] == -1)
    images = detections_to_list(result)
    np.testing.assert_allclose(by_x1(images[0]["boxes"]), by_x1(BOXES), atol=1e-3)
    np.testing.assert_allclose(images[1]["boxes"], BOXES[:1], atol=1e-3)
    np.testing.assert_allclose(images[0]["confidence"], [1, 1, 1])


def test_nms_keeps_classes_apart_unless_class_agnostic():
    same_box = [BOXES[0], BOXES[0]]
    first = encode(same_box[:1], [0], class_ids=(0, 3), image_shape=SHAPE)
    second = encode(same_box[1:], [3], class_ids=(0, 3), image_shape=SHAPE)
    coverage = (first["coverage"] + second["coverage"]).numpy()[None]
    bbox = (corners_from_target(first["bbox"]) + corners_from_target(second["bbox"])).numpy()[None]
    (per_class,) = detections_to_list(decode_nms(coverage, bbox, threshold=0.5))
    assert sorted(per_class["classes"].tolist()) == [0, 1]
    np.testing.assert_allclose(per_class["boxes"], same_box, atol=1e-3)
    (agnostic,) = detections_to_list(decode_nms(coverage, bbox, 0.5, class_agnostic=True))
    assert len(agnostic["boxes"]) == 1


def test_nms_runs_as_a_serving_function_with_unknown_batch():
    coverage, bbox = as_predictions(BOXES, [0, 0, 0])
    serve = tf.function(
        lambda c, b: decode_nms(c, b, threshold=0.5, max_detections=4, min_height=35),
        input_signature=[
            tf.TensorSpec([None, 12, 20, 1], tf.float32),
            tf.TensorSpec([None, 12, 20, 4], tf.float32),
        ],
    )
    (found,) = detections_to_list(serve(coverage, bbox))
    np.testing.assert_allclose(by_x1(found["boxes"]), by_x1(BOXES[[0, 2]]), atol=1e-3)


def test_mismatched_outputs_are_rejected():
    with pytest.raises(ValueError, match="4 \\* 1 channels"):
        cluster_detections(np.zeros((1, 12, 20, 1)), np.zeros((1, 12, 20, 8)))
    with pytest.raises(ValueError, match="4 \\* 1 channels"):
        decode_nms(np.zeros((1, 12, 20, 1)), np.zeros((1, 12, 20, 8)))
    with pytest.raises(ValueError, match="same grid"):
        decode_nms(np.zeros((1, 12, 20, 1)), np.zeros((1, 12, 10, 4)))
    with pytest.raises(ValueError, match="add a batch axis"):
        decode_nms(np.zeros((12, 20, 1)), np.zeros((12, 20, 4)))
