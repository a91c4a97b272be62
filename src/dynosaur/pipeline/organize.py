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
the shard's instance count and content digest, and its counts (`dynosaur.registry.manifest`), so manifests
and releases never read instances.

Isolation: a source that can't be read, or a task whose rows can't be formatted, is recorded as failed with
one line (`failures` in data/stats/organize.json, stderr); the others proceed, and the stage exits non-zero at the end unless
`organize.allow_failures` is set. A failed task has no shard.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dynosaur.core.charts import bar_chart
from dynosaur.core.errors import StageFailed, first_line
from dynosaur.core.fingerprint import fingerprint as stage_fingerprint
from dynosaur.core.io import atomic_write, read_model, write_json
from dynosaur.core.params import OrganizeParams, load_params
from dynosaur.core.progress import Progress
from dynosaur.core.records import Feature, FilteredSource, SourceMeta, Task, instance_ids
from dynosaur.core.runner import log, refuse_to_remove_all, run, write_metrics
from dynosaur.core.shards import SUFFIX, ShardWriter, footer_counts, schema, shard_fingerprint_of, shard_path
from dynosaur.core.shards import instances as shard_instances
from dynosaur.core.statcache import StatCache, make_scratch, scratch_dir
from dynosaur.core.text import clean_line, clean_value_array
from dynosaur.pipeline.decontaminate import EvalIndex, eval_files, eval_fingerprint, load_index
from dynosaur.pipeline.sources import iter_batches

# bump when instance formatting changes, so every shard is rebuilt (6: word-boundary cuts, plain dates,
# no duplicates, control characters stripped)
FORMAT_VERSION = 6
SUMMARY_VERSION = 2  # the shape of a shard's summary in the stat cache (2: every footer count)
TRUNCATION_MARKER = " …[truncated]"
LETTERS = pa.array([chr(ord("A") + i) for i in range(26)] + [f"A{chr(ord('A') + i)}" for i in range(26)])
# What organize counts, per shard (its footer: the corpus totals) and per run (the run log): rows seen, and
# rows dropped or cut.
COUNTS = (
    "rows_seen",
    "dropped_empty_output",
    "dropped_empty_input",
    "dropped_long_output",
    "dropped_long_input",
    "truncated_inputs",
    "dropped_contaminated",
    "dropped_duplicate",
)
_ZERO_FRACTION = r"\.0+(Z|[+-]\d\d:?\d\d)?$"  # "16:58:49.000000" → "16:58:49"
_HEAD_TO_LAST_SPACE = re.compile(r"^(.*\S)\s", re.DOTALL)
SCHEMA = schema()  # the shard's columns (dynosaur.core.shards)


# --- formatting (pure) -----------------------------------------------------------------------------------


def readable(name: str) -> str:
    """`question_title` / `questionTitle` → `Question title`."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").split()
    text = " ".join(words).lower()
    return text[:1].upper() + text[1:] if text else name


def _list_text(column: pa.Array, *, options: bool) -> pa.Array:
    """A list column → "A. first\\nB. second" per row (options), or "first, second" (vectorised; more than
    52 options are numbered). Items are formatted like any value, so dates, floats and structs read well."""
    if pa.types.is_fixed_size_list(column.type):
        column = column.cast(pa.list_(column.type.value_type))
    if column.offset or (len(column) and column.offsets[0].as_py()):  # a slice: make offsets start at 0
        column = pa.concat_arrays([column])
    items = pc.fill_null(format_column(pc.list_flatten(column), None, options=False), "")
    if options:
        parents = pc.list_parent_indices(column).to_numpy()
        offsets = np.asarray(column.offsets)[:-1]
        position = np.arange(len(parents)) - offsets[parents] if len(parents) else np.zeros(0, np.int64)
        labels = pc.take(LETTERS, pa.array(np.minimum(position, len(LETTERS) - 1)))
        items = pc.binary_join_element_wise(labels, items, ". ")
    rebuilt = type(column).from_arrays(column.offsets, items, mask=column.is_null())
    return pc.binary_join(rebuilt, "\n" if options else ", ")


def _as_text(column: pa.Array) -> pa.Array:
    """Structs and maps as JSON (dates inside as plain strings); other scalars as their plain text."""
    out = []
    for v in column.to_pylist():
        if v is None or isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict | list | tuple):
            out.append(json.dumps(v, ensure_ascii=False, default=str))
        else:
            out.append(str(v))  # a date, time, duration or decimal: its plain text, never JSON-quoted
    return pa.array(out, pa.string())


def format_column(column: pa.Array, feature: Feature | None, *, options: bool) -> pa.Array:
    """One field's values as strings (nulls stay null)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_dictionary(kind):  # parquet's categorical strings
        return format_column(column.dictionary_decode(), feature, options=options)
    if feature is not None and feature.class_names and pa.types.is_integer(kind):
        names = pa.array(feature.class_names)
        valid = pc.and_(pc.greater_equal(column, 0), pc.less(column, len(names)))
        return pc.take(names, pc.if_else(valid, column, None))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _list_text(column, options=options)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pc.cast(column, pa.string())
    if pa.types.is_floating(kind):
        # 3.0 → "3", 2.5 → "2.5"
        as_int = pc.cast(pc.cast(column, pa.int64(), safe=False), pa.string())
        fits = pc.less(pc.abs(column), 2.0**53)  # 1e20 and inf do not fit int64: cast them as floats
        whole = pc.and_(pc.equal(pc.floor(column), column), fits)
        return pc.if_else(whole, as_int, pc.cast(column, pa.string()))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind):
        return pc.cast(column, pa.string())
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        return pc.replace_substring_regex(pc.cast(column, pa.string()), _ZERO_FRACTION, r"\1")
    return _as_text(column)


