"""Tasks by config through one registry: the binaries look the task up, never guess it, and a
config of the other task is refused in one line naming the command to use."""

import json
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.runs import registry
from tf_evosyn.runs.config_checks import ConfigError
from tf_evosyn.runs.registry import check_task

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("lenet5_mnist", "classification"),
        ("resnet56_cifar10_smoke", "classification"),
        ("alexnet_cifar10", "classification"),
        ("detectnet_kitti_smoke", "detection"),
        ("detectnet_mobilenetv2_kitti", "detection"),
    ],
)
def test_every_config_names_its_task(name, task):
    config = load_config_file(str(CONFIGS / f"{name}.py"))
    assert config.task == task
    assert registry.task_runner(config).name == task


def test_configs_written_before_the_key_are_read_by_their_sections():
    assert registry.task_name(ml_collections.ConfigDict({"data": {}})) == "classification"
    assert registry.task_name(ml_collections.ConfigDict({"detection": {}})) == "detection"


def test_an_unknown_task_and_the_wrong_command_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"task='segmentation' unknown; use one of \["):
        registry.task_runner(ml_collections.ConfigDict({"task": "segmentation"}))
    detection = load_config_file(str(CONFIGS / "detectnet_kitti_smoke.py"))
    with pytest.raises(ConfigError, match="detection experiment.*Run it with evosyn-detect"):
        check_task("evosyn-classify", "classification", detection)
    assert check_task("evosyn-detect", "detection", detection).name == "detection"


def test_a_new_task_plugs_in_and_a_name_is_taken_once():
    runner = registry.TaskRunner("toy", run=lambda c, w, s: [], export_spec=lambda c, n: None)
    registry.register_task(runner)
    assert registry.run_experiment(ml_collections.ConfigDict({"task": "toy"}), "unused") == []
    with pytest.raises(ValueError, match="'toy' is registered already"):
        registry.register_task(registry.TaskRunner("toy", print, print))


def test_the_classify_command_refuses_a_detection_config_in_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tf_evosyn.bin.evolve_classification",
            f"--config={CONFIGS / 'detectnet_kitti_smoke.py'}",
            f"--workdir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("evosyn-classify: error: the config is a detection experiment"), last
    assert "evosyn-detect" in last and not (tmp_path / "run").exists()


def test_a_run_directory_written_before_the_task_and_sharpness_keys_still_resumes(tmp_path):
    from tf_evosyn.runs.common import prepare_workdir

    config = load_config_file(str(CONFIGS / "lenet5_mnist_smoke.py"))
    prepare_workdir(config, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for key in ("synapse_sharpness", "cluster_sharpness"):
        del saved["evolution"][key]
    del saved["task"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    prepare_workdir(config, tmp_path)  # the same run: no error
    with config.unlocked():
        config.evolution.synapse_sharpness = 4.0
    with pytest.raises(ConfigError, match="changed: evolution.synapse_sharpness"):
        prepare_workdir(config, tmp_path)
