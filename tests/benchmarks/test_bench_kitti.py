"""benchmarks/kitti_detectnet.py: the lineage table and the verdict judge TEST AP of the first
accepted generation at >= 8.16x, chosen by the run on validation."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import kitti_measure  # noqa: E402


def _interval(value):
    return {"value": value, "low": value - 0.05, "high": value + 0.05}


def _measured(strict, loose, ms):
    return {
        "test_ap_r40": {
            "0.7": {d: _interval(strict) for d in kitti_measure.DIFFICULTIES},
            "0.5": {d: _interval(loose) for d in kitti_measure.DIFFICULTIES},
        },
        "ms": ms,
    }


def _record(generation, efficiency, accepted=True, score=0.3):
    return {
        "generation": generation,
        "accepted": accepted,
        "score": score,
        "synaptic_efficiency": efficiency * 3,
        "cluster_efficiency": efficiency,
        "flops": int(1e9 / efficiency),
    }


GOAL = {"cluster_efficiency": 8.16, "max_relative_ap_loss": 0.10, "min_speedup": 3.0}
RECORDS = [_record(0, 1.0), _record(1, 4.0), _record(2, 9.0, accepted=False), _record(3, 9.5)]
MEASURED = {
    0: _measured(0.30, 0.50, 90.0),
    1: _measured(0.29, 0.5, 40.0),
    3: _measured(0.28, 0.5, 25.0),
}


def test_verdict_takes_the_first_accepted_generation_past_the_paper():
    result = kitti_measure.verdict(RECORDS, MEASURED, GOAL)
    assert result["generation"] == 3  # generation 2 was rejected on validation
    assert result["ancestor_goal_met"]
    assert abs(result["kept_fraction_of_ancestor_ap"] - 0.28 / 0.30) < 1e-12
    assert result["ap_goal_met"] and result["speed_goal_met"]  # 93% kept, 3.6x faster
    slow = {**MEASURED, 3: _measured(0.20, 0.5, 40.0)}
    result = kitti_measure.verdict(RECORDS, slow, GOAL)
    assert not result["ap_goal_met"] and not result["speed_goal_met"]


def test_no_generation_past_the_paper_leaves_the_verdict_open():
    result = kitti_measure.verdict(RECORDS[:2], MEASURED, GOAL)
    assert result["generation"] is None and "ap_goal_met" not in result


def test_rows_and_plot_points_show_intervals_and_skip_rejected_generations():
    table = kitti_measure.rows(RECORDS, MEASURED)
    assert [row[0] for row in table] == ["0", "1", "2", "3"]
    assert table[0][1] == "30.0 [25.0, 35.0]" and table[0][-1] == "ancestor"
    assert table[2][1] == "-" and table[2][-1] == "no"
    assert table[3][-2] == "25 (3.60x)"
    points = kitti_measure.plot_points(RECORDS, MEASURED, "0.7")
    assert [p["generation"] for p in points] == [0, 1, 3]
    assert points[2]["ap_low"] < points[2]["ap"] < points[2]["ap_high"]
