"""The evosyn-classify binary end to end on real MNIST: run directory, resume, bad input."""

import json
from pathlib import Path

import pytest
from helpers import binary_command, read_lineage, run_and_kill, run_binary, without_timing

from tf_evosyn.loop.lineage import REQUIRED_KEYS

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"
pytestmark = pytest.mark.slow


def _command(workdir, *overrides):
    return binary_command("evolve_classification", SMOKE, workdir, *overrides)


def _run(workdir, datasets_dir, *overrides, check=True):
    return run_binary(_command(workdir, *overrides), datasets_dir, check=check, timeout=900)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, datasets_dir):
    workdir = tmp_path_factory.mktemp("reference")
    result = _run(workdir, datasets_dir)
    return workdir, result


def test_two_generation_run_leaves_a_complete_run_directory(reference_run):
    workdir, result = reference_run
    records = read_lineage(workdir)
    assert [r["generation"] for r in records] == [0, 1, 2]
    for record in records:
        assert set(REQUIRED_KEYS) <= set(record)
        assert [layer["name"] for layer in record["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    assert records[2]["synapses"] < records[1]["synapses"] < records[0]["synapses"] == 430_500
    config = json.loads((workdir / "config.json").read_text())
    assert config["data"]["train_limit"] == 2000 and config["evolution"]["generations"] == 2
    for generation in range(3):
        assert (workdir / "generations" / f"gen_{generation:04d}" / "model.keras").is_file()
    assert (workdir / "best" / "model.keras").is_file()
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    for name in ("accuracy.png", "synaptic_efficiency.png", "cluster_efficiency.png"):
        assert (workdir / "plots" / name).read_bytes().startswith(b"\x89PNG")
    assert "synaptic eff." in result.stdout and "cluster eff." in result.stdout


@pytest.mark.parametrize("lines_before_kill", [0, 2])
def test_killed_run_resumes_to_the_same_lineage(
    tmp_path, datasets_dir, reference_run, lines_before_kill
):
    workdir = tmp_path / "run"
    run_and_kill(_command(workdir), datasets_dir, workdir, lines_before_kill, timeout=600)
    done = len(read_lineage(workdir)) if (workdir / "lineage.jsonl").exists() else 0
    assert done < 3
    _run(workdir, datasets_dir)
    assert without_timing(read_lineage(workdir)) == without_timing(read_lineage(reference_run[0]))
    assert not list(workdir.glob(".tmp-*")) and not list((workdir / "generations").glob(".tmp-*"))


def test_resume_with_a_different_config_is_refused(tmp_path, datasets_dir, reference_run):
    result = _run(reference_run[0], datasets_dir, "--config.seed=1", check=False)
    assert result.returncode != 0
    assert "different config" in result.stderr and "seed" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_config_key_is_refused(tmp_path, datasets_dir):
    result = _run(tmp_path / "run", datasets_dir, "--config.evolution.generatons=3", check=False)
    assert result.returncode != 0 and "generatons" in result.stderr
    assert not (tmp_path / "run").exists()


def test_missing_data_fails_before_training(tmp_path, datasets_dir):
    result = _run(
        tmp_path / "run", datasets_dir, f"--config.data.data_dir={tmp_path}/nowhere", check=False
    )
    assert result.returncode != 0
    assert "evosyn-classify: error: MNIST data folder" in result.stderr
    assert "nowhere" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "lineage.jsonl").exists()
