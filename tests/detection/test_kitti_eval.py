"""KITTI devkit AP and DIGITS' metrics on hand-made cases.

The devkit samples precision at 41 thresholds picked from TP scores; it assumes more ground truth
than sample points, so the cases use 80 images with one easy car each (recall step 1/80).
With 80 TPs the devkit picks TP ranks 1, 2, 4, 6, .., 80 as thresholds (41 of them).
"""

import numpy as np
import pytest
from helpers import det_image, gt_image

from tf_evosyn.detection import digits_metrics, evaluate_kitti, score_detections

CAR_BOX = [100.0, 100.0, 200.0, 180.0]  # 80 px high: easy
N = 80


def base(n=N):
    """n images, one easy car each, detected exactly with distinct scores."""
    gts = [gt_image([("Car", CAR_BOX, 0.0, 0)]) for _ in range(n)]
    dets = [det_image([CAR_BOX], [1.0 - i / 1000]) for i in range(n)]
    return gts, dets


def ap(result, difficulty="moderate"):
    return result[f"car_{difficulty}_ap_r40"], result[f"car_{difficulty}_ap_11"]


def test_perfect_detections_give_ap_one_everywhere():
    result = evaluate_kitti(*base())
    assert set(result) == {
        f"car_{d}_ap_{k}" for d in ("easy", "moderate", "hard") for k in ("r40", "11")
    }
    assert all(value == pytest.approx(1.0) for value in result.values())


def test_missed_boxes_limit_ap_to_the_recall_reached():
    gts, dets = base()
    for i in range(60, N):  # the 20 lowest-ranked cars are missed: recall 60/80 = 0.75
        dets[i] = det_image([], [])
    # Thresholds at TP ranks 1, 2, 4, .., 60: 31 of 41 points have precision 1.
    r40, ap11 = ap(evaluate_kitti(gts, dets))
    assert r40 == pytest.approx(30 / 40)  # points 1..30 of 1..40
    assert ap11 == pytest.approx(8 / 11)  # points 0, 4, .., 28


def test_duplicate_detection_is_a_false_positive_ranked_below():
    gts, dets = base()
    shifted = [105.0, 100.0, 205.0, 180.0]  # IoU 0.9 with the car, which is already taken
    low = 1.0 - 78.5 / 1000  # between the TP scores of ranks 79 and 80
    dets[0] = det_image([CAR_BOX, shifted], [1.0, low])
    r40, ap11 = ap(evaluate_kitti(gts, dets))
    # Only the last threshold (rank 80) lets the duplicate in: precision 80/81 there.
    assert r40 == pytest.approx((39 + 80 / 81) / 40)
    assert ap11 == pytest.approx((10 + 80 / 81) / 11)


def test_detection_inside_dontcare_is_ignored():
    gts, dets = base()
    region = [400.0, 100.0, 600.0, 200.0]
    inside = [420.0, 120.0, 520.0, 180.0]  # entirely inside the DontCare region
    dets[0] = det_image([CAR_BOX, inside], [1.0, 2.0])  # ranked first
    without_region = ap(evaluate_kitti(gts, dets))
    assert without_region[0] < 1.0  # control: it is a false positive without the region
    gts[0] = gt_image([("Car", CAR_BOX, 0.0, 0), ("DontCare", region, -1.0, -1)])
    assert ap(evaluate_kitti(gts, dets)) == pytest.approx((1.0, 1.0))


def test_difficulty_filters_truncated_and_small_objects():
    truncated_car = [300.0, 100.0, 380.0, 160.0]  # 60 px high, truncation 0.4: hard only
    gts, dets = base()
    for i in range(20):  # 20 of them, missed: hard recall 80/100
        gts[i] = gt_image([("Car", CAR_BOX, 0.0, 0), ("Car", truncated_car, 0.4, 0)])
    missed = evaluate_kitti(gts, dets)
    assert ap(missed, "easy") == pytest.approx((1.0, 1.0))
    assert ap(missed, "moderate") == pytest.approx((1.0, 1.0))
    # Hard: 80 TPs of 100 give thresholds at ranks 1, 2, 5, 7, 10, .., 80 (1/40 recall = 2.5
    # ranks): 33 points of precision 1.
    assert ap(missed, "hard") == pytest.approx((32 / 40, 9 / 11))
    for i in range(20):  # detected, scored low: no FP for easy/moderate either
        dets[i] = det_image([CAR_BOX, truncated_car], [1.0 - i / 1000, 0.5])
    assert all(value == pytest.approx(1.0) for value in evaluate_kitti(gts, dets).values())

    small_car = [300.0, 100.0, 340.0, 130.0]  # 30 px high: ignored for easy, counts otherwise
    gts, dets = base()
    for i in range(20):
        gts[i] = gt_image([("Car", CAR_BOX, 0.0, 0), ("Car", small_car, 0.0, 0)])
    missed = evaluate_kitti(gts, dets)
    assert ap(missed, "easy") == pytest.approx((1.0, 1.0))
    assert ap(missed, "moderate") == pytest.approx((32 / 40, 9 / 11))


