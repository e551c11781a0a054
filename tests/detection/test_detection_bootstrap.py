"""Bootstrap intervals of KITTI AP|R40 (tf_evosyn/detection/bootstrap.py).

The fast path must be exactly ``evaluate_kitti`` on the resampled images; the hand-made cases use
40 images with one easy car each, so every resample has 40 ground-truth cars (recall step 1/40)
and P found cars give P thresholds of precision 1: AP|R40 = (P - 1) / 40 (0 when P = 0).
"""

import numpy as np
import pytest
from helpers import det_image, gt_image

from tf_evosyn.detection import evaluate_kitti
from tf_evosyn.detection.bootstrap import (
    APInterval,
    bootstrap_ap,
    format_interval,
    resampled_ap,
)

CAR_BOX = [100.0, 100.0, 200.0, 180.0]  # 80 px high: easy
N = 40
DIFFICULTIES = ("easy", "moderate", "hard")
KEYS = {f"car_{d}_ap_r40" for d in DIFFICULTIES}
SCENE_CLASSES = {"detection_class_names": ("Car", "Pedestrian")}  # random_scene's classes


def half_found():
    """N images with one easy car; the first half detected exactly, the rest not at all."""
    gts = [gt_image([("Car", CAR_BOX, 0.0, 0)]) for _ in range(N)]
    dets = [
        det_image([CAR_BOX], [1.0 - i / 1000]) if i < N // 2 else det_image([], [])
        for i in range(N)
    ]
    return gts, dets


def random_scene(rng, n_images, n_objects=8, n_false=4):
    """Cars of every difficulty, vans, pedestrians and DontCare regions, detected with jitter,
    duplicates, false positives and quantised (tied) scores."""
    types = ["Car"] * 6 + ["Van", "Pedestrian", "DontCare"]
    gts, dets = [], []
    for _ in range(n_images):
        objects = []
        for _ in range(rng.integers(0, n_objects + 1)):
            x, y = rng.uniform(0, 1000), rng.uniform(0, 250)
            box = [x, y, x + rng.uniform(15, 150), y + rng.choice([20, 30, 45, 90])]
            name = types[rng.integers(len(types))]
            if name == "DontCare":
                objects.append((name, box, -1.0, -1))
            else:
                objects.append((name, box, rng.choice([0.0, 0.2, 0.4, 0.7]), rng.integers(0, 4)))
        boxes, scores, classes = [], [], []
        for name, box, _, _ in objects:
            copies = rng.choice([0, 1, 1, 2]) if name != "DontCare" else rng.integers(0, 2)
            for _ in range(copies):
                boxes.append(np.array(box) + rng.normal(0, 4, 4))
                scores.append(rng.integers(1, 21) / 20)
                classes.append(1 if name == "Pedestrian" and rng.random() < 0.8 else 0)
        for _ in range(rng.integers(0, n_false + 1)):
            x, y = rng.uniform(0, 1000), rng.uniform(0, 250)
            boxes.append([x, y, x + rng.uniform(15, 120), y + rng.uniform(15, 100)])
            scores.append(rng.integers(1, 21) / 20)
            classes.append(int(rng.integers(0, 2)))
        gts.append(gt_image(objects))
        dets.append(det_image(boxes, scores, classes))
    return gts, dets


