"""collect: one metadata record per source, in the output's segments (dynosaur.core.segments).

Sources: `params.yaml: sources`, then the sources file (`sources.yaml`, dynosaur.core.source_list). A Hub
source's revision is its commit in the lock (`sources.lock`, written by `dyno refresh`), so a run reads only
committed files and never asks the Hub where a branch points; a Hub source missing from the lock is resolved
now, with one line saying to pin it.

A source whose revision (local content fingerprint or Hub commit sha), collect params and reader version
(`sources.READER_VERSION`) are unchanged keeps its record untouched, so downstream stages see nothing new.
That check is cheap and runs first, for every source, in order; the sources left to read are then read in
parallel (`collect.concurrency` threads), each within `collect.timeout_s` (20 s, as the paper's crawler): a
source past it is `failed` with reason `timed_out` and its thread is abandoned.

A source that cannot serve is recorded as `skipped` with a reason; one that fails to load is recorded as
`failed` with a one-line reason (an unexpected error too; `DYNO_DEBUG=1` raises it with its traceback
instead), the others proceed, and the stage exits non-zero unless `collect.allow_failures` is set. A source
retracted in the ledger, or whose licence is outside `params.yaml: licenses`, is `skipped` with that reason,
so it costs no LLM call and its outputs go.
An evaluation benchmark (`collect.eval_benchmarks`) is `skipped` as `eval_benchmark` before anything is read.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dynosaur.core.errors import SourceError, StageFailed, first_line, some
from dynosaur.core.fingerprint import fingerprint as stage_fingerprint
from dynosaur.core.io import write_json
from dynosaur.core.licenses import license_exclusion
from dynosaur.core.params import Params, SourceSpec, load_params
from dynosaur.core.records import Retraction, SourceMeta, SourceStatus
from dynosaur.core.runner import log, progress, prune, run, write_metrics
from dynosaur.core.segments import RecordFolder, RecordRef
from dynosaur.core.source_list import SourcesLock, all_sources, read_lock, read_sources_file
from dynosaur.core.statcache import Stamped, StatCache
from dynosaur.pipeline.decontaminate import eval_benchmark
from dynosaur.pipeline.sources import (
    READER_VERSION,
    collect_source,
    guard_hub_token,
    local_files,
    source_revision,
)
from dynosaur.registry.ledger import read_records

T = TypeVar("T")
R = TypeVar("R")
TIMED_OUT = "timed_out"


def inputs_digest(spec: SourceSpec, params: Params, revision: str, retracted: dict[str, str]) -> str:
    """What a source's record depends on: collect reuses the record while this is unchanged."""
    return stage_fingerprint(
        inputs=[
            spec.model_dump(mode="json"),
            revision,
            params.licenses.model_dump(mode="json"),
            retracted.get(spec.id),
        ],
        params=params.collect,
        version=READER_VERSION,
    )


def reusable(previous: SourceMeta | None, digest: str) -> bool:
    return previous is not None and previous.inputs_digest == digest and previous.status != "failed"


def collect_one(
    spec: SourceSpec,
    params: Params,
    previous: SourceMeta | None,
    retracted: dict[str, str],
    revision: str | None = None,
) -> tuple[SourceMeta, bool]:
    """(record, reused). `revision`: the source's revision when the caller knows it (a Hub source's pinned
    sha, a local folder's fingerprint); else it is computed (a Hub source's is asked of the Hub). Failures
    become `failed` records rather than exceptions; a retracted source or one outside the licence policy
    becomes `skipped` with the reason."""
    if eval_benchmark(spec, params.collect.eval_benchmarks):
        return _unread(spec, "skipped", "eval_benchmark"), False
    try:
        revision = revision or source_revision(spec)
        inputs = inputs_digest(spec, params, revision, retracted)
        if reusable(previous, inputs):
            assert previous is not None
            return previous, True
        meta = collect_source(spec, params.collect, revision)
        excluded = (
            f"retracted: {retracted[spec.id]}"
            if spec.id in retracted
            else license_exclusion(meta.license, params.licenses)
        )
        if excluded and meta.status == "ok":
            meta = meta.model_copy(update={"status": "skipped", "reason": excluded})
        return meta.model_copy(update={"inputs_digest": inputs}), False
    except SourceError as exc:
        reason = str(exc)
    except Exception as exc:  # a bug met on this one source: record it and let the others proceed
        if os.environ.get("DYNO_DEBUG"):
            raise
        reason = (
            f"source {spec.id!r}: unexpected {first_line(exc, typed=True)} (DYNO_DEBUG=1 shows the traceback)"
        )
    return _unread(spec, "failed", reason), False


def _unread(spec: SourceSpec, status: SourceStatus, reason: str) -> SourceMeta:
    """The record of a source that was not read (failed, or skipped before reading)."""
    return SourceMeta(
        source_id=spec.id,
        origin=f"local:{spec.path}" if spec.path else f"hub:{spec.hub}",
        kind="local" if spec.path else "hub",
        location=spec.path or spec.hub or "",
        revision="",
        status=status,
        reason=reason,
    )


