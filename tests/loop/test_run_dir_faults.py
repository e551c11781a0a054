"""Faults and bad input at the run directory: a format this code cannot read, a second process
on the same directory, a stale lock, and a disk that fills up (or refuses writes) while a
generation is committed. Each is refused before any training with one line naming the
directory (or path) and the fix, or handled so that the same command resumes the run.
"""

import errno
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from helpers import REPO, binary_command, run_binary, small_evolution, without_timing

from tf_evosyn._keras import keras
from tf_evosyn.bin.config_cli import load_config_file
from tf_evosyn.loop import run_dir as run_dir_lib
from tf_evosyn.loop import run_format, run_lock
from tf_evosyn.loop.evolution import Evolution
from tf_evosyn.loop.lineage import Lineage
from tf_evosyn.loop.run_dir import RunDirectory
from tf_evosyn.models import lenet5
from tf_evosyn.runs.classification import run_classification
from tf_evosyn.runs.common import run_with_strategy
from tf_evosyn.storage import fs, io_utils
from tf_evosyn.storage.io_utils import RunDirectoryError

SMOKE = REPO / "configs" / "lenet5_mnist_smoke.py"
LOCK = run_lock.LOCK_FILENAME


def _write_format(workdir: Path, version) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    marker = {"format_version": version, "written_by": "tf_evosyn 9.0.0"}
    (workdir / run_format.FORMAT_FILENAME).write_text(json.dumps(marker))


def _lock_of(pid: int, host: str | None = None, **fields) -> bytes:
    now = time.time()
    holder = run_lock.Holder(
        host=host or socket.gethostname(),
        pid=pid,
        pid_start=fields.pop("pid_start", None),
        started=now,
        heartbeat=fields.pop("heartbeat", now),
        token=fields.pop("token", uuid.uuid4().hex),
    )
    return holder.to_bytes()


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message, message
    return message


# --------------------------------------------------------------------------- format version
def test_a_newer_format_is_refused_before_anything_is_read_or_written(tmp_path, mnist_small):
    _write_format(tmp_path, run_format.FORMAT_VERSION + 1)
    (tmp_path / "lineage.jsonl").write_text("a line a newer format may write\n")
    with pytest.raises(run_format.RunFormatError) as refused:
        small_evolution(tmp_path, mnist_small)  # before the lineage is parsed
    message = _one_line(refused.value)
    assert str(tmp_path) in message
    assert "format 2 (a newer format, written by tf_evosyn 9.0.0)" in message
    assert "reads format 1" in message and "use a new --workdir" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lineage.jsonl", "run_format.json"]


def test_the_binary_refuses_a_newer_format_in_one_line_before_writing_config(tmp_path):
    _write_format(tmp_path, 7)
    with pytest.raises(RunDirectoryError, match=r"format 7 .*reads format 1 only: use a new"):
        run_classification(load_config_file(str(SMOKE)), tmp_path)
    assert not (tmp_path / "config.json").exists() and not (tmp_path / LOCK).exists()


@pytest.mark.parametrize(
    ("version", "message"),
    [(0, "format 0 \\(an older format"), ("1", "records format_version '1', not an integer")],
)
def test_an_unknown_format_is_refused(tmp_path, version, message):
    _write_format(tmp_path, version)
    with pytest.raises(run_format.RunFormatError, match=message):
        RunDirectory(tmp_path)
    (tmp_path / run_format.FORMAT_FILENAME).write_text("{not json")
    with pytest.raises(run_format.RunFormatError, match="is not a run format marker"):
        RunDirectory(tmp_path)


def test_a_session_records_the_format_of_a_new_directory(tmp_path):
    with RunDirectory(tmp_path / "run").writing():
        assert run_format.recorded_version(tmp_path / "run") == run_format.FORMAT_VERSION
    marker = json.loads((tmp_path / "run" / run_format.FORMAT_FILENAME).read_text())
    assert marker["format_version"] == 1 and marker["written_by"].startswith("tf_evosyn ")


