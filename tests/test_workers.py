"""tests/workers.py: on two xdist workers an `alone` test shares the machine with no other test, and the
tests of a module fixture run on one worker, which builds it once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INNER = """
import os, time
from pathlib import Path
import pytest

LOG = Path(os.environ["WORKERS_LOG"])

def record(name):
    start = time.time()
    time.sleep(0.4)
    with open(LOG, "a") as fh:
        fh.write(f"{name} {os.environ['PYTEST_XDIST_WORKER']} {start} {time.time()}\\n")

@pytest.fixture(scope="module")
def built():
    record("built")

@pytest.mark.alone
def test_hog():
    record("hog")

@pytest.mark.parametrize("i", range(8))
def test_other(i):
    record(f"other{i}")

@pytest.mark.parametrize("i", range(3))
def test_shared(built, i):
    record(f"shared{i}")
"""


def test_an_alone_test_runs_with_nothing_alongside_and_a_module_fixture_is_built_once(tmp_path: Path):
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    log = tmp_path / "log"
    argv = [sys.executable, "-m", "pytest", "-p", "tests.workers", "-n", "2", "--dist", "loadgroup", "-q"]
    proc = subprocess.run(
        [*argv, "-p", "no:cacheprovider", "-p", "no:randomly", "test_inner.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "WORKERS_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [line.split() for line in log.read_text().splitlines()]
    spans = {name: (worker, float(start), float(end)) for name, worker, start, end in runs}
    assert len(runs) == len(spans) == 1 + 1 + 8 + 3  # the module fixture was built once

    def overlap(a: str, b: str) -> bool:
        return spans[a][1] < spans[b][2] and spans[b][1] < spans[a][2]

    others = [name for name in spans if name != "hog"]
    assert not [name for name in others if overlap("hog", name)]
    assert {spans[name][0] for name in spans} == {"gw0", "gw1"}  # the two workers both ran tests
    assert any(overlap(a, b) for a in others for b in others if a < b)  # and in parallel
    assert len({spans[name][0] for name in spans if name.startswith(("built", "shared"))}) == 1
