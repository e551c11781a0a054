"""The parts the benchmark scripts share (benchmarks/common.py, benchmarks/tfmot_verdict.py):
table layout, the promised-saving share and the TF-MOT verdict, on hand-built rows."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import common  # noqa: E402
import tfmot_verdict  # noqa: E402


def test_aligned_table_pads_columns_and_underlines_the_header():
    text = common.aligned_table([["row", "ms"], ["ancestor", "1.5"], ["gen 1", "12.25"]])
    assert text.splitlines() == [
        "row          ms",
        "--------  -----",
        "ancestor    1.5",
        "gen 1     12.25",
    ]
    assert common.aligned_table([["a", "b"], ["xyz", "1"]], left_first=False).splitlines()[2] == (
        "xyz  1"
    )


def test_promised_saving_share():
    assert common.promised_saving_share(2.0, 4.0) == pytest.approx(0.5 / 0.75)
    assert common.promised_saving_share(1.2, 1.0) is None  # nothing was promised
    assert common.efficiency_text(float("inf")) == "inf"
    assert common.efficiency_text(3.14159) == "3.14x"


def _row(kind, name, accuracy, syn, clu, ms, generation=None):
    return {
        "kind": kind,
        "name": name,
        "accuracy": accuracy,
        "synaptic_efficiency": syn,
        "cluster_efficiency": clu,
        "latency_ms": ms,
        "generation": generation,
    }


def test_verdict_picks_the_most_efficient_generation_within_the_accuracy_window():
    rows = [
        _row("ancestor", "ancestor (gen 0)", 0.99, 1.0, 1.0, 1.0, 0),
        _row("tfmot", "tfmot poly 0.9", 0.985, 10.0, 1.0, 0.9),
        _row("evolution", "evo gen 1", 0.984, 12.0, 6.0, 0.15, 1),
        _row("evolution", "evo gen 2", 0.97, 50.0, 20.0, 0.05, 2),  # outside the window
    ]
    result = tfmot_verdict.verdict(rows, tolerance=0.01)
    (comparison,) = result["comparisons"]
    assert comparison["generation"] == 1
    assert comparison["cluster_efficiency"]["ratio"] == pytest.approx(6.0)
    assert comparison["speed"]["ratio"] == pytest.approx(6.0)
    assert comparison["goal_met"] and result["goal_met_against_all"]
    assert "accuracy: TF-MOT 98.50%" in comparison["tfmot_wins"][0]
    rows[2]["latency_ms"] = 0.5  # now under 5x faster
    assert not tfmot_verdict.verdict(rows)["goal_met_against_all"]
    assert "NOT MET" in tfmot_verdict.format_verdict(tfmot_verdict.verdict(rows))
