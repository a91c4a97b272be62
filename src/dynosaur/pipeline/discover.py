"""Growing from the Hub: `dyno discover` adds candidate datasets to the sources file, `dyno refresh` pins them.

discover lists the Hub's datasets (most recently modified first), keeps those that match the query (task
categories, languages, minimum downloads, a search string) and the licence policy (`params.yaml: licenses`),
expands each into its configs, and appends one source per config to `sources.yaml`, recording when and by
which query it was found. It skips what is already a source (by repo and config), retracted sources,
evaluation benchmarks (`collect.eval_benchmarks`), gated or private datasets; skips are counted per reason.
`--since last` (the default) lists only what changed after the same query last ran, so a periodic discover
reads a page or two. A known source that moved on the Hub since its pin is reported as moved.

refresh resolves every Hub source's revision (branch, tag or sha) to the commit it points at now, each
(repo, revision) once, `concurrency` requests at a time, and writes `sources.lock`. A source that fails to
resolve keeps its old pin and is reported (one line each, the command fails). collect reads only the lock,
so nothing the Hub does reaches the corpus before a refresh.

Source ids are derived from the repo and config (`owner__name__config`, lower-case), so a retracted source is
recognised when the Hub lists it again.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dynosaur.core.errors import ParamsError
from dynosaur.core.licenses import license_exclusion
from dynosaur.core.params import Params, SourceSpec
from dynosaur.core.records import Retraction, RetractionIndex
from dynosaur.core.source_list import (
    LOCK_FILE,
    SHA,
    SOURCES_FILE,
    Pin,
    SourceEntry,
    SourcesLock,
    add_to_sources_file,
    all_sources,
    read_lock,
    read_sources_file,
    wanted_revision,
    write_lock,
)
from dynosaur.pipeline.decontaminate import eval_benchmark
from dynosaur.pipeline.hub_catalog import HubDataset, list_hub_datasets, resolve_pins
from dynosaur.registry.ledger import FILES, LEDGER_DIR, read_records

MAX_ID = 100


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Query(Model):
    """What `dyno discover` asks for; `text` is the canonical form recorded with each source it finds."""

    task_categories: list[str] = []
    languages: list[str] = []
    min_downloads: int = 0
    search: str | None = None
    revision: str = "main"

    @property
    def text(self) -> str:
        parts = [f"task_categories={','.join(sorted(self.task_categories))}" if self.task_categories else ""]
        parts.append(f"languages={','.join(sorted(self.languages))}" if self.languages else "")
        parts.append(f"min_downloads={self.min_downloads}" if self.min_downloads else "")
        parts.append(f"search={self.search}" if self.search else "")
        return " ".join(p for p in parts if p) or "all"


class Moved(Model):
    """A Hub source whose revision points at another commit than its pin (old None: newly pinned)."""

    source_id: str
    hub: str
    revision: str
    old: str | None
    new: str


class DiscoverReport(Model):
    query: str
    at: str  # when this discovery ran (ISO 8601 UTC)
    since: str | None  # datasets modified before this were not listed
    dry_run: bool
    listed: int  # datasets the Hub listed
    added: list[SourceEntry]
    skipped: dict[str, int]  # reason → configs (or datasets, for dataset-level reasons) left out
    moved: list[Moved]  # known sources whose dataset moved since its pin: run `dyno refresh`
    malformed: list[str] = []  # one line per dataset whose Hub answer is malformed (skipped: `malformed`)


class RefreshReport(Model):
    dry_run: bool
    sources: int  # Hub sources
    requests: int  # (repo, revision) pairs asked of the Hub
    unchanged: int
    moved: list[Moved]
    added: list[Moved]  # newly pinned
    removed: list[str]  # pins of sources that are gone
    failed: dict[str, str]  # source id → one-line reason (its old pin, if any, is kept)


# --- discover --------------------------------------------------------------------------------------------


def source_id_for(repo: str, config: str | None) -> str:
    """`owner__name[__config]`, lower-case, other characters as `-`; cut with a hash suffix past 100."""
    parts = [repo.partition("/")[0], repo.partition("/")[2]] + ([config] if config else [])
    sid = "__".join(re.sub(r"[^a-z0-9._-]+", "-", p.lower()).strip("-.") or "x" for p in parts)
    sid = re.sub(r"\.{2,}", ".", sid)
    if len(sid) > MAX_ID:
        tail = hashlib.sha256(f"{repo}\0{config}".encode()).hexdigest()[:10]
        sid = f"{sid[: MAX_ID - 11]}-{tail}"
    return sid


def _utc(when: str) -> datetime:
    """An ISO 8601 time (a date alone is its midnight; no zone is UTC)."""
    try:
        parsed = datetime.fromisoformat(when)
    except ValueError:
        raise ParamsError(f"--since: {when!r} is not an ISO 8601 time (or `last`, `any`)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def dataset_exclusion(ds: HubDataset, query: Query, params: Params) -> str | None:
    """Why a listed dataset is left out as a whole (a reason code), or None."""
    if ds.unavailable:
        return "unavailable"
    tags = set(ds.tags)
    if query.task_categories and not tags & {f"task_categories:{c}" for c in query.task_categories}:
        return "task_category"
    if query.languages and not tags & {f"language:{lang}" for lang in query.languages}:
        return "language"
    if ds.downloads < query.min_downloads:
        return "min_downloads"
    excluded = license_exclusion(ds.license, params.licenses)
    return excluded.partition(":")[0] if excluded else None


def discover(
    root: Path,
    params: Params,
    query: Query,
    *,
    since: str | None = "last",
    limit: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> DiscoverReport:
    """List the Hub, add the new candidates to the sources file (unless `dry_run`), say what moved.

    since: "last" (datasets modified after this query last ran; everything the first time), None
    (everything) or an ISO 8601 time."""
    at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    sources_path = root / SOURCES_FILE
    current = read_sources_file(sources_path)
    lock = read_lock(root / LOCK_FILE)
    specs = all_sources(params, current)
    known = {(s.hub, s.config): s for s in specs if s.hub}
    taken = {s.id for s in specs}
    retracted = RetractionIndex(read_records(root / LEDGER_DIR / FILES[Retraction], Retraction, root))
    after = current.discoveries.get(query.text) if since == "last" else since
    cutoff = _utc(after) if after else None

    added: list[SourceEntry] = []
    skipped: dict[str, int] = {}
    moved: list[Moved] = []
    malformed: list[str] = []
    listed = 0

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for ds in list_hub_datasets(
        search=query.search,
        task_category=query.task_categories[0] if len(query.task_categories) == 1 else None,
        language=query.languages[0] if len(query.languages) == 1 else None,
        allow_insecure_http=params.hub.allow_insecure_http,
    ):
        if ds.problem:
            listed += 1
            skip("malformed")
            malformed.append(ds.problem)
            continue
        if cutoff and ds.last_modified and _utc(ds.last_modified) < cutoff:
            break  # most recently modified first: the rest is older
        if limit is not None and len(added) >= limit:
            break
        listed += 1
        if reason := dataset_exclusion(ds, query, params):
            skip(reason)
            continue
        configs: list[str | None] = [*ds.configs] or [None]
        for config in configs:
            if limit is not None and len(added) >= limit:
                break
            existing = known.get((ds.id, config))
            if existing is not None:
                pin = lock.sources.get(existing.id)
                if pin and ds.sha and pin.sha != ds.sha and pin.revision == "main":
                    moved.append(
                        Moved(source_id=existing.id, hub=ds.id, revision="main", old=pin.sha, new=ds.sha)
                    )
                skip("exists")
                continue
            sid = source_id_for(ds.id, config)
            spec = SourceSpec(id=sid, hub=ds.id, config=config, revision=query.revision)
            if retracted.source(sid):
                skip("retracted")
            elif eval_benchmark(spec, params.collect.eval_benchmarks):
                skip("eval_benchmark")
            elif sid in taken:
                skip("id_taken")
            else:
                taken.add(sid)
                added.append(SourceEntry(**spec.model_dump(), found_at=at, query=query.text))

    report = DiscoverReport(
        query=query.text,
        at=at,
        since=after,
        dry_run=dry_run,
        listed=listed,
        added=sorted(added, key=lambda e: e.id),
        skipped=dict(sorted(skipped.items())),
        moved=moved,
        malformed=malformed,
    )
    if not dry_run:
        add_to_sources_file(sources_path, report.added, {query.text: at})
    return report


# --- refresh ---------------------------------------------------------------------------------------------


def refresh(
    root: Path, params: Params, *, concurrency: int = 16, timeout_s: float = 20.0, dry_run: bool = False
) -> RefreshReport:
    """Pin every Hub source's revision to the commit it points at now, in `sources.lock` (unless `dry_run`)."""
    specs = [s for s in all_sources(params, read_sources_file(root / SOURCES_FILE)) if s.hub is not None]
    old = read_lock(root / LOCK_FILE)
    wanted = sorted({(str(s.hub), wanted_revision(s)) for s in specs if not SHA.match(wanted_revision(s))})
    resolved = resolve_pins(
        wanted, concurrency, timeout_s, allow_insecure_http=params.hub.allow_insecure_http
    )

    pins: dict[str, Pin] = {}
    moved: list[Moved] = []
    added: list[Moved] = []
    failed: dict[str, str] = {}
    unchanged = 0
    for spec in specs:
        hub, revision = str(spec.hub), wanted_revision(spec)
        previous = old.sources.get(spec.id)
        if previous is not None and (previous.hub, previous.revision) != (hub, revision):
            previous = None  # pinned for another repo or revision: not this spec's pin
        if SHA.match(revision):
            sha: str | None = revision
        else:
            sha, error = resolved[(hub, revision)]
            if sha is None:
                failed[spec.id] = error or "not resolved"
                if previous is not None:
                    pins[spec.id] = previous
                continue
        assert sha is not None
        pins[spec.id] = Pin(hub=hub, revision=revision, sha=sha)
        if previous is None:
            added.append(Moved(source_id=spec.id, hub=hub, revision=revision, old=None, new=sha))
        elif previous.sha != sha:
            moved.append(Moved(source_id=spec.id, hub=hub, revision=revision, old=previous.sha, new=sha))
        else:
            unchanged += 1
    lock = SourcesLock(sources=dict(sorted(pins.items())))
    if not dry_run and lock != old:
        write_lock(root / LOCK_FILE, lock)
    return RefreshReport(
        dry_run=dry_run,
        sources=len(specs),
        requests=len(wanted),
        unchanged=unchanged,
        moved=moved,
        added=added,
        removed=sorted(set(old.sources) - {s.id for s in specs}),
        failed=failed,
    )
