"""generate: ask the LLM for tasks, two prompt variants per source (one record per source in `<out>`'s segments).

A source's work is keyed by the cache keys of its requests: when neither its metadata, the prompts nor the
model changed, its output is kept and no request is even looked up. New or changed sources go through the
call cache, so only answers never seen before cost anything. `--dry-run` prints what a run would spend.

A source whose collect record and output are the very files of the last run, with the same params and code,
is not even read: its summary comes from the stage's memory (dynosaur.core.statcache), so one more source
costs its own requests, not a pass over every source's prompts.

`llm.mode: batch` sends the requests through the provider's Batch API instead (dynosaur.pipeline.batch): the
run writes the sources whose answers are in, leaves the ones still waiting for a batch unwritten (a source
written before keeps its old output), exits 0 and ends with one line saying when to run again.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynosaur.core.errors import StageFailed
from dynosaur.core.fingerprint import fingerprint, loaded_code
from dynosaur.core.io import write_json
from dynosaur.core.params import Params, load_params
from dynosaur.core.progress import Progress
from dynosaur.core.records import GeneratedSource, Proposal, SourceMeta, digest
from dynosaur.core.runner import log, prune, run, write_metrics
from dynosaur.core.segments import RecordFolder, RecordRef, landing
from dynosaur.core.statcache import StatCache
from dynosaur.pipeline.answers import parse_instructions, parse_tasks, repair_task
from dynosaur.pipeline.batch import WAITING, BatchRunner
from dynosaur.pipeline.batch_tracker import ensure_tracker, load_tracker
from dynosaur.pipeline.fields import FieldMapping, enumerate_mappings
from dynosaur.pipeline.llm import LLM, ChatRequest, ChatResult, DryRun, require_within_caps
from dynosaur.pipeline.prompts import (
    build_fields_first_messages,
    build_messages,
    fields_first_schema,
    response_schema,
)


class DryRunReport(DryRun):
    sources: int
    sources_to_generate: int
    model: str
    mode: str = "sync"
    in_flight: int = 0  # batch mode: requests already submitted in a running batch (no new cost)


def source_requests(meta: SourceMeta, params: Params, llm: LLM) -> list[tuple[str, ChatRequest]]:
    g = params.generate
    sample_rows = params.collect.sample_rows
    if g.mode == "fields_first":  # the description when there is one; `mappings_per_request` per request
        described = meta.description and "with_description" in g.variants
        variant = "with_description" if described else "without_description"
        return [
            (
                f"{variant}#{i}",
                llm.request(
                    build_fields_first_messages(meta, variant, chunk, sample_rows, g.demonstrations),
                    fields_first_schema(len(chunk)),
                    g.prompt_version,
                ),
            )
            for i, chunk in enumerate(mapping_chunks(meta, params))
        ]
    schema = response_schema(meta, g.tasks_per_prompt)
    return [
        (
            variant,
            llm.request(
                build_messages(meta, variant, g.tasks_per_prompt, sample_rows, g.demonstrations),
                schema,
                g.prompt_version,
            ),
        )
        for variant in g.variants
        if variant == "without_description" or meta.description  # no description → one variant
    ]


def mapping_chunks(meta: SourceMeta, params: Params) -> list[list[FieldMapping]]:
    """fields_first: the source's mappings, `mappings_per_request` at a time (request `#i` asks chunk i)."""
    g = params.generate
    mappings = enumerate_mappings(meta, g.max_mappings)
    k = g.mappings_per_request
    return [mappings[i : i + k] for i in range(0, len(mappings), k)]


def to_proposal(
    variant: str, request: ChatRequest, result: ChatResult, meta: SourceMeta, params: Params
) -> Proposal:
    g = params.generate
    if g.mode == "fields_first":
        chunk = mapping_chunks(meta, params)[int(variant.rsplit("#", 1)[1])]
        tasks, parse_error = parse_instructions(result.content, chunk, meta)
    else:
        tasks, parse_error = parse_tasks(result.content)
    if g.repair:
        tasks = [repair_task(t) for t in tasks]
    return Proposal(
        variant=variant,
        cache_key=request.cache_key,
        cached=result.cached,
        tasks=tasks,
        parse_error=parse_error,
        usage=result.usage,
        cost_usd=result.cost_usd,
    )


def outcome(result: ChatResult) -> str:
    """The run-log counter an answer goes to."""
    if result.skipped:
        return "calls_waiting" if result.skipped == WAITING else "calls_not_made"
    return "cache_hits" if result.cached else "calls_made"


