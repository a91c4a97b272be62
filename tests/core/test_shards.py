"""`dynosaur.core.shards`: the corpus shard's path, columns, footer, and its write (temporary file, rename)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from dynosaur.core.records import INSTANCE_COLUMNS
from dynosaur.core.shards import (
    ShardWriter,
    footer,
    footer_counts,
    read_shard,
    schema,
    shard_digest,
    shard_fingerprint_of,
    shard_path,
    write_shard,
)


def table(n: int) -> pa.Table:
    rows = {c: [f"{c} {i}" for i in range(n)] for c in INSTANCE_COLUMNS if c != "row"}
    return pa.Table.from_pydict({**rows, "row": list(range(n))}, schema=schema())


def test_shard_path_is_source_then_task():
    assert shard_path("alpha", "0123456789abcdef") == "alpha/0123456789abcdef.parquet"


def test_a_written_shard_reads_back_with_its_footer(tmp_path: Path):
    path = tmp_path / shard_path("src", "t1")
    path.parent.mkdir()
    write_shard(path, table(3), fingerprint="fp", counts={"rows_seen": 4, "dropped_duplicate": 1})
    assert read_shard(path).equals(table(3))
    assert read_shard(path, ["row"]).column("row").to_pylist() == [0, 1, 2]
    assert footer(path) == shard_digest(path) and footer(path)[0] == 3  # type: ignore[index]
    assert footer_counts(path) == {"rows_seen": 4, "dropped_duplicate": 1}
    assert shard_fingerprint_of(path) == "fp"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [path.name]  # no temporary file left


def test_a_shard_appears_only_once_complete(tmp_path: Path):
    path, staging = tmp_path / "t.parquet", tmp_path / "staging"
    staging.mkdir()
    writer = ShardWriter(path, "fp", staging=staging)
    writer.write(table(2))
    assert not path.exists() and [p.name for p in staging.iterdir()] == ["t.parquet"]
    writer.close()
    assert not any(staging.iterdir())
    assert shard_digest(path)[0] == 2
    assert shard_fingerprint_of(path) == "fp"


def test_a_failed_write_leaves_the_old_shard(tmp_path: Path):
    path = tmp_path / "t.parquet"
    write_shard(path, table(1), fingerprint="old")
    with pytest.raises((pa.ArrowInvalid, ValueError, TypeError)):
        write_shard(path, pa.table({"other": [1]}), fingerprint="new")
    assert shard_fingerprint_of(path) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_an_unreadable_file_has_no_fingerprint(tmp_path: Path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert shard_fingerprint_of(tmp_path / "bad.parquet") is None
    assert shard_fingerprint_of(tmp_path / "absent.parquet") is None
