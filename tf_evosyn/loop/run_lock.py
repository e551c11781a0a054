"""One writer per run directory: ``run.lock``, held by the process that runs the evolution.

Two processes started on the same ``--workdir`` by mistake would both redo and commit the same
generations, each overwriting the other's checkpoints and lineage. The first takes the lock; the
second fails at once with one line naming the holder (host, pid, start time) and what to do.

* Local disk (and shared POSIX filesystems): the lock file is created with
  ``os.open(O_CREAT | O_EXCL)``, so exactly one process creates it. A lock whose holder is dead
  (same host, pid gone, or reused by another process) is taken over with a warning, by renaming
  it away first so that two processes taking over at once cannot both win. A holder on another
  host cannot be checked: the message says how to remove its lock.
* Object stores (``gs://``, ``s3://``, ``ram://``: no exclusive create through ``tf.io.gfile``):
  a best-effort lease. The holder rewrites the lock every :data:`_HEARTBEAT_SECONDS`; a lock whose
  heartbeat is older than :data:`LEASE_SECONDS` (or whose holder is a dead pid on this host) is
  taken over. A newcomer writes its lock, waits :data:`_SETTLE_SECONDS` and reads it back, so
  of two processes started together the last writer wins; one started while the other is inside
  that window can still win too, and then the loser's heartbeat sees the foreign lock and the
  loser stops at its next commit (:func:`check_held`) instead of overwriting the winner.

The lock is reentrant within a thread: the binaries take it before writing ``config.json`` and
:meth:`tf_evosyn.loop.evolution.Evolution.run` takes it again. Multi-worker runs: only the chief
writes the run directory, so only the chief takes it (see ``tf_evosyn/runs/common.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from absl import logging

from tf_evosyn.storage import fs, io_utils

__all__ = ["LOCK_FILENAME", "Holder", "RunLock", "RunLockError", "check_held", "hold"]

LOCK_FILENAME = "run.lock"
_HEARTBEAT_SECONDS = 30.0
LEASE_SECONDS = 180.0  # object stores: a heartbeat older than this means the holder is gone
_SETTLE_SECONDS = 2.0  # object stores: how long a newcomer waits before reading its lock back
_UNWRITTEN_GRACE_SECONDS = 10.0  # a local lock created an instant ago may still be empty


class RunLockError(io_utils.RunDirectoryError, RuntimeError):
    """The run directory is held by another process (or this one lost it)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: what the lock file records."""

    host: str
    pid: int
    pid_start: int | None  # the process's start in clock ticks after boot (Linux), or None
    started: float  # seconds since the epoch
    heartbeat: float
    token: str  # unique per acquisition
    command: str = ""

    @classmethod
    def of_this_process(cls) -> Holder:
        now = time.time()
        return cls(
            host=socket.gethostname(),
            pid=os.getpid(),
            pid_start=_process_start(os.getpid()),
            started=now,
            heartbeat=now,
            token=secrets.token_hex(8),
            command=" ".join(sys.argv)[:300],
        )

    def to_bytes(self) -> bytes:
        return io_utils.dumps_json(asdict(self)).encode("utf-8")

    def describe(self, heartbeat_age: float) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started))
        return (
            f"pid {self.pid} on host {self.host}, started {started} "
            f"(last heartbeat {max(heartbeat_age, 0.0):.0f} s ago)"
        )


def _parse(text: str) -> Holder | None:
    try:
        fields = json.loads(text)
        return Holder(**{k: fields[k] for k in Holder.__dataclass_fields__ if k in fields})
    except (ValueError, TypeError, AttributeError):
        return None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/PID/stat`` (state first), None without procfs or process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # the command name may hold spaces


def _process_start(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


# Locks held by this process: absolute lock path -> (lock, owning thread).
_HELD: dict[str, tuple[RunLock, int]] = {}
_REGISTRY = threading.Lock()


def _pid_alive(holder: Holder) -> bool:
    """Is the holder (on this host) still running? A reused pid counts as dead."""
    if holder.pid == os.getpid():
        with _REGISTRY:
            return any(lock.holder.token == holder.token for lock, _ in _HELD.values())
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    fields = _proc_stat(holder.pid)
    if fields is None:
        return True
    if fields[0] == "Z":  # a zombie: dead, not yet reaped
        return False
    return holder.pid_start is None or _process_start(holder.pid) == holder.pid_start


class RunLock:
    """The lock of one run directory; :func:`hold` is the way to use it."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        heartbeat_seconds: float | None = None,
        lease_seconds: float | None = None,
        settle_seconds: float | None = None,
    ):
        self.workdir = fs.path(workdir)
        self.path = fs.join(self.workdir, LOCK_FILENAME)
        self.remote = fs.is_remote(self.path)
        self.heartbeat_seconds = heartbeat_seconds or _HEARTBEAT_SECONDS
        self.lease_seconds = lease_seconds or LEASE_SECONDS
        self.settle_seconds = _SETTLE_SECONDS if settle_seconds is None else settle_seconds
        self.holder = Holder.of_this_process()
        self.lost: str | None = None  # why, once another process took the lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading ---------------------------------------------------------------------------------
    def _read(self) -> tuple[Holder | None, str | None]:
        """(holder, text) of the lock file; (None, None) if there is none."""
        try:
            text = fs.read_text(self.path)
        except FileNotFoundError:
            return None, None
        except Exception:  # tf.errors.NotFoundError on object stores
            if fs.exists(self.path):
                raise
            return None, None
        return _parse(text), text

    def _heartbeat_age(self, holder: Holder) -> float:
        if not self.remote:
            with contextlib.suppress(OSError):
                return time.time() - os.stat(self.path).st_mtime  # renewed by os.utime
        return time.time() - holder.heartbeat

    def _stale(self, holder: Holder) -> str | None:
        """Why ``holder``'s lock may be taken over, None if it may not."""
        if holder.host == socket.gethostname() and not _pid_alive(holder):
            return f"pid {holder.pid} is no longer running on {holder.host}"
        age = self._heartbeat_age(holder)
        if self.remote and age > self.lease_seconds:
            return f"its lease expired (no heartbeat for {age:.0f} s > {self.lease_seconds:.0f} s)"
        return None

    def _busy(self, holder: Holder | None) -> RunLockError:
        if holder is None:
            return RunLockError(f"{self.workdir} is being locked by another process; run again.")
        age = self._heartbeat_age(holder)
        if holder.host == socket.gethostname():
            proceed = f"wait for it to finish (or stop it: kill {holder.pid})"
        else:
            proceed = f"wait for it to finish, or if that process is dead remove {self.path}"
            if self.remote:
                proceed += f" (its lease expires {max(self.lease_seconds - age, 0):.0f} s after"
                proceed += " its last heartbeat)"
        return RunLockError(
            f"{self.workdir} is in use by another run: {holder.describe(age)}; {proceed}, "
            "then run again."
        )

    def _unreadable(self, text: str) -> RunLockError:
        return RunLockError(
            f"{self.path} is not a lock this tf_evosyn can read ({text[:60]!r}); if no run is "
            f"using {self.workdir}, remove {self.path} and run again."
        )

    # -- taking and giving back ------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLockError` naming its holder."""
        fs.makedirs(self.workdir)
        with io_utils.naming_write_errors(self.path):
            if self.remote:
                self._acquire_lease()
            else:
                self._acquire_local()
        self._thread = threading.Thread(target=self._beat, name="run-lock", daemon=True)
        self._thread.start()

    def _acquire_local(self) -> None:
        for _ in range(100):
            if self._create_local():
                return
            holder, text = self._read()
            if text is None:
                continue  # released in the meantime
            if holder is None:
                if self._file_age() < _UNWRITTEN_GRACE_SECONDS:
                    time.sleep(0.1)  # created an instant ago, its content not written yet
                    continue
                raise self._unreadable(text)
            reason = self._stale(holder)
            if reason is None:
                raise self._busy(holder)
            self._take_over_local(holder, reason)
        raise self._busy(None)

    def _create_local(self) -> bool:
        """Create the lock file with this process's holder; False if it exists."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.holder.to_bytes())
                f.flush()
                os.fsync(f.fileno())
        except BaseException:  # e.g. a full disk: leave no empty lock behind
            os.unlink(self.path)
            raise
        io_utils.fsync_dir(Path(self.path).parent)
        return True

    def _file_age(self) -> float:
        try:
            return time.time() - os.stat(self.path).st_mtime
        except OSError:
            return 0.0

    def _take_over_local(self, stale: Holder, reason: str) -> None:
        """Move the stale lock away (atomic: of two processes only one moves it); if what was
        moved is not the stale lock any more, it is a live one: put it back."""
        moved = Path(self.path).with_name(f"{LOCK_FILENAME}.stale-{secrets.token_hex(4)}")
        try:
            os.rename(self.path, moved)
        except FileNotFoundError:
            return  # another process moved it first; the caller tries again
        moved_holder = _parse(moved.read_text())
        if moved_holder is None or moved_holder.token != stale.token:
            os.replace(moved, self.path)
            return
        moved.unlink()
        self._warn_take_over(stale, reason)

    def _warn_take_over(self, stale: Holder, reason: str) -> None:
        logging.warning(
            "Taking over the lock of %s from %s: %s.",
            self.workdir,
            stale.describe(self._heartbeat_age(stale)),
            reason,
        )

    def _acquire_lease(self) -> None:
        holder, text = self._read()
        if text is not None:
            if holder is None:
                raise self._unreadable(text)
            reason = self._stale(holder)
            if reason is None:
                raise self._busy(holder)
            self._warn_take_over(holder, reason)
        fs.write_bytes(self.path, self.holder.to_bytes())
        time.sleep(self.settle_seconds)
        winner, _ = self._read()
        if winner is None or winner.token != self.holder.token:
            raise self._busy(winner)

    def _beat(self) -> None:
        """Renew the heartbeat until released; notice a lock taken by another process."""
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                current, text = self._read()
                if text is None:  # removed by hand while this run holds it: take it back
                    logging.warning("%s was removed while this run holds it.", self.path)
                    if not self.remote:
                        self._create_local()  # exclusive: a newcomer's lock is seen next beat
                        continue
                elif current is None or current.token != self.holder.token:
                    other = current.describe(self._heartbeat_age(current)) if current else text
                    self.lost = (
                        f"{self.workdir}: this run lost its lock {self.path} to {other}; it "
                        "stops before writing more. Let that run finish, or stop it and run "
                        "this one again."
                    )
                    logging.error("%s", self.lost)
                    return
                if self.remote:
                    self.holder = replace(self.holder, heartbeat=time.time())
                    fs.write_bytes(self.path, self.holder.to_bytes())
                else:
                    os.utime(self.path)
            except Exception as error:  # a failed heartbeat must not end the run
                logging.warning("Could not renew the lock %s: %s", self.path, error)

    def check(self) -> None:
        """Raise :class:`RunLockError` if another process took this lock over."""
        if self.lost is not None:
            raise RunLockError(self.lost)

    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still this process's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        try:
            current, _ = self._read()
            if current is not None and current.token == self.holder.token:
                fs.remove(self.path)
        except Exception as error:  # never hide the exception that ended the run
            logging.warning("Could not remove the lock %s: %s", self.path, error)


def _key(workdir: str | os.PathLike[str]) -> str:
    return fs.absolute(fs.join(workdir, LOCK_FILENAME))


@contextlib.contextmanager
def hold(workdir: str | os.PathLike[str], **options: float) -> Iterator[RunLock]:
    """Hold ``workdir``'s lock for the ``with`` block, released also on exceptions.

    Reentrant in the thread that holds it; ``options``: see :class:`RunLock`.
    """
    key = _key(workdir)
    with _REGISTRY:
        held = _HELD.get(key)
    if held is not None and held[1] == threading.get_ident():
        yield held[0]
        return
    lock = RunLock(workdir, **options)
    lock.acquire()
    with _REGISTRY:
        _HELD[key] = (lock, threading.get_ident())
    try:
        yield lock
    finally:
        with _REGISTRY:
            _HELD.pop(key, None)
        lock.release()


def check_held(workdir: str | os.PathLike[str]) -> None:
    """Before a commit: raise :class:`RunLockError` if this process held ``workdir``'s lock and
    lost it to another process (no-op if it does not hold it)."""
    with _REGISTRY:
        held = _HELD.get(_key(workdir))
    if held is not None:
        held[0].check()