# --- instances (pure) ------------------------------------------------------------------------------------


def input_fields(task: Task) -> list[str]:
    """The task's input fields, each once; the output field is never also an input (while others remain)."""
    fields = list(dict.fromkeys(task.input_fields))
    others = [f for f in fields if f != task.output_field]
    return others or fields


def cut_at_word(text: str, limit: int) -> str | None:
    """`text` if it fits in `limit` characters; else its head up to a word boundary plus the marker, within
    `limit`; None when there is no word boundary to cut at."""
    if len(text) <= limit:
        return text
    room = limit - len(TRUNCATION_MARKER)
    if room < 1:
        return None
    match = _HEAD_TO_LAST_SPACE.match(text[: room + 1])
    return match.group(1) + TRUNCATION_MARKER if match else None


def fit_fields(values: list[str], labels: list[str] | None, limit: int) -> str | None:
    """One input of at most `limit` characters: the single value cut at a word, or (several fields) the
    `Label: value` lines with the longest values cut to one shared length, so that every field keeps a part.
    None when that is impossible."""
    if labels is None:
        return cut_at_word(values[0], limit)
    prefixes = [f"{label}: " for label in labels]
    room = limit - sum(map(len, prefixes)) - (len(values) - 1)
    share = _water_level([len(v) for v in values], room)
    if share is None:
        return None
    parts = []
    for prefix, value in zip(prefixes, values, strict=True):
        cut = cut_at_word(value, share)
        if cut is None:
            return None
        parts.append(prefix + cut)
    return "\n".join(parts)


def _water_level(lengths: list[int], room: int) -> int | None:
    """The largest length t with sum(min(length, t)) <= room, or None when room is negative."""
    if room < 0:
        return None
    left = len(lengths)
    for length in sorted(lengths):
        if length * left > room:
            return room // left
        room -= length
        left -= 1
    return max(lengths, default=0)


def _fit_inputs(
    inputs: pa.Array, parts: list[pa.Array], labels: list[str] | None, positions: np.ndarray, limit: int
) -> tuple[pa.Array, np.ndarray, int]:
    """(inputs with the long ones cut, which rows still have an input, how many were cut). Python runs only
    on the rows over the limit."""
    too_long = pc.fill_null(pc.greater(pc.utf8_length(inputs), limit), False).to_numpy(zero_copy_only=False)
    keep = np.ones(len(inputs), bool)
    if not too_long.any():
        return inputs, keep, 0
    where = np.flatnonzero(too_long)
    values = [p.take(pa.array(positions[where])).to_pylist() for p in parts]
    fitted = [fit_fields([v[i] for v in values], labels, limit) for i in range(len(where))]
    keep[where] = [f is not None for f in fitted]
    inputs = pc.replace_with_mask(inputs, pa.array(too_long), pa.array(fitted, pa.string()))
    return inputs, keep, sum(f is not None for f in fitted)


def _blank(values: pa.Array) -> pa.Array:
    return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True)


