"""`dynosaur.pipeline.decontaminate`: the evaluation-benchmark deny-list and the n-gram overlap check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynosaur.core.errors import DynoError, ParamsError
from dynosaur.core.params import CollectParams, DecontaminateParams, Params, SourceSpec
from dynosaur.pipeline.collect import collect_one
from dynosaur.pipeline.decontaminate import (
    EvalIndex,
    eval_benchmark,
    eval_files,
    eval_fingerprint,
    eval_texts,
    load_index,
    words,
)

SUPERNI = Path(__file__).resolve().parents[1] / "fixtures" / "superni"
# 33 words of evaluation text; instances below share 13 or 12 of them in a row.
PASSAGE = (
    "The committee met on a rainy Tuesday to decide whether the old lighthouse should be restored, "
    "sold to a private buyer, or left to the sea and the gulls that had claimed it."
)
WORDS = words(PASSAGE)
DENY = CollectParams().eval_benchmarks


def test_words_are_lower_cased_without_punctuation():
    assert words("Hello, World! It's a well-known fact_x.") == [
        "hello",
        "world",
        "its",
        "a",
        "wellknown",
        "factx",
    ]


def test_the_passage_has_33_words():
    assert len(WORDS) == 33


def index_of(*texts: str, n: int = 13) -> EvalIndex:
    return EvalIndex(lambda: texts, n)


def test_a_shared_13_gram_is_an_overlap():
    shared = " ".join(WORDS[5:18])  # 13 words
    assert index_of(PASSAGE).overlaps(
        f"Some unrelated opening words. {shared.upper()}!! and an unrelated end"
    )


def test_12_shared_words_are_not_an_overlap():
    shared = " ".join(WORDS[5:17])  # 12 words
    assert not index_of(PASSAGE).overlaps(f"Some unrelated opening words. {shared} and an unrelated end")


def test_punctuation_and_case_do_not_hide_an_overlap():
    assert index_of(PASSAGE).overlaps(PASSAGE.upper().replace(",", ";").replace(" ", "  "))


def test_the_ngram_size_is_configurable():
    shared = " ".join(WORDS[:8])
    assert index_of(PASSAGE, n=8).overlaps(f"x y {shared} z")
    assert not index_of(PASSAGE, n=9).overlaps(f"x y {shared} z")


def test_a_short_evaluation_text_matches_only_a_whole_instance():
    index = index_of("Is the sky blue?\nyes")
    assert index.overlaps("is the sky blue yes")
    assert not index.overlaps("is the sky blue")
    assert not index.overlaps("Is the sky blue? yes, and the sea is wide and deep and cold today")


def test_mask_reads_input_and_output_as_one_text():
    index = index_of(PASSAGE)
    first, second = " ".join(WORDS[:7]), " ".join(WORDS[7:14])
    mask = index.mask([first, "nothing here", None], [second, "at all", None])
    assert mask.tolist() == [True, False, False]


def test_an_empty_index_removes_nothing():
    assert EvalIndex().mask(["a b c"], ["d"]).tolist() == [False]


def test_words_are_unicode_aware():
    assert words("Café\u00a0CRÈME — déjà-vu; 日本語  テキスト") == [
        "café",
        "crème",
        "déjàvu",
        "日本語",
        "テキスト",
    ]
    assert words("  ") == [] and words("— !") == []


def test_many_rows_in_several_chunks_and_a_slice():
    shared = " ".join(WORDS[10:23])
    inputs = [f"row {i} says nothing much" for i in range(20_000)]
    inputs[3], inputs[19_999] = shared, f"at the end {shared}"
    mask = index_of(PASSAGE).mask(pa.array(inputs).slice(2), [""] * 19_998)
    assert np.flatnonzero(mask).tolist() == [1, 19_997]


def test_a_window_never_spans_two_rows():
    first, second = " ".join(WORDS[:7]), " ".join(WORDS[7:14])
    assert index_of(PASSAGE).mask([first, second], ["", ""]).tolist() == [False, False]


# --- evaluation files ------------------------------------------------------------------------------------


def test_superni_texts_are_instances_and_positive_examples():
    texts = list(eval_texts(SUPERNI / "task001_sentiment.json"))
    assert "The blender is loud but crushes ice well.\npositive" in texts
    assert "Arrived quickly and works perfectly.\npositive" in texts
    assert not any("Broke after one day" in t for t in texts)  # negative examples are not evaluation data


def test_jsonl_and_parquet_rows_are_their_string_values(tmp_path):
    (tmp_path / "eval.jsonl").write_text(json.dumps({"q": "a question", "n": 3, "a": ["x", "y"]}) + "\n\n")
    pq.write_table(pa.table({"q": ["a question"], "n": [3]}), tmp_path / "eval.parquet")
    assert list(eval_texts(tmp_path / "eval.jsonl")) == ["a question\nx\ny"]
    assert list(eval_texts(tmp_path / "eval.parquet")) == ["a question"]


def test_an_unreadable_evaluation_file_is_one_line(tmp_path):
    (tmp_path / "eval.jsonl").write_text("{not json\n")
    with pytest.raises(DynoError, match="not a readable evaluation file") as err:
        list(eval_texts(tmp_path / "eval.jsonl"))
    assert "\n" not in str(err.value)


def test_eval_files_lists_superni_tasks_then_the_named_files(tmp_path):
    (tmp_path / "eval.jsonl").write_text("{}\n")
    params = DecontaminateParams(files=["eval.jsonl"])
    found = eval_files(params, str(SUPERNI), root=tmp_path)
    assert [p.name for p in found] == [
        "task001_sentiment.json",
        "task002_copy.json",
        "task1005_capital_city.json",
        "eval.jsonl",
    ]  # sorted by name; README.md is not a task file
    assert eval_files(DecontaminateParams(superni=False), str(SUPERNI)) == []
    assert eval_files(DecontaminateParams(), None) == []


@pytest.mark.parametrize(
    "params, superni_dir",
    [(DecontaminateParams(files=["missing.jsonl"]), None), (DecontaminateParams(), "no/such/folder")],
)
def test_a_missing_evaluation_set_is_a_params_error(tmp_path, params, superni_dir):
    with pytest.raises(ParamsError):
        eval_files(params, superni_dir, root=tmp_path)


def test_eval_fingerprint_follows_content_and_ngram_size(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text('{"q": "one"}\n')
    before = eval_fingerprint([path], 13)
    assert eval_fingerprint([path], 13) == before
    assert eval_fingerprint([path], 12) != before
    path.write_text('{"q": "two"}\n')
    assert eval_fingerprint([path], 13) != before
    assert eval_fingerprint([], 13) is None


def test_load_index_reads_every_file(tmp_path):
    (tmp_path / "eval.jsonl").write_text(json.dumps({"text": PASSAGE}) + "\n")
    index = load_index([tmp_path / "eval.jsonl", SUPERNI / "task001_sentiment.json"], 13)
    assert index.overlaps(PASSAGE)
    assert index.overlaps("The blender is loud but crushes ice well. positive")


def test_params_reject_other_file_formats():
    with pytest.raises(ValueError):
        DecontaminateParams(files=["eval.csv"])


# --- evaluation benchmarks never become sources ----------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        SourceSpec(id="x", hub="cais/mmlu"),
        SourceSpec(id="x", hub="Rowan/hellaswag"),
        SourceSpec(id="x", hub="allenai/ai2_arc"),
        SourceSpec(id="x", hub="openai/gsm8k"),
        SourceSpec(id="x", hub="Muennighoff/natural-instructions"),
        SourceSpec(id="x", hub="TIGER-Lab/MMLU-Pro"),
        SourceSpec(id="truthful-qa", path="data/sources/copy"),
        SourceSpec(id="mine", path="data/sources/winogrande"),
    ],
)
def test_evaluation_benchmarks_are_denied(spec):
    assert eval_benchmark(spec, DENY)


@pytest.mark.parametrize(
    "spec",
    [
        SourceSpec(id="x", hub="nyu-mll/glue"),
        SourceSpec(id="x", hub="rajpurkar/squad"),
        SourceSpec(id="x", hub="mmlu/other-name"),  # the owner is not the name
        SourceSpec(id="vader-tweets", path="data/sources/vader-tweets"),
    ],
)
def test_other_datasets_are_not_denied(spec):
    assert eval_benchmark(spec, DENY) is None


def test_an_owner_entry_matches_only_that_owner():
    assert eval_benchmark(SourceSpec(id="x", hub="me/thing"), ["me/thing"]) == "me/thing"
    assert eval_benchmark(SourceSpec(id="x", hub="you/thing"), ["me/thing"]) is None


def test_collect_skips_an_evaluation_benchmark_without_reading_it(tmp_path):
    # The folder does not even exist: the deny-list is checked before anything is read.
    spec = SourceSpec(id="gsm8k", path=str(tmp_path / "gsm8k"))
    meta, reused = collect_one(spec, Params(sources=[spec]), None, {})
    assert (meta.status, meta.reason, reused) == ("skipped", "eval_benchmark", False)


def test_the_deny_list_is_configurable(tmp_path):
    spec = SourceSpec(id="gsm8k", path=str(tmp_path / "gsm8k"))
    params = Params(sources=[spec], collect=CollectParams(eval_benchmarks=[]))
    meta, _ = collect_one(spec, params, None, {})
    assert meta.status == "failed"  # not denied any more: it is read, and the folder is missing
