"""The commands' quiet first screen: TensorFlow's start-up noise hidden unless asked for."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tf_evosyn import _startup

REPO = Path(__file__).resolve().parents[2]
NOISE = ("oneDNN", "cuda", "cuInit", "absl::InitializeLog")


@pytest.mark.parametrize(
    ("argv", "orig_argv", "expected"),
    [
        (["/venv/bin/evosyn-classify", "--config=c.py"], [], True),
        (["-m"], ["python", "-m", "tf_evosyn.bin.export", "--workdir=w"], True),
        (["notebook.py"], ["python", "notebook.py"], False),
        (["-m"], ["python", "-m", "pytest"], False),
        (["-c"], ["python", "-c", "import tf_evosyn"], False),
    ],
)
def test_only_our_commands_count_as_commands(argv, orig_argv, expected):
    assert _startup.is_command(argv, orig_argv) is expected


def test_verbose_or_a_users_log_level_keeps_tensorflows_lines():
    command = ["/venv/bin/evosyn-detect", "--config=c.py"]
    assert _startup.wants_quiet(command, environ={})
    assert not _startup.wants_quiet([*command, "--verbose"], environ={})
    assert not _startup.wants_quiet(command, environ={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert not _startup.wants_quiet(["script.py"], environ={})


def _config_command(*extra: str) -> str:
    """stderr of ``python -m tf_evosyn.bin.config_cli`` (imports TensorFlow, trains nothing)."""
    command = [sys.executable, "-m", "tf_evosyn.bin.config_cli"]
    config = f"--config={REPO / 'configs' / 'lenet5_mnist_smoke.py'}"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [*command, config, *extra], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert '"name": "mnist"' in done.stdout  # the command itself still speaks
    return done.stderr


def test_a_command_opens_without_tensorflows_noise_and_verbose_brings_it_back():
    quiet = _config_command()
    assert not any(word in quiet for word in NOISE), quiet
    verbose = _config_command("--verbose")
    assert any(word in verbose for word in NOISE), verbose