def build_instances(
    table: pa.Table,
    task: Task,
    meta: SourceMeta,
    split: str,
    first_row: int,
    params: OrganizeParams,
    keep: np.ndarray | None = None,
    evalset: EvalIndex | None = None,
) -> tuple[pa.Table, Counter]:
    """One Arrow batch of source rows → that batch's instances of one task (pure; duplicates across batches
    are `DuplicateFilter`'s job)."""
    counts: Counter = Counter()
    rows = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
    if keep is not None:
        table = table.filter(pa.array(keep))
        rows = rows[keep]
    names = input_fields(task)
    parts = [
        pc.fill_null(clean_value_array(format_column(table.column(n), meta.feature(n), options=True)), "")
        for n in names
    ]
    empty_input = _blank(parts[0])
    for part in parts[1:]:
        empty_input = pc.and_(empty_input, _blank(part))
    labels = [clean_line(readable(n)) for n in names] if len(names) > 1 else None
    if labels is None:
        inputs = parts[0]
    else:
        lines = [
            pc.binary_join_element_wise(pa.scalar(f"{label}:"), p, " ")
            for label, p in zip(labels, parts, strict=True)
        ]
        inputs = pc.binary_join_element_wise(*lines, "\n")
    output_feature = meta.feature(task.output_field)
    outputs = clean_value_array(format_column(table.column(task.output_field), output_feature, options=False))

    drop_output = _blank(outputs)
    drop_input = pc.and_(empty_input, pc.invert(drop_output))
    too_long = pc.fill_null(pc.greater(pc.utf8_length(outputs), params.max_output_chars), False)
    long_output = pc.and_(too_long, pc.invert(pc.or_(drop_output, empty_input)))
    usable = pc.invert(pc.or_(pc.or_(drop_output, empty_input), too_long))
    counts["rows_seen"] += table.num_rows
    counts["dropped_empty_output"] += pc.sum(drop_output).as_py() or 0
    counts["dropped_empty_input"] += pc.sum(drop_input).as_py() or 0
    counts["dropped_long_output"] += pc.sum(long_output).as_py() or 0
    positions = np.flatnonzero(usable.to_numpy(zero_copy_only=False))
    inputs, outputs, rows = pc.filter(inputs, usable), pc.filter(outputs, usable), rows[positions]

    inputs, fits, cut = _fit_inputs(inputs, parts, labels, positions, params.max_input_chars)
    counts["truncated_inputs"] += cut
    counts["dropped_long_input"] += int((~fits).sum())
    if evalset is not None:
        overlap = evalset.mask(inputs, outputs)
        counts["dropped_contaminated"] += int((overlap & fits).sum())
        fits &= ~overlap
    if not fits.all():
        mask = pa.array(fits)
        inputs, outputs, rows = pc.filter(inputs, mask), pc.filter(outputs, mask), rows[fits]

    n = len(rows)

    def const(value: str | None) -> pa.Array:
        return pa.repeat(pa.scalar(value, pa.string()), n)

    columns = {
        "instance_id": pa.array(instance_ids(task.task_id, split, rows).astype(str)),
        "instruction": const(clean_line(task.final_instruction)),
        "input": inputs,
        "output": outputs,
        "source_id": const(meta.source_id),
        "source_revision": const(meta.revision),
        "config": const(meta.config),
        "split": const(split),
        "row": pa.array(rows, pa.int64()),
        "task_id": const(task.task_id),
        "prompt_version": const(task.prompt_version),
        "model": const(task.model),
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA), counts


class DuplicateFilter:
    """Drops instances whose input and output an earlier instance of the same task had, across batches.

    Each instance is kept as a 64-bit xxh3 hash of its input and output in one sorted array: 8 bytes per
    instance, and two different instances pass for one with odds of about n²/2⁶⁵."""

    def __init__(self) -> None:
        self._seen = np.zeros(0, np.uint64)

    def __call__(self, instances: pa.Table) -> tuple[pa.Table, int]:
        """(the instances not seen before, how many were dropped)."""
        import xxhash

        n = instances.num_rows
        if not n:
            return instances, 0
        pairs = pc.binary_join_element_wise(instances.column("input"), instances.column("output"), "\x1f")
        texts = pc.cast(pc.fill_null(pairs, ""), pa.binary()).to_pylist()
        keys = np.fromiter(map(xxhash.xxh3_64_intdigest, texts), np.uint64, n)
        order = np.argsort(keys, kind="stable")  # equal keys keep their row order: the first one is kept
        ranked = keys[order]
        first = np.ones(n, bool)
        first[1:] = ranked[1:] != ranked[:-1]
        if len(self._seen):
            at = np.minimum(np.searchsorted(self._seen, ranked), len(self._seen) - 1)
            first &= self._seen[at] != ranked
        new = ranked[first]
        self._seen = np.insert(self._seen, np.searchsorted(self._seen, new), new)
        fresh = np.zeros(n, bool)
        fresh[order[first]] = True
        dropped = n - len(new)
        return (instances.filter(pa.array(fresh)) if dropped else instances), dropped


