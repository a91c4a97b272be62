"""Manifests: what a corpus holds, task by task, without reading its instances.

A task's digest is sha256 over its instances in shard order, each as
`instance_id \\x1f instruction \\x1f input \\x1f output \\x1e` (UTF-8). `organize` computes it while writing a
shard and stores it, with the instance count, in the parquet footer (`dyno.digest`, `dyno.instances`), so a
manifest of the working corpus reads footers only: its cost grows with the number of tasks, not instances.
The footer also holds organize's counts for the shard (`dyno.counts`: rows seen, rows dropped per reason,
such as `dropped_contaminated` for evaluation overlap), which a release can sum per source (`footer_counts`).
`verify` and `pull` recompute digests from the shards' contents.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from dynosaur.core import io
from dynosaur.core.io import read_model
from dynosaur.core.records import FilteredSource, ManifestEntry, SourceMeta, shard_path

DIGEST_KEY = b"dyno.digest"
COUNT_KEY = b"dyno.instances"
COUNTS_KEY = b"dyno.counts"  # JSON: organize's counts for the shard (see dynosaur.pipeline.organize.COUNTS)
DIGEST_COLUMNS = ("instance_id", "instruction", "input", "output")


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


def shard_digest(path: Path | str | BinaryIO, batch_rows: int = 65536) -> tuple[int, str]:
    """(instances, digest) recomputed from a shard's contents (a path, or an open seekable binary file)."""
    import pyarrow.parquet as pq

    digest = InstanceDigest()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=list(DIGEST_COLUMNS)):
        import pyarrow as pa

        digest.update(pa.Table.from_batches([batch]))
    return digest.count, digest.hexdigest()


def file_sha256(path: Path | str) -> str:
    """sha256 of a file's bytes, as a manifest records it (`sha256:<hex>`)."""
    return "sha256:" + io.file_sha256(path)


def footer(path: Path) -> tuple[int, str] | None:
    """(instances, digest) as organize recorded them in the shard's footer, or None if absent."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path).metadata or {}
    if DIGEST_KEY not in meta or COUNT_KEY not in meta:
        return None
    return int(meta[COUNT_KEY]), meta[DIGEST_KEY].decode()


def footer_counts(path: Path) -> dict[str, int]:
    """organize's counts for one shard (`rows_seen`, `dropped_contaminated`, ...); {} when not recorded."""
    import json

    import pyarrow.parquet as pq

    raw = (pq.read_metadata(path).metadata or {}).get(COUNTS_KEY)
    return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}


def workspace_manifest(collected: Path, tasks: Path, corpus: Path) -> list[ManifestEntry]:
    """The working corpus as manifest entries: every valid task that has a shard."""
    entries = []
    for path in sorted(tasks.glob("*.json")):
        filtered = read_model(path, FilteredSource)
        meta = read_model(collected / path.name, SourceMeta)
        for task in filtered.valid:
            shard = corpus / shard_path(task.source_id, task.task_id)
            if not shard.exists():
                continue
            recorded = footer(shard) or shard_digest(shard)
            entries.append(
                ManifestEntry(
                    task_id=task.task_id,
                    source_id=task.source_id,
                    source_revision=task.source_revision,
                    identity=task.identity,
                    instances=recorded[0],
                    digest=recorded[1],
                    license=meta.license,
                    shard=shard_path(task.source_id, task.task_id),
                )
            )
    return sorted(entries, key=lambda e: e.task_id)
