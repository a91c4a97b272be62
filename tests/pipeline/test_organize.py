"""`dynosaur.pipeline.organize`: formatting field values, building instances from a batch, sampling rows."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from dynosaur.core.params import OrganizeParams
from dynosaur.core.records import SplitInfo, instance_id
from dynosaur.pipeline.organize_instances import (
    SCHEMA,
    TRUNCATION_MARKER,
    DuplicateFilter,
    build_instances,
    cut_at_word,
    fit_fields,
    format_column,
    readable,
    sample_rows,
)
from tests.factories import label_feature, make_feature, make_meta, make_task

# --- readable ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("question_title", "Question title"),
        ("questionTitle", "Question title"),
        ("question-title", "Question title"),
        ("QUESTION", "Question"),
        ("sentence1", "Sentence1"),
        ("premise", "Premise"),
        ("answer_2Text", "Answer 2 text"),
        ("  spaced__name ", "Spaced name"),
        ("", ""),
    ],
)
def test_readable(name, expected):
    assert readable(name) == expected


# --- format_column -----------------------------------------------------------------------------------


def fmt(values, type_=None, feature=None, options=False):
    return format_column(pa.array(values, type_), feature, options=options).to_pylist()


def test_strings_pass_through_and_nulls_stay_null():
    assert fmt(["a", "", None, "é ✓"]) == ["a", "", None, "é ✓"]


def test_large_string_becomes_string():
    column = format_column(pa.array(["x"], pa.large_string()), None, options=False)
    assert column.type == pa.string()


def test_chunked_column_is_accepted():
    column = pa.chunked_array([pa.array(["a"]), pa.array(["b", None])])
    assert format_column(column, None, options=False).to_pylist() == ["a", "b", None]


def test_class_label_ints_become_names():
    feature = label_feature(class_names=["negative", "neutral", "positive"])
    assert fmt([0, 2, 1, -1, 3, None], pa.int64(), feature) == [
        "negative",
        "positive",
        "neutral",
        None,
        None,
        None,
    ]


def test_ints_without_class_names_stay_numbers():
    assert fmt([0, 7, -1, None], pa.int64(), make_feature("n", "int64")) == ["0", "7", "-1", None]


def test_floats():
    assert fmt([3.0, 2.5, -1.0, 0.125, None]) == ["3", "2.5", "-1", "0.125", None]


def test_huge_and_infinite_floats_are_not_garbled():
    out = fmt([1e20, float("inf"), -1e300])
    assert all(v is not None and "9223372036854775808" not in v for v in out), out
    assert out[1] == "inf"


def test_bools():
    assert fmt([True, False, None]) == ["true", "false", None]


LIST = pa.list_(pa.string())


def test_list_as_lettered_options():
    assert fmt([["x", "y"], ["only"]], LIST, options=True) == ["A. x\nB. y", "A. only"]


def test_list_joined_without_options():
    assert fmt([["x", "y"], ["only"]], LIST, options=False) == ["x, y", "only"]


@pytest.mark.parametrize("options", [True, False])
def test_null_list_row_stays_null(options):
    assert fmt([None, ["x"]], LIST, options=options)[0] is None


def test_lettered_options_past_z():
    out = fmt([[str(i) for i in range(28)]], LIST, options=True)[0].split("\n")
    assert [line.split(". ")[0] for line in (out[0], out[25], out[26], out[27])] == ["A", "Z", "AA", "AB"]


def test_lettered_options_of_a_sliced_array():
    column = pa.array([["p", "q", "r"], ["x", "y"], None, ["z"]], LIST).slice(1, 3)
    assert format_column(column, None, options=True).to_pylist() == ["A. x\nB. y", None, "A. z"]


def test_lettered_options_of_offset_list_array():
    column = pa.ListArray.from_arrays(pa.array([2, 4, 5], pa.int32()), pa.array(list("abcde")))
    assert format_column(column, None, options=True).to_pylist() == ["A. c\nB. d", "A. e"]


def test_list_of_ints():
    assert fmt([[1, 2]], pa.list_(pa.int64()), options=True) == ["A. 1\nB. 2"]


def test_struct_values_become_json():
    assert fmt([{"a": 1}, None]) == ['{"a": 1}', None]


def test_timestamps_and_dates_are_plain_text():
    moment = datetime.datetime(2016, 8, 31, 16, 58, 49)
    assert fmt([moment, None], pa.timestamp("s")) == ["2016-08-31 16:58:49", None]
    assert fmt([moment], pa.timestamp("us")) == ["2016-08-31 16:58:49"]
    assert fmt([moment.replace(microsecond=5)], pa.timestamp("us")) == ["2016-08-31 16:58:49.000005"]
    assert fmt([moment], pa.timestamp("s", tz="UTC")) == ["2016-08-31 16:58:49Z"]
    assert fmt([moment.date()], pa.date32()) == ["2016-08-31"]
    assert fmt([moment.date()], pa.date64()) == ["2016-08-31"]
    assert fmt([moment.time()], pa.time64("us")) == ["16:58:49"]


def test_a_date_inside_a_struct_is_a_plain_string_in_its_json():
    out = fmt([{"when": datetime.datetime(2016, 8, 31, 16, 58, 49), "n": 1}])
    assert out == ['{"when": "2016-08-31 16:58:49", "n": 1}']


def test_durations_and_decimals_are_plain_text():
    assert fmt([datetime.timedelta(seconds=5)]) == ["0:00:05"]
    assert fmt([decimal.Decimal("1.50")]) == ["1.50"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_timestamp_column_read_from_a_file_is_plain_text(tmp_path, suffix):
    """pyarrow reads "2016-08-31 16:58:49" in jsonl as a timestamp, as parquet stores one (issue 9)."""
    path = tmp_path / f"rows{suffix}"
    if suffix == ".jsonl":
        path.write_text('{"when": "2016-08-31 16:58:49"}\n{"when": "2020-01-02 03:04:05"}\n')
    else:
        pq.write_table(pa.table({"when": pa.array([datetime.datetime(2016, 8, 31, 16, 58, 49)] * 2)}), path)
    column = pads.dataset(str(path), format="json" if suffix == ".jsonl" else "parquet").to_table()["when"]
    assert pa.types.is_timestamp(column.type)
    assert format_column(column, None, options=False).to_pylist()[0] == "2016-08-31 16:58:49"


def test_dictionary_encoded_strings_are_their_values():
    column = pa.array(["x", "y", None, "x"]).dictionary_encode()
    assert format_column(column, None, options=False).to_pylist() == ["x", "y", None, "x"]


STRUCTS = pa.list_(pa.struct([("a", pa.int64()), ("b", pa.string())]))


def test_list_of_structs_becomes_json_items():
    rows = [[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], None]
    assert fmt(rows, STRUCTS) == ['{"a": 1, "b": "x"}, {"a": 2, "b": "y"}', None]
    assert fmt(rows, STRUCTS, options=True)[0] == 'A. {"a": 1, "b": "x"}\nB. {"a": 2, "b": "y"}'


def test_list_items_are_formatted_like_values():
    assert fmt([[3.0, 2.5]], pa.list_(pa.float64())) == ["3, 2.5"]
    assert fmt([[datetime.date(2016, 8, 31)]], pa.list_(pa.date32())) == ["2016-08-31"]
    assert fmt([["x", None]], LIST) == ["x, "]


def test_large_and_fixed_size_lists():
    assert fmt([["x", "y"]], pa.large_list(pa.string()), options=True) == ["A. x\nB. y"]
    assert fmt([["x", "y"]], pa.list_(pa.string(), 2)) == ["x, y"]


# --- build_instances ---------------------------------------------------------------------------------


def table(**columns) -> pa.Table:
    return pa.table({k: pa.array(v) for k, v in columns.items()})


def build(tbl, task=None, params=None, split="train", first_row=0, keep=None, meta=None):
    return build_instances(
        tbl, task or make_task(), meta or make_meta(), split, first_row, params or OrganizeParams(), keep
    )


def test_single_input_field_is_its_value():
    out, counts = build(table(text=["good", "bad"], title=["t1", "t2"], label=[1, 0]))
    assert out.column("input").to_pylist() == ["good", "bad"]
    assert out.column("output").to_pylist() == ["positive", "negative"]
    assert counts["rows_seen"] == 2


def test_several_input_fields_are_one_readable_line_each():
    meta = make_meta(features=[make_feature("review_text"), make_feature("productTitle"), label_feature()])
    task = make_task(input_fields=["review_text", "productTitle"])
    tbl = table(review_text=["good", None], productTitle=["Kettle", "Lamp"], label=[1, 0])
    out, _ = build(tbl, task, meta=meta)
    assert out.column("input").to_pylist() == [
        "Review text: good\nProduct title: Kettle",
        "Review text: \nProduct title: Lamp",
    ]


def test_instruction_is_the_final_instruction():
    task = make_task(label_options=["negative", "positive"])
    out, _ = build(table(text=["good"], label=[1]), task)
    assert out.column("instruction").to_pylist() == [task.final_instruction]
    assert task.final_instruction.endswith("Answer with one of: negative, positive.")


def test_rows_with_empty_output_are_dropped_and_counted():
    tbl = table(text=["a", "b", "c", "d"], label=[1, None, -1, 0])
    out, counts = build(tbl, first_row=10)
    assert out.column("row").to_pylist() == [10, 13]
    assert (counts["rows_seen"], counts["dropped_empty_output"], counts["dropped_empty_input"]) == (4, 2, 0)


def test_rows_with_blank_output_text_are_dropped():
    meta = make_meta(features=[make_feature("text"), make_feature("title")])
    task = make_task(output_field="title")
    out, counts = build(table(text=["a", "b", "c"], title=["T", "  ", None]), task, meta=meta)
    assert out.column("output").to_pylist() == ["T"]
    assert counts["dropped_empty_output"] == 2


def test_rows_with_empty_input_are_dropped_and_counted():
    out, counts = build(table(text=["a", "", " \n", None], label=[1, 0, 1, None]))
    assert out.column("row").to_pylist() == [0]
    # the last row has no output either: it counts as an empty output only
    assert (counts["dropped_empty_output"], counts["dropped_empty_input"]) == (1, 2)


def test_several_inputs_need_only_one_non_empty():
    task = make_task(input_fields=["text", "title"])
    out, counts = build(table(text=["", ""], title=["x", ""], label=[1, 1]), task)
    assert out.column("row").to_pylist() == [0]
    assert counts["dropped_empty_input"] == 1


def test_a_target_is_never_cut_its_row_is_dropped_and_counted():
    meta = make_meta(features=[make_feature("text"), make_feature("title")])
    task = make_task(output_field="title")
    params = OrganizeParams(max_output_chars=3)
    out, counts = build(table(text=["a", "b", "c"], title=["abcdef", "ab", "abc"]), task, params, meta=meta)
    assert out.column("output").to_pylist() == ["ab", "abc"]
    assert out.column("row").to_pylist() == [1, 2]
    assert counts["dropped_long_output"] == 1


def test_a_long_input_is_cut_at_a_word_boundary_with_a_marker():
    params = OrganizeParams(max_input_chars=40)
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    out, counts = build(table(text=[text, "short"], label=[1, 0]), params=params)
    cut = out.column("input").to_pylist()[0]
    assert cut == "alpha beta gamma delta" + TRUNCATION_MARKER
    assert len(cut) <= 40
    assert out.column("input").to_pylist()[1] == "short"
    assert (counts["truncated_inputs"], counts["dropped_long_input"]) == (1, 0)


def test_an_input_with_no_word_boundary_to_cut_at_is_dropped():
    params = OrganizeParams(max_input_chars=20)
    out, counts = build(table(text=["x" * 30, "é" * 20, "fine"], label=[1, 0, 1]), params=params)
    assert out.column("input").to_pylist() == ["é" * 20, "fine"]  # 20 characters fit, whatever their bytes
    assert (counts["dropped_long_input"], counts["truncated_inputs"]) == (1, 0)


def test_several_input_fields_share_the_room_so_none_is_lost():
    meta = make_meta(features=[make_feature("context"), make_feature("question"), label_feature()])
    task = make_task(input_fields=["context", "question"])
    params = OrganizeParams(max_input_chars=120)
    context = " ".join(f"word{i}" for i in range(100))
    out, counts = build(
        table(context=[context], question=["Is it long?"], label=[1]), task, params, meta=meta
    )
    text = out.column("input").to_pylist()[0]
    assert len(text) <= 120
    assert text.endswith("\nQuestion: Is it long?")  # the short field after the long one survives whole
    assert text.startswith("Context: word0 word1") and TRUNCATION_MARKER + "\n" in text
    assert counts["truncated_inputs"] == 1


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("short text", 20, "short text"),
        ("one two three four five six", 19, "one" + TRUNCATION_MARKER),
        ("one two three four five six", 20, "one two" + TRUNCATION_MARKER),  # exactly 20 characters
        ("one two three four five six", 26, "one two three" + TRUNCATION_MARKER),
        ("one  \n two three four five six", 22, "one" + TRUNCATION_MARKER),
        ("onetwothreefourfivesix", 20, None),
        ("one two", 5, None),  # no room even for the marker
    ],
)
def test_cut_at_word(text, limit, expected):
    assert cut_at_word(text, limit) == expected


def test_fitted_inputs_never_pass_the_limit():
    rng = np.random.default_rng(0)
    for _ in range(200):
        values = [" ".join("w" * int(k) for k in rng.integers(1, 9, rng.integers(0, 40))) for _ in range(3)]
        limit = int(rng.integers(16, 200))
        fitted = fit_fields(values, ["A", "Bb", "Ccc"], limit)
        full = "\n".join(f"{label}: {v}" for label, v in zip(["A", "Bb", "Ccc"], values, strict=True))
        if len(full) <= limit:
            assert fitted == full
        elif fitted is not None:
            assert len(fitted) <= limit
            assert all(line.split(": ", 1)[0] in {"A", "Bb", "Ccc"} for line in fitted.split("\n"))


def test_a_field_listed_twice_is_rendered_once():
    meta = make_meta(features=[make_feature("text"), make_feature("title"), label_feature()])
    task = make_task(input_fields=["text", "title", "text"])
    out, _ = build(table(text=["good"], title=["T"], label=[1]), task, meta=meta)
    assert out.column("input").to_pylist() == ["Text: good\nTitle: T"]


def test_a_single_field_listed_twice_is_its_value_once():
    out, _ = build(table(text=["good"], label=[1]), make_task(input_fields=["text", "text"]))
    assert out.column("input").to_pylist() == ["good"]


def test_the_output_field_is_not_rendered_among_the_inputs():
    meta = make_meta(features=[make_feature("text"), label_feature()])
    task = make_task(input_fields=["text", "label"])
    out, _ = build(table(text=["good"], label=[1]), task, meta=meta)
    assert out.column("input").to_pylist() == ["good"]
    assert out.column("output").to_pylist() == ["positive"]


def test_duplicate_instances_are_dropped_across_batches_and_counted():
    dupes = DuplicateFilter()
    first, _ = build(table(text=["a", "b", "a", "c"], label=[1, 0, 1, 1]))
    second, _ = build(table(text=["b", "d", "a"], label=[0, 0, 0]), first_row=4)
    kept1, dropped1 = dupes(first)
    kept2, dropped2 = dupes(second)
    assert kept1.column("row").to_pylist() == [0, 1, 3]  # the first copy is kept, with its own row number
    assert kept2.column("row").to_pylist() == [5, 6]  # "a" → negative is a new (input, output) pair
    assert (dropped1, dropped2) == (1, 1)


def test_same_input_with_another_output_is_not_a_duplicate():
    kept, dropped = DuplicateFilter()(build(table(text=["a", "a"], label=[1, 0]))[0])
    assert (kept.num_rows, dropped) == (2, 0)


def test_provenance_columns():
    task = make_task(task_id="fedcba9876543210")
    meta = make_meta(config="plain")
    out, _ = build(
        table(text=["a", "b", "c"], label=[0, 1, 0]), task, split="validation", first_row=1000, meta=meta
    )
    assert out.schema == SCHEMA
    rows = out.to_pylist()
    assert [r["row"] for r in rows] == [1000, 1001, 1002]
    assert [r["instance_id"] for r in rows] == [
        instance_id("fedcba9876543210", "validation", r) for r in (1000, 1001, 1002)
    ]
    for r in rows:
        assert (r["source_id"], r["source_revision"], r["config"], r["split"]) == (
            "reviews",
            meta.revision,
            "plain",
            "validation",
        )
        assert (r["task_id"], r["prompt_version"], r["model"]) == ("fedcba9876543210", "v1", "fake-model")


def test_keep_mask_selects_rows_and_keeps_their_numbers():
    keep = np.array([False, True, False, True])
    out, counts = build(table(text=list("abcd"), label=[0, 1, 0, 1]), first_row=4, keep=keep)
    assert out.column("row").to_pylist() == [5, 7]
    assert out.column("input").to_pylist() == ["b", "d"]
    assert counts["rows_seen"] == 2


def test_all_rows_dropped_gives_empty_table_with_schema():
    out, counts = build(table(text=["a"], label=pa.array([None], pa.int64())))
    assert out.num_rows == 0
    assert out.schema == SCHEMA
    assert counts["dropped_empty_output"] == 1


def test_list_input_is_lettered_and_list_output_joined():
    meta = make_meta(
        features=[
            make_feature("question"),
            make_feature("choices", "list<string>"),
            make_feature("answers", "list<string>"),
        ]
    )
    task = make_task(input_fields=["question", "choices"], output_field="answers")
    tbl = table(question=["Which?"], choices=[["red", "blue"]], answers=[["blue", "navy"]])
    out, _ = build(tbl, task, meta=meta)
    assert out.column("input").to_pylist() == ["Question: Which?\nChoices: A. red\nB. blue"]
    assert out.column("output").to_pylist() == ["blue, navy"]


# --- sample_rows -------------------------------------------------------------------------------------


def capped(n: int | None, seed: int = 0) -> OrganizeParams:
    return OrganizeParams(max_instances_per_task=n, seed=seed)


def test_no_cap_means_every_row():
    assert sample_rows(make_task(), make_meta(), capped(None)) is None


def test_cap_at_or_above_total_means_every_row():
    assert sample_rows(make_task(), make_meta(), capped(120)) is None  # 100 train + 20 validation


def test_sample_respects_cap_and_split_sizes():
    meta = make_meta(
        splits=[SplitInfo(name="train", num_rows=100), SplitInfo(name="validation", num_rows=20)]
    )
    picked = sample_rows(make_task(), meta, capped(50))
    assert set(picked) == {"train", "validation"}
    assert sum(len(v) for v in picked.values()) == 50
    for split in meta.splits:
        rows = picked[split.name]
        assert np.all(rows >= 0) and np.all(rows < split.num_rows)
        assert np.all(np.diff(rows) > 0)  # sorted, distinct


def test_sample_never_exceeds_tiny_splits():
    meta = make_meta(splits=[SplitInfo(name="train", num_rows=3), SplitInfo(name="validation", num_rows=2)])
    picked = sample_rows(make_task(), meta, capped(4))
    assert sum(len(v) for v in picked.values()) == 4
    assert len(picked["train"]) <= 3 and len(picked["validation"]) <= 2
    assert picked["train"].max(initial=0) < 3 and picked["validation"].max(initial=0) < 2


def test_sample_is_deterministic_per_seed_and_task():
    task, meta = make_task(), make_meta()
    first = sample_rows(task, meta, capped(30, seed=7))
    again = sample_rows(task, meta, capped(30, seed=7))
    other_seed = sample_rows(task, meta, capped(30, seed=8))
    other_task = sample_rows(make_task(task_id="ffffffffffffffff"), meta, capped(30, seed=7))
    assert all(np.array_equal(first[s], again[s]) for s in first)
    assert not all(np.array_equal(first[s], other_seed[s]) for s in first)
    assert not all(np.array_equal(first[s], other_task[s]) for s in first)
