"""Cutting releases, retracting, and reading corpus states (a version or the workspace).

`cut_release` runs in steps, data before records before names, so a crash at any point leaves either no
new release or a complete one:

    check   clean branch, default DVC remote, pipeline up to date; finish what a crash left (see `recover`)
    push    the pipeline's outputs to the DVC remote (shards first: never a record without its data)
    write   ledger: manifest, new source and task versions, then the release record (each file atomically)
    commit  ledger/ and dvc.lock in one git commit
    tag     an annotated tag `vN` on that commit (never a tag without its record)

Release, retract and recovery run under the registry lock (`dynosaur.registry.lock`): one at a time.

`recover` (run first, under the lock, by every command that writes the ledger, and by `dyno releases` and
`dyno pull`): uncommitted ledger changes are discarded when the lock shows that its last holder died while
holding it (they can only be that holder's unfinished records); without that evidence they are not ours to
throw away, and a writing command refuses to run. A committed release without its tag gets the tag, on the
commit that recorded it. A release is complete, and listed, once it is tagged.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dynosaur.core.errors import (
    AlreadyRetracted,
    DynoError,
    LockHeld,
    NotFound,
    NotReady,
    PullError,
    UsageError,
)
from dynosaur.core.records import (
    Exclusion,
    ManifestEntry,
    Release,
    Retraction,
    SourceVersion,
    Task,
    TaskVersion,
    Totals,
    task_identity,
)
from dynosaur.registry.diff import DiffReport, InstanceDelta, changelog, diff_manifests
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.lock import READ_WAIT_S, Lease, registry_lock
from dynosaur.registry.manifest import file_sha256, workspace_manifest
from dynosaur.registry.status import find_task
from dynosaur.registry.vcs import (
    Git,
    default_remote,
    dir_listing,
    locked_out_md5,
    push,
    require_dvc_idle,
    stale_stages,
)
from dynosaur.registry.workspace import Workspace

WORKSPACE = "workspace"


class ReleaseOutcome(BaseModel):
    release: Release | None
    message: str
    recovered: list[str] = []


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recover(root: Path, lease: Lease, *, strict: bool = True, tag: bool = True) -> list[str]:
    """Finish or undo what an interrupted release or retract left behind (call it holding the lock);
    return what was done.

    Args:
        strict: refuse (DynoError) when ledger/ has uncommitted changes that no crash explains; readers
            pass False and leave them for `verify` to judge.
        tag: tag a committed release that has no tag; `dyno pull` passes False (it never creates a tag: a
            tag the user deleted stays deleted, and pull names the command that tags it).
    """
    git, ledger, done = Git(root), Ledger(root), []
    dirty = git.dirty("ledger", untracked=True)
    if dirty and lease.stale is not None:
        git("checkout", "HEAD", "--", "ledger")
        git("clean", "-fdq", "--", "ledger")
        done.append(f"discarded the uncommitted records of an interrupted {lease.stale.describe()}")
    elif dirty and strict:
        raise NotReady(
            f"ledger/ has uncommitted changes ({dirty[0]}) that no interrupted dyno command left:"
            " commit them, or restore the ledger with `git checkout -- ledger`"
        )
    lease.settle()
    committed = _committed_releases(git, ledger, root)
    if tag and committed and not git.tag_exists(committed[-1][0].tag):
        last, commit = committed[-1]
        git("tag", "-a", last.tag, "-m", f"{last.tag}: {last.message}", commit)
        done.append(f"tagged {last.tag}, committed by an interrupted release")
    return done


def _committed_releases(git: Git, ledger: Ledger, root: Path) -> list[tuple[Release, str]]:
    """The releases as committed at HEAD, the last one with the commit that recorded it."""
    rel = "./" + ledger.path(Release).relative_to(root).as_posix()
    commit = git("rev-list", "-1", "HEAD", "--", rel, check=False).strip()
    if not commit:
        return []
    committed = set()
    for line in (git.show(commit, rel) or "").split("\n"):
        with contextlib.suppress(ValueError, AttributeError):
            committed.add(json.loads(line).get("hash"))
    releases = [r for r in ledger.releases() if r.hash in committed]
    return [(r, commit if i == len(releases) - 1 else "") for i, r in enumerate(releases)]


def settle(root: Path, command: str, *, tag: bool = True) -> tuple[list[str], str | None]:
    """What a reader runs first: the same recovery as release, under the lock (`tag`: see `recover`).
    Returns (what was done, None), or ([], a note) when a live writer holds the lock; its unfinished release
    stays unlisted."""
    git = Git(root)
    if not git.is_repo():
        return [], None
    try:
        with registry_lock(root, command, wait_s=READ_WAIT_S) as lease:
            return recover(root, lease, strict=False, tag=tag), None
    except LockHeld as exc:
        return [], f"{exc}; showing the releases completed so far"
    except DynoError as exc:  # e.g. a read-only checkout: nothing to finish from here, but still readable
        return [], f"{exc}; nothing was recovered, showing the releases completed so far"


def _exclusions(ws: Workspace) -> list[Exclusion]:
    out = []
    for _, meta in ws.collect_records().items():
        if meta.status != "ok":
            out.append(Exclusion(source_id=meta.source_id, reason=f"{meta.status}: {meta.reason}"))
    return out


def _versions(
    ws: Workspace, entries: list[ManifestEntry], ledger: Ledger
) -> tuple[list[SourceVersion], list[TaskVersion]]:
    """Source and task versions this release adds to the ledger (those it has not recorded yet)."""
    known_sources = {s.key for s in ledger.read(SourceVersion)}
    known_tasks = {t.task_id for t in ledger.read(TaskVersion)}
    released = {e.source_id for e in entries}
    sources, tasks = [], []
    collected = ws.collect_records()
    for source_id, filtered in ws.task_records().items():
        meta = collected[source_id]
        if meta.source_id not in released:
            continue
        version = SourceVersion(
            source_id=meta.source_id,
            origin=meta.origin,
            revision=meta.revision,
            license=meta.license,
            metadata_fingerprint=meta.fingerprint,
            languages=meta.languages,
        )
        if version.key not in known_sources:
            sources.append(version)
        for t in filtered.tasks:
            if t.task_id not in known_tasks:
                tasks.append(
                    TaskVersion(
                        task_id=t.task_id,
                        source_id=t.source_id,
                        source_revision=t.source_revision,
                        instruction=t.instruction,
                        label_options=t.label_options,
                        input_fields=t.input_fields,
                        output_field=t.output_field,
                        prompt_version=t.prompt_version,
                        model=t.model,
                        verdict=t.verdict,
                        reason=t.reason,
                    )
                )
    return sources, tasks


def cut_release(
    root: Path,
    message: str = "",
    *,
    on_step: Callable[[str], None] = lambda step: None,
    wait_s: float | None = None,
) -> ReleaseOutcome:
    """Release the working corpus as the next version, if anything changed since the last one."""
    on_step("check")
    git = Git(root)
    git.require_branch()
    with registry_lock(root, "release", wait_s=wait_s) as lease:
        return _cut_release(root, message, lease, on_step)


def _cut_release(root: Path, message: str, lease: Lease, on_step: Callable[[str], None]) -> ReleaseOutcome:
    git, ledger, ws = Git(root), Ledger(root), Workspace.load(root)
    recovered = recover(root, lease)
    require_dvc_idle(root)
    default_remote(root)
    dirty = [p for p in git.dirty() if p not in ("dvc.lock", "data/.gitignore")]
    if dirty:
        raise NotReady(
            f"the work tree has uncommitted changes ({dirty[0]}{', …' if len(dirty) > 1 else ''}):"
            " commit or stash them first"
        )
    stale = stale_stages(root)
    if stale:
        raise NotReady(f"the pipeline is not up to date ({', '.join(stale)}): run `dvc repro` first")

    corpus_rel = ws.corpus.relative_to(root).as_posix()
    corpus_md5 = locked_out_md5(root, corpus_rel)
    md5s = dir_listing(root, corpus_md5)
    entries = [
        e.model_copy(
            update={"shard_md5": md5s.get(e.shard), "shard_sha256": file_sha256(ws.corpus / e.shard)}
        )
        for e in workspace_manifest(ws.collect_records(), ws.task_records(), ws.corpus)
    ]
    if unlisted := [e.shard for e in entries if not e.shard_md5]:
        raise NotReady(
            f"shard {unlisted[0]} is not in the corpus that dvc.lock records ({corpus_md5}):"
            " run `dvc repro` first"
        )
    if unknown := sorted(md5s.keys() - {e.shard for e in entries}):
        shown = ", ".join(unknown[:5]) + (f", … ({len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise NotReady(
            f"{corpus_rel} holds {len(unknown)} file(s) that are not shards of a valid task ({shown}):"
            " `dyno pull` would refuse the release; remove them and run `dvc repro` (organize removes them)"
        )
    excluded = _exclusions(ws)
    releases = ledger.releases()
    last = releases[-1] if releases else None
    previous = ledger.read_manifest(last) if last else []
    if last and _same(previous, entries) and last.excluded == excluded:
        return ReleaseOutcome(
            release=None, message=f"nothing changed since {last.tag}: no release", recovered=recovered
        )

    version = (last.version + 1) if last else 1
    report = diff_manifests(
        last.tag if last else "empty", previous, WORKSPACE, entries, ledger.read(Retraction)
    )
    sources, tasks = _versions(ws, entries, ledger)
    totals, licenses = manifest_totals(entries)

    on_step("push")
    recovered += push(root, [e.shard_md5 for e in entries if e.shard_md5] + [corpus_md5])

    on_step("write")
    manifest_digest = ledger.write_manifest(version, entries)
    ledger.append(SourceVersion, sources)
    ledger.append(TaskVersion, tasks)
    release = Release(
        version=version,
        tag=f"v{version}",
        parent=last.hash if last else None,
        message=message,
        created_at=_now(),
        manifest=ledger.manifest_path(version).relative_to(root).as_posix(),
        manifest_digest=manifest_digest,
        corpus_md5=corpus_md5,
        totals=totals,
        licenses=licenses,
        excluded=excluded,
        changelog=changelog(report, {x.source_id: x.reason for x in excluded}),
    ).sealed()
    ledger.append(Release, [release])

    on_step("commit")
    paths = ["ledger", "dvc.lock"] + [
        p for p in (corpus_rel.rsplit("/", 1)[0] + "/.gitignore",) if (root / p).exists()
    ]
    git("add", "--", *paths)
    git("commit", "-q", "-m", f"release {release.tag}" + (f": {message}" if message else ""), "--", *paths)

    on_step("tag")
    git("tag", "-a", release.tag, "-m", f"{release.tag}: {message}")
    on_step("done")
    return ReleaseOutcome(release=release, message=f"released {release.tag}", recovered=recovered)


def manifest_totals(entries: list[ManifestEntry]) -> tuple[Totals, dict[str, int]]:
    """What a release records of its manifest: the totals, and the instances under each licence."""
    licenses: Counter[str] = Counter()
    for e in entries:
        licenses[e.license or "unknown"] += e.instances
    totals = Totals(
        sources=len({e.source_id for e in entries}),
        tasks=len(entries),
        instances=sum(e.instances for e in entries),
    )
    return totals, dict(sorted(licenses.items()))


def _same(a: list[ManifestEntry], b: list[ManifestEntry]) -> bool:
    key = lambda e: (e.task_id, e.digest, e.instances, e.license)  # noqa: E731
    return sorted(map(key, a)) == sorted(map(key, b))


# --- reading ---------------------------------------------------------------------------------------------


def list_releases(root: Path) -> list[Release]:
    """The complete releases: recorded and tagged (an unfinished one is never listed)."""
    tags = Git(root).release_tags() if Git(root).is_repo() else {}
    return [r for r in Ledger(root).releases() if r.tag in tags]


def corpus_state(root: Path, name: str) -> list[ManifestEntry]:
    """The manifest of a version, or of the working corpus for `workspace`."""
    if name == WORKSPACE:
        ws = Workspace.load(root)
        return workspace_manifest(ws.collect_records(), ws.task_records(), ws.corpus)
    ledger = Ledger(root)
    return ledger.read_manifest(ledger.release(name))


def diff(root: Path, a: str, b: str, *, instances: bool = False) -> DiffReport:
    """What changed between two corpus states, instances counted as churn (ids read from the shards of
    changed tasks only: the workspace, the local DVC cache, else the DVC remote)."""
    from dynosaur.registry.audit_report import quality_lines

    ledger = Ledger(root)
    norm = lambda n: n if n == WORKSPACE else ledger.release(n).tag  # noqa: E731
    a_name, b_name = norm(a), norm(b)
    if a_name == b_name:
        raise UsageError(f"{a_name} compared with itself: give two different versions (or `workspace`)")
    before, after = corpus_state(root, a_name), corpus_state(root, b_name)
    retractions = Ledger(root).read(Retraction)
    report = diff_manifests(a_name, before, b_name, after, retractions)
    quality = quality_lines(root, [a_name, b_name])
    changed = [c for c in report.tasks if c.change == "changed"]
    if not changed:
        return report.model_copy(update={"quality": quality})
    # Each side by its own ids: a task changed in place has one id and two shards.
    old_by_id, new_by_id = {e.task_id: e for e in before}, {e.task_id: e for e in after}
    deltas: dict[str, InstanceDelta] = {}
    with _ShardFiles(root) as shards:
        for c in changed:
            old = shards.ids(old_by_id[c.previous_task_id or c.task_id], a_name)
            new = shards.ids(new_by_id[c.task_id], b_name)
            if old is not None and new is not None:
                deltas[c.task_id] = InstanceDelta(added=sorted(new - old), removed=sorted(old - new))
    if instances and len(deltas) < len(changed):
        missing = next(c for c in changed if c.task_id not in deltas)
        raise PullError(
            f"the shards of task {missing.task_id} are in neither the workspace, the local DVC cache nor the"
            " DVC remote: run `dvc pull` first"
        )
    churn = {tid: (len(d.added), len(d.removed)) for tid, d in deltas.items()}
    report = diff_manifests(a_name, before, b_name, after, retractions, churn)
    if instances:
        report.instances = deltas
    report.quality = quality
    return report


class _ShardFiles:
    """Instance ids of released or working shards: the workspace for `workspace`, else the DVC object, from
    the local cache or the default remote (opened only if needed). None when it cannot be read."""

    def __init__(self, root: Path):
        self.root = root
        self._repo: Any = None
        self._dbs: list[Any] = []
        self._corpus: Path | None = None
        self._remote_tried = False

    def __enter__(self) -> _ShardFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._repo is not None:
            self._repo.close()

    def ids(self, entry: ManifestEntry, side: str) -> set[str] | None:
        from dynosaur.registry.diff import instance_ids_of

        if side == WORKSPACE:
            self._corpus = self._corpus or Workspace.load(self.root).corpus
            path = self._corpus / entry.shard
            return instance_ids_of(path) if path.exists() else None
        if not entry.shard_md5:
            return None
        for odb in self._stores():
            path = odb.oid_to_path(entry.shard_md5)
            try:
                if odb.fs.exists(path):
                    with odb.fs.open(path, "rb") as fh:
                        return instance_ids_of(fh)
            except (OSError, ValueError):  # unreadable here: try the next store
                continue
        if self._add_remote():
            return self.ids(entry, side)
        return None

    def _stores(self) -> list[Any]:
        if self._repo is None:
            from dvc.repo import Repo

            self._repo = Repo(str(self.root))
            self._dbs = [self._repo.cache.local]
        return self._dbs

    def _add_remote(self) -> bool:
        """Add the default remote to the stores (once, when the local cache lacks a shard)."""
        if self._remote_tried:
            return False
        self._remote_tried = True
        from dvc.exceptions import DvcException

        try:
            self._dbs.append(self._repo.cloud.get_remote_odb(self._repo.cloud.get_remote().name))
        except DvcException:
            return False  # no usable remote: the local cache alone
        return True


# --- retractions -----------------------------------------------------------------------------------------


def retract(root: Path, *, task: str | None = None, source: str | None = None, reason: str) -> Retraction:
    """Append a tombstone for a task (every version of it) or a whole source, and commit it."""
    if (task is None) == (source is None):
        raise UsageError("give exactly one of --task ID or --source ID")
    if not reason.strip():
        raise UsageError("a retraction needs a --reason")
    git = Git(root)
    git.require_branch()
    with registry_lock(root, "retract") as lease:
        recover(root, lease)
        return _retract(root, git, task, source, reason)


def _retract(root: Path, git: Git, task: str | None, source: str | None, reason: str) -> Retraction:
    ledger, ws = Ledger(root), Workspace.load(root)
    existing = ledger.read(Retraction)
    if task is not None:
        found = find_task(ws, task, ledger)
        identity = (
            found.identity
            if isinstance(found, Task)  # a ledger TaskVersion predates stored identities
            else task_identity(found.source_id, found.instruction, found.input_fields, found.output_field)
        )
        record = Retraction(
            kind="task", target=found.task_id, identity=identity, reason=reason.strip(), created_at=_now()
        )
    else:
        known = set(ws.collect_records().ids()) | {s.source_id for s in ledger.read(SourceVersion)}
        if source not in known:
            raise NotFound(f"unknown source {source!r} (not in the workspace or any release)")
        record = Retraction(kind="source", target=source, reason=reason.strip(), created_at=_now())
    if any(r.kind == record.kind and r.target == record.target for r in existing):
        raise AlreadyRetracted(f"{record.kind} {record.target} is already retracted")
    ledger.append(Retraction, [record])
    path = ledger.path(Retraction).relative_to(root).as_posix()
    git("add", "--", path)
    git("commit", "-q", "-m", f"retract {record.kind} {record.target}: {record.reason}", "--", path)
    return ledger.read(Retraction)[-1]
