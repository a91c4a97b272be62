"""organize: every valid task × the rows of its source's train/validation splits → instances.

Instances are `{instruction, input, output}` plus provenance (`source_id, source_revision, config, split,
row, task_id, prompt_version, model, instance_id`), written as one parquet shard per task:
`<out>/<source_id>/<task_id>.parquet`.

Formatting is vectorised with `pyarrow.compute` over Arrow batches streamed from the source, so memory stays
bounded and a million rows take seconds: one input field is its value; several become one
`Readable name: value` line each; class labels become their names; list values become lettered options.
Rows whose output (or whole input) is empty are dropped; over-long inputs and outputs are cut to the caps;
both are counted. With `organize.max_instances_per_task`, a seeded sample of rows is taken per task.

Incremental: each shard carries the fingerprint of what made it (task, organize params, FORMAT_VERSION) in
its parquet metadata; a shard whose fingerprint matches is kept, and a source whose shards all match is
not read at all. Shards of tasks or sources that are gone are removed. The footer also records the shard's
instance count and content digest (`dynosaur.registry.manifest`), so manifests never read instances.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dynosaur.core.io import read_model
from dynosaur.core.params import OrganizeParams, load_params
from dynosaur.core.records import (
    INSTANCE_COLUMNS,
    Feature,
    FilteredSource,
    SourceMeta,
    Task,
    digest,
    instance_ids,
)
from dynosaur.core.runner import log, progress, refuse_to_remove_all, run, write_metrics
from dynosaur.core.text import clean_line, clean_value_array
from dynosaur.pipeline.sources import iter_batches
from dynosaur.registry.manifest import COUNT_KEY, DIGEST_KEY, InstanceDigest

FORMAT_VERSION = 5  # bump when instance formatting changes, so every shard is rebuilt (5: control chars)
FINGERPRINT_KEY = b"dyno.fingerprint"
LETTERS = pa.array([chr(ord("A") + i) for i in range(26)] + [f"A{chr(ord('A') + i)}" for i in range(26)])

SCHEMA = pa.schema([(c, pa.int64() if c == "row" else pa.string()) for c in INSTANCE_COLUMNS])


# --- formatting (pure) -----------------------------------------------------------------------------------


def readable(name: str) -> str:
    """`question_title` / `questionTitle` → `Question title`."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").split()
    text = " ".join(words).lower()
    return text[:1].upper() + text[1:] if text else name


def _lettered(column: pa.Array) -> pa.Array:
    """A list column → "A. first\\nB. second" per row (vectorised; more than 52 options are numbered)."""
    if column.offset or (len(column) and column.offsets[0].as_py()):  # a slice: make offsets start at 0
        column = pa.concat_arrays([column])
    flat = pc.cast(pc.list_flatten(column), pa.string())
    parents = pc.list_parent_indices(column).to_numpy()
    offsets = np.asarray(column.offsets)[:-1]
    position = np.arange(len(parents)) - offsets[parents] if len(parents) else np.zeros(0, np.int64)
    labels = pc.take(LETTERS, pa.array(np.minimum(position, len(LETTERS) - 1)))
    items = pc.binary_join_element_wise(labels, pc.fill_null(flat, ""), ". ")
    rebuilt = pa.ListArray.from_arrays(column.offsets, items, mask=column.is_null())
    return pc.binary_join(rebuilt, "\n")


def format_column(column: pa.Array, feature: Feature | None, *, options: bool) -> pa.Array:
    """One field's values as strings (nulls stay null)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if feature is not None and feature.class_names and pa.types.is_integer(column.type):
        names = pa.array(feature.class_names)
        valid = pc.and_(pc.greater_equal(column, 0), pc.less(column, len(names)))
        return pc.take(names, pc.if_else(valid, column, None))
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        if options:
            return _lettered(column)
        return pc.binary_join(pc.cast(column, pa.list_(pa.string())), ", ")
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_floating(column.type):
        # 3.0 → "3", 2.5 → "2.5"
        as_int = pc.cast(pc.cast(column, pa.int64(), safe=False), pa.string())
        fits = pc.less(pc.abs(column), 2.0**53)  # 1e20 and inf do not fit int64: cast them as floats
        whole = pc.and_(pc.equal(pc.floor(column), column), fits)
        return pc.if_else(whole, as_int, pc.cast(column, pa.string()))
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
        return pc.cast(column, pa.string())
    return pa.array(
        [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in column.to_pylist()]
    )


def _cap(values: pa.Array, max_chars: int) -> tuple[pa.Array, int]:
    too_long = pc.greater(pc.utf8_length(values), max_chars)
    count = pc.sum(too_long).as_py() or 0
    if count:
        values = pc.if_else(too_long, pc.utf8_slice_codeunits(values, 0, max_chars), values)
    return values, count


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
) -> tuple[pa.Table, Counter]:
    """One Arrow batch of source rows → that batch's instances of one task (pure)."""
    counts: Counter = Counter()
    rows = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
    if keep is not None:
        table = table.filter(pa.array(keep))
        rows = rows[keep]
    if len(task.input_fields) == 1:
        name = task.input_fields[0]
        inputs = clean_value_array(format_column(table.column(name), meta.feature(name), options=True))
        empty_input = _blank(inputs)
    else:
        parts, blanks = [], []
        for name in task.input_fields:
            value = clean_value_array(format_column(table.column(name), meta.feature(name), options=True))
            blanks.append(_blank(value))
            label = pa.scalar(clean_line(readable(name)) + ":")
            parts.append(pc.binary_join_element_wise(label, pc.fill_null(value, ""), " "))
        inputs = pc.binary_join_element_wise(*parts, "\n")
        empty_input = blanks[0]
        for b in blanks[1:]:
            empty_input = pc.and_(empty_input, b)
    output_feature = meta.feature(task.output_field)
    outputs = clean_value_array(format_column(table.column(task.output_field), output_feature, options=False))

    drop_output = _blank(outputs)
    usable = pc.invert(pc.or_(drop_output, empty_input))
    counts["rows_seen"] += table.num_rows
    counts["dropped_empty_output"] += pc.sum(drop_output).as_py() or 0
    counts["dropped_empty_input"] += pc.sum(pc.and_(empty_input, pc.invert(drop_output))).as_py() or 0
    inputs, outputs = pc.filter(inputs, usable), pc.filter(outputs, usable)
    rows = rows[usable.to_numpy(zero_copy_only=False)]
    inputs, n_in = _cap(inputs, params.max_input_chars)
    outputs, n_out = _cap(outputs, params.max_output_chars)
    counts["truncated_inputs"] += n_in
    counts["truncated_outputs"] += n_out

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


