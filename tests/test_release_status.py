"""`dvc status` stays clean after `dyno release` (issue 22): no stage depends on what a release writes.

A release appends to ledger/{sources,tasks,releases}.jsonl and adds ledger/manifests/vN.jsonl; a stage that
depends on any of them (or on ledger/ as a whole) shows as changed after every release. The continual stage
reads only releases named in params (immutable once cut) and the retractions, so that is all it depends on.
The journey of tests/test_dvc_journeys.py checks the same with the real `dvc status` after a real release.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from dynosaur.core.records import Release, SourceVersion, TaskVersion
from dynosaur.registry.ledger import FILES

ROOT = Path(__file__).resolve().parents[1]


def written_by_a_release() -> list[str]:
    return [f"ledger/{FILES[m]}" for m in (SourceVersion, TaskVersion, Release)] + [
        "ledger/manifests/v1.jsonl"
    ]


def test_no_stage_depends_on_what_a_release_writes():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    hits = [
        (name, dep, path)
        for name, stage in stages.items()
        for dep in stage.get("deps", [])
        for path in written_by_a_release()
        if path == dep or path.startswith(f"{dep.rstrip('/')}/")
    ]
    assert hits == []


def test_continual_still_depends_on_the_retractions():
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["continual"]["deps"]
    assert "ledger/retractions.jsonl" in deps
