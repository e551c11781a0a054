"""Tasks by name: what a config's ``task`` runs and exports.

The binaries, ``evosyn-export`` and the loop never ask "is this detection?": they look the
config's task up here. A new task registers a :class:`TaskRunner` (its run and export-spec
functions) with :func:`register_task`; ``evosyn-classify`` and ``evosyn-detect`` are the same
main over this registry, each refusing a config of the other task with the command to use.
Configs and run directories written before ``config.task`` existed are read by their sections:
a ``detection`` section means detection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_collections

from tf_evosyn.runs.classification import classification_export_spec, run_classification
from tf_evosyn.runs.common import task_name
from tf_evosyn.runs.config_checks import ConfigError
from tf_evosyn.runs.detection import detection_export_spec, run_detection
from tf_evosyn.runs.export_spec import ExportSpec


@dataclass(frozen=True)
class TaskRunner:
    """A task's whole experiment (``run(config, workdir, strategy)``) and its export spec."""

    name: str
    run: Callable[..., list[dict]]
    export_spec: Callable[[ml_collections.ConfigDict, int], ExportSpec]
    command: str = ""  # the binary users run it with, for error messages


_TASKS: dict[str, TaskRunner] = {}


def register_task(runner: TaskRunner) -> TaskRunner:
    if runner.name in _TASKS and _TASKS[runner.name] != runner:
        raise ValueError(f"Task {runner.name!r} is registered already.")
    _TASKS[runner.name] = runner
    return runner


def _task_names() -> list[str]:
    return sorted(_TASKS)


def task_runner(config: Any) -> TaskRunner:
    name = task_name(config)
    if name not in _TASKS:
        raise ConfigError(f"task={name!r} unknown; use one of {_task_names()}.")
    return _TASKS[name]


def check_task(prog: str, task: str, config: ml_collections.ConfigDict) -> TaskRunner:
    """The config's task runner, when it is the task this command runs."""
    runner = task_runner(config)
    if runner.name != task:
        raise ConfigError(
            f"the config is a {runner.name} experiment (task={runner.name!r}); {prog} runs "
            f"{task}. Run it with {runner.command or 'the command of that task'}."
        )
    return runner


def run_experiment(
    config: ml_collections.ConfigDict, workdir: str | Path, strategy: Any = None
) -> list[dict]:
    """Run (or resume) the experiment of ``config``'s task; returns the lineage records."""
    return task_runner(config).run(config, workdir, strategy)


def export_spec(config: Any, num_images: int) -> ExportSpec:
    """The :class:`ExportSpec` of a run's config (raises DataError/ConfigError on bad data)."""
    return task_runner(config).export_spec(config, num_images)


register_task(
    TaskRunner("classification", run_classification, classification_export_spec, "evosyn-classify")
)
register_task(TaskRunner("detection", run_detection, detection_export_spec, "evosyn-detect"))