def load_ok_sources(collected: RecordFolder[SourceMeta], limit: int | None) -> list[SourceMeta]:
    metas = [meta for _, meta in collected.items()]
    ok = [m for m in metas if m.status == "ok"]
    return ok[:limit] if limit else ok


MEMORY_VERSION = 1  # the shape of `summarize`'s value


def memory(params: Params, llm: LLM, out: Path) -> StatCache:
    """generate's memory of each source's outcome, keyed on its collect record's and output's files, salted
    with what a source's requests are made of: the generate and llm params, the model and the code."""
    inputs = [llm.model_identity, params.collect.sample_rows, loaded_code(), MEMORY_VERSION]
    salt = fingerprint(
        inputs=[inputs, fingerprint(inputs=None, params=params.llm, version=0)],
        params=params.generate,
        version=MEMORY_VERSION,
    )
    return StatCache("generate", salt, beside=out)


def summarize(record: GeneratedSource) -> dict[str, Any]:
    """What the stage's metrics and stats need of one source's output."""
    return {
        "status": record.status,
        "tasks": sum(len(p.tasks) for p in record.proposals),  # proposed, before the filter
        "prompt_tokens": sum(p.usage.prompt_tokens for p in record.proposals),
        "completion_tokens": sum(p.usage.completion_tokens for p in record.proposals),
        "cost_usd": sum(p.cost_usd for p in record.proposals),
        "unparseable_answers": sum(p.parse_error is not None for p in record.proposals),
    }


@dataclass
class Sources:
    """The collected sources of one run: those the memory vouches for (id → summary, None for a source collect
    did not keep), the records of the rest (to plan), and how many records were read."""

    known: dict[str, dict | None] = field(default_factory=dict)
    unknown: list[SourceMeta] = field(default_factory=list)
    read: int = 0


def remembered(
    collected: RecordFolder[SourceMeta], out: RecordFolder[GeneratedSource], cache: StatCache
) -> Sources:
    """Every collected source, each read only when the memory can't vouch for it."""
    sources = Sources()
    for sid in collected.ids():
        value = cache.peek(sid)
        record = RecordRef(collected, sid)
        if value is not None:
            files = [record] if value["summary"] is None else [record, RecordRef(out, sid)]
            if cache.get(sid, files) is not None and (value["summary"] or {}).get("status", "ok") == "ok":
                sources.known[sid] = value["summary"]
                continue
        meta = collected[sid]
        sources.read += 1
        if meta.status != "ok":
            cache.put(sid, [record], {"summary": None})
            sources.known[sid] = None
        else:
            sources.unknown.append(meta)
    return sources


def sources_of_run(
    params: Params,
    collected: RecordFolder[SourceMeta],
    records: RecordFolder[GeneratedSource],
    cache: StatCache,
) -> Sources:
    """The collected sources, as the memory knows them; with `generate.limit`, the first N sources collect
    kept, read each time (no memory)."""
    if params.generate.limit:
        ok = load_ok_sources(collected, params.generate.limit)
        return Sources(unknown=ok, read=len(collected.ids()))
    return remembered(collected, records, cache)


def plan(
    metas: list[SourceMeta], params: Params, llm: LLM, out: RecordFolder[GeneratedSource]
) -> dict[str, list[tuple[str, ChatRequest]]]:
    """The sources whose output is missing, stale or failed, with their requests."""
    todo = {}
    for meta in metas:
        requests = source_requests(meta, params, llm)
        fingerprint = digest([r.cache_key for _, r in requests])
        previous = out.get(meta.source_id)
        if previous is not None and previous.fingerprint == fingerprint and previous.status == "ok":
            continue
        todo[meta.source_id] = requests
    return todo


def dry_run(collected: Path, cache: Path, out: Path, batches: Path | None = None) -> DryRunReport:
    """What `generate` would spend now: calls, estimated tokens and worst-case cost (at batch prices in
    batch mode, leaving out requests already in a running batch). Calls nothing."""
    params = load_params()
    metas = load_ok_sources(RecordFolder(collected, SourceMeta), params.generate.limit)
    with LLM(params.llm, cache) as llm:
        todo = plan(metas, params, llm, RecordFolder(out, GeneratedSource))
        requests = [r for reqs in todo.values() for _, r in reqs]
        in_flight: set[str] = set()
        if params.llm.mode == "batch" and batches is not None:
            tracked = {cid for b in load_tracker(batches).batches for cid in b.custom_ids}
            in_flight = {r.cache_key for r in requests if r.cache_key in tracked}
        estimate = llm.dry_run([r for r in requests if r.cache_key not in in_flight])
    fields = estimate.model_dump() | {"requests": estimate.requests + len(in_flight)}
    return DryRunReport(
        sources=len(metas),
        sources_to_generate=len(todo),
        model=params.llm.model,
        mode=params.llm.mode,
        in_flight=len(in_flight),
        **fields,
    )


