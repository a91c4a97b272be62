"""What collect learns of a source's fields: their types, their flattened columns, their statistics.

Nested features become dotted columns (`answers.text`), class labels keep their names, and each field's sample
values give its `FeatureStats` (distinct values, empty share, lengths, a label's value set, a number's range).
Pure: no files, no network; dynosaur.pipeline.sources reads the datasets and calls these.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from dynosaur.core.records import LABEL_VALUES, FeatureStats, SourceMeta

DECIMAL = re.compile(r"^-?\d*\.\d+(e-?\d+)?$")
NUMERIC = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")  # an integer or a decimal, finite
ID_TOKEN = re.compile(r"^[\w\-.:/#@+]{1,80}$")
DISTINCT_CAP = 10_000


def feature_dtype(feature: Any) -> tuple[str, list[str] | None]:
    """A short dtype name for a `datasets` feature, and class names for a ClassLabel (or a list of them)."""
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return "class_label", list(feature.names)
    if isinstance(feature, datasets.Value):
        return ("string" if feature.dtype == "large_string" else str(feature.dtype)), None
    if isinstance(feature, datasets.Image):
        return "image", None
    if isinstance(feature, datasets.Audio):
        return "audio", None
    inner = getattr(feature, "feature", None)
    if inner is not None:  # List / Sequence / LargeList
        dtype, names = feature_dtype(inner)
        return f"list<{dtype}>", names
    if isinstance(feature, dict):
        return "struct", None
    return type(feature).__name__.lower(), None


def flat_features(features: Any) -> list[tuple[str, str, list[str] | None]]:
    """(name, dtype, class names) of every field, nested ones named by their path, as `flatten_table`
    names the columns: a struct's fields become `parent.field` (SQuAD's `answers.text`), and a list of
    structs becomes one list per field (`turns.text`: `list<string>`)."""
    out: list[tuple[str, str, list[str] | None]] = []

    def visit(name: str, feature: Any, lists: int) -> None:
        if isinstance(feature, dict):
            for key, sub in feature.items():
                visit(f"{name}.{key}" if name else key, sub, lists)
            return
        inner = getattr(feature, "feature", None)
        if isinstance(inner, dict):
            visit(name, inner, lists + 1)
            return
        dtype, names = feature_dtype(feature)
        out.append((name, "list<" * lists + dtype + ">" * lists, names))

    visit("", dict(features), 0)
    return out


def flatten_table(table: Any) -> Any:
    """A `pyarrow.Table` with nested columns as top-level ones, named as `flat_features` names them."""
    import pyarrow as pa

    names: list[str] = []
    columns: list[Any] = []

    def visit(name: str, column: Any) -> None:
        kind = column.type
        if pa.types.is_struct(kind):
            for field, child in zip(kind, column.flatten(), strict=True):
                visit(f"{name}.{field.name}", child)
        elif (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and pa.types.is_struct(kind.value_type):
            make = pa.LargeListArray if pa.types.is_large_list(kind) else pa.ListArray
            wrap = pa.large_list if pa.types.is_large_list(kind) else pa.list_
            for i, field in enumerate(kind.value_type):
                chunks = [
                    make.from_arrays(chunk.offsets, chunk.values.flatten()[i], mask=chunk.is_null())
                    for chunk in map(_unsliced, column.chunks)
                ]
                visit(f"{name}.{field.name}", pa.chunked_array(chunks, type=wrap(field.type)))
        else:
            names.append(name)
            columns.append(column)

    for name, column in zip(table.column_names, table.columns, strict=True):
        visit(name, column)
    if names == table.column_names:
        return table
    return pa.Table.from_arrays(columns, names=names)


def _unsliced(array: Any) -> Any:
    """A list array whose offsets start at 0 (`from_arrays` with a null mask refuses sliced offsets)."""
    import pyarrow as pa

    return pa.concat_arrays([array]) if array.offset else array


def label_lists(table: Any, meta: SourceMeta) -> Any:
    """Lists of class labels (`Sequence(ClassLabel)`) as lists of their names; out-of-range ids → null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for feature in meta.features:
        if not (feature.class_names and feature.dtype == "list<class_label>"):
            continue
        if feature.name not in table.column_names:
            continue
        column = table.column(feature.name)
        if not (pa.types.is_list(column.type) and pa.types.is_integer(column.type.value_type)):
            continue
        labels = pa.array(feature.class_names, pa.string())
        chunks = []
        for chunk in map(_unsliced, column.chunks):
            ids = chunk.values
            valid = pc.and_(pc.greater_equal(ids, 0), pc.less(ids, len(labels)))
            names = pc.take(labels, pc.if_else(valid, ids, None))
            chunks.append(pa.ListArray.from_arrays(chunk.offsets, names, mask=chunk.is_null()))
        index = table.column_names.index(feature.name)
        table = table.set_column(index, feature.name, pa.chunked_array(chunks, type=pa.list_(pa.string())))
    return table


def _stringify(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def feature_stats(values: list[Any]) -> FeatureStats:
    texts = [_stringify(v) for v in values]
    non_empty = [t for t in texts if t.strip()]
    counts = Counter(non_empty[: DISTINCT_CAP * 10])
    distinct = min(len(counts), DISTINCT_CAP)
    top = counts.most_common(1)[0][1] / len(non_empty) if non_empty else 0.0
    id_like = (
        len(non_empty) >= 2
        and len(counts) == len(non_empty)
        and all(ID_TOKEN.match(t) and re.search(r"\d|/", t) for t in non_empty)
        and not all(DECIMAL.match(t) for t in non_empty)  # distinct measurements are a target, not an id
    )
    label_set = len(counts) <= LABEL_VALUES and all(len(t) <= 40 for t in counts)
    numbers = [float(t) for t in non_empty if NUMERIC.match(t.strip())]
    numeric = bool(numbers) and len(numbers) == len(non_empty)
    return FeatureStats(
        low=min(numbers) if numeric else None,
        high=max(numbers) if numeric else None,
        values=sorted(counts) if label_set and len(counts) >= 2 and len(counts) == distinct else None,
        scanned=len(texts),
        empty=len(texts) - len(non_empty),
        distinct=distinct,
        top_share=round(top, 6),
        id_like=id_like,
        mean_chars=round(sum(map(len, non_empty)) / len(non_empty), 2) if non_empty else 0.0,
    )


def cap_value(value: Any, max_chars: int) -> Any:
    if isinstance(value, str) and len(value) > max_chars:
        return value[:max_chars] + "…"
    if isinstance(value, list):
        return [cap_value(v, max_chars) for v in value[:20]]
    if isinstance(value, dict):
        return {k: cap_value(v, max_chars) for k, v in value.items()}
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value
