"""Population workers: N independent jobs share each generation's candidates.

Which worker draws what, where the index comes from (flags, Kubernetes, Slurm), the one-line
error of a worker that waits in vain, and (slow) two real processes of ``evosyn-classify`` with
P = 2 that end with the one-worker lineage, each candidate drawn by its own worker and the
run directory written by the leader alone.
"""

import json
import subprocess

import pytest
from helpers import REPO, binary_command, binary_env, read_lineage, without_timing

from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.loop import population
from tf_evosyn.loop.workers import PopulationWorkers, WorkerWaitError, resolve
from tf_evosyn.runs.config_checks import ConfigError, validate_config

SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"
POPULATION = (
    "--config.data.train_limit=1000",
    "--config.data.validation_size=500",
    "--config.evolution.population=2",
)
# One thread per process, in every run: the one-worker and the two-worker runs then compute
# every candidate with the same kernels (op determinism is per thread layout).
THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def test_candidates_are_dealt_round_robin():
    workers = [PopulationWorkers(index=i, count=3) for i in range(3)]
    assert [[k for k in range(7) if w.draws(k)] for w in workers] == [[0, 3, 6], [1, 4], [2, 5]]
    assert workers[0].leads and not workers[1].leads
    assert [workers[2].owner(k) for k in range(4)] == [0, 1, 2, 0]


def test_the_first_population_is_drawn_together_and_redraws_one_at_a_time():
    assert list(population.next_draws(0, 4)) == [0, 1, 2, 3]
    assert list(population.next_draws(1, 4)) == [1, 2, 3]  # a resumed generation
    assert list(population.next_draws(4, 4)) == [4]
    assert list(population.next_draws(5, 1)) == [5]


def test_index_and_count_from_flags_kubernetes_and_slurm():
    assert resolve(environ={}) == PopulationWorkers(0, 1)
    assert resolve(1, 2, environ={}) == PopulationWorkers(1, 2)
    assert resolve(num_workers=4, environ={"JOB_COMPLETION_INDEX": "3"}).index == 3
    slurm = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert resolve(environ=slurm) == PopulationWorkers(2, 3)
    assert resolve(0, 1, environ=slurm) == PopulationWorkers(0, 1)  # flags win
    with pytest.raises(ValueError, match="--num_workers=N"):
        resolve(environ={"JOB_COMPLETION_INDEX": "1"})  # an Indexed Job does not say N
    with pytest.raises(ValueError, match="worker_index must be in 0..1"):
        resolve(2, 2, environ={})


def test_a_worker_that_waits_in_vain_fails_in_one_line_naming_the_other():
    workers = PopulationWorkers(index=0, count=2, wait_seconds=0.05, poll_seconds=0.01)
    with pytest.raises(WorkerWaitError, match=r"from worker 1; .*--worker_index=1") as error:
        workers.wait_for(lambda: None, "candidates 0-1 of generation 1", owner=1)
    assert "\n" not in str(error.value)
    assert workers.wait_for(lambda: 5, "anything") == 5


def test_config_refuses_population_workers_with_a_multi_worker_strategy():
    config = load_config_file(str(SMOKE))
    config.distribute.strategy = "multi_worker_mirrored"
    with config.unlocked():
        config.distribute.num_workers = 2
    with pytest.raises(ConfigError, match="use one of them"):
        validate_config(config)
    config.distribute.strategy = "default"
    config.distribute.worker_index = 2
    with pytest.raises(ConfigError, match="worker_index must be in 0..1"):
        validate_config(config)


def _start(workdir, datasets_dir, *flags: str) -> subprocess.Popen:
    command = binary_command("evolve_classification", SMOKE, workdir, *POPULATION, *flags)
    env = dict(binary_env(datasets_dir), **THREADS)
    return subprocess.Popen(command, env=env, cwd=REPO, text=True, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def two_worker_population(tmp_path_factory, datasets_dir):
    root = tmp_path_factory.mktemp("population_workers")
    shared = root / "shared"
    workers = [
        _start(shared, datasets_dir, f"--worker_index={i}", "--num_workers=2") for i in (1, 0)
    ]
    logs = []
    try:
        logs = [worker.communicate(timeout=1200)[1] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, log in zip(workers, logs, strict=True):
        assert worker.returncode == 0, log[-4000:]
    single = root / "single"
    alone = _start(single, datasets_dir)
    _, log = alone.communicate(timeout=1200)
    assert alone.returncode == 0, log[-4000:]
    return shared, single, logs


@pytest.mark.slow
def test_two_population_workers_give_the_one_worker_lineage(two_worker_population):
    shared, single, _ = two_worker_population
    lineage = read_lineage(shared)
    assert [r["generation"] for r in lineage] == [0, 1, 2]
    assert all(len(r["candidates"]) == 2 for r in lineage[1:])
    assert without_timing(lineage) == without_timing(read_lineage(single))


@pytest.mark.slow
def test_each_worker_draws_its_share_and_only_the_leader_writes_the_rest(two_worker_population):
    shared, single, logs = two_worker_population
    for generation in (1, 2):
        for index in (0, 1):
            folder = shared / "candidates" / f"gen_{generation:04d}" / f"cand_{index:03d}"
            assert json.loads((folder / "candidate.json").read_text())["worker"] == index
    helper_log = logs[0]
    assert "writes its candidates only" in helper_log
    assert "Generation 1 draw 1: masks" in helper_log and "draw 0: masks" not in helper_log

    # Besides the candidates (and TensorBoard's host-stamped logs), the run directory holds
    # what a one-worker run writes: config, runtime, lineage, generations, best/, reports.
    def files(root):
        paths = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        return {p for p in paths if not p.startswith(("tensorboard", "candidates"))}

    assert files(shared) == files(single)
    assert not (shared / "tensorboard" / "worker_1").exists()  # fit logs off in the smoke config
