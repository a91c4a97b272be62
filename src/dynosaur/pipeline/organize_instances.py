"""organize's pure core: the rows of a source's split → one task's instances, vectorised over Arrow batches.

Formatting: one input field is its value; several become one `Readable name: value` line each; class labels
become their names; list values become lettered options; dates and times are plain text. Then the drops and
cuts counted per reason (`COUNTS`): empty outputs or inputs, over-long outputs, inputs cut at a word boundary
with `TRUNCATION_MARKER`, evaluation overlap, duplicates (`DuplicateFilter`); and the seeded row sample
(`sample_rows`). No files, no network: dynosaur.pipeline.organize reads the sources and writes the shards.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dynosaur.core.params import OrganizeParams
from dynosaur.core.records import Feature, SourceMeta, Task, instance_ids
from dynosaur.core.shards import schema
from dynosaur.core.text import clean_line, clean_value_array
from dynosaur.pipeline.decontaminate import EvalIndex

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
