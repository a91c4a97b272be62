"""SIGKILL at every step of a batch run (issue 20): submit, create, poll, download and the cache writes.

A subprocess runs `BatchRunner` with one step patched to SIGKILL the process just before or just after it;
an unkilled run then finishes the work. Afterwards: no request was in two created batches (nothing billed
twice), every request has its answer (nothing lost), and the call cache holds byte for byte what a run that
was never killed leaves (the corpus is a pure function of the cached answers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dynosaur.pipeline.batch_tracker import load_tracker
from dynosaur.testing.fake_batch import FakeBatchOpenAI
from dynosaur.testing.fake_openai import tasks_from_schema
from tests.pipeline.test_batch import DRIVER, SRC, run_batch

N, MAX_REQUESTS = 6, 2  # three batches of two

# Patches one step of the run to SIGKILL the process: `where` is `provider:<what>` (a call to the Batch API,
# named as in BatchRunner._provider) or `<Class>.<method>`; `nth` counts calls; `when` is before or after.
KILLER = """
import contextlib, os, signal, sys
from dynosaur.pipeline.batch import BatchRunner
from dynosaur.pipeline.llm import CallCache

where, nth, when = sys.argv.pop().rsplit(":", 2)
nth, seen = int(nth), [0]

def due():
    seen[0] += 1
    if seen[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)

if where.startswith("provider "):
    step, original = where.removeprefix("provider "), BatchRunner._provider

    @contextlib.contextmanager
    def provider(self, what):
        if what == step and when == "before":
            due()
        with original(self, what):
            yield
        if what == step and when == "after":
            due()

    BatchRunner._provider = provider
else:
    owner, name = where.split(".")
    cls = {"BatchRunner": BatchRunner, "CallCache": CallCache}[owner]
    original = getattr(cls, name)

    def patched(self, *args, **kwargs):
        if when == "before":
            due()
        result = original(self, *args, **kwargs)
        if when == "after":
            due()
        return result

    setattr(cls, name, patched)
"""

STEPS = [
    "BatchRunner._save:1:after",  # intents recorded, nothing uploaded
    "provider upload:1:before",
    "provider upload:1:after",  # an input file uploaded, no batch
    "provider create batch:1:before",
    "provider create batch:1:after",  # a batch created (billed), its id not recorded
    "BatchRunner._save:2:after",  # the first batch's id recorded
    "provider poll batch:1:after",
    "provider download results:1:before",
    "provider download results:1:after",  # results read, nothing cached
    "CallCache.put:1:after",  # half a batch cached
    "CallCache.put:2:after",  # a whole batch cached, still in the tracker
    "CallCache.put:5:after",  # the last batch half cached
    "BatchRunner._save:6:after",
]


def cache_files(root: Path) -> dict[str, bytes]:
    cache = root / "cache"
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*.json"))}


@pytest.fixture(scope="module")
def unkilled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("unkilled")
    with FakeBatchOpenAI(responder=tasks_from_schema, delay_s=0.3) as srv:
        _, results = run_batch(srv, root, N, max_requests=MAX_REQUESTS, poll_s=0.05)
    assert all(r.error is None and r.skipped is None for r in results.values())
    return cache_files(root)


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_any_step_bills_nothing_twice_and_loses_nothing(
    step: str, tmp_path: Path, unkilled: dict[str, bytes]
):
    with FakeBatchOpenAI(responder=tasks_from_schema, delay_s=0.3) as srv:
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        driver = KILLER + DRIVER
        argv = [sys.executable, "-c", driver, srv.base_url, str(tmp_path), str(N), str(MAX_REQUESTS), step]
        killed = subprocess.run(argv, env=env, capture_output=True, timeout=120)
        assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]

        runner, results = run_batch(srv, tmp_path, N, max_requests=MAX_REQUESTS, poll_s=0.05)
        assert srv.duplicates() == 0  # no request in two created batches: nothing billed twice
        assert all(r.error is None and r.skipped is None for r in results.values()), results
        assert load_tracker(tmp_path / "batches.json").batches == []
        created = [b["metadata"]["dynosaur_chunk"] for b in srv.batches.values()]
        assert len(created) == len(set(created))  # one batch per chunk
    assert cache_files(tmp_path) == unkilled  # byte for byte what an unkilled run caches