@dataclass
class Answered:
    """What one run of the answer loop did: the run log's call counters and the sources that failed."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    unwritten: set[str] = field(default_factory=set)  # batch mode: sources in a batch still running


def answer_sources(
    todo: dict[str, list[tuple[str, ChatRequest]]],
    metas: dict[str, SourceMeta],
    params: Params,
    llm: LLM,
    runner: BatchRunner | None,
    out: RecordFolder[GeneratedSource],
) -> Answered:
    """Ask every request of `todo` (through the batch runner in batch mode) and write each source's output the
    moment its last answer is in, so a kill keeps every finished source."""
    pending = {sid: len(reqs) for sid, reqs in todo.items()}
    waiting: dict[str, list[tuple[str, str]]] = defaultdict(list)  # cache key → (source, variant)
    for sid, reqs in todo.items():  # two sources with identical metadata share one request
        for variant, request in reqs:
            waiting[request.cache_key].append((sid, variant))
        if not reqs:  # fields_first found no plausible mapping: an empty record, nothing to ask
            finish_source(metas[sid], [], out, params, llm)
    answers: dict[str, list[tuple[str, ChatRequest, ChatResult]]] = defaultdict(list)
    done = Answered()
    requests = [r for reqs in todo.values() for _, r in reqs]
    answered = runner.complete_many(requests) if runner else llm.complete_many(requests)
    tokens = 0  # this run's, cache hits not counted (they cost nothing)
    with Progress("generate", len(waiting), "calls") as bar:
        for request, result in answered:
            if not result.cached:
                tokens += result.usage.prompt_tokens + result.usage.completion_tokens
            bar.advance(tokens=tokens, cost_usd=llm.budget.spent_usd)
            done.counts[outcome(result)] += 1
            done.counts["failed_calls"] += result.error is not None
            done.counts["incomplete_retries"] += result.retries  # cut or empty answers asked again
            done.counts["incomplete_answers"] += result.incomplete  # ... and still cut or empty: failed
            if result.skipped == WAITING:
                done.unwritten.update(sid for sid, _ in waiting[request.cache_key])
            for sid, variant in waiting[request.cache_key]:
                answers[sid].append((variant, request, result))
                pending[sid] -= 1
                if pending[sid] == 0:
                    done.failures.update(finish_source(metas[sid], answers.pop(sid), out, params, llm))
    return done


def corpus_stats(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens and cost of every answer the generated sources hold (the stats file: all runs, not this one)."""
    return {
        "prompt_tokens": sum(s["prompt_tokens"] for s in summaries),
        "completion_tokens": sum(s["completion_tokens"] for s in summaries),
        "corpus_cost_usd": round(sum(s["cost_usd"] for s in summaries), 6),  # what every answer kept cost
        "unparseable_answers": sum(s["unparseable_answers"] for s in summaries),
    }


def run_log(
    todo: dict[str, Any],
    sources: int,
    records_read: int,
    removed: list[str],
    done: Answered,
    spent_usd: float,
) -> dict[str, Any]:
    """This run's log: collect records read, sources processed, reused (of `sources`, those collect kept) and
    removed, and its calls and cost."""
    counts = done.counts
    return {
        "records_read": records_read,
        "sources_processed": len(todo),
        "sources_reused": sources - len(todo),
        "sources_removed": len(removed),
        **{
            name: counts.get(name, 0)
            for name in (
                "calls_made",
                "cache_hits",
                "failed_calls",
                "incomplete_retries",
                "incomplete_answers",
                "calls_not_made",
                "calls_waiting",  # batch mode: in a batch still running
            )
        },
        "run_cost_usd": round(spent_usd, 6),
    }