def test_too_small_detection_is_ignored():
    gts, dets = base()
    tiny = [500.0, 100.0, 530.0, 120.0]  # 20 px high, below every min height, no object there
    dets[0] = det_image([CAR_BOX, tiny], [1.0, 2.0])
    assert all(value == pytest.approx(1.0) for value in evaluate_kitti(gts, dets).values())


def test_van_is_neither_missed_nor_a_false_positive_for_car():
    gts, dets = base()
    van = [300.0, 100.0, 400.0, 180.0]
    gts[0] = gt_image([("Car", CAR_BOX, 0.0, 0), ("Van", van, 0.0, 0)])
    gts[1] = gt_image([("Car", CAR_BOX, 0.0, 0), ("Van", van, 0.0, 0)])
    dets[0] = det_image([CAR_BOX, van], [1.0, 2.0])  # the van detected as a car: not a FP
    # gts[1]'s van undetected: not a FN.
    assert all(value == pytest.approx(1.0) for value in evaluate_kitti(gts, dets).values())


def test_other_classes_and_batched_inputs():
    gts, dets = base()
    gts[0] = gt_image([("Car", CAR_BOX, 0.0, 0), ("Pedestrian", [0.0, 0.0, 20.0, 50.0], 0.0, 0)])
    dets[0] = det_image([CAR_BOX, [0.0, 0.0, 20.0, 50.0]], [1.0, 0.9], classes=[0, 1])
    result = evaluate_kitti(
        gts, dets, class_names=("Car", "Pedestrian"), detection_class_names=("Car", "Pedestrian")
    )
    assert result["car_moderate_ap_r40"] == pytest.approx(1.0)
    # One pedestrian, found: one threshold, i.e. only the recall-0 point has precision 1 (the
    # devkit's sampling assumes many objects): AP|R40 = 0, 11-point AP = 1/11.
    assert result["pedestrian_moderate_ap_r40"] == 0.0
    assert result["pedestrian_moderate_ap_11"] == pytest.approx(1 / 11)
    batched_gt = {k: np.stack([g[k] for g in base()[0]]) for k in gts[1]}
    assert evaluate_kitti(batched_gt, base()[1])["car_hard_ap_11"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="min_overlap"):
        evaluate_kitti(gts, dets, class_names=("Tram",))


# ---- DIGITS ----


def test_digits_precision_recall_and_map():
    a, b, c = [0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0], [0.0, 200.0, 50.0, 300.0]
    near_a = [5.0, 0.0, 105.0, 100.0]  # IoU 95/105 with a
    ground_truth = [np.array([a, b]), np.array([c])]
    detections = [{"boxes": np.array([near_a, [400.0, 0, 450, 50]])}, {"boxes": np.zeros((0, 4))}]
    # TP 1 (a), FP 1, missed 2 (b, c): precision 50 %, recall 33.3 %, mAP = 50 * 33.3 / 100.
    result = digits_metrics(ground_truth, detections)
    assert result["precision"] == pytest.approx(50.0)
    assert result["recall"] == pytest.approx(100 / 3)
    assert result["mAP"] == pytest.approx(50.0 * (100 / 3) / 100)


def test_digits_matching_is_greedy_in_list_order():
    a = [0.0, 0.0, 100.0, 100.0]
    # One detection good enough for both ground-truth boxes counts once; zero rows are padding.
    assert score_detections([a, a, [0, 0, 0, 0]], [a]) == (1, 0, 1)
    # IoU 0.6 < 0.7 is no match.
    assert score_detections([a], [[40.0, 0.0, 100.0, 100.0]]) == (0, 1, 1)
