"""Which generation of a run directory to export, checked before any expensive work.

Shared by ``evosyn-export`` and the benchmarks: every problem raises :class:`ExportError` with a
message that says how to fix it.
"""

from __future__ import annotations

import os

from tf_evosyn.loop.lineage import LINEAGE_FILENAME, Lineage
from tf_evosyn.storage import fs, io_utils

_FIX = "pass the directory an evosyn-classify or evosyn-detect run wrote (its --workdir)"


class ExportError(ValueError):
    """The run directory or the requested generation cannot be exported (user's to fix)."""


def _checkpoint(workdir: fs.RunPath, generation: int) -> fs.RunPath:
    path = fs.join(workdir, "generations", f"gen_{generation:04d}", "model.keras")
    if not fs.isfile(path):
        raise ExportError(
            f"{path} is missing: the checkpoint of generation {generation} was deleted or never "
            "written. Restore it, or export another generation with --generation=N."
        )
    return path


def read_run_records(
    workdir: str | os.PathLike[str],
    *,
    described_as: str = "",
    fix: str = _FIX,
    error: type[Exception] = ExportError,
) -> list[dict]:
    """The lineage records of a run directory, or ``error`` saying what is wrong and ``fix``.

    ``described_as`` names the directory in messages (default: "run directory WORKDIR").
    """
    workdir = fs.path(workdir)
    described_as = described_as or f"run directory {workdir}"
    if not fs.isdir(workdir):
        raise error(f"{described_as} does not exist; {fix}.")
    if not fs.isfile(fs.join(workdir, LINEAGE_FILENAME)):
        raise error(
            f"{workdir} has no {LINEAGE_FILENAME}: it is not an evolution run directory, or its "
            f"ancestor (generation 0) has not finished yet; {fix}."
        )
    try:
        return Lineage(workdir).records
    except ValueError as exc:
        raise error(str(exc)) from exc


def resolve_target(workdir: str | os.PathLike[str], generation: int | None = None) -> dict:
    """Check the run directory and pick what to export, before any expensive work.

    Returns {"ancestor": record, "offspring": record, "ancestor_path", "offspring_path",
    "config"}. Raises :class:`ExportError` with a message that says how to fix the problem.
    """
    workdir = fs.path(workdir)
    records = read_run_records(workdir)
    if not records:
        raise ExportError(
            f"{workdir} has no finished generation yet; let the run (evosyn-classify or "
            "evosyn-detect) finish at least the ancestor (generation 0), then export."
        )
    by_generation = {r["generation"]: r for r in records}
    accepted = [r["generation"] for r in records if r["accepted"]]
    if generation is None:
        best = fs.join(workdir, "best", "record.json")
        if not (io_utils.is_committed_dir(fs.parent(best)) and fs.isfile(best)):
            raise ExportError(
                f"{best} is missing or unfinished (no {io_utils.COMMIT_MARKER} marker beside "
                "it); resume the run (evosyn-classify/evosyn-detect) to rewrite "
                f"best/, or choose one with --generation=N (accepted: {accepted})."
            )
        generation = int(io_utils.read_json(best)["generation"])
    if generation not in by_generation:
        raise ExportError(
            f"generation {generation} not found in {fs.join(workdir, LINEAGE_FILENAME)} (it has "
            f"generations 0..{records[-1]['generation']}); use --generation with one of {accepted}."
        )
    if not by_generation[generation]["accepted"]:
        raise ExportError(
            f"generation {generation} was rejected (it did not meet the score floor); "
            f"export an accepted one with --generation=N, N in {accepted}."
        )
    config_path = fs.join(workdir, "config.json")
    if not fs.isfile(config_path):
        raise ExportError(
            f"{config_path} is missing: the run's data config is needed for the real test "
            "images that verify the export. Restore it from the run's original config."
        )
    config = io_utils.read_json(config_path)
    if "data" not in config:
        raise ExportError(f"{config_path} has no 'data' section; restore the run's config.")
    return {
        "ancestor": by_generation[0],
        "offspring": by_generation[generation],
        "ancestor_path": _checkpoint(workdir, 0),
        "offspring_path": _checkpoint(workdir, generation),
        "config": config,
    }
