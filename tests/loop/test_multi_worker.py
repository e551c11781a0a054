"""Two real workers (MultiWorkerMirroredStrategy over TF_CONFIG on 127.0.0.1 ports) evolve LeNet-5
on a small real MNIST subset into one local run directory: only the chief writes it, both draw
the same masks, the lineage has one line per generation, and the accuracies are close to a
one-worker run with the same global batch. A worker killed mid-generation makes the chief
fail with one line (not hang), and restarting both resumes to the same lineage.

A local folder stands for the shared run directory (``ram://`` is per process); on gs:// the
same holds: the chief writes, the other worker reads it once at the start into its own copy."""

import json
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, binary_command, binary_env, read_lineage, run_binary, without_timing

SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"
SUBSET = ("--config.data.train_limit=1000", "--config.data.validation_size=500")
MASKS = re.compile(r"Generation (\d+) draw (\d+): masks ([0-9a-f]+)")
# Every worker must reach every collective within this time, or the run fails (not hangs).
TIMEOUT = 900


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _worker_env(datasets_dir: Path, cluster: list[str], index: int, tmp: Path) -> dict:
    env = binary_env(datasets_dir)
    task = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
    # TMPDIR: where a non-chief worker keeps (then deletes) its private copy.
    env.update(TF_CONFIG=json.dumps(task), CUDA_VISIBLE_DEVICES="", TMPDIR=str(tmp))
    return env


def _run_workers(workdir: Path, datasets_dir: Path, tmp: Path) -> list[subprocess.Popen]:
    cluster = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    command = binary_command("evolve_classification", SMOKE, workdir, *SUBSET)
    command.append("--strategy=multi_worker_mirrored")
    workers = []
    for index in range(2):
        (tmp / f"worker_{index}").mkdir(parents=True, exist_ok=True)
        env = _worker_env(datasets_dir, cluster, index, tmp / f"worker_{index}")
        workers.append(
            subprocess.Popen(
                command,
                env=env,
                cwd=REPO,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
        )
    return workers


def _files(root: Path) -> set[str]:
    """Relative paths under ``root`` without TensorBoard's (host- and time-stamped) logs."""
    paths = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    return {p for p in paths if not p.startswith("tensorboard")}


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory, datasets_dir):
    root = tmp_path_factory.mktemp("multi_worker")
    workdir = root / "run"
    workers = _run_workers(workdir, datasets_dir, root / "tmp")
    logs = []
    try:
        for worker in workers:
            _, stderr = worker.communicate(timeout=TIMEOUT)
            logs.append(stderr)
    finally:
        for worker in workers:
            worker.kill()
    for index, (worker, log) in enumerate(zip(workers, logs, strict=True)):
        assert worker.returncode == 0, f"worker {index} failed:\n{log[-4000:]}"
    single = root / "single"
    command = binary_command("evolve_classification", SMOKE, single, *SUBSET)
    run_binary(command, datasets_dir)
    return dict(workdir=workdir, logs=logs, tmp=root / "tmp", single=single)


@pytest.mark.slow
def test_only_the_chief_writes_the_run_directory(two_worker_run):
    workdir = two_worker_run["workdir"]
    assert not (workdir / "workers").exists()
    # The chief's run directory holds exactly what a one-worker run writes...
    assert _files(workdir) == _files(two_worker_run["single"])
    # ...and the other worker's private copy is gone once it ends (its TMPDIR is empty).
    assert list((two_worker_run["tmp"] / "worker_1").iterdir()) == []
    runtime = json.loads((workdir / "runtime.json").read_text())
    assert runtime["strategy"] == "multi_worker_mirrored" and runtime["num_replicas"] == 2
    assert runtime["global_batch_size"] == 64 and runtime["per_replica_batch_size"] == 32


@pytest.mark.slow
def test_both_workers_draw_the_same_masks_every_generation(two_worker_run):
    chief, other = (MASKS.findall(log) for log in two_worker_run["logs"])
    assert [int(g) for g, _, _ in chief] == [1, 2]  # one draw per generation in the smoke run
    assert chief == other


@pytest.mark.slow
def test_lineage_has_one_line_per_generation_close_to_one_worker(two_worker_run):
    lineage, single = (
        read_lineage(two_worker_run["workdir"]),
        read_lineage(two_worker_run["single"]),
    )
    assert [r["generation"] for r in lineage] == [0, 1, 2]
    assert [r["generation"] for r in single] == [0, 1, 2]
    for multi, one in zip(lineage, single, strict=True):
        # Same global batch, same seed, same masks: measured equal accuracies at every
        # generation (500 validation images) and losses equal to 6 digits; allow the two
        # replicas' gradient-sum rounding. (A distillation loss not scaled per replica doubled
        # its gradient and cost 3.6 points here.)
        assert abs(multi["accuracy"] - one["accuracy"]) <= 0.01, (multi, one)
        assert multi["loss"] == pytest.approx(one["loss"], rel=0.02), (multi, one)


def _finish(workers: list[subprocess.Popen]) -> list[str]:
    logs = []
    try:
        for worker in workers:
            logs.append(worker.communicate(timeout=TIMEOUT)[1])
    finally:
        for worker in workers:
            worker.kill()
    return logs


@pytest.mark.slow
def test_a_killed_worker_fails_the_chief_in_one_line_and_a_restart_resumes(
    two_worker_run, tmp_path, datasets_dir
):
    workdir = tmp_path / "run"
    chief, other = _run_workers(workdir, datasets_dir, tmp_path / "tmp")
    log = []
    try:
        for line in chief.stderr:  # until generation 2's fine-tuning starts
            log.append(line)
            if MASKS.search(line) and MASKS.search(line).group(1) == "2":
                other.send_signal(signal.SIGKILL)
                break
        # Heartbeats find the dead peer (measured: the chief exits ~20 s later); TIMEOUT only
        # guards against a hang, which is the failure this test is about.
        log.append(chief.communicate(timeout=TIMEOUT)[1])
    finally:
        chief.kill()
        other.kill()
    assert other.returncode == -signal.SIGKILL
    assert chief.returncode != 0
    last = "".join(log).strip().splitlines()[-1]
    assert "a worker of the multi-worker run stopped" in last, last
    assert "restart every worker with the same command" in last
    assert [r["generation"] for r in read_lineage(workdir)] == [0, 1]  # generation 1 committed

    restarted = _run_workers(workdir, datasets_dir, tmp_path / "tmp")
    logs = _finish(restarted)
    for index, worker in enumerate(restarted):
        assert worker.returncode == 0, f"worker {index} failed:\n{logs[index][-4000:]}"
    assert without_timing(read_lineage(workdir)) == without_timing(
        read_lineage(two_worker_run["workdir"])
    )