def main(args: argparse.Namespace) -> None:
    if args.dry_run:
        print(dry_run(args.collected, args.cache, args.out, args.batches).model_dump_json(indent=1))
        return
    params = load_params()
    ensure_tracker(args.batches)
    args.cache.mkdir(parents=True, exist_ok=True)  # a DVC output even when no answer has come back yet
    with LLM(params.llm, args.cache) as llm:
        cache = memory(params, llm, args.out)
        collected = RecordFolder(args.collected, SourceMeta)
        records = RecordFolder(args.out, GeneratedSource)
        records.migrate()
        sources = sources_of_run(params, collected, records, cache)
        metas = {m.source_id: m for m in sources.unknown}
        runner = BatchRunner(llm, args.batches) if params.llm.mode == "batch" else None
        todo = plan(sources.unknown, params, llm, records)
        args.out.mkdir(parents=True, exist_ok=True)
        with landing(records):  # what was answered lands even when the run stops on an error
            done = answer_sources(todo, metas, params, llm, runner, records)
    known = {sid: summary for sid, summary in sources.known.items() if summary is not None}
    removed = prune(records, set(known) | set(metas), collected=args.collected)
    records.flush()
    summaries = known | remember(metas, todo, collected, records, cache)
    cache.keep_only(set(sources.known) | set(metas))
    cache.save()
    failed = sum(s["status"] == "failed" for s in summaries.values())
    tasks = sum(s["tasks"] for s in summaries.values())
    write_metrics(args.metrics, {"sources": len(summaries) - failed, "tasks": tasks, "failed": failed})
    write_json(args.stats, corpus_stats(list(summaries.values())))
    sources_kept = len(known) + len(metas)
    write_json(args.run_log, run_log(todo, sources_kept, sources.read, removed, done, llm.budget.spent_usd))
    if runner and runner.waiting:
        log(runner.waiting.line(len(done.unwritten), args.batches))
    require_within_caps(llm.budget)
    if done.failures and not params.generate.allow_failures:
        sid, reason = next(iter(done.failures.items()))
        raise StageFailed(
            f"{len(done.failures)} source(s) failed: {sid}: {reason} (answers so far are cached; run again)"
        )


def remember(
    metas: dict[str, SourceMeta],
    todo: dict[str, list[tuple[str, ChatRequest]]],
    collected: RecordFolder[SourceMeta],
    records: RecordFolder[GeneratedSource],
    cache: StatCache,
) -> dict[str, dict]:
    """The summaries of the sources this run planned (their outputs read once). The memory vouches only for
    an output made of exactly today's requests: not for an older one kept while its new answers wait in a
    batch or past a cap."""
    summaries = {}
    for sid in metas:
        record = records.get(sid)
        if record is None:
            continue
        summaries[sid] = summarize(record)
        if sid not in todo or record.fingerprint == digest([r.cache_key for _, r in todo[sid]]):
            cache.put(sid, [RecordRef(collected, sid), RecordRef(records, sid)], {"summary": summaries[sid]})
    return summaries


def variant_order(variant: str, order: dict[str, int]) -> tuple[int, int]:
    """`with_description` before `without_description`; fields_first's `<variant>#<i>` by i."""
    base, _, index = variant.partition("#")
    return order.get(base, len(order)), int(index or 0)


def finish_source(
    meta: SourceMeta,
    answers: list[tuple[str, ChatRequest, ChatResult]],
    out: RecordFolder[GeneratedSource],
    params: Params,
    llm: LLM,
) -> dict[str, str]:
    """Write one source's output once all its answers are in; return {source_id: reason} if it failed."""
    if any(result.skipped for _, _, result in answers):
        return {}  # not written: the next run (with a higher cap) completes it
    order: dict[str, int] = {v: i for i, v in enumerate(params.generate.variants)}
    answers.sort(key=lambda a: variant_order(a[0], order))
    errors = [result.error for _, _, result in answers if result.error]
    record = GeneratedSource(
        source_id=meta.source_id,
        fingerprint=digest([r.cache_key for _, r, _ in answers]),
        model=llm.model_identity,
        prompt_version=params.generate.prompt_version,
        proposals=[to_proposal(v, r, res, meta, params) for v, r, res in answers if res.error is None],
        status="failed" if errors else "ok",
        reason=errors[0] if errors else None,
    )
    out.put(record)
    if errors:
        log(f"generate: {meta.source_id}: failed: {errors[0]}")
        return {meta.source_id: errors[0]}
    return {}


if __name__ == "__main__":
    run(main, "collected", "cache", "batches", "out", "metrics", "stats", "run-log", flags=("dry-run",))
