"""The run directory of an evolution: every file the loop writes, and how it writes it.

``workdir`` is a local path or a URL of any filesystem TensorFlow knows (``gs://``, ``s3://``,
``ram://``; see :mod:`tf_evosyn.storage.fs`)::

    run_format.json             the directory's format version (tf_evosyn.loop.run_format)
    run.lock                    while a process runs in it: who (tf_evosyn.loop.run_lock)
    config.json, runtime.json   the config used and how each session ran (runs/common.py)
    lineage.jsonl               one record per generation (0 = ancestor): THE commit point
    generations/gen_NNNN/       model.keras + record.json + COMMITTED of each generation
    candidates/gen_NNNN/cand_K/ every drawn offspring of a generation (model.keras +
                                candidate.json + COMMITTED), written as it finishes: a run
                                killed in the middle of a generation resumes at the next draw
    best/                       the selected offspring (model.keras + record.json + COMMITTED)
    tensorboard/                scalars per generation (+ fit logs per generation)
    plots/                      score and efficiencies against generation
    status.json, summary.txt    how the run ended and its table

How files are written (:mod:`tf_evosyn.storage.io_utils`): a single file is atomic (locally temp +
fsync + rename; on an object store one upload, published whole). A directory (``gen_NNNN/``,
``best/``) is built locally, then locally renamed into place, or remotely uploaded file by file
with the ``COMMITTED`` marker written last (an old directory loses its marker before its files).

A session writes only while it holds the directory's lock (:meth:`RunDirectory.writing`), so
two processes started on one directory by mistake never interleave their commits; a directory
in a format this code cannot read is refused when it is opened. A write that fails (disk full,
no permission) raises :class:`tf_evosyn.storage.io_utils.WriteError` naming the path, and
leaves the directory as a crash at that point would (below): the same command resumes it.

The commit point of generation N is its line in ``lineage.jsonl`` (the file is rewritten as a
whole, atomically); its directory is complete before that line is written, so a generation the
lineage names is finished, and ``gen_N/`` beyond the lineage is garbage whatever its marker says.
The marker is what tells a reader of a lone directory that it is whole; for ``best/``, which no
lineage line commits, it is the only commit point. Generation N is written in this order; what a
crash at each point leaves behind:

0. ``config.json``, ``runtime.json`` (at the start of a session): single files, old or new.
1. training/evaluation: nothing of N in the run directory but Keras fit logs (with
   ``log.tensorboard_fit_logs``), which gain a second event file when N is redone. Resume
   redoes N (same seeds, same result).
2. writing ``gen_N/``: locally a ``.tmp-gen_N-*`` sibling; remotely ``gen_N/`` without
   ``COMMITTED`` (and a staging copy in the local temp dir, lost with the machine). Resume
   (:meth:`RunDirectory.prepare`) deletes it and redoes N.
3. ``gen_N/`` done, ``lineage.jsonl`` not yet rewritten: a complete checkpoint that no lineage
   line names; resume deletes it and redoes N.
4. ``lineage.jsonl`` rewritten: N is committed; resume continues with N+1.
5. TensorBoard scalars and plots of N: missing scalars stay missing (TensorBoard shows a gap
   at step N); the plots are redrawn from the whole lineage at the next commit and at the end
   of every session.
6. ``best/``: stale (an older generation) or, remotely, without marker; readers treat an
   unmarked ``best/`` as missing and a resumed run rewrites it (:meth:`sync_best`).
7. ``summary.txt``/``status.json``: stale or missing until the run is resumed (rewritten at the
   end of every session).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from absl import logging

from tf_evosyn._keras import keras
from tf_evosyn.core.model_io import KERAS_FILENAME, load_model, save_model
from tf_evosyn.loop import lineage as lineage_lib
from tf_evosyn.loop import lineage_report, run_format, run_lock
from tf_evosyn.storage import fs, io_utils


def _generation_of(name: str) -> int:
    """``gen_0007`` -> 7 (-1 for a name that is no generation, so it is never removed)."""
    suffix = name[len("gen_") :]
    return int(suffix) if suffix.isdigit() else -1


class RunDirectory:
    """Reads and writes one run directory (``workdir``, local or remote)."""

    def __init__(self, workdir: str | os.PathLike[str]):
        self.workdir = fs.path(workdir)
        run_format.check(self.workdir)  # before reading files a newer format may have changed
        self.lineage = lineage_lib.Lineage(fs.join(self.workdir, lineage_lib.LINEAGE_FILENAME))

    @contextlib.contextmanager
    def writing(self, chief: bool = True) -> Iterator[RunDirectory]:
        """Hold the directory for one session: take its lock (released also on exceptions) and
        record its format. ``chief=False``: a non-chief worker of a multi-worker run, which
        writes a private copy (runs/common.py), so it takes no lock."""
        if not chief:
            yield self
            return
        with run_lock.hold(self.workdir):
            run_format.ensure(self.workdir)
            yield self

    def generation_dir(self, generation: int) -> fs.RunPath:
        return fs.join(self.workdir, "generations", f"gen_{generation:04d}")

    @property
    def best_dir(self) -> fs.RunPath:
        return fs.join(self.workdir, "best")

    @property
    def tensorboard_dir(self) -> fs.RunPath:
        return fs.join(self.workdir, "tensorboard")

    def prepare(self, shared_candidates: bool = False) -> None:
        """Create the directory and clear what a killed run left unfinished (see module doc):
        temps, checkpoints of generations the lineage does not record, an unmarked best/.
        ``shared_candidates``: other workers write candidates (tf_evosyn.loop.workers), so
        their temps may be in use and stay."""
        fs.makedirs(self.workdir)
        generations = fs.join(self.workdir, "generations")
        io_utils.remove_stale_temps(self.workdir)
        io_utils.remove_stale_temps(generations)
        leftovers = [
            fs.join(generations, name)
            for name in fs.listdir(generations)
            if name.startswith("gen_") and _generation_of(name) > self.lineage.last_generation
        ]
        if fs.exists(self.best_dir) and not io_utils.is_committed_dir(self.best_dir):
            leftovers.append(self.best_dir)
        candidates = fs.join(self.workdir, "candidates")
        shared = shared_candidates or not fs.isdir(candidates)
        for name in [] if shared else fs.listdir(candidates):
            io_utils.remove_stale_temps(fs.join(candidates, name))
        for directory in leftovers:
            logging.info("Removing %s: a killed run left it unfinished.", directory)
            fs.rmtree(directory)

    def load_generation(self, generation: int) -> keras.Model:
        return load_model(self.generation_dir(generation))

    # -- candidates of a generation ---------------------------------------------------------
    def candidate_dir(self, generation: int, index: int) -> fs.RunPath:
        return fs.join(self.workdir, "candidates", f"gen_{generation:04d}", f"cand_{index:03d}")

    def save_candidate(self, generation: int, index: int, model: keras.Model, summary) -> None:
        def write(tmp: Path) -> None:
            save_model(model, tmp)
            io_utils.atomic_write_json(tmp / "candidate.json", summary)

        run_lock.check_held(self.workdir)
        io_utils.atomic_replace_dir(self.candidate_dir(generation, index), write)

    def candidate_summary(self, generation: int, index: int) -> dict | None:
        """Candidate ``index``'s summary if it is committed, else None."""
        folder = self.candidate_dir(generation, index)
        summary = fs.join(folder, "candidate.json")
        if not (fs.isfile(summary) and io_utils.is_committed_dir(folder)):
            return None
        return io_utils.read_json(summary)

    def finished_candidates(self, generation: int) -> list[dict]:
        """Summaries of the candidates already drawn for ``generation``, in draw order (only
        the consecutive, committed ones from 0: a later one without its predecessors is
        redone)."""
        found = []
        while (summary := self.candidate_summary(generation, len(found))) is not None:
            found.append(summary)
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

        run_lock.check_held(self.workdir)  # another process took the lock over: stop here
        fs.makedirs(fs.join(self.workdir, "generations"))
        io_utils.atomic_replace_dir(self.generation_dir(generation), write_checkpoint)
        self.lineage.append(record)
        lineage_report.write_tensorboard(self.tensorboard_dir, record)
        lineage_report.plot_lineage(self.lineage.records, fs.join(self.workdir, "plots"))

    def best_generation(self) -> int | None:
        """The generation ``best/`` holds, None if it is missing or unfinished."""
        record = fs.join(self.best_dir, "record.json")
        if not (io_utils.is_committed_dir(self.best_dir) and fs.exists(record)):
            return None
        return int(io_utils.read_json(record)["generation"])

    def sync_best(self, best: Mapping) -> None:
        """Make best/ hold generation ``best["generation"]`` (idempotent: resume repairs it)."""
        if self.best_generation() == best["generation"]:
            return
        source = fs.join(self.generation_dir(best["generation"]), KERAS_FILENAME)

        def copy_best(tmp: Path) -> None:
            fs.copy_file(source, tmp / KERAS_FILENAME)  # byte for byte, no Keras round trip
            io_utils.atomic_write_json(tmp / "record.json", best)

        io_utils.atomic_replace_dir(self.best_dir, copy_best)

    def finish(self, stopped: str | None, best_generation: int, reached: str | None = None) -> str:
        """Write summary.txt and status.json (and redraw the plots, which a crash right after
        the last lineage line would leave stale); returns the summary table. ``stopped``: why
        no offspring could go on; ``reached``: which efficiency targets ended it (finished)."""
        lineage_report.plot_lineage(self.lineage.records, fs.join(self.workdir, "plots"))
        table = lineage_report.summary_table(self.lineage.records)
        io_utils.atomic_write_text(fs.join(self.workdir, "summary.txt"), table + "\n")
        last = self.lineage.records[-1]
        evolved = last["generation"] - 1 if last.get("final") else last["generation"]
        reason = stopped or reached or f"reached generation {evolved}"
        if last.get("final"):
            reason += (
                f"; generation {last['generation']} is the final fine-tuning of {last['parent']}"
            )
        status = {
            "state": "stopped" if stopped else "finished",
            "reason": reason,
            "best_generation": best_generation,
            "last_generation": self.lineage.last_generation,
        }
        io_utils.atomic_write_json(fs.join(self.workdir, "status.json"), status)
        return table
