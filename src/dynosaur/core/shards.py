"""The corpus shard: one parquet file per task, the one format organize writes and pull, verify and the Hub read.

    path     `<corpus>/<source_id>/<task_id>.parquet` (`shard_path`, relative to the corpus folder; the same
             path names the shard in a release's manifest and, under `data/`, on the Hub)
    columns  `INSTANCE_COLUMNS` (dynosaur.core.records): `row` an int64, every other column a string
    footer   parquet key-value metadata: `dyno.fingerprint` (what made the shard, so organize can keep it),
             `dyno.digest` and `dyno.instances` (its content digest and instance count, so a manifest reads
             footers only), `dyno.counts` (organize's counts for the shard, JSON: rows seen, dropped per reason)
    write    `ShardWriter` streams Arrow tables into a temporary file (zstd), writes the footer and renames the
             file onto its path: a reader never sees half a shard. `write_shard` does it for one table.
    read     `read_shard` (a table), `iter_shard` (batches), `footer`, `footer_counts`, `shard_fingerprint_of`,
             and `shard_digest`, which recomputes (instances, digest) from the rows.

A task's digest is sha256 over its instances in shard order, each as
`instance_id \\x1f instruction \\x1f input \\x1f output \\x1e` (UTF-8), prefixed `sha256:`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dynosaur.core.io import canonical_json
from dynosaur.core.records import INSTANCE_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

SUFFIX = ".parquet"
GLOB = f"*/*{SUFFIX}"  # every shard under a corpus folder
FINGERPRINT_KEY = b"dyno.fingerprint"
DIGEST_KEY = b"dyno.digest"
COUNT_KEY = b"dyno.instances"
COUNTS_KEY = b"dyno.counts"  # JSON: organize's counts for the shard (see dynosaur.pipeline.organize.COUNTS)
DIGEST_COLUMNS = ("instance_id", "instruction", "input", "output")
COMPRESSION = "zstd"


def shard_path(source_id: str, task_id: str) -> str:
    """Where a task's instances live, relative to the corpus folder (and in a release's manifest)."""
    return f"{source_id}/{task_id}{SUFFIX}"


def schema(fingerprint: str | None = None) -> pa.Schema:
    """The shard's columns, with the fingerprint of what made it in the metadata when given."""
    import pyarrow as pa

    columns = pa.schema([(c, pa.int64() if c == "row" else pa.string()) for c in INSTANCE_COLUMNS])
    return columns.with_metadata({FINGERPRINT_KEY: fingerprint.encode()}) if fingerprint else columns


class InstanceDigest:
    """Streaming digest over Arrow batches of instances (vectorised: one join, one buffer hash per batch)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def update(self, table) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if table.num_rows == 0:
            return
        cols = [pc.fill_null(table.column(c), "") for c in DIGEST_COLUMNS]
        joined = pc.binary_join_element_wise(*cols, pa.scalar(""), "\x1f")  # trailing "" → ends with \x1f
        rows = pc.binary_join_element_wise(joined, pa.scalar("\x1e"), "")
        for chunk in rows.chunks if isinstance(rows, pa.ChunkedArray) else [rows]:
            # A string array is int32 offsets + one data buffer: the rows' bytes, back to back.
            offsets = memoryview(chunk.buffers()[1]).cast("i")
            start, end = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
            self._hash.update(memoryview(chunk.buffers()[2])[start:end])
        self.count += table.num_rows

    def hexdigest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class ShardWriter:
    """One shard, written in pieces: `write` tables, then `close` (footer, rename onto `path`) or `discard`.

    The file is written as `staging/<name>` when a staging folder is given (organize passes one outside the
    corpus, on its file system), else as a process-unique temporary file beside `path`."""

    def __init__(self, path: Path, fingerprint: str | None = None, staging: Path | None = None) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.digest = InstanceDigest()
        self._tmp = staging / path.name if staging else path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._writer = pq.ParquetWriter(self._tmp, schema(fingerprint), compression=COMPRESSION)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.digest.update(table)

    def close(self, counts: Mapping[str, int] | None = None) -> None:
        """Write the footer (digest, instance count and `counts` when given) and move the file onto `path`."""
        meta = {DIGEST_KEY: self.digest.hexdigest(), COUNT_KEY: str(self.digest.count)}
        if counts is not None:
            meta[COUNTS_KEY] = canonical_json(dict(counts))
        self._writer.add_key_value_metadata(meta)
        self._writer.close()
        self._tmp.replace(self.path)

    def discard(self) -> None:
        """Close without publishing: the temporary file is removed, `path` is left as it was."""
        if self._writer.is_open:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


def write_shard(
    path: Path, table: pa.Table, fingerprint: str | None = None, counts: Mapping[str, int] | None = None
) -> None:
    """Write one table as the shard at `path` (temporary file, then rename)."""
    writer = ShardWriter(path, fingerprint)
    try:
        writer.write(table)
        writer.close(counts)
    except BaseException:
        writer.discard()
        raise


def read_shard(path: Path | str | BinaryIO, columns: Sequence[str] | None = None) -> pa.Table:
    """A shard's rows (all columns, or `columns`)."""
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=list(columns) if columns is not None else None)


def iter_shard(
    path: Path | str | BinaryIO, columns: Sequence[str] | None = None, batch_rows: int = 65536
) -> Iterator[pa.Table]:
    """A shard's rows in tables of at most `batch_rows`, in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = list(columns) if columns is not None else None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=cols):
        yield pa.Table.from_batches([batch])


def shard_digest(path: Path | str | BinaryIO, batch_rows: int = 65536) -> tuple[int, str]:
    """(instances, digest) recomputed from a shard's contents (a path, or an open seekable binary file)."""
    digest = InstanceDigest()
    for table in iter_shard(path, DIGEST_COLUMNS, batch_rows):
        digest.update(table)
    return digest.count, digest.hexdigest()


def instances(path: Path) -> int:
    """How many instances a shard holds (from its parquet metadata, not its rows)."""
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def footer(path: Path) -> tuple[int, str] | None:
    """(instances, digest) as organize recorded them in the shard's footer, or None if absent."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path).metadata or {}
    if DIGEST_KEY not in meta or COUNT_KEY not in meta:
        return None
    return int(meta[COUNT_KEY]), meta[DIGEST_KEY].decode()


def footer_counts(path: Path) -> dict[str, int]:
    """organize's counts for one shard (`rows_seen`, `dropped_contaminated`, ...); {} when not recorded."""
    import pyarrow.parquet as pq

    raw = (pq.read_metadata(path).metadata or {}).get(COUNTS_KEY)
    return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}


def shard_fingerprint_of(path: Path) -> str | None:
    """The fingerprint of what made the shard at `path`; None when it is absent or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = meta.get(FINGERPRINT_KEY)
    return value.decode() if value else None
