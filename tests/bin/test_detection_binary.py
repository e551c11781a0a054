"""evosyn-detect and evosyn-export end to end on the real KITTI subset (smoke config).

A thin 192x640 DetectNet trained for a few steps: its AP means nothing, the machinery does:
run directory, detection records, resume after a kill, export with decoded boxes.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import binary_command, read_lineage, run_and_kill, run_binary, without_timing

from tf_evosyn.loop.lineage import REQUIRED_KEYS

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "detectnet_kitti_smoke.py"
pytestmark = pytest.mark.slow


def _command(workdir, *overrides):
    return binary_command("evolve_detection", SMOKE, workdir, *overrides)


def _run(args, datasets_dir, check=True):
    return run_binary(args, datasets_dir, check=check, timeout=1200)


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory, kitti_dir):
    datasets_dir = kitti_dir.parent
    workdir = tmp_path_factory.mktemp("detect")
    result = _run(_command(workdir), datasets_dir)
    return workdir, result, datasets_dir


def test_two_generation_detection_run(detection_run):
    workdir, result, _ = detection_run
    records = read_lineage(workdir)
    assert [r["generation"] for r in records] == [0, 1, 2]
    for record in records:
        assert set(REQUIRED_KEYS) <= set(record)
        assert record["metric"] == "car_moderate_ap_r40" and "accuracy" not in record
        metrics = record["metrics"]
        for difficulty in ("easy", "moderate", "hard"):
            for kind in ("ap_r40", "ap_11"):
                assert 0.0 <= metrics[f"car_{difficulty}_{kind}"] <= 1.0
        assert {"car_digits_precision", "car_digits_recall", "car_digits_map"} <= set(metrics)
        assert metrics["images"] == 21  # the last 20% of the 103 IDs, as one block
        assert record["score"] == metrics["car_moderate_ap_r40"]
    assert records[2]["clusters"] < records[1]["clusters"] < records[0]["clusters"]
    assert records[2]["flops"] < records[0]["flops"]  # MACs of the compacted offspring
    assert (workdir / "plots" / "car_moderate_ap_r40.png").read_bytes().startswith(b"\x89PNG")
    assert (workdir / "best" / "model.keras").is_file()
    assert "car_moderate_ap_r40" in result.stdout


def test_killed_detection_run_resumes_to_the_same_lineage(tmp_path, detection_run):
    reference, _, datasets_dir = detection_run
    workdir = tmp_path / "run"
    run_and_kill(_command(workdir), datasets_dir, workdir, lines_before_kill=2, timeout=900)
    assert len(read_lineage(workdir)) < 3
    _run(_command(workdir), datasets_dir)
    assert without_timing(read_lineage(workdir)) == without_timing(read_lineage(reference))


def test_export_of_a_detection_run(tmp_path, detection_run):
    workdir, _, datasets_dir = detection_run
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "tf_evosyn.bin.export",
        f"--workdir={workdir}",
        f"--output={out}",
        "--num_images=4",
        "--latency_runs=3",
    ]
    _run(args, datasets_dir)
    report = json.loads((out / "export_report.json").read_text())
    assert report["task"] == "detection" and "NOT KITTI's benchmark split" in report["data"]
    offspring, ancestor = report["offspring"], report["ancestor"]
    assert offspring["metric"] == "car_moderate_ap_r40"
    assert offspring["parameters"] < ancestor["parameters"]
    assert offspring["paper_input_shape"] == [384, 1248, 3]
    assert offspring["tflite_latency_paper_size"]["median_ms"] > 0
    for name in ("saved_model", "keras", "tflite"):
        assert offspring["max_abs_difference"][name] < 1e-3, name

    import tensorflow as tf

    serve = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    images = np.zeros((2, 192, 640, 3), np.float32)
    outputs = serve(images=tf.constant(images))
    assert {"coverage", "bbox", "boxes", "confidence", "classes", "num_detections"} <= set(outputs)
    assert outputs["coverage"].shape == (2, 12, 40, 1) and outputs["bbox"].shape == (2, 12, 40, 4)
    assert outputs["boxes"].shape[0] == 2 and outputs["boxes"].shape[-1] == 4


def test_bad_detection_config_is_refused_before_training(tmp_path, kitti_dir):
    result = _run(
        _command(tmp_path / "run", "--config.data.classes=('Bus',)"), kitti_dir.parent, check=False
    )
    assert result.returncode != 0 and "data.classes" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "lineage.jsonl").exists()
