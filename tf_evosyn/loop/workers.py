"""A population shared by N independent worker jobs: which candidates a worker draws, and waiting.

The P candidates of a generation are independent: candidate k is drawn, fine-tuned and judged
from the generation's parents with the seeds of (seed, generation, k) alone
(:mod:`tf_evosyn.loop.population`). So N processes (N GPUs, machines, or jobs of a scheduler's
job array) can share them, each one a plain single-process run of the same command on the same
run directory, told apart by its index i in 0..N-1:

* worker i draws the candidates k with ``k % N == i`` and commits each into the shared run
  directory with the existing candidate markers (``candidates/gen_G/cand_K/COMMITTED``);
* worker 0, the *leader*, is the run directory's one writer otherwise: it takes the lock, writes
  ``config.json``, trains the ancestor, waits for all P candidates, selects, commits the
  generation, runs the final fine-tuning and writes the reports, exactly as a one-worker run;
* the others (*helpers*) take no lock and write nothing but their candidates (and TensorBoard
  fit logs under ``tensorboard/worker_i/`` when asked for): they wait for the ancestor, draw
  their share, wait for the leader's commit, and go on until the leader's loop ends.

Re-draws (no acceptable candidate among the first P) are drawn one at a time, candidate k by
worker ``k % N``, as the one-worker loop draws them. Whatever N is, every candidate, every
decision and so the lineage are the same (timings aside). A killed worker is restarted with
the same command: finished candidates are kept and its share resumes.

The index and count come from ``--worker_index``/``--num_workers`` (``config.distribute``), else
from an indexed-job environment: Kubernetes Indexed Jobs (``JOB_COMPLETION_INDEX``; give the
count with ``--num_workers``) or Slurm job arrays (``SLURM_ARRAY_TASK_ID`` and
``SLURM_ARRAY_TASK_COUNT``). A worker that waits longer than ``wait_seconds`` for another one's
candidate fails with one line naming that worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from tf_evosyn.storage.io_utils import RunDirectoryError

T = TypeVar("T")

DEFAULT_WAIT_SECONDS = 24 * 3600.0  # an ancestor or a candidate may train for hours


class WorkerWaitError(RunDirectoryError, TimeoutError):
    """A worker waited too long for another worker's candidate or commit."""


@dataclass(frozen=True)
class PopulationWorkers:
    """This process's place among the workers that share a run's population."""

    index: int = 0
    count: int = 1
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    poll_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.count}.")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"worker_index must be in 0..{self.count - 1} for num_workers={self.count}, "
                f"got {self.index}."
            )
        if self.wait_seconds <= 0 or self.poll_seconds <= 0:
            raise ValueError("worker wait_seconds and poll_seconds must be > 0.")

    @property
    def leads(self) -> bool:
        """Worker 0 writes the run directory (lock, config, lineage, best/, reports)."""
        return self.index == 0

    def draws(self, candidate: int) -> bool:
        return candidate % self.count == self.index

    def owner(self, candidate: int) -> int:
        return candidate % self.count

    def wait_for(self, ready: Callable[[], T | None], what: str, owner: int | None = None) -> T:
        """Poll ``ready`` until it returns something other than None; fail after
        ``wait_seconds`` with one line saying what was awaited and from which worker."""
        start = time.monotonic()
        while True:
            value = ready()
            if value is not None:
                return value
            waited = time.monotonic() - start
            if waited > self.wait_seconds:
                who = "worker 0 (the leader)" if owner in (None, 0) else f"worker {owner}"
                raise WorkerWaitError(
                    f"worker {self.index} of {self.count} waited {waited:.0f} s for {what} from "
                    f"{who}; is it running? Start it again with the same command and "
                    f"--worker_index={owner or 0} (finished candidates are kept)."
                )
            time.sleep(self.poll_seconds)


def _environment_index(environ: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(index, count) an indexed-job scheduler gives this process, where it gives them."""
    if "JOB_COMPLETION_INDEX" in environ:  # Kubernetes Indexed Job
        return int(environ["JOB_COMPLETION_INDEX"]), None
    if "SLURM_ARRAY_TASK_ID" in environ:  # Slurm job array (IDs may start above 0)
        first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        count = environ.get("SLURM_ARRAY_TASK_COUNT")
        return int(environ["SLURM_ARRAY_TASK_ID"]) - first, int(count) if count else None
    return None, None


def resolve(
    worker_index: int = -1,
    num_workers: int = 0,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    environ: Mapping[str, str] | None = None,
) -> PopulationWorkers:
    """The workers from the flags (``worker_index`` -1 / ``num_workers`` 0: not given), else
    from the scheduler's environment, else a single worker."""
    env_index, env_count = _environment_index(os.environ if environ is None else environ)
    index = worker_index if worker_index >= 0 else (env_index or 0)
    count = num_workers if num_workers > 0 else (env_count or 1)
    if env_index is not None and worker_index < 0 and num_workers <= 0 and env_count is None:
        raise ValueError(
            f"JOB_COMPLETION_INDEX={env_index} is set but not how many workers share the "
            "population; pass --num_workers=N (the Job's completions), or --num_workers=1 to "
            "run alone."
        )
    return PopulationWorkers(index=index, count=count, wait_seconds=wait_seconds)
