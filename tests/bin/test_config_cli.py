"""A misspelt --config key is one line naming the key and the right one, through the binaries."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tf_evosyn.bin.config_cli import (
    config_keys,
    explain_parse_error,
    override_keys,
    unknown_key_message,
)

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _error_line(result: subprocess.CompletedProcess, prog: str) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.mark.slow  # a subprocess that imports TensorFlow: 10-30 s
def test_misspelt_key_is_one_line_with_a_suggestion(tmp_path):
    result = _run(
        "tf_evosyn.bin.evolve_classification",
        f"--config={SMOKE}",
        f"--workdir={tmp_path / 'run'}",
        "--config.evolution.genrations=3",
    )
    line = _error_line(result, "evosyn-classify")
    assert line == (
        "evosyn-classify: error: unknown config key 'evolution.genrations' "
        "(--config.evolution.genrations); did you mean 'evolution.generations'?"
    )
    assert not (tmp_path / "run").exists()  # refused before anything was created


@pytest.mark.parametrize(
    "override, named, suggested",
    [
        ("--config.evolutoin.generations=3", "'evolutoin.generations'", "'evolution.generations'"),
        ("--config.train.batchsize=8", "'train.batchsize'", "'train.batch_size'"),
        ("--config.sed", "'sed'", "'seed'"),
    ],
)
def test_explanation_names_the_key_and_the_closest_real_one(override, named, suggested):
    error = AttributeError("what ml_collections raised")
    line = explain_parse_error([f"--config={SMOKE}", "--config.seed=1", override], error)
    assert f"unknown config key {named}" in line and f"did you mean {suggested}?" in line


def test_explanation_of_a_missing_config_file(tmp_path):
    line = explain_parse_error([f"--config={tmp_path}/nope.py"], AttributeError("x"))
    assert line == f"--config={tmp_path}/nope.py: no such config file."


@pytest.mark.slow  # a subprocess that imports TensorFlow: 10-30 s
def test_malformed_value_is_one_line_too(tmp_path):
    result = _run(
        "tf_evosyn.bin.evolve_classification",
        f"--config={SMOKE}",
        f"--workdir={tmp_path / 'run'}",
        "--config.evolution.generations=three",
    )
    line = _error_line(result, "evosyn-classify")
    assert "config.evolution.generations" in line and "three" in line


@pytest.mark.slow  # a subprocess that imports TensorFlow: 10-30 s
def test_config_check_binary_prints_the_resolved_config_or_one_line():
    result = _run("tf_evosyn.bin.config_cli", f"--config={SMOKE}", "--config.seed=7")
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads(result.stdout)
    assert config["seed"] == 7 and config["evolution"]["generations"] == 2
    refused = _run("tf_evosyn.bin.config_cli", f"--config={SMOKE}", "--config.sed=7")
    line = _error_line(refused, "evosyn-config")
    assert "unknown config key 'sed'" in line and "did you mean 'seed'?" in line


def test_unknown_key_without_a_close_match_lists_the_section():
    known = ["seed", "evolution", "evolution.generations", "evolution.max_attempts"]
    message = unknown_key_message("evolution.zzzzzz", known)
    assert message.endswith("the keys of 'evolution' are: generations, max_attempts.")
    assert unknown_key_message("qqq", known).endswith("the top-level keys are: seed, evolution.")


def test_config_keys_and_override_keys():
    import ml_collections

    config = ml_collections.ConfigDict({"a": 1, "b": {"c": 2, "d": {"e": 3}}})
    assert config_keys(config) == ["a", "b", "b.c", "b.d", "b.d.e"]
    argv = ["--config=x.py", "--config.b.c=4", "--workdir=w", "--config.a", "5"]
    assert override_keys(argv) == ["b.c", "a"]
