"""The registry lock: one writer at a time, who holds it said, a dead holder taken over."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynosaur.core.errors import LockHeld
from dynosaur.registry.lock import lock_path, registry_lock

# A second process that takes the lock, says so, then waits for `go` (or dies holding it, with "die").
HOLDER = """
import os, sys, time
from pathlib import Path
from dynosaur.registry.lock import registry_lock
root, signal = Path(sys.argv[1]), Path(sys.argv[2])
with registry_lock(root, "release", wait_s=0):
    print("held", flush=True)
    while not signal.exists():
        time.sleep(0.02)
    if signal.read_text() == "die":
        os._exit(137)
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    return tmp_path / "repo"


def hold(repo: Path, signal: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo), str(signal)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_the_lock_lives_in_the_git_directory(repo: Path):
    assert lock_path(repo) == (repo / ".git" / "dyno.lock").resolve()


def test_a_second_process_is_told_who_holds_the_lock(repo: Path, tmp_path: Path):
    signal = tmp_path / "go"
    holder = hold(repo, signal)
    try:
        started = time.monotonic()
        with pytest.raises(LockHeld) as err, registry_lock(repo, "release", wait_s=0.3):
            pass
        assert time.monotonic() - started >= 0.3  # it waited before giving up
        assert (err.value.pid, err.value.host) == (holder.pid, socket.gethostname())
        assert f"pid {holder.pid}" in str(err.value) and "dyno release" in str(err.value)
        assert "\n" not in str(err.value)
    finally:
        signal.write_text("go")
        assert holder.wait(10) == 0


def test_a_waiting_process_gets_the_lock_when_the_holder_finishes(repo: Path, tmp_path: Path):
    signal = tmp_path / "go"
    holder = hold(repo, signal)
    subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(0.3); open({str(signal)!r}, 'w')"])
    with registry_lock(repo, "release", wait_s=10) as lease:
        assert lease.stale is None  # the holder finished cleanly: nothing to recover
    assert holder.wait(10) == 0


def test_a_dead_holder_is_taken_over_and_named(repo: Path, tmp_path: Path):
    signal = tmp_path / "go"
    holder = hold(repo, signal)
    signal.write_text("die")
    assert holder.wait(10) == 137
    with registry_lock(repo, "release", wait_s=0) as lease:
        assert lease.stale is not None
        assert (lease.stale.pid, lease.stale.host, lease.stale.command) == (
            holder.pid,
            socket.gethostname(),
            "release",
        )
        lease.settle()
    with registry_lock(repo, "release", wait_s=0) as lease:
        assert lease.stale is None  # settled: the evidence is gone


def test_a_lease_that_did_not_settle_keeps_the_evidence(repo: Path, tmp_path: Path):
    """`verify` only looks: the next `dyno release` must still see that a holder died."""
    signal = tmp_path / "go"
    holder = hold(repo, signal)
    signal.write_text("die")
    holder.wait(10)
    with registry_lock(repo, "verify", wait_s=0) as lease:
        assert lease.stale is not None
    with registry_lock(repo, "release", wait_s=0) as lease:
        assert lease.stale is not None and lease.stale.pid == holder.pid


def test_the_lock_is_not_reentrant_across_processes_only(repo: Path):
    with registry_lock(repo, "release", wait_s=0):
        # another open file description in this process is another holder, as a second process would be
        with pytest.raises(LockHeld), registry_lock(repo, "release", wait_s=0):
            pass
