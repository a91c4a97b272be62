"""Read-only views of the working corpus (the pipeline's outputs): per-source status, tasks, instances."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from dynosaur.core.errors import NotFound, ParamsError
from dynosaur.core.params import SOURCE_ID
from dynosaur.core.records import (
    Task,
    TaskVersion,
    resolve_prefix,
)
from dynosaur.core.shards import shard_path
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.workspace import Workspace

T = TypeVar("T")


class SourceStatus(BaseModel):
    source_id: str
    origin: str
    revision: str
    license: str | None
    status: str  # ok | skipped | failed | pending (not generated yet)
    reason: str | None = None
    tasks_valid: int = 0
    tasks_rejected: int = 0
    instances: int = 0


class StatusReport(BaseModel):
    sources: list[SourceStatus]
    tasks_valid: int
    tasks_rejected: int
    instances: int
    quality: dict[str, str] = {}  # release tag → its audited quality line (`dyno audit`), or "not audited"


def release_quality_lines(root: Path) -> dict[str, str]:
    """Each release's audited quality line, oldest first (none without releases)."""
    from dynosaur.registry.audit_report import quality_lines
    from dynosaur.registry.ledger import Ledger

    return quality_lines(root, [r.tag for r in Ledger(root).releases()])


def shard_rows(corpus: Path, source_id: str) -> dict[str, int]:
    import pyarrow.parquet as pq

    return {p.stem: pq.read_metadata(p).num_rows for p in sorted((corpus / source_id).glob("*.parquet"))}


def status(ws: Workspace) -> StatusReport:
    rows = []
    generated_records, task_records = ws.generate_records(), ws.task_records()
    for source_id, meta in ws.collect_records().items():
        generated = generated_records.get(source_id)
        filtered = task_records.get(source_id)
        state: str = meta.status
        reason = meta.reason
        if state == "ok" and generated is not None and generated.status == "failed":
            state, reason = "failed", generated.reason
        elif state == "ok" and filtered is None:
            state = "pending"
        valid = {t.task_id for t in filtered.valid} if filtered else set()
        rows.append(
            SourceStatus(
                source_id=meta.source_id,
                origin=meta.origin,
                revision=meta.revision,
                license=meta.license,
                status=state,
                reason=reason,
                tasks_valid=len(valid),
                tasks_rejected=len(filtered.tasks) - len(valid) if filtered else 0,
                instances=sum(n for t, n in shard_rows(ws.corpus, meta.source_id).items() if t in valid),
            )
        )
    return StatusReport(
        sources=rows,
        tasks_valid=sum(r.tasks_valid for r in rows),
        tasks_rejected=sum(r.tasks_rejected for r in rows),
        instances=sum(r.instances for r in rows),
        quality=release_quality_lines(ws.root),
    )


def tasks(ws: Workspace, source: str | None = None, rejected: bool = False) -> list[Task]:
    if source is not None and not SOURCE_ID.match(source):  # `--source ../collected/x` names no source
        raise ParamsError(f"--source {source!r} is not a source id ([a-z0-9._-])")
    records = ws.task_records()
    source_ids = [source] if source else records.ids()
    if source and source not in records:
        raise NotFound(f"no tasks for source {source!r} (is it in params.yaml, and has dvc repro run?)")
    out = []
    for source_id in source_ids:
        for task in records[source_id].tasks:
            if (task.verdict == "rejected") == rejected:
                out.append(task)
    return out


def find_task(ws: Workspace, task_id: str, ledger: Ledger | None = None) -> Task | TaskVersion:
    """The task whose id is `task_id` or, failing that, the one task whose id starts with it: the workspace's,
    else (given the `ledger`) the latest released version of it, so a task whose source is gone is found too.
    Every command that takes a task id resolves it here."""
    found: dict[str, Task | TaskVersion] = {}
    for _, filtered in ws.task_records().items():
        for task in filtered.tasks:
            if task.task_id == task_id:
                return task
            if task_id and task.task_id.startswith(task_id):
                found.setdefault(task.task_id, task)
    released = [] if ledger is None else ledger.read(TaskVersion)
    for version in reversed(released):  # the latest record of a task first
        if version.task_id == task_id:
            return version
        if task_id and version.task_id.startswith(task_id):
            found.setdefault(version.task_id, version)
    return resolve_prefix(task_id, found, "task")


def sample_instances(ws: Workspace, task_id: str, n: int) -> list[dict]:
    """The first n instances of a valid task's shard (reads one row group at most)."""
    import pyarrow.parquet as pq

    task = find_task(ws, task_id)
    shard = ws.corpus / shard_path(task.source_id, task.task_id)
    if task.verdict != "valid":
        raise NotFound(f"task {task.task_id} was rejected ({task.reason}); it has no instances")
    if not shard.exists():
        raise NotFound(f"task {task.task_id} has no shard yet: run `dvc repro`")
    rows: list[dict] = []
    for batch in pq.ParquetFile(shard).iter_batches(batch_size=max(n, 1)):
        rows.extend(batch.to_pylist())
        break
    return rows[:n]


def released_instances(root: Path, ledger: Ledger, task_id: str, n: int) -> tuple[str | None, list[dict]]:
    """The latest release that holds the task, and the first n instances of its shard when the local DVC
    cache has it (none otherwise: `dyno pull` brings the release back)."""
    import pyarrow.parquet as pq

    from dynosaur.registry.vcs import ObjectStore

    for release in reversed(ledger.releases()):
        entry = next((e for e in ledger.read_manifest(release) if e.task_id == task_id), None)
        if entry is None:
            continue
        shard = ObjectStore(root).path(entry.shard_md5) if entry.shard_md5 else None
        if shard is None or not shard.is_file():
            return release.tag, []
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=max(n, 1)):
            return release.tag, batch.to_pylist()[:n]
        return release.tag, []
    return None, []
