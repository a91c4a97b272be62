"""The cost of one more source: a stage opens only what changed; the rest comes from its stat cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dynosaur.core.segments import RecordFolder
from dynosaur.pipeline import organize
from tests.pipeline.test_organize_stage import GOOD, Project


def track_records(monkeypatch: pytest.MonkeyPatch, opened: list[str]) -> None:
    """Every record a stage parses (from any of its folders) appends its source id to `opened`."""
    real_get = RecordFolder.get

    def get(self: RecordFolder, source_id: str):
        record = real_get(self, source_id)
        if record is not None:
            opened.append(source_id)
        return record

    monkeypatch.setattr(RecordFolder, "get", get)


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
    # the corpus is unchanged: the same totals and breakdown; the run organized nothing
    assert (second.metrics, second.stats) == (first.metrics, first.stats)
    assert second.run == {
        **first.run,
        "tasks_organized": 0,
        "tasks_reused": 3,
        "rows_seen": 0,
        "dropped_duplicate": 0,
    }
    assert second.run["task_files_read"] == 3  # checked from the files once more, and cached

    opened: list[str] = []
    real_fingerprint = organize.existing_fingerprint
    track_records(monkeypatch, opened)
    monkeypatch.setattr(
        organize, "existing_fingerprint", lambda p: opened.append(str(p)) or real_fingerprint(p)
    )
    third = project.run()
    assert (third.metrics, third.stats) == (second.metrics, second.stats)
    assert third.run == {**second.run, "task_files_read": 0}
    assert opened == []

    # One more source: only its files are opened; the others still come from the cache.
    project.source("d", GOOD)
    out = project.run()
    assert (out.run["tasks_organized"], out.run["tasks_reused"], out.metrics["instances"]) == (1, 3, 12)
    assert opened and {source_of(Path(p)) for p in opened} == {"d"}

    # A removed shard is noticed, and only its source is opened.
    age(project.root)
    project.run()  # every stamp changed: everything is checked once more, and cached
    opened.clear()
    shard = next((project.args.out / "b").glob("*.parquet"))
    shard.unlink()
    out = project.run()
    assert out.run["tasks_organized"] == 1 and out.metrics["instances"] == 12
    assert {source_of(Path(p)) for p in opened} == {"b"}


def source_of(path: Path) -> str:
    """A record's source id as it is, and `corpus/b/<task>.parquet`: source b's."""
    return path.parent.name if path.suffix == ".parquet" else str(path)


def test_filter_judges_only_the_sources_whose_files_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import argparse

    import yaml

    from dynosaur.core.io import read_json, write_json
    from dynosaur.core.records import FilteredSource
    from dynosaur.pipeline import filter as filter_stage
    from tests.factories import make_generated, make_meta, make_proposal, make_spec

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"filter": {}}))
    (tmp_path / "retractions.jsonl").touch()
    args = argparse.Namespace(
        collected=tmp_path / "collected",
        generated=tmp_path / "generated",
        retractions=tmp_path / "retractions.jsonl",
        out=tmp_path / "tasks",
        metrics=tmp_path / "m.json",
        stats=tmp_path / "stats.json",
        run_log=tmp_path / "run.json",
        plot=tmp_path / "rejections.svg",
    )

    def add(source_id: str) -> None:
        write_json(args.collected / f"{source_id}.json", make_meta(source_id=source_id))
        proposal = make_proposal(
            make_spec(), make_spec(instruction="Copy the label.", input_fields=["label"])
        )
        write_json(args.generated / f"{source_id}.json", make_generated(proposal, source_id=source_id))

    def run() -> dict:
        """The totals, and this run's counters."""
        filter_stage.main(args)
        return {**read_json(args.metrics), **read_json(args.run_log)}

    for name in ("a", "b"):
        add(name)
    first = run()
    age(tmp_path)
    assert run() == {**first, "sources_judged": 0, "sources_reused": 2}  # fills the cache
    judged: list[str] = []
    real_judge = filter_stage.judge
    monkeypatch.setattr(
        filter_stage, "judge", lambda meta, *a: judged.append(meta.source_id) or real_judge(meta, *a)
    )
    opened: list[str] = []
    track_records(monkeypatch, opened)
    assert run() == {**first, "sources_judged": 0, "sources_reused": 2} and opened == []

    add("c")
    metrics = run()
    assert judged == ["c"] and set(opened) == {"c"}
    assert metrics["tasks"] == 3 * first["tasks"] // 2 and metrics["sources_judged"] == 1
    assert (RecordFolder(args.out, FilteredSource).raw("c") or {})["source_id"] == "c"


def test_collect_reads_and_hashes_only_the_new_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import argparse
    import json

    from dynosaur.core.io import read_json
    from dynosaur.pipeline import collect
    from tests.project import qa_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ledger").mkdir()
    args = argparse.Namespace(
        sources=tmp_path / "sources.yaml",
        lock=tmp_path / "sources.lock",
        retractions=tmp_path / "ledger/retractions.jsonl",
        out=tmp_path / "data/collected",
        metrics=tmp_path / "m.json",
        stats=tmp_path / "stats.json",
        run_log=tmp_path / "run.json",
    )
    ids: list[str] = []

    def add(source_id: str) -> None:
        qa_source(tmp_path, source_id, n=6)
        ids.append(source_id)
        sources = [{"id": s, "path": f"data/sources/{s}"} for s in ids]
        (tmp_path / "params.yaml").write_text(json.dumps({"sources": sources}))

    def run() -> dict:
        """The totals, and this run's counters."""
        collect.main(args)
        return {**read_json(args.metrics), **read_json(args.run_log)}

    add("a")
    add("b")
    first = run()
    age(tmp_path)
    assert run()["sources_reused"] == 2  # fills the cache
    touched: list[str] = []
    real_revision = collect.source_revision
    track_records(monkeypatch, touched)
    monkeypatch.setattr(collect, "source_revision", lambda s: touched.append(s.id) or real_revision(s))
    assert run() == {**first, "sources_read": 0, "sources_reused": 2} and touched == []

    add("c")
    metrics = run()
    assert set(touched) == {"c"} and metrics["sources_read"] == 1 and metrics["sources_reused"] == 2

    # An edited file is noticed: the source is hashed again (and, its content changed, read again).
    age(tmp_path)
    run()
    touched.clear()
    data = tmp_path / "data/sources/b/data/train.jsonl"
    data.write_text(data.read_text().replace("question number 1?", "question number one?"))
    metrics = run()
    assert set(touched) == {"b"} and metrics["sources_read"] == 1
