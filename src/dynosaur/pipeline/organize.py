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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynosaur.core.errors import StageFailed, first_line
from dynosaur.core.fingerprint import fingerprint as stage_fingerprint
from dynosaur.core.io import atomic_write, read_model, write_json
from dynosaur.core.params import OrganizeParams, load_params
from dynosaur.core.progress import Progress
from dynosaur.core.records import FilteredSource, SourceMeta, Task
from dynosaur.core.runner import log, refuse_to_remove_all, run, write_metrics
from dynosaur.core.shards import SUFFIX, ShardWriter, shard_fingerprint_of, shard_path
from dynosaur.core.statcache import StatCache, make_scratch, scratch_dir
from dynosaur.pipeline.decontaminate import EvalIndex, eval_files, eval_fingerprint, load_index
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
) -> SourceResult:
    """Write the shards of `tasks` (all of one source), reading the source once for all of them.

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
            for batch in iter_batches(meta, split.name, params.batch_rows):
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
class Organizer:
    """One run over the corpus: its inputs, and what it found, source by source (`organize_tasks_file`)."""

    out: Path
    collected: Path
    params: OrganizeParams
    evalset: Evalset
    cache: StatCache
    staging: Path
    counts: Counter = field(default_factory=Counter)  # this run's: rows read, dropped, tasks organized, ...
    failures: dict[str, str] = field(default_factory=dict)  # source or source/task → why
    live: dict[str, set[str]] = field(default_factory=dict)  # source → the tasks that keep a shard
    shards: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # source → task → summary

    def organize_tasks_file(self, tasks_path: Path) -> None:
        """Bring one source's shards up to date with its task file (`data/tasks/<source>.json`)."""
        out, params, source_id = self.out, self.params, tasks_path.stem
        # A source whose task file and shards are the very files of its last check is up to date: its counts
        # come from the cache, and nothing of it is opened (dynosaur.core.statcache).
        known = self.cache.peek(source_id)
        if known is not None:
            files_of_source = [tasks_path, *(out / shard_path(source_id, t) for t in known)]
            if self.cache.get(source_id, files_of_source) is not None:
                self.live[source_id], self.shards[source_id] = set(known), known
                self.counts["tasks_reused"] += len(known)
                return
        source = read_model(tasks_path, FilteredSource)
        self.live[source_id] = {t.task_id for t in source.valid}
        stale = [
            t
            for t in source.valid
            if existing_fingerprint(out / shard_path(source_id, t.task_id))
            != shard_fingerprint(t, params, self.evalset.fingerprint)
        ]
        self.counts["tasks_reused"] += len(source.valid) - len(stale)
        result = self._organize(source_id, stale) if stale else SourceResult()
        self.live[source_id] -= set(result.failed)  # a failed task keeps no shard, not even an old one
        self.counts.update(result.counts)
        self.counts["tasks_organized"] += len(stale) - len(result.failed)
        self.counts["tasks_failed"] += len(result.failed)
        self.shards[source_id] = {
            t: shard_summary(out / shard_path(source_id, t))
            for t in sorted(self.live[source_id])
            if (out / shard_path(source_id, t)).exists()
        }
        if not result.failed and source_id not in self.failures:
            shard_files = [out / shard_path(source_id, t) for t in self.shards[source_id]]
            self.cache.put(source_id, [tasks_path, *shard_files], self.shards[source_id])

    def _organize(self, source_id: str, stale: list[Task]) -> SourceResult:
        """Write the shards of a source's `stale` tasks; a source that can't be read fails all of them."""
        evalset = self.evalset.index()
        try:
            meta = read_model(self.collected / f"{source_id}.json", SourceMeta)
            result = organize_source(
                meta,
                stale,
                self.out / source_id,
                self.params,
                evalset,
                self.evalset.fingerprint,
                make_scratch(self.staging) / source_id,
            )
        except Exception as exc:  # pyarrow and datasets raise many types for a source they can't read
            if os.environ.get("DYNO_DEBUG"):
                raise
            self.failures[source_id] = first_line(exc, typed=True)
            return SourceResult(failed={t.task_id: self.failures[source_id] for t in stale})
        self.failures.update({f"{source_id}/{k}": v for k, v in result.failed.items()})
        return result

    def tidy(self) -> int:
        """Remove the shards of tasks and sources that are gone, and files organize never writes; forget
        them in the stat cache. Returns how many shards were removed."""
        if not self.live:  # no task records at all: never remove the whole corpus for that (issue 11)
            refuse_to_remove_all(self.out, sum(p.is_dir() for p in self.out.glob("[!.]*")), self.collected)
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
        counted = ("tasks_organized", "tasks_reused", "tasks_failed", *COUNTS)
        return {"shards_removed": removed, **{k: self.counts.get(k, 0) for k in counted}}

    def check_failures(self) -> None:
        """Raise StageFailed naming the first failure, unless there is none or `organize.allow_failures`."""
        if self.failures and not self.params.allow_failures:
            key, reason = next(iter(sorted(self.failures.items())))
            raise StageFailed(
                f"{len(self.failures)} source(s) or task(s) failed, first {key}: {reason}"
                " (recorded in data/stats/organize.json; fix or remove them, or set organize.allow_failures: true)"
            )


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
    organizer = Organizer(
        out, args.collected, params, evalset, StatCache("organize", salt, beside=out), staging
    )
    paths = sorted(args.tasks.glob("*.json"))
    # rows read from the sources (reused sources read none): organize's rate
    with Progress("organize", len(paths), "sources", rate_of="rows") as bar:
        for done, tasks_path in enumerate(paths):
            bar.update(completed=done, rows=organizer.counts["rows_seen"])
            organizer.organize_tasks_file(tasks_path)
        bar.update(completed=len(paths), rows=organizer.counts["rows_seen"])
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
