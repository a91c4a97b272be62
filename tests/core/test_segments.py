"""Per-source records in hash-bucketed segments (dynosaur.core.segments), and a stage's memory of them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from dynosaur.core.errors import RecordError
from dynosaur.core.io import write_json
from dynosaur.core.records import FilteredSource
from dynosaur.core.segments import SEGMENTS, RecordFolder, RecordRef, segment_name
from dynosaur.core.statcache import StatCache


def verdicts(source_id: str, fingerprint: str = "f") -> FilteredSource:
    return FilteredSource(source_id=source_id, fingerprint=fingerprint, tasks=[])


def written(folder: Path, ids: list[str]) -> RecordFolder[FilteredSource]:
    records = RecordFolder(folder, FilteredSource)
    for sid in ids:
        records.put(verdicts(sid))
    records.flush()
    return records


def age(folder: Path) -> None:
    """Date every file back a minute (a file written just now is too fresh for a stat cache to vouch for)."""
    past = time.time_ns() - 60_000_000_000
    for path in folder.iterdir():
        os.utime(path, ns=(past, past))


def test_thousands_of_records_take_at_most_256_files_and_read_back(tmp_path: Path):
    ids = [f"src-{i:04d}" for i in range(3000)]
    written(tmp_path / "tasks", ids)
    files = sorted(p.name for p in (tmp_path / "tasks").iterdir())
    assert len(files) == SEGMENTS and all(f.endswith(".jsonl") for f in files)
    again = RecordFolder(tmp_path / "tasks", FilteredSource)
    assert again.ids() == ids
    assert again["src-1234"] == verdicts("src-1234") and again.get("src-9999") is None
    # a segment's lines: canonical JSON, one record each, sorted by source id
    lines = (tmp_path / "tasks" / segment_name("src-1234")).read_text().splitlines()
    assert [json.loads(line)["source_id"] for line in lines] == sorted(
        json.loads(line)["source_id"] for line in lines
    )
    assert all(segment_name(json.loads(line)["source_id"]) == segment_name("src-1234") for line in lines)


def test_one_more_record_rewrites_one_segment(tmp_path: Path):
    folder = tmp_path / "tasks"
    written(folder, [f"src-{i:04d}" for i in range(1000)])
    before = {p.name: p.stat().st_ino for p in folder.iterdir()}
    records = RecordFolder(folder, FilteredSource)
    records.put(verdicts("src-1000"))
    records.put(verdicts("src-0001"))  # unchanged: no write
    records.flush()
    after = {p.name: p.stat().st_ino for p in folder.iterdir()}
    assert {n for n in after if after[n] != before.get(n)} == {segment_name("src-1000")}


def test_removing_the_last_record_of_a_segment_deletes_it(tmp_path: Path):
    folder = tmp_path / "tasks"
    records = written(folder, ["a", "b"])
    records.remove(["a"])
    records.flush()
    assert not (folder / segment_name("a")).exists() or segment_name("a") == segment_name("b")
    assert RecordFolder(folder, FilteredSource).ids() == ["b"]


def test_the_id_index_spares_unchanged_segments_and_notices_a_changed_one(tmp_path: Path):
    folder = tmp_path / "tasks"
    written(folder, ["a", "b", "c"])
    index = tmp_path / ".dyno-cache" / "segments" / "tasks.json"
    assert RecordFolder(folder, FilteredSource).ids() == ["a", "b", "c"]
    assert not index.exists()  # segments written just now: not vouched for yet
    age(folder)
    assert RecordFolder(folder, FilteredSource).ids() == ["a", "b", "c"]
    # the index says what each unchanged segment holds: a lie in it is believed while the stamp matches ...
    data = json.loads(index.read_text())
    data[segment_name("a")][1] = ["a", "zz"]
    index.write_text(json.dumps(data))
    assert "zz" in RecordFolder(folder, FilteredSource).ids()
    # ... and a rewritten segment is read again
    records = RecordFolder(folder, FilteredSource)
    records.put(verdicts("a", fingerprint="g"))
    records.flush()
    assert RecordFolder(folder, FilteredSource).ids() == ["a", "b", "c"]


def test_a_damaged_segment_is_one_line_naming_it(tmp_path: Path):
    folder = tmp_path / "tasks"
    written(folder, ["a"])
    path = folder / segment_name("a")
    path.write_text(path.read_text()[:20])
    with pytest.raises(RecordError, match=rf"{segment_name('a')}:1: not a FilteredSource record line"):
        RecordFolder(folder, FilteredSource).get("a")
    path.write_text(json.dumps({"source_id": "a", "tasks": "many"}) + "\n")
    with pytest.raises(RecordError, match="a: not a valid FilteredSource record"):
        RecordFolder(folder, FilteredSource).get("a")


def test_a_folder_of_one_file_per_record_is_read_and_then_migrated(tmp_path: Path):
    folder = tmp_path / "tasks"
    for sid in ("a", "b"):
        write_json(folder / f"{sid}.json", verdicts(sid))
    records = RecordFolder(folder, FilteredSource)
    assert records.ids() == ["a", "b"] and records["a"] == verdicts("a")
    assert records.segment("a") == folder / "a.json"
    assert records.migrate() == 2
    assert sorted(p.suffix for p in folder.iterdir()) == [".jsonl"] * len(
        {segment_name("a"), segment_name("b")}
    )
    again = RecordFolder(folder, FilteredSource)
    assert again.ids() == ["a", "b"] and again["b"] == verdicts("b")
    assert again.segment("a") == folder / segment_name("a")


def test_a_memory_survives_a_neighbours_write_but_not_its_own(tmp_path: Path):
    """A record's segment rewritten for another source: the memory hashes the record's line and holds; the
    record itself rewritten: it misses."""
    folder = tmp_path / "tasks"
    # two ids in one segment
    first = "s0"
    neighbour = next(f"s{i}" for i in range(1, 10_000) if segment_name(f"s{i}") == segment_name(first))
    records = written(folder, [first])
    age(folder)
    cache = StatCache("filter", "salt", beside=folder)
    cache.put(first, [RecordRef(records, first)], {"valid": 1})
    cache.save()

    records = RecordFolder(folder, FilteredSource)
    records.put(verdicts(neighbour))
    records.flush()
    again = StatCache("filter", "salt", beside=folder)
    assert again.get(first, [RecordRef(RecordFolder(folder, FilteredSource), first)]) == {"valid": 1}

    records = RecordFolder(folder, FilteredSource)
    records.put(verdicts(first, fingerprint="changed"))
    records.flush()
    assert (
        StatCache("filter", "salt", beside=folder).get(
            first, [RecordRef(RecordFolder(folder, FilteredSource), first)]
        )
        is None
    )
