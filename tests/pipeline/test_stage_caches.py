"""The cost of one more source: a stage opens only what changed; the rest comes from its stat cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dynosaur.pipeline import organize
from tests.pipeline.test_organize_stage import GOOD, Project


def age(root: Path) -> None:
    """Every file under root as if written a minute ago."""
    past = time.time_ns() - 60_000_000_000
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(past, past))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    return Project(tmp_path)


def test_organize_opens_nothing_of_an_unchanged_source(project: Project, monkeypatch: pytest.MonkeyPatch):
    for name in ("a", "b", "c"):
        project.source(name, GOOD)
    first = project.run()
    age(project.root)
    second = project.run()  # fills the cache: every file is old enough to vouch for now
    assert second == {
        **first,
        "tasks_organized": 0,
        "tasks_reused": 3,
        "rows_seen": 0,
        "dropped_duplicate": 0,
    }

    opened: list[str] = []
    real_read_model, real_fingerprint = organize.read_model, organize.existing_fingerprint
    monkeypatch.setattr(organize, "read_model", lambda p, m: opened.append(str(p)) or real_read_model(p, m))
    monkeypatch.setattr(
        organize, "existing_fingerprint", lambda p: opened.append(str(p)) or real_fingerprint(p)
    )
    assert project.run() == second
    assert opened == []

    # One more source: only its files are opened; the others still come from the cache.
    project.source("d", GOOD)
    metrics = project.run()
    assert metrics["tasks_organized"] == 1 and metrics["tasks_reused"] == 3 and metrics["instances"] == 12
    assert opened and {source_of(Path(p)) for p in opened} == {"d"}

    # A removed shard is noticed, and only its source is opened.
    age(project.root)
    project.run()  # every stamp changed: everything is checked once more, and cached
    opened.clear()
    shard = next((project.args.out / "b").glob("*.parquet"))
    shard.unlink()
    metrics = project.run()
    assert metrics["tasks_organized"] == 1 and metrics["instances"] == 12
    assert {source_of(Path(p)) for p in opened} == {"b"}


def source_of(path: Path) -> str:
    """`tasks/b.json`, `collected/b.json` and `corpus/b/<task>.parquet` are all source b's."""
    return path.stem if path.suffix == ".json" else path.parent.name
