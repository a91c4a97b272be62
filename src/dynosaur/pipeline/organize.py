"""organize: every valid task × the rows of its source's train/validation splits → instances.

Instances are `{instruction, input, output}` plus provenance (`source_id, source_revision, config, split,
row, task_id, prompt_version, model, instance_id`), written as one parquet shard per task:
`<out>/<source_id>/<task_id>.parquet`.

Formatting is vectorised with `pyarrow.compute` over Arrow batches streamed from the source, so memory stays
bounded and a million rows take seconds: one input field is its value; several become one
`Readable name: value` line each (a field listed twice, or the output among the inputs, is shown once);
class labels become their names; list values become lettered options; dates and times are plain text.

Instances a trainer would accept, each drop counted per reason (`COUNTS`):
- a row whose output (or whole input) is empty is dropped;
- a target is never cut: a row whose output is longer than `organize.max_output_chars` is dropped;
- a long input is cut at a word boundary with a visible marker (`TRUNCATION_MARKER`), several fields sharing
  the room so that none is lost; a row whose input has no word boundary to cut at is dropped;
- a row whose text shares an n-gram with an evaluation set is dropped (`dynosaur.pipeline.decontaminate`);
- an exact duplicate (the same input and output earlier in the task) is dropped.
With `organize.max_instances_per_task`, a seeded sample of rows is taken per task.

Incremental: each shard carries the fingerprint of what made it (task, organize params, evaluation sets,
FORMAT_VERSION) in its parquet metadata; a shard whose fingerprint matches is kept, and a source whose shards
all match is not read at all. Shards of tasks or sources that are gone are removed. The footer also records
the shard's instance count and content digest, and its counts (the shard format: `dynosaur.core.shards`), so
manifests and releases never read instances.

Where things are: the pure row → instance work (formatting, cuts, drops, `COUNTS`) is in `organize_instances`;
the corpus as a whole (summaries, stats, chart, removing stale shards) in `organize_corpus`; this module reads
the sources, writes the shards and runs the stage.

Isolation: a source that can't be read, or a task whose rows can't be formatted, is recorded as failed with
one line (`failures` in data/stats/organize.json, stderr); the others proceed, and the stage exits non-zero at
the end unless `organize.allow_failures` is set. A failed task has no shard.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynosaur.core.errors import StageFailed, first_line
from dynosaur.core.fingerprint import fingerprint as stage_fingerprint
from dynosaur.core.io import atomic_write, write_json
from dynosaur.core.params import HubParams, OrganizeParams, load_params
from dynosaur.core.progress import Progress
from dynosaur.core.records import FilteredSource, SourceMeta, Task
from dynosaur.core.runner import log, refuse_to_remove_all, run, write_metrics
from dynosaur.core.segments import RecordFolder, RecordRef
from dynosaur.core.shards import SUFFIX, ShardWriter, shard_fingerprint_of, shard_path
from dynosaur.core.statcache import Stamped, StatCache, make_scratch, scratch_dir
from dynosaur.pipeline.decontaminate import EvalIndex, eval_files, eval_fingerprint, load_index
from dynosaur.pipeline.hub_files import LocalFiles, RateLimiter, prefetch
from dynosaur.pipeline.organize_corpus import (
    corpus_stats,
    corpus_totals,
    remove_stale,
    shard_summary,
    sources_chart,
)
from dynosaur.pipeline.organize_instances import COUNTS, DuplicateFilter, build_instances, sample_rows
from dynosaur.pipeline.sources import iter_batches

# bump when instance formatting changes, so every shard is rebuilt (6: word-boundary cuts, plain dates,
# no duplicates, control characters stripped)
FORMAT_VERSION = 6
SUMMARY_VERSION = 2  # the shape of a shard's summary in the stat cache (2: every footer count)


def shard_fingerprint(task: Task, params: OrganizeParams, evalset: str | None = None) -> str:
    """What a shard is made of: the task, the evaluation sets (`decontaminate.eval_fingerprint`), the organize
    params that shape instances (not the tuning ones: batch size, allow_failures) and FORMAT_VERSION."""
    return stage_fingerprint(
        inputs=[task.model_dump(mode="json"), evalset], params=params, version=FORMAT_VERSION
    )


existing_fingerprint = shard_fingerprint_of


@dataclass
class SourceResult:
    """What organizing one source did: counts over the tasks written, and the tasks that failed (id → why)."""

    counts: Counter = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)


def organize_source(
    meta: SourceMeta,
    tasks: list[Task],
    out_dir: Path,
    params: OrganizeParams,
    evalset: EvalIndex | None = None,
    evalset_fingerprint: str | None = None,
    staging: Path | None = None,
    files: LocalFiles | None = None,
) -> SourceResult:
    """Write the shards of `tasks` (all of one source), reading the source once for all of them (a Hub
    source from `files`, its splits' files already downloaded, when given).

    Each shard is written in `staging` (a folder of its own, by default `out_dir/.tmp`; the stage passes one
    outside the corpus) and renamed into `out_dir` once complete.

    A task whose rows can't be formatted is recorded in `failed` and gets no shard; the others go on. An error
    reading the source itself propagates (the caller records the whole source as failed)."""
    result = SourceResult()
    tmp_dir = staging or out_dir / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, ShardWriter] = {}
    samples, dupes, counts = {}, {}, {}
    try:
        for task in tasks:
            writers[task.task_id] = ShardWriter(
                out_dir / f"{task.task_id}{SUFFIX}",
                shard_fingerprint(task, params, evalset_fingerprint),
                staging=tmp_dir,
            )
            samples[task.task_id] = sample_rows(task, meta, params)
            dupes[task.task_id] = DuplicateFilter()
            counts[task.task_id] = Counter({k: 0 for k in COUNTS})
        for split in meta.splits:
            first = 0
            local = (files or {}).get(split.name)
            for batch in iter_batches(meta, split.name, params.batch_rows, files=local):
                for task in tasks:
                    if task.task_id in result.failed:
                        continue
                    keep = None
                    if (sample := samples[task.task_id]) is not None:
                        wanted = sample[split.name]
                        local = wanted[(wanted >= first) & (wanted < first + batch.num_rows)] - first
                        if not len(local):
                            continue
                        keep = np.zeros(batch.num_rows, bool)
                        keep[local] = True
                    try:
                        instances, c = build_instances(
                            batch, task, meta, split.name, first, params, keep, evalset
                        )
                        instances, c["dropped_duplicate"] = dupes[task.task_id](instances)
                        writers[task.task_id].write(instances)
                    except Exception as exc:  # pyarrow raises many types for a value it can't format
                        if os.environ.get("DYNO_DEBUG"):
                            raise
                        result.failed[task.task_id] = first_line(exc, typed=True)
                        continue
                    counts[task.task_id].update(c)
                first += batch.num_rows
        for task_id, writer in writers.items():
            if task_id in result.failed:
                continue  # its temporary file goes with tmp_dir
            writer.close({k: counts[task_id][k] for k in COUNTS})
            result.counts.update(counts[task_id])
    finally:
        for writer in writers.values():
            writer.discard()  # a closed writer's file is already in place: nothing to discard
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return result


@dataclass
class Evalset:
    """The evaluation sets to decontaminate against: their fingerprint at once, their index on first need."""

    files: list[Path]
    ngram: int
    fingerprint: str | None = None
    _index: EvalIndex | None = None

    def __post_init__(self) -> None:
        self.fingerprint = eval_fingerprint(self.files, self.ngram)

    def index(self) -> EvalIndex | None:
        if self.files and self._index is None:
            self._index = load_index(self.files, self.ngram)
            log(
                f"organize: {self._index.texts} evaluation texts from {len(self.files)} file(s) to decontaminate against"
            )
        return self._index


@dataclass
class Stale:
    """A source's tasks whose shards organize writes this run."""

    source_id: str
    stale: list[Task]


@dataclass
class Organizer:
    """One run over the corpus: its inputs, and what it found, source by source (`check`, then `organize`
    for the sources with stale tasks, `organize_corpus` both)."""

    out: Path
    collected: RecordFolder[SourceMeta]
    tasks: RecordFolder[FilteredSource]
    params: OrganizeParams
    evalset: Evalset
    cache: StatCache
    staging: Path
    counts: Counter = field(default_factory=Counter)  # this run's: rows read, dropped, tasks organized, ...
    failures: dict[str, str] = field(default_factory=dict)  # source or source/task → why
    live: dict[str, set[str]] = field(default_factory=dict)  # source → the tasks that keep a shard
    shards: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # source → task → summary

    def check(self, source_id: str) -> Stale | None:
        """A source's tasks whose shards are missing or out of date, or None when it is up to date (then
        recorded as it is). Only what the stat cache can't vouch for is opened."""
        out = self.out
        # A source whose task record and shards are the very ones of its last check is up to date: its counts
        # come from the cache, and nothing of it is opened (dynosaur.core.statcache).
        known = self.cache.peek(source_id)
        if known is not None:
            files_of_source: list[Stamped] = [
                RecordRef(self.tasks, source_id),
                *(out / shard_path(source_id, t) for t in known),
            ]
            if self.cache.get(source_id, files_of_source) is not None:
                self.live[source_id], self.shards[source_id] = set(known), known
                self.counts["tasks_reused"] += len(known)
                return None
        source = self.tasks[source_id]
        self.counts["task_files_read"] += 1
        self.live[source_id] = {t.task_id for t in source.valid}
        stale = [
            t
            for t in source.valid
            if existing_fingerprint(out / shard_path(source_id, t.task_id))
            != shard_fingerprint(t, self.params, self.evalset.fingerprint)
        ]
        self.counts["tasks_reused"] += len(source.valid) - len(stale)
        if not stale:
            self._settle(Stale(source_id, []), SourceResult())
            return None
        return Stale(source_id, stale)

    def metas(self, jobs: list[Stale]) -> Iterator[SourceMeta]:
        """The collect records of `jobs`' sources, read one at a time; a source whose record can't be read
        fails here, with all its stale tasks."""
        for job in jobs:
            try:
                yield self.collected[job.source_id]
            except Exception as exc:  # a missing or damaged record: pydantic and OSError
                self._settle(job, self._failed(job, exc))

    def organize(self, job: Stale, meta: SourceMeta, files: LocalFiles | BaseException | None) -> None:
        """Write the shards of a source's stale tasks (from `files` when organize downloaded the source, see
        hub_files.py; a failed download fails the source) and record the outcome."""
        evalset = self.evalset.index()
        try:
            if isinstance(files, BaseException):
                raise files
            result = organize_source(
                meta,
                job.stale,
                self.out / job.source_id,
                self.params,
                evalset,
                self.evalset.fingerprint,
                make_scratch(self.staging) / job.source_id,
                files,
            )
        except (
            Exception
        ) as exc:  # pyarrow, datasets and the Hub raise many types for a source they can't read
            result = self._failed(job, exc)
        else:
            self.failures.update({f"{job.source_id}/{k}": v for k, v in result.failed.items()})
        self._settle(job, result)

    def _failed(self, job: Stale, exc: BaseException) -> SourceResult:
        if os.environ.get("DYNO_DEBUG"):
            raise exc
        self.failures[job.source_id] = first_line(exc, typed=True)
        return SourceResult(failed={t.task_id: self.failures[job.source_id] for t in job.stale})

    def _settle(self, job: Stale, result: SourceResult) -> None:
        """Count what organizing a source did, and remember its shards when it fully succeeded."""
        out, source_id = self.out, job.source_id
        self.live[source_id] -= set(result.failed)  # a failed task keeps no shard, not even an old one
        self.counts.update(result.counts)
        self.counts["tasks_organized"] += len(job.stale) - len(result.failed)
        self.counts["tasks_failed"] += len(result.failed)
        self.shards[source_id] = {
            t: shard_summary(out / shard_path(source_id, t))
            for t in sorted(self.live[source_id])
            if (out / shard_path(source_id, t)).exists()
        }
        if not result.failed and source_id not in self.failures:
            shard_files = [out / shard_path(source_id, t) for t in self.shards[source_id]]
            self.cache.put(
                source_id, [RecordRef(self.tasks, source_id), *shard_files], self.shards[source_id]
            )

    def tidy(self) -> int:
        """Remove the shards of tasks and sources that are gone, and files organize never writes; forget
        them in the stat cache. Returns how many shards were removed."""
        if not self.live:  # no task records at all: never remove the whole corpus for that (issue 11)
            refuse_to_remove_all(
                self.out, sum(p.is_dir() for p in self.out.glob("[!.]*")), self.collected.folder
            )
        removed, strays = remove_stale(self.out, self.live)
        shutil.rmtree(self.staging, ignore_errors=True)
        if strays:
            shown = ", ".join(strays[:5]) + (f", … ({len(strays) - 5} more)" if len(strays) > 5 else "")
            log(f"organize: removed {len(strays)} file(s) it did not write from {self.out}: {shown}")
        self.cache.keep_only(set(self.live))
        self.cache.save()
        return removed

    def metrics(self) -> dict[str, int]:
        totals = corpus_totals(self.shards)
        return {
            "sources": len(self.live),
            "tasks": totals["tasks"],
            "instances": totals["instances"],
            "rejected": totals[
                "rows_rejected"
            ],  # rows of valid tasks left out: empty, too long, duplicate, ...
            "failed": len({key.split("/")[0] for key in self.failures}),  # sources with a failed task
        }

    def run_log(self, removed: int) -> dict[str, int]:
        counted = ("task_files_read", "tasks_organized", "tasks_reused", "tasks_failed", *COUNTS)
        return {"shards_removed": removed, **{k: self.counts.get(k, 0) for k in counted}}

    def check_failures(self) -> None:
        """Raise StageFailed naming the first failure, unless there is none or `organize.allow_failures`."""
        if self.failures and not self.params.allow_failures:
            key, reason = next(iter(sorted(self.failures.items())))
            raise StageFailed(
                f"{len(self.failures)} source(s) or task(s) failed, first {key}: {reason}"
                " (recorded in data/stats/organize.json; fix or remove them, or set organize.allow_failures: true)"
            )


def organize_corpus(organizer: Organizer, source_ids: list[str], hub: HubParams) -> None:
    """Check every source's task record, then organize the sources with stale tasks: a Hub source's files
    downloaded `hub.read_concurrency` at a time, ahead of the one being organized, within the Hub's rate."""
    # rows read from the sources (reused sources read none): organize's rate
    with Progress("organize", len(source_ids), "sources", rate_of="rows") as bar:
        jobs = [job for sid in source_ids if (job := organizer.check(sid)) is not None]
        bar.update(completed=len(source_ids) - len(jobs))
        by_id = {job.source_id: job for job in jobs}
        limiter = RateLimiter(hub.requests_per_window, hub.window_s)
        reads = prefetch(organizer.metas(jobs), concurrency=hub.read_concurrency, limiter=limiter)
        for done, (meta, files) in enumerate(reads, start=len(source_ids) - len(jobs)):
            organizer.organize(by_id[meta.source_id], meta, files)
            bar.update(completed=done + 1, rows=organizer.counts["rows_seen"])
        bar.update(completed=len(source_ids), rows=organizer.counts["rows_seen"])


def main(args: argparse.Namespace) -> None:
    everything = load_params()
    params = everything.organize
    evalset = Evalset(
        eval_files(params.decontaminate, everything.evaluate.superni_dir), params.decontaminate.ngram
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    # Shards are written here, outside the corpus but on its file system, then renamed into it: a killed run
    # leaves its half-written files outside the corpus, and the next run clears them.
    staging = scratch_dir(out, "organize")
    salt = stage_fingerprint(
        inputs=[evalset.fingerprint, SUMMARY_VERSION], params=params, version=FORMAT_VERSION
    )
    tasks = RecordFolder(args.tasks, FilteredSource)
    organizer = Organizer(
        out,
        RecordFolder(args.collected, SourceMeta),
        tasks,
        params,
        evalset,
        StatCache("organize", salt, beside=out),
        staging,
    )
    organize_corpus(organizer, tasks.ids(), everything.hub)
    for key, reason in organizer.failures.items():
        log(f"organize: {key}: failed: {reason}")
    removed = organizer.tidy()
    write_metrics(args.metrics, organizer.metrics())
    write_json(args.stats, corpus_stats(organizer.shards, organizer.failures))
    atomic_write(args.plot, sources_chart(organizer.shards))
    write_json(args.run_log, organizer.run_log(removed))
    instances = sum(s["instances"] for tasks in organizer.shards.values() for s in tasks.values())
    log(f"organize: {instances} instances in {sum(map(len, organizer.shards.values()))} task shards")
    organizer.check_failures()


if __name__ == "__main__":
    run(main, "collected", "tasks", "out", "metrics", "stats", "run-log", "plot")
