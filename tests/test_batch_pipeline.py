"""End to end: `llm.mode: batch` under the real `dvc repro`, against the scripted Batch API server.

A run whose batch is still running exits 0 with one line, and the pipeline's other sources go through
filter and organize; the documented command then finishes the waiting source without submitting twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynosaur.testing.fake_batch import FakeBatchOpenAI
from dynosaur.testing.fake_openai import tasks_from_schema
from tests.project import Project

pytestmark = pytest.mark.integration


def test_a_waiting_batch_does_not_hold_back_other_sources_and_resumes(tmp_path: Path):
    with FakeBatchOpenAI(responder=tasks_from_schema) as srv:
        project = Project(tmp_path / "repo", srv.base_url)
        project.add_source("alpha")
        project.repro()  # synchronous: alpha's answers are in the call cache
        assert (
            srv.calls == 2
            and json.loads((project.root / "data/llm_batches.json").read_text())["batches"] == []
        )

        project.set("llm", mode="batch", batch={"wait_s": 0, "poll_s": 0.05})
        project.add_source("beta")
        srv.hold = True
        proc = project.repro()  # exit 0
        lines = [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("generate: waiting")]
        assert len(lines) == 1 and "(2 requests, 1 source(s) not written yet)" in lines[0]
        assert srv.batches_created == 1 and srv.calls == 2
        states = {s["source_id"]: s["status"] for s in project.status()["sources"]}
        assert states == {"alpha": "ok", "beta": "pending"}
        assert list((project.root / "data/corpus").glob("alpha/*.parquet"))
        assert not (project.root / "data/generated/beta.json").exists()
        tracker = json.loads((project.root / "data/llm_batches.json").read_text())
        assert [b["batch_id"] for b in tracker["batches"]] == list(srv.batches)

        srv.hold = False
        polls = srv.polls
        project.repro()  # nothing DVC tracks changed, so a plain repro skips generate: hence the -f below
        assert srv.polls == polls and not (project.root / "data/generated/beta.json").exists()
        project.run("dvc", "repro", "-f", "-s", "generate")  # the command the waiting line names
        project.repro()
        assert srv.batches_created == 1 and srv.duplicates() == 0 and srv.calls == 2
        states = {s["source_id"]: s["status"] for s in project.status()["sources"]}
        assert states == {"alpha": "ok", "beta": "ok"}
        assert list((project.root / "data/corpus").glob("beta/*.parquet"))
        assert json.loads((project.root / "data/llm_batches.json").read_text())["batches"] == []
        assert project.run_log("generate")["calls_made"] == 2


def test_the_first_repro_of_a_fresh_project_waiting_on_a_batch_exits_0(tmp_path: Path):
    """Issue 20, case 1: batch mode from the very first `dvc repro`, the batch still running at wait_s: exit 0
    and the waiting line, not exit 255 on a missing `data/llm_cache`; the documented command then finishes."""
    with FakeBatchOpenAI(responder=tasks_from_schema) as srv:
        project = Project(tmp_path / "repo", srv.base_url)
        project.set("llm", mode="batch", batch={"wait_s": 0, "poll_s": 0.05})
        project.add_source("alpha")
        srv.hold = True
        proc = project.repro()  # Project.repro asserts exit 0
        assert any(x.startswith("generate: waiting") for x in (proc.stdout + proc.stderr).splitlines())
        assert (project.root / "data/llm_cache").is_dir()
        srv.hold = False
        project.run("dvc", "repro", "-f", "-s", "generate")
        project.repro()
        assert list((project.root / "data/corpus").glob("alpha/*.parquet"))
        assert srv.batches_created == 1 and srv.duplicates() == 0