def sample_rows(task: Task, meta: SourceMeta, params: OrganizeParams) -> dict[str, np.ndarray] | None:
    """Per split, the sorted row numbers a capped task keeps (seeded by the seed and the task id)."""
    if params.max_instances_per_task is None:
        return None
    sizes = [s.num_rows for s in meta.splits]
    total = sum(sizes)
    if total <= params.max_instances_per_task:
        return None
    rng = np.random.default_rng([params.seed, int(task.task_id[:15], 16)])
    picked = np.sort(rng.choice(total, size=params.max_instances_per_task, replace=False))
    out, start = {}, 0
    for split, size in zip(meta.splits, sizes, strict=False):
        out[split.name] = picked[(picked >= start) & (picked < start + size)] - start
        start += size
    return out


# --- I/O -------------------------------------------------------------------------------------------------


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


def shard_summary(path: Path) -> dict[str, int]:
    """One shard's instances and its footer counts (rows seen, dropped per reason)."""
    return {"instances": shard_instances(path), **footer_counts(path)}


def corpus_totals(shards: dict[str, dict[str, dict[str, int]]]) -> dict[str, int]:
    """The corpus as it stands (every shard, rebuilt this run or not): tasks, instances, rows rejected."""
    summaries = [s for tasks in shards.values() for s in tasks.values()]
    return {
        "tasks": len(summaries),
        "instances": sum(s["instances"] for s in summaries),
        "rows_rejected": sum(v for s in summaries for k, v in s.items() if k.startswith("dropped_")),
    }


def corpus_stats(shards: dict[str, dict[str, dict[str, int]]], failures: dict[str, str]) -> dict:
    """The breakdown behind the metrics: per source, and the corpus's rows per count (`COUNTS`)."""
    per_source = {}
    for source_id, tasks in sorted(shards.items()):
        counts: Counter = Counter({k: 0 for k in COUNTS})
        for summary in tasks.values():
            counts.update({k: v for k, v in summary.items() if k in COUNTS})
        per_source[source_id] = {
            "tasks": len(tasks),
            "instances": sum(s["instances"] for s in tasks.values()),
            **dict(sorted(counts.items())),
        }
    corpus: Counter = Counter({k: 0 for k in COUNTS})
    for numbers in per_source.values():
        corpus.update({k: numbers[k] for k in COUNTS})
    return {
        "corpus": dict(sorted(corpus.items())),
        "failures": dict(sorted(failures.items())),
        "per_source": per_source,
    }


CHART_SOURCES = 30  # a chart of thousands of sources is unreadable (and a large file in git)


def sources_chart(shards: dict[str, dict[str, dict[str, int]]], top: int = CHART_SOURCES) -> str:
    """Instances and valid tasks per source: the `top` largest by instances, the rest as one row."""
    instances = {n: sum(s["instances"] for s in tasks.values()) for n, tasks in shards.items()}
    names = sorted(shards, key=lambda n: (-instances[n], n))
    shown, rest = sorted(names[:top]), names[top:]
    labels = [*shown, *([f"{len(rest):,} other sources"] if rest else [])]
    return bar_chart(
        "The corpus per source" + (f" (the {top} largest)" if rest else ""),
        labels,
        {
            "instances": [instances[n] for n in shown] + ([sum(instances[n] for n in rest)] if rest else []),
            "valid tasks": [len(shards[n]) for n in shown]
            + ([sum(len(shards[n]) for n in rest)] if rest else []),
        },
    )


def remove_stale(out: Path, live: dict[str, set[str]]) -> tuple[int, list[str]]:
    """Leave in `out` only the shards of live tasks, `<source_id>/<task_id>.parquet`. Returns how many shards
    of tasks or sources that are gone were removed, and the other files removed, which organize never writes
    (an editor's or a file browser's files, a killed run's leftovers), as paths under `out`."""
    removed, strays = 0, []
    for path in sorted(out.iterdir()):
        if path.is_dir() and not path.is_symlink() and not path.name.startswith("."):
            tasks = live.get(path.name)
            for inner in sorted(path.iterdir()):
                if inner.is_file() and inner.suffix == SUFFIX:  # (a link, with DVC's link cache types)
                    if tasks is not None and inner.stem in tasks:
                        continue
                    if not inner.name.startswith("."):
                        removed += 1
                        inner.unlink()
                        continue
                strays += _remove(inner, out)
            if tasks is None:
                path.rmdir()
            continue
        strays += _remove(path, out)
    return removed, strays


def _remove(path: Path, out: Path) -> list[str]:
    """Remove a file, link or folder under `out`; the files it held, as paths under `out`."""
    if path.is_dir() and not path.is_symlink():
        files = [p.relative_to(out).as_posix() for p in sorted(path.rglob("*")) if not p.is_dir()]
        shutil.rmtree(path)
        return files or [path.relative_to(out).as_posix() + "/"]
    path.unlink()
    return [path.relative_to(out).as_posix()]


if __name__ == "__main__":
    run(main, "collected", "tasks", "out", "metrics", "stats", "run-log", "plot")