def timed_out(spec: SourceSpec, timeout_s: float) -> SourceMeta:
    return _unread(spec, "failed", f"{TIMED_OUT}: not read within {timeout_s:g} s (collect.timeout_s)")


def bounded(
    items: list[T], work: Callable[[T], R], concurrency: int, timeout_s: float
) -> Iterator[tuple[int, R | None]]:
    """`work(item)` for every item on daemon threads, at most `concurrency` at once, yielding (index, result)
    as each finishes, and (index, None) for one still running `timeout_s` after it started. A thread past
    its time is abandoned, not killed (Python can't), and its slot goes to the next item; being a daemon, it
    never holds the process open. An exception in `work` is raised here."""
    done: queue.Queue[tuple[int, Any, BaseException | None]] = queue.Queue()
    todo = iter(enumerate(items))
    running: dict[int, float] = {}  # index → deadline

    def call(index: int, item: T) -> None:
        try:
            done.put((index, work(item), None))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller's thread)
            done.put((index, None, exc))

    def fill() -> None:
        while len(running) < concurrency:
            nxt = next(todo, None)
            if nxt is None:
                return
            running[nxt[0]] = time.monotonic() + timeout_s
            threading.Thread(target=call, args=nxt, daemon=True, name=f"collect-{nxt[0]}").start()

    fill()
    while running:
        try:
            index, result, error = done.get(timeout=max(0.0, min(running.values()) - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            for index in [i for i, deadline in running.items() if deadline <= now]:
                del running[index]
                yield index, None
            fill()
            continue
        if index not in running:  # finished after its deadline: already reported as timed out
            continue
        del running[index]
        if error is not None:
            raise error
        yield index, result
        fill()


def summary(meta: SourceMeta) -> dict[str, Any]:
    """What the stage's metrics and its next run need of a record, kept in the stat cache."""
    return {
        "status": meta.status,
        "reason": meta.reason,
        "rows": sum(s.num_rows for s in meta.splits),
        "revision": meta.revision,
        "inputs": meta.inputs_digest,
    }


@dataclass
class Plan:
    """What a run does with the listed sources: the records it reuses (their summaries), the sources it
    reads (`todo`: spec, previous record, revision when known), and the records it has made."""

    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)
    fresh: dict[str, SourceMeta] = field(default_factory=dict)  # records made by this run
    todo: list[tuple[SourceSpec, SourceMeta | None, str | None]] = field(default_factory=list)
    unpinned: list[str] = field(default_factory=list)  # Hub sources missing from the lock
    files: dict[str, list[Stamped]] = field(default_factory=dict)  # a source's record and local files

    def reuse(self, source_id: str, known: dict[str, Any]) -> None:
        self.summaries[source_id] = known
        self.reused.add(source_id)


def plan_sources(
    specs: list[SourceSpec],
    params: Params,
    lock: SourcesLock,
    retracted: dict[str, str],
    records: RecordFolder[SourceMeta],
    cache: StatCache,
) -> Plan:
    """Cheap and in order: what is unchanged keeps its record; the rest is left to `read_sources`."""
    plan = Plan()
    for spec in specs:
        if eval_benchmark(spec, params.collect.eval_benchmarks):
            plan.fresh[spec.id] = _unread(spec, "skipped", "eval_benchmark")
            continue
        revision = lock.sha(spec)
        plan.files[spec.id] = [RecordRef(records, spec.id)]
        if spec.path is not None:
            if not Path(spec.path).is_dir():
                reason = f"source {spec.id!r}: folder {spec.path} does not exist"
                plan.fresh[spec.id] = _unread(spec, "failed", reason)
                continue
            plan.files[spec.id] += local_files(Path(spec.path))
        known = cache.get(spec.id, plan.files[spec.id]) if spec.path or revision else None
        if known and known["inputs"] == inputs_digest(spec, params, revision or known["revision"], retracted):
            plan.reuse(spec.id, known)
            continue
        previous = records.get(spec.id)
        if spec.hub is not None and revision is None:
            plan.unpinned.append(spec.id)  # its revision is asked of the Hub, in parallel with the reads
        elif spec.path is not None:
            revision = source_revision(spec)
        if revision is not None and reusable(previous, inputs_digest(spec, params, revision, retracted)):
            assert previous is not None
            plan.reuse(spec.id, summary(previous))
            continue
        plan.todo.append((spec, previous, revision))
    return plan


def read_sources(
    plan: Plan, params: Params, retracted: dict[str, str], records: RecordFolder[SourceMeta]
) -> None:
    """Read the plan's `todo` in parallel (`collect.concurrency`, each within `collect.timeout_s`), writing
    each new record as it comes."""
    if any(spec.hub is not None for spec, _, _ in plan.todo):
        guard_hub_token(params.hub.allow_insecure_http)
    if not plan.todo:
        return
    import datasets  # noqa: F401  (imported once here: threads importing it at once can deadlock)
    from tqdm import tqdm

    # datasets runs tqdm's thread_map, whose ensure_lock deletes a class lock it had to create when it is
    # done, under the feet of another thread's bars ("type object 'tqdm' has no attribute '_lock'"). A
    # lock made here first is one it restores instead.
    tqdm.get_lock()

    c = params.collect

    def read(job: tuple[SourceSpec, SourceMeta | None, str | None]) -> SourceMeta:
        spec, previous, revision = job
        return collect_one(spec, params, previous, retracted, revision)[0]

    results = bounded(plan.todo, read, c.concurrency, c.timeout_s)
    for index, meta in progress(results, "collect", total=len(plan.todo)):
        spec, previous = plan.todo[index][:2]
        meta = meta if meta is not None else timed_out(spec, c.timeout_s)
        if meta is previous:  # an unpinned source found unchanged is not rewritten
            plan.reuse(spec.id, summary(meta))
        else:
            records.put(meta)
            plan.fresh[spec.id] = meta


def settle(plan: Plan, records: RecordFolder[SourceMeta]) -> None:
    """Every record this run made has its summary; those made before reading (skipped, failed) are stored
    (a record unchanged leaves its segment untouched)."""
    read_now = {spec.id for spec, _, _ in plan.todo}
    for source_id, meta in plan.fresh.items():
        plan.summaries[source_id] = summary(meta)
        if source_id not in read_now:  # skipped or failed before reading
            records.put(meta)


def remember(plan: Plan, cache: StatCache) -> None:
    """Every source not failed goes into the stat cache (after the records landed: it stamps their segments)."""
    for source_id, known in plan.summaries.items():
        if known["status"] != "failed" and source_id in plan.files:
            cache.put(source_id, plan.files[source_id], known)


def outcome(plan: Plan, specs: list[SourceSpec]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(metrics, stats, failed: source → reason) over every listed source, in the listed order."""
    ordered = [(s.id, plan.summaries[s.id]) for s in specs]
    failed = {sid: k["reason"] or "" for sid, k in ordered if k["status"] == "failed"}
    skipped = {sid: k["reason"] for sid, k in ordered if k["status"] == "skipped"}
    metrics = {
        "sources": sum(k["status"] == "ok" for _, k in ordered),  # read: what generate sees
        "rejected": len(skipped),  # by policy: an evaluation benchmark, a licence, ...
        "failed": len(failed),
    }
    stats = {
        "sources_listed": len(ordered),
        "sources_skipped": skipped,
        "sources_timed_out": sum((k["reason"] or "").startswith(TIMED_OUT) for _, k in ordered),
        "sources_unpinned": len(plan.unpinned),
        "rows": sum(k["rows"] for _, k in ordered),
    }
    return metrics, stats, failed


def main(args: argparse.Namespace) -> None:
    params = load_params()
    specs = all_sources(params, read_sources_file(args.sources))
    retracted = {r.target: r.reason for r in read_records(args.retractions, Retraction) if r.kind == "source"}
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    # A source whose record and files are the very ones of the last run, and whose inputs digest is still
    # the record's, is reused without reading the record or hashing its folder (dynosaur.core.statcache).
    cache = StatCache("collect", str(READER_VERSION), beside=out)
    records = RecordFolder(out, SourceMeta)
    records.migrate()
    plan = plan_sources(specs, params, read_lock(args.lock), retracted, records, cache)
    if plan.unpinned:
        log(
            f"collect: {len(plan.unpinned)} Hub source(s) not pinned in {args.lock} ({some(plan.unpinned)}):"
            " resolved now; run `dyno refresh` to pin them"
        )
    read_sources(plan, params, retracted, records)
    settle(plan, records)
    removed = prune(records, {s.id for s in specs})
    records.flush()
    remember(plan, cache)
    cache.keep_only({s.id for s in specs})
    cache.save()
    for spec in specs:  # one line per source that is not ok (reused records were said before)
        known = plan.summaries[spec.id]
        if known["status"] != "ok" and spec.id in plan.fresh:
            log(f"collect: {spec.id}: {known['status']}: {known['reason']}")
    metrics, stats, failed = outcome(plan, specs)
    write_metrics(args.metrics, metrics)
    write_json(args.stats, stats)
    reads = {"sources_read": len(plan.todo), "sources_reused": len(plan.reused)}
    write_json(args.run_log, {**reads, "sources_removed": len(removed)})
    if failed and not params.collect.allow_failures:
        raise StageFailed(
            f"{len(failed)} source(s) failed: {next(iter(failed.values()))}"
            " (recorded in the collect output; fix or remove them, or set collect.allow_failures: true)"
        )


if __name__ == "__main__":
    run(main, "sources", "lock", "retractions", "out", "metrics", "stats", "run-log")
    # Done, and every output is written (atomically, fsynced): leave without tearing the interpreter down.
    # Unloading `datasets` costs ~1 s, and a timed-out source's abandoned thread may still hold a lock.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
