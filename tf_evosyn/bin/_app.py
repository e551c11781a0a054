"""What the absl binaries ``evosyn-classify`` and ``evosyn-detect`` share: flags and ``main``.

Every config knob can be overridden, e.g. ``--config.evolution.generations=3``; running the
same command again resumes after the last finished generation. ``--strategy=...`` overrides
``config.distribute.strategy``. Bad input (a config or data problem) exits with one line that
names the fix, without a traceback; a misspelt ``--config.KEY`` too (see config_cli).
"""

from __future__ import annotations

import sys

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from tf_evosyn.bin import config_cli
from tf_evosyn.data import DataError
from tf_evosyn.loop.distribute import STRATEGIES, WorkerLostError
from tf_evosyn.runs.config_checks import ConfigError
from tf_evosyn.runs.registry import check_task
from tf_evosyn.storage.io_utils import RunDirectoryError

CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/lenet5_mnist.py.", lock_config=True
)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created, or resumed).")
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    None,
    list(STRATEGIES),
    "tf.distribute strategy; overrides config.distribute.strategy (default: the config's).",
)
_WORKER_INDEX = flags.DEFINE_integer(
    "worker_index",
    None,
    "Population workers: this job's index in 0..N-1 (default: JOB_COMPLETION_INDEX or "
    "SLURM_ARRAY_TASK_ID, else 0). Worker 0 writes the run directory; see docs/multi_worker.md.",
)
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers",
    None,
    "Population workers: how many jobs share each generation's candidates (default: "
    "SLURM_ARRAY_TASK_COUNT, else 1).",
)
flags.mark_flags_as_required(["config", "workdir"])


def _apply_strategy_flag(config: ml_collections.ConfigDict) -> None:
    """``--strategy``, ``--worker_index`` and ``--num_workers`` into ``config.distribute``."""
    overrides = {
        "strategy": _STRATEGY.value,
        "worker_index": _WORKER_INDEX.value,
        "num_workers": _NUM_WORKERS.value,
    }
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if not overrides:
        return
    with config.unlocked():  # a config file older than the distribute section lacks it
        if "distribute" not in config:
            config.distribute = ml_collections.ConfigDict(
                {"strategy": "default", "tpu_address": "", "num_cpu_devices": 0}
            )
        for key, value in overrides.items():
            config.distribute[key] = value


def run_app(prog: str, task: str) -> None:
    """``app.run`` of the binary ``prog``, which runs experiments of ``task`` (the registry's)."""

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
        try:
            runner = check_task(prog, task, CONFIG.value)
            _apply_strategy_flag(CONFIG.value)
            runner.run(CONFIG.value, WORKDIR.value)
        except (ConfigError, DataError, RunDirectoryError, WorkerLostError) as error:
            # Bad input, a busy or full run directory, a lost worker: said in one line.
            sys.exit(f"{prog}: error: {error}")

    app.run(main, flags_parser=config_cli.flags_parser(prog))