# --------------------------------------------------------------------------- the lock
def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    script = textwrap.dedent(
        f"""
        from tf_evosyn.loop import run_lock
        with run_lock.hold({str(tmp_path)!r}):
            print("acquired")
        """
    )
    with run_lock.hold(tmp_path):
        second = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (tmp_path / LOCK).is_file()
    assert second.returncode != 0 and "acquired" not in second.stdout
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("tf_evosyn.loop.run_lock.RunLockError: ")
    assert f"{tmp_path} is in use by another run: pid {os.getpid()}" in last
    assert f"on host {socket.gethostname()}, started " in last
    assert f"wait for it to finish (or stop it: kill {os.getpid()})" in last
    assert not (tmp_path / LOCK).exists(), "released when the holder's block ends"


def test_the_binary_fails_at_once_on_a_directory_in_use(tmp_path, datasets_dir):
    workdir = tmp_path / "run"
    with run_lock.hold(workdir):
        start = time.time()
        result = run_binary(
            binary_command("evolve_classification", SMOKE, workdir),
            datasets_dir,
            check=False,
            timeout=300,
        )
        seconds = time.time() - start
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"evosyn-classify: error: {workdir} is in use by another run: pid ")
    assert "Traceback" not in result.stderr
    assert not (workdir / "config.json").exists() and not (workdir / "runtime.json").exists()
    assert seconds < 120, "refused before any data is read or trained on"


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, caplog):
    dead = _dead_pid()
    (tmp_path / LOCK).write_bytes(_lock_of(dead))
    with run_lock.hold(tmp_path) as lock:
        assert json.loads((tmp_path / LOCK).read_text())["token"] == lock.holder.token
    assert f"is no longer running on {socket.gethostname()}" in caplog.text
    assert f"pid {dead}" in caplog.text
    assert not (tmp_path / LOCK).exists()
    assert [p.name for p in tmp_path.iterdir()] == [], "the stale lock is gone, not set aside"


