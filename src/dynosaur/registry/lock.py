"""One writer at a time: the registry lock around release, retract and recovery.

The lock is a file in the git directory (`.git/dyno.lock`, shared by every work tree of the repository, as
the tags are), held with `flock`. The kernel lets go of it when its holder dies, however it dies, so a
crashed holder never blocks anyone: the next process takes the lock over. The holder writes who it is into
the file (pid, host, command, start time) and empties it when done, so

- a second `dyno release` waits a little (`wait_s`), then says who holds the lock, and
- a process that gets the lock and finds a holder still written there knows that holder died mid-command:
  `Lease.stale` names it, and only then does `recover()` treat uncommitted ledger changes as debris.

So recovery never discards the records of a live holder (it cannot get the lock while one runs), nor
ledger edits nobody's crash left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from dynosaur.core.errors import LockHeld, NotReady

LOCK_NAME = "dyno.lock"
READ_WAIT_S = 2.0  # readers wait little: a release in progress only hides what it has not finished


def write_wait_s() -> float:
    """How long a second writer waits for the lock before saying who holds it: $DYNO_LOCK_WAIT_S, or 10 s."""
    try:
        return max(0.0, float(os.environ.get("DYNO_LOCK_WAIT_S", "10")))
    except ValueError:
        return 10.0


class Holder(BaseModel):
    pid: int
    host: str
    command: str
    started_at: str

    def describe(self) -> str:
        return f"`dyno {self.command}` (pid {self.pid} on {self.host}, since {self.started_at})"


class Lease(BaseModel):
    """What acquiring the lock found: the holder before us if it died while holding it.

    Until `settle()` says its debris was dealt with, a stale holder is written back when the lock is let
    go, so a command that only looks (`verify`) does not erase the evidence `recover()` relies on.
    """

    path: Path
    stale: Holder | None = None
    settled: bool = False

    def settle(self) -> None:
        self.settled = True


def lock_path(root: Path, name: str = LOCK_NAME) -> Path:
    """`<git common dir>/dyno.lock` (or another `name`); outside a git repository, `<root>/.dyno.lock`."""
    proc = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        return root / f".{name}"
    return (root / proc.stdout.strip()).resolve() / name


def _read(fd: int) -> Holder | None:
    data = os.pread(fd, 4096, 0)
    if not data.strip():
        return None
    try:
        return Holder.model_validate_json(data)
    except ValueError:
        return Holder(pid=0, host="?", command="?", started_at="?")  # a holder died mid-write


@contextlib.contextmanager
def registry_lock(
    root: Path, command: str, *, wait_s: float | None = None, name: str = LOCK_NAME
) -> Iterator[Lease]:
    """Hold the registry lock for the `with` block; LockHeld if another live process keeps it `wait_s`.
    Another `name` is another lock, held the same way (`dyno publish` holds one per Hub repo)."""
    path = lock_path(root, name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise NotReady(f"cannot open the registry lock {path}: {exc.strerror}") from exc
    try:
        deadline = time.monotonic() + (write_wait_s() if wait_s is None else wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read(fd)
                    who = holder.describe() if holder else "another dyno process"
                    raise LockHeld(
                        f"{who} holds the {'registry ' if name == LOCK_NAME else ''}lock ({path}): wait for it"
                        " to finish, then run again",
                        pid=holder.pid if holder else None,
                        host=holder.host if holder else None,
                    ) from None
                time.sleep(0.1)
        stale = _read(fd)
        me = Holder(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=command,
            started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me.model_dump()).encode(), 0)
        os.fsync(fd)
        lease = Lease(path=path, stale=stale)
        try:
            yield lease
        finally:
            # A clean exit leaves nobody's debris (the file stays: unlinking a locked file races).
            os.ftruncate(fd, 0)
            if lease.stale is not None and not lease.settled:
                os.pwrite(fd, json.dumps(lease.stale.model_dump()).encode(), 0)
    finally:
        os.close(fd)  # releases the flock