def test_resampled_ap_follows_the_count_of_found_cars():
    gts, dets = half_found()
    found, missed = list(range(N // 2)), list(range(N // 2, N))
    indices = [found[:p] * 2 + (missed * 2)[: N - 2 * p] for p in range(0, N // 2 + 1, 4)]
    indices.append(found + missed)  # the full set
    result = resampled_ap(gts, dets, np.array(indices))
    expected = [max(2 * p - 1, 0) / 40 for p in range(0, N // 2 + 1, 4)] + [19 / 40]
    assert set(result) == KEYS
    for values in result.values():
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)


def test_perfect_detections_give_a_degenerate_interval():
    gts = [gt_image([("Car", CAR_BOX, 0.0, 0)]) for _ in range(N)]
    dets = [det_image([CAR_BOX], [1.0 - i / 1000]) for i in range(N)]
    result = bootstrap_ap(gts, dets, resamples=200)
    full = evaluate_kitti(gts, dets)
    assert set(result) == KEYS
    for key, interval in result.items():
        assert interval == (39 / 40, 39 / 40, 39 / 40)  # the devkit's first point is recall 1/40
        assert interval.value == full[key]


def test_half_found_interval_is_the_binomial_spread():
    gts, dets = half_found()
    result = bootstrap_ap(gts, dets, difficulties=("moderate",), resamples=1000, confidence=0.9)
    (interval,) = result.values()
    assert isinstance(interval, APInterval)
    # Full set: 20 found of 40: AP = 19/40. A resample finds P ~ Binomial(40, 1/2) cars;
    # its 5 % / 95 % quantiles are 15 / 25 (P(X <= 14) = 0.040, P(X <= 15) = 0.077).
    assert interval.value == 19 / 40 == evaluate_kitti(gts, dets)["car_moderate_ap_r40"]
    assert (14 - 1) / 40 <= interval.low <= (15 - 1) / 40
    assert (25 - 1) / 40 <= interval.high <= (26 - 1) / 40
    narrow = bootstrap_ap(gts, dets, difficulties=("moderate",), confidence=0.5)
    low, high = narrow["car_moderate_ap_r40"][1:]
    assert interval.low < low <= interval.value <= high < interval.high


def test_seeded_resamples_are_reproducible():
    gts, dets = random_scene(np.random.default_rng(5), 15)
    first = bootstrap_ap(gts, dets, resamples=300, seed=3, **SCENE_CLASSES)
    assert bootstrap_ap(gts, dets, resamples=300, seed=3, **SCENE_CLASSES) == first
    other = bootstrap_ap(gts, dets, resamples=300, seed=4, **SCENE_CLASSES)
    assert other != first
    assert all(other[key].value == first[key].value for key in KEYS)


@pytest.mark.parametrize("min_overlap", [None, {"car": 0.5}])
def test_resampled_ap_is_evaluate_kitti_on_the_resampled_images(min_overlap):
    rng = np.random.default_rng(7)
    gts, dets = random_scene(rng, 12)
    classes = ("Car", "Pedestrian")
    indices = rng.integers(0, 12, size=(5, 12))
    indices[0] = np.arange(12)  # the full set
    indices[1] = 3  # one image, twelve times
    fast = resampled_ap(gts, dets, indices, classes, min_overlap=min_overlap)
    assert set(fast) == {f"{c}_{d}_ap_r40" for c in ("car", "pedestrian") for d in DIFFICULTIES}
    assert any(values.min() < values.max() for values in fast.values())  # not a trivial case
    for r, row in enumerate(indices):
        slow = evaluate_kitti(
            [gts[i] for i in row], [dets[i] for i in row], classes, min_overlap=min_overlap
        )
        for key, values in fast.items():
            assert values[r] == pytest.approx(slow[key], abs=1e-9), (r, key)
    # Resamples may hold a different number of images than the full set.
    row = [0, 0, 5, 9]
    (sub,) = resampled_ap(gts, dets, [row], classes)["car_hard_ap_r40"]
    slow = evaluate_kitti([gts[i] for i in row], [dets[i] for i in row], classes)
    assert sub == pytest.approx(slow["car_hard_ap_r40"], abs=1e-9)


def test_point_value_is_evaluate_kitti_exactly_and_inside_the_interval():
    gts, dets = random_scene(np.random.default_rng(11), 21, n_objects=10, n_false=8)
    result = bootstrap_ap(gts, dets, resamples=200, min_overlap={"car": 0.5}, **SCENE_CLASSES)
    full = evaluate_kitti(gts, dets, min_overlap={"car": 0.5}, **SCENE_CLASSES)
    for key, (value, low, high) in result.items():
        assert value == full[key]
        assert low <= value <= high
        assert low < high  # random detections: resamples disagree


def test_invalid_arguments_are_rejected_clearly():
    gts, dets = half_found()
    for resamples in (0, 2.5, True):
        with pytest.raises(ValueError, match="resamples must be an integer >= 1"):
            bootstrap_ap(gts, dets, resamples=resamples)
    for confidence in (0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
            bootstrap_ap(gts, dets, confidence=confidence)
    with pytest.raises(ValueError, match="no images"):
        bootstrap_ap([], [])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 40\)"):
        resampled_ap(gts, dets, [[0, 40]])
    with pytest.raises(ValueError, match="2-D integer array"):
        resampled_ap(gts, dets, [0, 1])


def test_format_interval_shows_percent():
    assert format_interval(0.41234, 0.305, 0.52) == "41.2 [30.5, 52.0]"
    assert format_interval(*APInterval(1.0, 0.975, 1.0), digits=2) == "100.00 [97.50, 100.00]"
