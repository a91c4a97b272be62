"""Manifests: what a corpus holds, task by task, without reading its instances.

`organize` computes each task's digest while writing its shard and stores it, with the instance count, in the
shard's footer (the shard format: dynosaur.core.shards), so a manifest of the working corpus reads footers
only: its cost grows with the number of tasks, not instances. `verify` and `pull` recompute digests from the
shards' contents.
"""

from __future__ import annotations

from pathlib import Path

from dynosaur.core import io
from dynosaur.core.records import FilteredSource, ManifestEntry, SourceMeta
from dynosaur.core.segments import RecordFolder
from dynosaur.core.shards import footer, shard_digest, shard_path


def file_sha256(path: Path | str) -> str:
    """sha256 of a file's bytes, as a manifest records it (`sha256:<hex>`)."""
    return "sha256:" + io.file_sha256(path)


def workspace_manifest(
    collected: RecordFolder[SourceMeta], tasks: RecordFolder[FilteredSource], corpus: Path
) -> list[ManifestEntry]:
    """The working corpus as manifest entries: every valid task that has a shard."""
    entries = []
    for source_id, filtered in tasks.items():
        meta = collected[source_id]
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