def shard_fingerprint(task: Task, params: OrganizeParams) -> str:
    return digest([task.model_dump(mode="json"), params.model_dump(mode="json"), FORMAT_VERSION])


def existing_fingerprint(path: Path) -> str | None:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = meta.get(FINGERPRINT_KEY)
    return value.decode() if value else None


def organize_source(meta: SourceMeta, tasks: list[Task], out_dir: Path, params: OrganizeParams) -> Counter:
    """Write the shards of `tasks` (all of one source), reading the source once for all of them."""
    counts: Counter = Counter()
    tmp_dir = out_dir / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    writers, samples, digests = {}, {}, {}
    try:
        for task in tasks:
            schema = SCHEMA.with_metadata({FINGERPRINT_KEY: shard_fingerprint(task, params).encode()})
            writers[task.task_id] = pq.ParquetWriter(
                tmp_dir / f"{task.task_id}.parquet", schema, compression="zstd"
            )
            samples[task.task_id] = sample_rows(task, meta, params)
            digests[task.task_id] = InstanceDigest()
        for split in meta.splits:
            first = 0
            for batch in iter_batches(meta, split.name, params.batch_rows):
                for task in tasks:
                    keep = None
                    if samples[task.task_id] is not None:
                        wanted = samples[task.task_id][split.name]
                        local = wanted[(wanted >= first) & (wanted < first + batch.num_rows)] - first
                        if not len(local):
                            continue
                        keep = np.zeros(batch.num_rows, bool)
                        keep[local] = True
                    instances, c = build_instances(batch, task, meta, split.name, first, params, keep)
                    counts.update(c)
                    writers[task.task_id].write_table(instances)
                    digests[task.task_id].update(instances)
                first += batch.num_rows
        for task_id, writer in writers.items():
            digest = digests[task_id]
            writer.add_key_value_metadata({DIGEST_KEY: digest.hexdigest(), COUNT_KEY: str(digest.count)})
            writer.close()
            (tmp_dir / f"{task_id}.parquet").replace(out_dir / f"{task_id}.parquet")
    finally:
        for writer in writers.values():
            if writer.is_open:
                writer.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return counts


def main(args: argparse.Namespace) -> None:
    params = load_params().organize
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    filtered = [read_model(p, FilteredSource) for p in sorted(args.tasks.glob("*.json"))]
    counts: Counter = Counter()
    live: dict[str, set[str]] = {}
    for source in progress(filtered, "organize"):
        meta = read_model(args.collected / f"{source.source_id}.json", SourceMeta)
        source_dir = out / source.source_id
        live[source.source_id] = {t.task_id for t in source.valid}
        stale = [
            t
            for t in source.valid
            if existing_fingerprint(source_dir / f"{t.task_id}.parquet") != shard_fingerprint(t, params)
        ]
        counts["tasks_reused"] += len(source.valid) - len(stale)
        if stale:
            counts.update(organize_source(meta, stale, source_dir, params))
            counts["tasks_organized"] += len(stale)
    if not live:  # no task records at all: never remove the whole corpus for that (issue 11)
        refuse_to_remove_all(out, sum(p.is_dir() for p in out.glob("[!.]*")), args.collected)
    removed = remove_stale(out, live)

    shards = sorted(out.glob("*/*.parquet"))
    per_source = Counter()
    for shard in shards:
        per_source[shard.parent.name] += pq.read_metadata(shard).num_rows
    write_metrics(
        args.metrics,
        {
            "sources": len(live),
            "tasks": len(shards),
            "instances": sum(per_source.values()),
            "shards_removed": removed,
            **{
                k: counts.get(k, 0)
                for k in (
                    "tasks_organized",
                    "tasks_reused",
                    "rows_seen",
                    "dropped_empty_output",
                    "dropped_empty_input",
                    "truncated_inputs",
                    "truncated_outputs",
                )
            },
        },
    )
    log(f"organize: {sum(per_source.values())} instances in {len(shards)} task shards")


def remove_stale(out: Path, live: dict[str, set[str]]) -> int:
    removed = 0
    for source_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        if source_dir.name not in live:
            removed += len(list(source_dir.glob("*.parquet")))
            shutil.rmtree(source_dir)
            continue
        for shard in source_dir.glob("*.parquet"):
            if shard.stem not in live[source_dir.name]:
                shard.unlink()
                removed += 1
    return removed


if __name__ == "__main__":
    run(main, "collected", "tasks", "out", "metrics")
