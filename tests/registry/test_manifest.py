"""The instance digest and shard footers (`dynosaur.core.shards`), and the working corpus's manifest
(`dynosaur.registry.manifest`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynosaur.core.io import write_json
from dynosaur.core.records import FilteredSource, ManifestEntry, SourceMeta, task_id, task_identity
from dynosaur.core.segments import RecordFolder
from dynosaur.core.shards import COUNT_KEY, DIGEST_COLUMNS, DIGEST_KEY, InstanceDigest, footer, shard_digest
from dynosaur.registry.manifest import workspace_manifest
from tests.factories import make_meta, make_task

Row = tuple[str | None, str | None, str | None, str | None]

ROWS: list[Row] = [
    ("00000000000000a1", "Classify the review.", "text: Great value.", "positive"),
    ("00000000000000a2", "Classify the review.", "", "negative"),  # empty input
    ("00000000000000a3", "Résumé: 日本語 ✓ 🦕", "ünïcödé\nnew line", "ja"),  # non-ASCII, newline
    ("00000000000000a4", None, "text: null instruction", None),  # nulls count as ""
    ("00000000000000a5", "", "", ""),
    ("00000000000000a6", "Say \x1f or \x1e literally.", "x", "y"),
]


def reference_digest(rows: list[Row]) -> str:
    """The documented digest in plain Python."""
    h = hashlib.sha256()
    for row in rows:
        ident, instruction, input_, output = ("" if v is None else v for v in row)
        h.update(f"{ident}\x1f{instruction}\x1f{input_}\x1f{output}\x1f\x1e".encode())
    return "sha256:" + h.hexdigest()


def table(rows: list[Row], **extra: list) -> pa.Table:
    columns = {c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(DIGEST_COLUMNS)}
    return pa.table({**columns, **extra})


def digest_of(*tables: pa.Table) -> InstanceDigest:
    d = InstanceDigest()
    for t in tables:
        d.update(t)
    return d


# --- InstanceDigest ----------------------------------------------------------------------------------


def test_digest_equals_the_plain_python_reference():
    d = digest_of(table(ROWS))
    assert d.hexdigest() == reference_digest(ROWS)
    assert d.count == len(ROWS)


def test_digest_of_nothing():
    d = digest_of(table([]))
    assert d.hexdigest() == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert d.count == 0


def test_digest_reads_only_the_digest_columns():
    with_extra = table(ROWS, split=["train"] * len(ROWS), row=list(range(len(ROWS))))
    assert digest_of(with_extra).hexdigest() == reference_digest(ROWS)


@pytest.mark.parametrize("cut", [1, 2, 3, 5])
def test_digest_is_independent_of_batching(cut):
    expected = reference_digest(ROWS)
    whole = table(ROWS)
    assert digest_of(table(ROWS[:cut]), table(ROWS[cut:])).hexdigest() == expected
    assert digest_of(*(table([r]) for r in ROWS)).hexdigest() == expected
    chunked = pa.Table.from_batches(whole.slice(0, cut).to_batches() + whole.slice(cut).to_batches())
    assert chunked.column(0).num_chunks == 2
    assert digest_of(chunked).hexdigest() == expected
    assert digest_of(whole.slice(0, cut), whole.slice(cut)).hexdigest() == expected


def test_digest_of_a_slice_with_an_offset():
    sliced = table(ROWS).slice(2, 3)
    assert sliced.column(0).chunk(0).offset == 2
    assert digest_of(sliced).hexdigest() == reference_digest(ROWS[2:5])
    assert digest_of(sliced).count == 3


def test_digest_with_columns_chunked_differently():
    def col(i: int, cuts: list[int]) -> pa.ChunkedArray:
        values = [r[i] for r in ROWS]
        bounds = [0, *cuts, len(values)]
        return pa.chunked_array(
            [pa.array(values[a:b], pa.string()) for a, b in zip(bounds, bounds[1:], strict=False)]
        )

    t = pa.table({c: col(i, [[1], [2, 4], [], [3, 5]][i]) for i, c in enumerate(DIGEST_COLUMNS)})
    t = t.slice(1)  # and an offset inside the first chunk of each column
    assert digest_of(t).hexdigest() == reference_digest(ROWS[1:])


@pytest.mark.parametrize("field", range(4), ids=list(DIGEST_COLUMNS))
@pytest.mark.parametrize("row", range(len(ROWS)))
def test_digest_changes_with_any_field_of_any_row(row, field):
    rows = list(ROWS)
    values = list(rows[row])
    values[field] = (values[field] or "") + "x"
    rows[row] = tuple(values)  # type: ignore[assignment]
    assert digest_of(table(rows)).hexdigest() != reference_digest(ROWS)


def test_digest_changes_when_rows_are_reordered_or_content_moves_between_fields():
    assert digest_of(table(ROWS[::-1])).hexdigest() != reference_digest(ROWS)
    assert (
        digest_of(table([("a", "b", "", "")])).hexdigest()
        != digest_of(table([("a", "", "b", "")])).hexdigest()
    )
    assert (
        digest_of(table([("a", "", "", ""), ("b", "", "", "")])).hexdigest()
        != digest_of(table([("a", "", "", "b"), ("", "", "", "")])).hexdigest()
    )


# --- shards and footers ------------------------------------------------------------------------------


def write_shard(path: Path, rows: list[Row], footer_meta: dict[bytes, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = table(rows)
    with pq.ParquetWriter(path, t.schema) as writer:
        writer.write_table(t, row_group_size=2)
        if footer_meta:
            writer.add_key_value_metadata(footer_meta)
    return path


def test_footer_is_none_without_the_keys(tmp_path):
    assert footer(write_shard(tmp_path / "plain.parquet", ROWS)) is None
    only_digest = write_shard(tmp_path / "half.parquet", ROWS, {DIGEST_KEY: reference_digest(ROWS)})
    assert footer(only_digest) is None


def test_footer_returns_count_and_digest(tmp_path):
    path = write_shard(
        tmp_path / "t.parquet", ROWS, {DIGEST_KEY: reference_digest(ROWS), COUNT_KEY: str(len(ROWS))}
    )
    assert footer(path) == (len(ROWS), reference_digest(ROWS))


@pytest.mark.parametrize("batch_rows", [1, 4, 65536])
def test_shard_digest_recomputes_from_contents(tmp_path, batch_rows):
    path = write_shard(tmp_path / "t.parquet", ROWS, {DIGEST_KEY: "sha256:" + "0" * 64, COUNT_KEY: "99"})
    assert shard_digest(path, batch_rows=batch_rows) == (len(ROWS), reference_digest(ROWS))
    with open(path, "rb") as fh:
        assert shard_digest(fh) == (len(ROWS), reference_digest(ROWS))


def test_shard_digest_of_an_empty_shard(tmp_path):
    assert shard_digest(write_shard(tmp_path / "empty.parquet", [])) == (
        0,
        "sha256:" + hashlib.sha256(b"").hexdigest(),
    )


# --- workspace_manifest ------------------------------------------------------------------------------


def test_workspace_manifest_lists_valid_tasks_with_shards(tmp_path):
    collected, tasks, corpus = tmp_path / "data/collected", tmp_path / "data/tasks", tmp_path / "data/corpus"
    rev = "sha256:" + "0" * 64

    def make(source: str, instruction: str, output: str, **overrides):
        tid = task_id(source, rev, instruction, ["text"], output)
        return make_task(
            task_id=tid,
            source_id=source,
            source_revision=rev,
            instruction=instruction,
            output_field=output,
            **overrides,
        )

    valid = make("reviews", "Classify the sentiment.", "label")
    rejected = make("reviews", "Copy the title.", "title", verdict="rejected", reason="io_overlap")
    no_shard = make("reviews", "Guess the title.", "title")
    other = make("news", "Summarise the article.", "title")
    write_json(collected / "reviews.json", make_meta(license="cc-by-4.0"))
    write_json(collected / "news.json", make_meta(source_id="news", license=None))
    write_json(
        tasks / "reviews.json",
        FilteredSource(source_id="reviews", fingerprint="f", tasks=[valid, rejected, no_shard]),
    )
    write_json(tasks / "news.json", FilteredSource(source_id="news", fingerprint="g", tasks=[other]))

    rows = ROWS[:3]
    write_shard(
        corpus / "reviews" / f"{valid.task_id}.parquet",
        rows,
        {DIGEST_KEY: reference_digest(rows), COUNT_KEY: str(len(rows))},
    )
    write_shard(corpus / "reviews" / f"{rejected.task_id}.parquet", rows)  # a stale shard of a rejected task
    write_shard(corpus / "news" / f"{other.task_id}.parquet", ROWS[3:])  # no footer: recomputed

    def entry(task, license, rows):
        return ManifestEntry(
            task_id=task.task_id,
            source_id=task.source_id,
            source_revision=rev,
            identity=task_identity(task.source_id, task.instruction, task.input_fields, task.output_field),
            instances=len(rows),
            digest=reference_digest(rows),
            license=license,
            shard=f"{task.source_id}/{task.task_id}.parquet",
        )

    expected = sorted(
        [entry(valid, "cc-by-4.0", rows), entry(other, None, ROWS[3:])], key=lambda e: e.task_id
    )
    assert (
        workspace_manifest(RecordFolder(collected, SourceMeta), RecordFolder(tasks, FilteredSource), corpus)
        == expected
    )


def test_workspace_manifest_trusts_the_footer(tmp_path):
    """Reading footers only is the point: a footer is taken as written (verify recomputes)."""
    collected, tasks, corpus = tmp_path / "c", tmp_path / "t", tmp_path / "corpus"
    task = make_task()
    write_json(collected / "reviews.json", make_meta(license="mit"))
    write_json(tasks / "reviews.json", FilteredSource(source_id="reviews", fingerprint="f", tasks=[task]))
    write_shard(
        corpus / "reviews" / f"{task.task_id}.parquet",
        ROWS,
        {DIGEST_KEY: "sha256:" + "e" * 64, COUNT_KEY: "7"},
    )
    [entry] = workspace_manifest(
        RecordFolder(collected, SourceMeta), RecordFolder(tasks, FilteredSource), corpus
    )
    assert (entry.instances, entry.digest) == (7, "sha256:" + "e" * 64)


def test_workspace_manifest_of_an_empty_workspace(tmp_path):
    assert (
        workspace_manifest(
            RecordFolder(tmp_path / "c", SourceMeta),
            RecordFolder(tmp_path / "t", FilteredSource),
            tmp_path / "corpus",
        )
        == []
    )


def test_the_object_store_refuses_ids_that_are_not_dvc_object_ids(tmp_path: Path):
    from dvc.repo import Repo

    from dynosaur.core.errors import LedgerError
    from dynosaur.registry.vcs import ObjectStore

    Repo.init(str(tmp_path), no_scm=True).close()
    store = ObjectStore(tmp_path)
    for bad in ["xx/etc/hostname", "../../" + "a" * 26, ""]:
        with pytest.raises(LedgerError, match="not a DVC object id"):
            store.path(bad)
    assert store.path("ab" + "c" * 30).is_relative_to(tmp_path / ".dvc" / "cache")
