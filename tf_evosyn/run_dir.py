"""The run directory of an evolution: every file the loop writes, and how it writes it.

    lineage.jsonl               one record per generation (0 = ancestor)
    generations/gen_NNNN/       checkpoint (model.keras) + record.json of each generation
    candidates/gen_NNNN/cand_K/ every drawn offspring of a generation (model.keras +
                                candidate.json), written as it finishes: a run killed in the
                                middle of a generation resumes at the next draw
    best/                       the selected offspring (model.keras + record.json)
    tensorboard/                scalars per generation (+ fit logs per generation)
    plots/                      score and efficiencies against generation
    status.json, summary.txt    how the run ended and its table

A generation is committed checkpoint first, lineage line second: a crash in between leaves a
checkpoint that no lineage line names, which a resumed run simply redoes. Every file and
directory is replaced atomically (temp + rename, see :mod:`tf_evosyn.io_utils`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tf_evosyn import io_utils
from tf_evosyn import lineage as lineage_lib
from tf_evosyn._keras import keras
from tf_evosyn.model_io import load_model, save_model


class RunDirectory:
    """Reads and writes one run directory (``workdir``)."""

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.lineage = lineage_lib.Lineage(self.workdir / lineage_lib.LINEAGE_FILENAME)

    def generation_dir(self, generation: int) -> Path:
        return self.workdir / "generations" / f"gen_{generation:04d}"

    @property
    def best_dir(self) -> Path:
        return self.workdir / "best"

    @property
    def tensorboard_dir(self) -> Path:
        return self.workdir / "tensorboard"

    def prepare(self) -> None:
        """Create the directory and clear temp files a killed run left behind."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        io_utils.remove_stale_temps(self.workdir)
        io_utils.remove_stale_temps(self.workdir / "generations")
        for folder in sorted((self.workdir / "candidates").glob("gen_*")):
            io_utils.remove_stale_temps(folder)

    def load_generation(self, generation: int) -> keras.Model:
        return load_model(self.generation_dir(generation))

    # -- candidates of a generation ---------------------------------------------------------
    def candidate_dir(self, generation: int, index: int) -> Path:
        return self.workdir / "candidates" / f"gen_{generation:04d}" / f"cand_{index:03d}"

    def save_candidate(self, generation: int, index: int, model: keras.Model, summary) -> None:
        def write(tmp: Path) -> None:
            save_model(model, tmp)
            io_utils.atomic_write_json(tmp / "candidate.json", summary)

        io_utils.atomic_replace_dir(self.candidate_dir(generation, index), write)

    def finished_candidates(self, generation: int) -> list[dict]:
        """Summaries of the candidates already drawn for ``generation``, in draw order (only
        the consecutive ones from 0: a later one without its predecessors is redone)."""
        found = []
        while (self.candidate_dir(generation, len(found)) / "candidate.json").is_file():
            found.append(
                io_utils.read_json(self.candidate_dir(generation, len(found)) / "candidate.json")
            )
        return found

    def load_candidate(self, generation: int, index: int) -> keras.Model:
        return load_model(self.candidate_dir(generation, index))

    def commit_generation(self, model: keras.Model | None, record: Mapping) -> None:
        """Checkpoint first, then the lineage line; then the reports (plots, TensorBoard)."""
        generation = record["generation"]

        def write_checkpoint(tmp: Path) -> None:
            if model is not None:
                save_model(model, tmp)
            io_utils.atomic_write_json(tmp / "record.json", record)

        (self.workdir / "generations").mkdir(parents=True, exist_ok=True)
        io_utils.atomic_replace_dir(self.generation_dir(generation), write_checkpoint)
        self.lineage.append(record)
        lineage_lib.write_tensorboard(self.tensorboard_dir, record)
        lineage_lib.plot_lineage(self.lineage.records, self.workdir / "plots")

    def sync_best(self, best: Mapping) -> None:
        """Make best/ hold generation ``best["generation"]`` (idempotent: resume repairs it)."""
        current = self.best_dir / "record.json"
        if current.exists() and io_utils.read_json(current).get("generation") == best["generation"]:
            return
        source = self.generation_dir(best["generation"])

        def copy_best(tmp: Path) -> None:
            save_model(load_model(source), tmp)
            io_utils.atomic_write_json(tmp / "record.json", best)

        io_utils.atomic_replace_dir(self.best_dir, copy_best)

    def finish(self, stopped: str | None, best_generation: int) -> str:
        """Write summary.txt and status.json; returns the summary table."""
        table = lineage_lib.summary_table(self.lineage.records)
        io_utils.atomic_write_text(self.workdir / "summary.txt", table + "\n")
        status = {
            "state": "stopped" if stopped else "finished",
            "reason": stopped or f"reached generation {self.lineage.last_generation}",
            "best_generation": best_generation,
            "last_generation": self.lineage.last_generation,
        }
        io_utils.atomic_write_json(self.workdir / "status.json", status)
        return table
