"""`dyno diff A B`: what changed between two corpus states, stated in tasks and instances.

It reads manifests (one line per task), so its cost grows with the number of tasks, not instances. Tasks are
matched by id, then by identity (source, instruction, inputs, output), so a task re-made from a new source
revision is `changed`, not removed and added. A task gone from B is `retracted` when the ledger has a
tombstone for it or its source, else `removed`.

Instances are counted as churn, not net: an added task adds all its instances, a removed one removes all,
and a changed task adds the instance ids B has and A lacks and removes the converse, read from the id
column of the two shards (`churn`, given by the caller; without it, or for a task whose shards cannot be
read, only the net change is known and `DiffReport.churn_from_ids` is False). A task whose every instance
changed (36 added, 32 removed) shows +36 −32, not +4.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from pydantic import BaseModel

from dynosaur.core.records import ManifestEntry, Retraction, RetractionIndex


class TaskChange(BaseModel):
    task_id: str
    source_id: str
    change: str  # added | removed | retracted | changed
    previous_task_id: str | None = None
    instances_before: int = 0
    instances_after: int = 0
    instances_added: int = 0  # churn: instance ids in B and not in A
    instances_removed: int = 0  # churn: instance ids in A and not in B
    reason: str | None = None


class SourceDiff(BaseModel):
    source_id: str
    tasks_added: int = 0
    tasks_removed: int = 0
    tasks_retracted: int = 0
    tasks_changed: int = 0
    instances_added: int = 0
    instances_removed: int = 0
    license_before: str | None = None
    license_after: str | None = None
    revision_before: str | None = None
    revision_after: str | None = None

    @property
    def license_changed(self) -> bool:
        return self.license_before != self.license_after and None not in (
            self.license_before,
            self.license_after,
        )


class DiffTotals(BaseModel):
    tasks_before: int
    tasks_after: int
    instances_before: int
    instances_after: int
    tasks_added: int
    tasks_removed: int
    tasks_retracted: int
    tasks_changed: int
    instances_added: int = 0
    instances_removed: int = 0


class InstanceDelta(BaseModel):
    added: list[str]
    removed: list[str]


class DiffReport(BaseModel):
    a: str
    b: str
    sources: list[SourceDiff]
    tasks: list[TaskChange]
    totals: DiffTotals
    churn_from_ids: bool = True  # False: some changed task's churn is only its net change (shards unread)
    instances: dict[str, InstanceDelta] | None = None  # --instances: per changed task
    quality: dict[str, str] = {}  # A and B → their audited quality lines (`dyno audit`), or "not audited"


def diff_manifests(
    a_name: str,
    a: list[ManifestEntry],
    b_name: str,
    b: list[ManifestEntry],
    retractions: Iterable[Retraction] = (),
    churn: Mapping[str, tuple[int, int]] | None = None,
) -> DiffReport:
    """Args:
    churn: (added, removed) instance ids per changed task, by its id in B (see the module docstring).
    """
    before = {e.task_id: e for e in a}
    after = {e.task_id: e for e in b}
    tombstones = RetractionIndex(retractions)
    changes: list[TaskChange] = []

    for tid in sorted(before.keys() & after.keys()):
        old, new = before[tid], after[tid]
        if old.digest != new.digest:
            changes.append(
                TaskChange(
                    task_id=tid,
                    source_id=new.source_id,
                    change="changed",
                    previous_task_id=tid,
                    instances_before=old.instances,
                    instances_after=new.instances,
                )
            )
    gone = {tid: before[tid] for tid in sorted(before.keys() - after.keys())}
    new_ids = sorted(after.keys() - before.keys())
    gone_by_identity = defaultdict(list)
    for entry in gone.values():
        gone_by_identity[entry.identity].append(entry)
    for tid in new_ids:
        new = after[tid]
        if gone_by_identity.get(new.identity):
            old = gone_by_identity[new.identity].pop(0)
            del gone[old.task_id]
            changes.append(
                TaskChange(
                    task_id=tid,
                    source_id=new.source_id,
                    change="changed",
                    previous_task_id=old.task_id,
                    instances_before=old.instances,
                    instances_after=new.instances,
                )
            )
        else:
            changes.append(
                TaskChange(
                    task_id=tid, source_id=new.source_id, change="added", instances_after=new.instances
                )
            )
    for tid, old in gone.items():
        reason = tombstones.task(tid, old.identity, old.source_id)
        changes.append(
            TaskChange(
                task_id=tid,
                source_id=old.source_id,
                change="retracted" if reason else "removed",
                instances_before=old.instances,
                reason=reason,
            )
        )

    churn = churn or {}
    from_ids = True
    for c in changes:
        if c.change == "added":
            c.instances_added = c.instances_after
        elif c.change in ("removed", "retracted"):
            c.instances_removed = c.instances_before
        elif c.task_id in churn:
            c.instances_added, c.instances_removed = churn[c.task_id]
        else:
            from_ids = False
            delta = c.instances_after - c.instances_before
            c.instances_added, c.instances_removed = max(delta, 0), max(-delta, 0)

    sources: dict[str, SourceDiff] = {}
    for e in a:
        s = sources.setdefault(e.source_id, SourceDiff(source_id=e.source_id))
        s.license_before, s.revision_before = e.license, e.source_revision
    for e in b:
        s = sources.setdefault(e.source_id, SourceDiff(source_id=e.source_id))
        s.license_after, s.revision_after = e.license, e.source_revision
    for c in changes:
        s = sources[c.source_id]
        setattr(s, f"tasks_{c.change}", getattr(s, f"tasks_{c.change}") + 1)
        s.instances_added += c.instances_added
        s.instances_removed += c.instances_removed

    touched = [
        s
        for s in sources.values()
        if s.tasks_added
        or s.tasks_removed
        or s.tasks_retracted
        or s.tasks_changed
        or s.license_before != s.license_after
        or s.revision_before != s.revision_after
    ]
    count = lambda kind: sum(c.change == kind for c in changes)  # noqa: E731
    return DiffReport(
        a=a_name,
        b=b_name,
        sources=sorted(touched, key=lambda s: s.source_id),
        tasks=sorted(changes, key=lambda c: (c.source_id, c.change, c.task_id)),
        totals=DiffTotals(
            tasks_before=len(a),
            tasks_after=len(b),
            instances_before=sum(e.instances for e in a),
            instances_after=sum(e.instances for e in b),
            tasks_added=count("added"),
            tasks_removed=count("removed"),
            tasks_retracted=count("retracted"),
            tasks_changed=count("changed"),
            instances_added=sum(c.instances_added for c in changes),
            instances_removed=sum(c.instances_removed for c in changes),
        ),
        churn_from_ids=from_ids,
    )


def instance_ids_of(shard) -> set[str]:
    """The instance ids of a shard (a path or an open binary file; None: no shard), from its id column."""
    import pyarrow.parquet as pq

    if not shard:
        return set()
    # ParquetFile, not read_table: read_table imports pyarrow.dataset and pandas (a third of a second).
    return set(pq.ParquetFile(shard).read(columns=["instance_id"]).column(0).to_pylist())


def instance_delta(old_shard, new_shard) -> InstanceDelta:
    """Instance ids added and removed between two shards of a changed task (reads the id column only)."""
    old, new = instance_ids_of(old_shard), instance_ids_of(new_shard)
    return InstanceDelta(added=sorted(new - old), removed=sorted(old - new))


def changelog(report: DiffReport, excluded: dict[str, str]) -> list[str]:
    """Human lines for a release's changelog, one per source that changed."""
    lines = []
    for s in report.sources:
        parts = []
        for kind in ("added", "changed", "removed", "retracted"):
            n = getattr(s, f"tasks_{kind}")
            if n:
                parts.append(f"{n} task{'s' if n != 1 else ''} {kind}")
        net = s.instances_added - s.instances_removed
        parts.append(f"{net:+,} instances")
        if s.revision_before and s.revision_after and s.revision_before != s.revision_after:
            parts.append(
                f"revision {s.revision_before.removeprefix('sha256:')[:12]} → "
                f"{s.revision_after.removeprefix('sha256:')[:12]}"
            )
        if s.license_changed:
            parts.append(f"licence {s.license_before} → {s.license_after}")
        reasons = sorted({c.reason for c in report.tasks if c.source_id == s.source_id and c.reason})
        if s.source_id in excluded:
            reasons.append(excluded[s.source_id])
        lines.append(f"{s.source_id}: {', '.join(parts)}" + (f" ({'; '.join(reasons)})" if reasons else ""))
    return lines