def test_a_reused_pid_counts_as_dead_but_a_live_holder_does_not(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        real_start = run_lock._process_start(sleeper.pid)
        assert real_start is not None  # Linux: /proc/PID/stat
        (tmp_path / LOCK).write_bytes(_lock_of(sleeper.pid, pid_start=real_start))
        with pytest.raises(run_lock.RunLockError, match=f"pid {sleeper.pid} on host"):
            with run_lock.hold(tmp_path):
                pass
        assert (tmp_path / LOCK).is_file(), "a live holder's lock is left alone"
        # The same pid with another start time: the holder died and its pid was reused.
        (tmp_path / LOCK).write_bytes(_lock_of(sleeper.pid, pid_start=real_start - 1))
        with run_lock.hold(tmp_path):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_holder_on_another_host_is_not_taken_over(tmp_path):
    (tmp_path / LOCK).write_bytes(_lock_of(_dead_pid(), host="gpu-box-7"))
    with pytest.raises(run_lock.RunLockError) as refused:
        with run_lock.hold(tmp_path):
            pass
    message = _one_line(refused.value)
    assert "on host gpu-box-7" in message
    assert f"if that process is dead remove {tmp_path / LOCK}" in message


def test_an_unreadable_lock_is_refused_naming_the_file(tmp_path):
    (tmp_path / LOCK).write_text("garbage")
    old = time.time() - 60
    os.utime(tmp_path / LOCK, (old, old))
    with pytest.raises(run_lock.RunLockError, match=f"remove {tmp_path / LOCK} and run again"):
        with run_lock.hold(tmp_path):
            pass


def test_the_lock_is_released_on_an_exception_and_reentrant(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunDirectory(tmp_path).writing() as run_dir:
            with run_dir.writing():  # the binaries' hold, then Evolution.run's
                assert (tmp_path / LOCK).is_file()
            assert (tmp_path / LOCK).is_file(), "the inner block does not release it"
            raise KeyboardInterrupt
    assert not (tmp_path / LOCK).exists()
    with RunDirectory(tmp_path).writing(chief=False):  # a non-chief worker takes no lock
        assert not (tmp_path / LOCK).exists()


def test_a_binary_run_holds_the_lock_and_reports_a_failed_write_in_one_line(tmp_path):
    def body(workdir, strategy, scale):
        assert (Path(workdir) / LOCK).is_file()
        path = Path(workdir) / "lineage.jsonl"
        with io_utils.naming_write_errors(path):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(io_utils.WriteError) as stopped:  # bin/_app.py prints it in one line
        run_with_strategy(load_config_file(str(SMOKE)), tmp_path, None, body)
    message = _one_line(stopped.value)
    assert message.startswith(f"cannot write {tmp_path / 'lineage.jsonl'}: No space left")
    assert not (tmp_path / LOCK).exists()


def _race(workdir: str, index: int, barrier, results) -> None:
    """Judge the lock stale with the others, then move it ``index`` tenths of a second later:
    the later racers find the first one's fresh lock where the stale one was."""
    take_over = run_lock.RunLock._take_over_local

    def late_take_over(self, stale, reason):
        time.sleep(0.1 * index)
        take_over(self, stale, reason)

    run_lock.RunLock._take_over_local = late_take_over  # in this forked child only
    barrier.wait()
    try:
        lock = run_lock.RunLock(workdir)
        lock._acquire_local()
        results.put(lock.holder.token)
    except run_lock.RunLockError:
        results.put(None)
    barrier.wait()  # a winner stays alive (its lock valid) until every racer has tried


def test_processes_taking_over_a_stale_lock_together_end_with_one_holder(tmp_path):
    (tmp_path / LOCK).write_bytes(_lock_of(_dead_pid()))
    context = multiprocessing.get_context("fork")  # the children never touch TensorFlow
    barrier, results = context.Barrier(4), context.Queue()
    racers = [
        context.Process(target=_race, args=(str(tmp_path), index, barrier, results))
        for index in range(4)
    ]
    for racer in racers:
        racer.start()
    tokens = [results.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
    winners = [t for t in tokens if t is not None]
    assert len(winners) == 1, tokens
    assert json.loads((tmp_path / LOCK).read_text())["token"] == winners[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK]


def test_the_heartbeat_notices_a_lock_taken_over_and_the_next_commit_stops(tmp_path):
    run_dir = RunDirectory(tmp_path)
    with run_lock.hold(tmp_path, heartbeat_seconds=0.05) as lock:
        other = _lock_of(12345, host="other-host")
        (tmp_path / LOCK).write_bytes(other)  # as a process that judged the lock expired
        deadline = time.time() + 30
        while lock.lost is None and time.time() < deadline:
            time.sleep(0.05)
        with pytest.raises(run_lock.RunLockError, match="lost its lock .* pid 12345 on host"):
            run_dir.commit_generation(None, {"generation": 0})
    assert (tmp_path / LOCK).read_bytes() == other, "the other process's lock is left alone"


def test_a_lease_on_an_object_store(caplog):
    workdir = f"ram://evosyn-tests/{uuid.uuid4().hex}/run"
    path = fs.join(workdir, LOCK)
    fs.write_bytes(path, _lock_of(4242, host="other-host"))  # fresh heartbeat: in use
    with pytest.raises(run_lock.RunLockError) as refused:
        with run_lock.hold(workdir, settle_seconds=0):
            pass
    assert "pid 4242 on host other-host" in str(refused.value)
    assert "its lease expires" in str(refused.value)
    stale = time.time() - run_lock.LEASE_SECONDS - 5
    fs.write_bytes(path, _lock_of(4242, host="other-host", heartbeat=stale))
    with run_lock.hold(workdir, settle_seconds=0, heartbeat_seconds=0.05) as lock:
        first = json.loads(fs.read_text(path))
        assert first["token"] == lock.holder.token
        time.sleep(0.3)
        assert json.loads(fs.read_text(path))["heartbeat"] > first["heartbeat"], "renewed"
    assert "its lease expired" in caplog.text
    assert not fs.exists(path)


# --------------------------------------------------------------------------- real runs
def _evolution(workdir: Path, data) -> Evolution:
    return small_evolution(workdir, data, max_attempts=1)


def _run(workdir: Path, data) -> list[dict]:
    keras.utils.set_random_seed(0)
    return _evolution(workdir, data).run(lenet5(), ancestor_epochs=1)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, mnist_small):
    """An uninterrupted run: the lineage every faulted and resumed run must end with."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    return workdir, _run(workdir, mnist_small)


def test_a_directory_from_before_the_format_marker_gains_it_untouched(tmp_path):
    (tmp_path / "config.json").write_text('{"seed": 0}\n')
    with RunDirectory(tmp_path).writing():
        pass
    assert run_format.recorded_version(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "run_format.json"]
    assert (tmp_path / "config.json").read_text() == '{"seed": 0}\n'


@pytest.mark.slow  # the reference run, then one generation, on real MNIST (about a minute)
def test_a_directory_from_before_the_format_marker_resumes(reference_run, tmp_path, mnist_small):
    workdir = tmp_path / "old"
    shutil.copytree(reference_run[0], workdir)
    # Written before this change, killed after generation 1: no marker, no generation 2.
    (workdir / run_format.FORMAT_FILENAME).unlink()
    lines = (workdir / "lineage.jsonl").read_text().splitlines(keepends=True)
    (workdir / "lineage.jsonl").write_text("".join(lines[:2]))
    shutil.rmtree(workdir / "generations" / "gen_0002")
    shutil.rmtree(workdir / "candidates" / "gen_0002")
    records = _evolution(workdir, mnist_small).run()
    assert without_timing(records) == without_timing(reference_run[1])
    assert run_format.recorded_version(workdir) == run_format.FORMAT_VERSION
    assert not (workdir / LOCK).exists()


@pytest.mark.slow  # a whole run on real MNIST (about a minute on two shared cores)
def test_a_full_disk_or_denied_write_at_a_commit_stops_cleanly_and_resumes(
    reference_run, tmp_path, mnist_small, monkeypatch
):
    workdir = tmp_path / "run"
    gen2 = workdir / "generations" / "gen_0002"

    # 1. The disk fills up while generation 2's checkpoint is written (as model.save reports
    #    it: ENOSPC without a path).
    real_save = run_dir_lib.save_model

    def save_fills_the_disk(model, path):
        if Path(path).name.startswith(".tmp-gen_0002"):
            (Path(path) / "model.keras").write_bytes(b"half a model")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(model, path)

    monkeypatch.setattr(run_dir_lib, "save_model", save_fills_the_disk)
    with pytest.raises(io_utils.WriteError) as stopped:
        _run(workdir, mnist_small)
    message = _one_line(stopped.value)
    assert message.startswith(f"cannot write {gen2}: No space left on device [ENOSPC]; free ")
    assert "run the same command again" in message
    assert Lineage(workdir).last_generation == 1, "generation 2 is not committed"
    assert not gen2.exists()
    assert not [p for p in gen2.parent.iterdir() if p.name.startswith(".tmp-")], "no temp left"
    assert not (workdir / LOCK).exists(), "the lock is released on the error"
    monkeypatch.setattr(run_dir_lib, "save_model", real_save)

    # 2. The rerun finds generation 2's checkpoint written but its lineage line refused.
    real_mkstemp = tempfile.mkstemp

    def lineage_denied(*args, prefix="", **kwargs):
        if prefix.startswith(".tmp-lineage.jsonl"):
            raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))
        return real_mkstemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(io_utils.tempfile, "mkstemp", lineage_denied)
    with pytest.raises(io_utils.WriteError) as denied:
        _evolution(workdir, mnist_small).run()
    message = _one_line(denied.value)
    assert message.startswith(f"cannot write {workdir / 'lineage.jsonl'} ({workdir}): ")
    assert f"Permission denied [EACCES]; make {workdir} writable" in message
    assert Lineage(workdir).last_generation == 1 and gen2.is_dir()
    monkeypatch.setattr(io_utils.tempfile, "mkstemp", real_mkstemp)

    # 3. The fault is gone: the same run resumes and ends as the uninterrupted one.
    records = _evolution(workdir, mnist_small).run()
    assert without_timing(records) == without_timing(reference_run[1])
    assert without_timing(Lineage(workdir).records) == without_timing(reference_run[1])
    assert json.loads((workdir / "status.json").read_text())["state"] == "finished"
    assert not (workdir / LOCK).exists()
