"""A finished (or stopped) evolution run as the TF-MOT comparison reads it: which generations
to show, their checkpoints, the run's config and lineage, checked before any expensive work, and
the fine-tuning budget the run spent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common import BenchmarkError

from tf_evosyn.export.artifacts import read_run_records
from tf_evosyn.storage import io_utils


def parse_generations(values: list[str]) -> list[int] | None:
    if not values or values == ["all"]:
        return None
    try:
        generations = sorted({int(v) for v in values})
    except ValueError:
        raise BenchmarkError(
            f"--generations_to_show={','.join(values)}: pass generation numbers, e.g. 1,5,10."
        ) from None
    if generations[0] < 1:
        raise BenchmarkError("--generations_to_show: the ancestor (0) is always shown; use >= 1.")
    return generations


def checkpoint(workdir: Path, generation: int) -> Path:
    """The saved model of ``generation`` in run directory ``workdir``."""
    return workdir / "generations" / f"gen_{generation:04d}" / "model.keras"


@dataclass
class RunInfo:
    workdir: Path
    config: dict
    records: list[dict]
    shown: list[int]  # accepted generations >= 1 to show
    last_accepted: int


def inspect_run(workdir: str | Path, generations: list[int] | None) -> RunInfo:
    """Check the run directory before any expensive work; raises BenchmarkError with the fix."""
    workdir = Path(workdir)
    fix = "pass the --workdir of an evosyn-classify run (or use --config to run one)"
    records = read_run_records(
        workdir, described_as=f"--evolution_run={workdir}", fix=fix, error=BenchmarkError
    )
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise BenchmarkError(
            f"{config_path} is missing: the run's data, batch size and fine-tuning optimizer are "
            "read from it. Restore it from the config the run was started with."
        )
    config = io_utils.read_json(config_path)
    for section in ("data", "train", "evolution"):
        if section not in config:
            raise BenchmarkError(f"{config_path} has no '{section}' section; restore the config.")
    accepted = [r["generation"] for r in records if r["accepted"] and r["generation"] >= 1]
    if not accepted:
        raise BenchmarkError(
            f"{workdir} has no accepted offspring yet (generations: {len(records) - 1}); resume "
            "the evolution until at least generation 1 is accepted."
        )
    if generations is None:
        shown = accepted
    else:
        missing = [g for g in generations if g not in accepted]
        if missing:
            raise BenchmarkError(
                f"--generations_to_show: {missing} not accepted generations of {workdir}; "
                f"choose from {accepted}."
            )
        shown = generations
    for generation in [0, *shown]:
        if not checkpoint(workdir, generation).is_file():
            raise BenchmarkError(
                f"{checkpoint(workdir, generation)} is missing; restore it or leave generation "
                f"{generation} out of --generations_to_show."
            )
    return RunInfo(workdir, config, records, shown, accepted[-1])


def fine_tuning_epochs(records: list[dict], generation: int, default_epochs: int) -> int:
    """Epochs the evolution trained in generations 1..generation, re-draws included."""
    return sum(
        int(r.get("epochs", default_epochs)) * int(r.get("attempts", 1))
        for r in records[1 : generation + 1]
    )


def data_settings(data_config: dict, train_limit: int | None, test_limit: int | None) -> dict:
    """The run's data config with the benchmark's limits (None = keep the run's)."""
    data = dict(data_config)
    if train_limit is not None:
        data["train_limit"] = train_limit
    if test_limit is not None:
        data["test_limit"] = test_limit
    return data
