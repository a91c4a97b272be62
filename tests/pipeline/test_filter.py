"""`dynosaur.pipeline.filter`: one test per reason code, label options, determinism, and the published Dynosaur specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynosaur.core.params import FilterParams
from dynosaur.core.records import SourceMeta, Task, TaskSpec, task_id
from dynosaur.pipeline.filter import REASONS, judge
from tests.factories import (
    label_feature,
    make_feature,
    make_generated,
    make_meta,
    make_proposal,
    make_spec,
    make_task,
)

# The paper's published specs: a vendored sample always; the whole file when this checkout sits beside it.
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "dynosaur" / "instructions-sample.json"
FULL = Path(__file__).resolve().parents[3] / "shared" / "data" / "dynosaur" / "instructions-full.json"
# (code-metadata outputs, multi-output tasks, GLUE label tasks) in each file
PUBLISHED_COUNTS = {"sample": (22, 12, 19), "full": (544, 257, 19)}
CODE_META_OUTPUTS = {"size", "path", "repo_name", "license", "file_path"}


def judge_all(
    *specs: TaskSpec, meta: SourceMeta | None = None, params: FilterParams | None = None
) -> list[Task]:
    generated = make_generated(make_proposal(*specs))
    return judge(meta or make_meta(), generated, params or FilterParams())


def judge_one(spec: TaskSpec, meta: SourceMeta | None = None, params: FilterParams | None = None) -> Task:
    (task,) = judge_all(spec, meta=meta, params=params)
    return task


def assert_rejected(task: Task, reason: str) -> None:
    assert reason in REASONS
    assert (task.verdict, task.reason) == ("rejected", reason)
    assert task.label_options is None


# --- one test per reason -----------------------------------------------------------------------------


def test_unparseable_proposal_is_one_rejected_task():
    generated = make_generated(
        make_proposal(parse_error="invalid JSON (Expecting value)", cache_key="c" * 64)
    )
    (task,) = judge(make_meta(), generated, FilterParams())
    assert_rejected(task, "unparseable")
    assert (task.instruction, task.input_fields, task.output_field) == ("", [], "")


def test_two_unparseable_proposals_get_distinct_ids():
    generated = make_generated(
        make_proposal(parse_error="empty answer", cache_key="a" * 64),
        make_proposal(parse_error="empty answer", cache_key="b" * 64, variant="without_description"),
    )
    tasks = judge(make_meta(), generated, FilterParams())
    assert [t.reason for t in tasks] == ["unparseable", "unparseable"]
    assert len({t.task_id for t in tasks}) == 2


def test_multi_output():
    assert_rejected(judge_one(make_spec(output_field=["label", "title"])), "multi_output")


def test_single_element_output_list_is_not_multi_output():
    task = judge_one(make_spec(output_field=["label"]))
    assert (task.verdict, task.output_field) == ("valid", "label")


@pytest.mark.parametrize("output", ["", "   ", []])
def test_empty_output_name(output):
    assert_rejected(judge_one(make_spec(output_field=output)), "empty_output")


def test_empty_output_mostly_empty_column():
    meta = make_meta(features=[make_feature("text"), make_feature("summary", scanned=100, empty=60)])
    spec = make_spec(instruction="Summarise the given review in one sentence.", output_field="summary")
    assert_rejected(judge_one(spec, meta), "empty_output")


def test_half_empty_column_is_kept():
    meta = make_meta(features=[make_feature("text"), make_feature("summary", scanned=100, empty=50)])
    spec = make_spec(instruction="Summarise the given review in one sentence.", output_field="summary")
    assert judge_one(spec, meta).verdict == "valid"


@pytest.mark.parametrize("inputs", [[], [""], ["  ", ""]])
def test_no_input(inputs):
    assert_rejected(judge_one(make_spec(input_fields=inputs)), "no_input")


@pytest.mark.parametrize(
    "inputs, output",
    [
        (["body"], "label"),  # an input the source lacks
        (["text"], "sentiment"),  # an output the source lacks
        (["text", "Text"], "label"),  # names are case-sensitive
        (["image"], "label"),  # a media field as input
        (["text"], "image"),  # a media field as output
    ],
)
def test_unknown_field(inputs, output):
    assert_rejected(judge_one(make_spec(input_fields=inputs, output_field=output)), "unknown_field")


def test_io_overlap():
    spec = make_spec(
        instruction="Repeat the title of the given review.",
        input_fields=["text", "title"],
        output_field="title",
    )
    assert_rejected(judge_one(spec), "io_overlap")


@pytest.mark.parametrize("instruction", ["", "Classify.", "Classify the review."])
def test_instruction_too_short(instruction):
    assert_rejected(judge_one(make_spec(instruction=instruction)), "instruction_too_short")


def test_instruction_of_exactly_min_words_is_kept():
    assert judge_one(make_spec(instruction="Classify this review's sentiment.")).verdict == "valid"


def test_instruction_too_long():
    long = "Classify the sentiment of the given review " + "very " * 120
    assert len(long) > FilterParams().max_instruction_chars
    task = judge_one(make_spec(instruction=long))
    assert_rejected(task, "instruction_too_long")
    assert len(task.instruction) <= 2 * FilterParams().max_instruction_chars


def test_instruction_length_limit_follows_params():
    spec = make_spec(instruction="Classify the sentiment of the given review.")
    assert_rejected(judge_one(spec, params=FilterParams(max_instruction_chars=20)), "instruction_too_long")


@pytest.mark.parametrize(
    "name", ["id", "url", "file_path", "repo_name", "size", "license", "review_id", "ID"]
)
def test_meta_field_by_name(name):
    meta = make_meta(features=[make_feature("text"), make_feature(name)])
    spec = make_spec(instruction="Predict the value of this field for the review.", output_field=name)
    assert_rejected(judge_one(spec, meta), "meta_field")


def test_meta_field_by_id_like_stats():
    meta = make_meta(features=[make_feature("text"), make_feature("code", id_like=True, mean_chars=8.0)])
    spec = make_spec(instruction="Predict the code of the given review.", output_field="code")
    assert_rejected(judge_one(spec, meta), "meta_field")


def test_meta_name_as_input_is_fine():
    meta = make_meta(features=[make_feature("url"), label_feature()])
    spec = make_spec(instruction="Classify the sentiment of the page at this address.", input_fields=["url"])
    assert judge_one(spec, meta).verdict == "valid"


def test_degenerate_label_class_names():
    meta = make_meta(features=[make_feature("text"), label_feature(top_share=0.99)])
    assert_rejected(judge_one(make_spec(), meta), "degenerate_label")


def test_degenerate_label_single_value():
    meta = make_meta(features=[make_feature("text"), label_feature(distinct=1, top_share=1.0)])
    assert_rejected(judge_one(make_spec(), meta), "degenerate_label")


def test_dominant_free_text_is_not_degenerate():
    """Only classification-like outputs can be degenerate; a long free-text field is not one."""
    meta = make_meta(features=[make_feature("text"), make_feature("summary", distinct=3, top_share=0.99)])
    spec = make_spec(instruction="Summarise the given review in one sentence.", output_field="summary")
    assert judge_one(spec, meta).verdict == "valid"


@pytest.mark.parametrize(
    "second",
    [
        "Classify the sentiment of the given review.",
        "classify the SENTIMENT of the given review",
        "  Classify the sentiment,   of the given review!! ",
        "Classify\tthe sentiment of the\ngiven review...",
    ],
)
def test_duplicate_instruction_normalised(second):
    first = make_spec(input_fields=["text"])
    other = make_spec(instruction=second, input_fields=["title"])
    tasks = judge_all(first, other)
    assert tasks[0].verdict == "valid"
    assert_rejected(tasks[1], "duplicate_instruction")


def test_rejected_instruction_does_not_count_as_seen():
    bad = make_spec(output_field="sentiment")  # unknown_field
    good = make_spec()
    tasks = judge_all(bad, good)
    assert [t.reason for t in tasks] == ["unknown_field", None]


def test_same_task_from_both_variants_is_one_task():
    spec = make_spec()
    generated = make_generated(
        make_proposal(spec, variant="with_description"),
        make_proposal(spec, variant="without_description", cache_key="w" * 64),
    )
    first, second = judge(make_meta(), generated, FilterParams())
    assert first.verdict == "valid"
    assert_rejected(second, "duplicate_instruction")
    assert second.task_id == first.task_id + "#2"


def test_every_task_record_has_its_own_id_even_when_repeated_within_a_variant():
    spec = make_spec()
    generated = make_generated(make_proposal(spec, spec, spec, variant="with_description"))
    tasks = judge(make_meta(), generated, FilterParams())
    assert [t.task_id for t in tasks] == [tasks[0].task_id, tasks[0].task_id + "#2", tasks[0].task_id + "#3"]
    assert [t.verdict for t in tasks] == ["valid", "rejected", "rejected"]


def test_first_matching_rule_wins():
    spec = make_spec(instruction="Go.", input_fields=[], output_field=["a", "b"])
    assert judge_one(spec).reason == "multi_output"


# --- rules that judge meaning (issue 9, section 3) ---------------------------------------------------


def quoting_meta() -> SourceMeta:
    """A sentence source: many distinct sentences, a two-valued certainty label, a short-token topic."""
    return make_meta(
        source_id="certainty",
        features=[
            make_feature("sentence", mean_chars=60.0),
            label_feature("certainty", class_names=["certain", "uncertain"]),
            make_feature("topic", distinct=3, top_share=0.4, mean_chars=6.0),
        ],
        samples=[
            {"sentence": "In some forces short sleeved shirts are worn in summer.", "certainty": 0},
            {"sentence": "The parade was cancelled because of the storm.", "certainty": 1},
        ],
    )


def test_quotes_sample_rejects_an_instruction_quoting_a_sample_row():
    """Seen on a real run: the instruction describes one row, not the task."""
    spec = make_spec(
        instruction="Given the sentence 'In some forces short sleeved shirts…', determine the certainty.",
        input_fields=["sentence"],
        output_field="certainty",
    )
    assert_rejected(judge_one(spec, quoting_meta()), "quotes_sample")


def test_quotes_sample_reads_list_values():
    meta = make_meta(
        features=[
            make_feature("context"),
            make_feature("question"),
            make_feature("answers.text", "list<string>"),
        ],
        samples=[
            {"context": "c", "question": "q", "answers.text": ["the Norman conquest of England in 1066"]}
        ],
    )
    spec = make_spec(
        instruction="Explain why the Norman conquest of England mattered, given the context.",
        input_fields=["context", "question"],
        output_field="answers.text",
    )
    assert_rejected(judge_one(spec, meta), "quotes_sample")


def test_quotes_sample_keeps_an_instruction_naming_label_values():
    """Label values (low cardinality) belong in an instruction; so do a few words shared by chance."""
    spec = make_spec(
        instruction="Decide whether the sentence is certain or uncertain, as in forces of nature.",
        input_fields=["sentence"],
        output_field="certainty",
    )
    assert judge_one(spec, quoting_meta()).verdict == "valid"


def test_quotes_sample_min_words_follows_params():
    spec = make_spec(
        instruction="Say whether a sentence about short sleeved shirts is certain.",
        input_fields=["sentence"],
        output_field="certainty",
    )
    assert judge_one(spec, quoting_meta()).verdict == "valid"
    rejected = judge_one(spec, quoting_meta(), FilterParams(quote_min_words=3))
    assert_rejected(rejected, "quotes_sample")


def sentiment_text_meta() -> SourceMeta:
    return make_meta(
        features=[
            make_feature("text", distinct=100, mean_chars=80.0),
            make_feature("title", distinct=95, mean_chars=20.0),
            label_feature(),
            make_feature("license", distinct=3, top_share=0.5, mean_chars=5.0),
        ]
    )


def test_underdetermined_output_rejects_free_text_from_a_label():
    spec = make_spec(
        instruction="Predict the review text from its sentiment label.",
        input_fields=["label"],
        output_field="text",
    )
    assert_rejected(judge_one(spec, sentiment_text_meta()), "underdetermined_output")


@pytest.mark.parametrize(
    "instruction",
    [
        "Write a review with the given sentiment.",
        "Given a sentiment, generate a product review that expresses it.",
        "Compose a short review whose sentiment matches the label.",
    ],
)
def test_underdetermined_output_allows_generative_instructions(instruction):
    spec = make_spec(instruction=instruction, input_fields=["label"], output_field="text")
    assert judge_one(spec, sentiment_text_meta()).verdict == "valid"


def test_underdetermined_output_generation_from_bookkeeping_is_not_allowed():
    spec = make_spec(
        instruction="Write a product review under the given license.",
        input_fields=["license"],
        output_field="text",
    )
    assert_rejected(judge_one(spec, sentiment_text_meta()), "underdetermined_output")


def test_underdetermined_output_keeps_an_input_with_many_values():
    spec = make_spec(
        instruction="Predict the review text from its title and label.",
        input_fields=["title", "label"],
        output_field="text",
    )
    assert judge_one(spec, sentiment_text_meta()).verdict == "valid"


def test_underdetermined_output_needs_stats():
    meta = make_meta(features=[make_feature("text", stats=None), label_feature()])
    spec = make_spec(
        instruction="Predict the review text from its sentiment label.",
        input_fields=["label"],
        output_field="text",
    )
    assert judge_one(spec, meta).verdict == "valid"


def test_duplicate_input():
    spec = make_spec(input_fields=["text", "title", "text"])
    assert_rejected(judge_one(spec), "duplicate_input")


def test_distinct_inputs_are_not_duplicate_input():
    assert judge_one(make_spec(input_fields=["text", "title"])).verdict == "valid"


@pytest.mark.parametrize(
    "name",
    [
        "downvoted_answer",
        "rejected",
        "incorrect_answers",
        "wrong_answer",
        "distractor1",
        "distractors",
        "wrongAnswer",
    ],
)
def test_bad_target(name):
    meta = make_meta(features=[make_feature("question"), make_feature(name)])
    spec = make_spec(
        instruction="Answer the given question in a few sentences.",
        input_fields=["question"],
        output_field=name,
    )
    assert_rejected(judge_one(spec, meta), "bad_target")


@pytest.mark.parametrize(
    "feature",
    [
        make_feature("upvoted_answer"),
        make_feature("chosen"),
        make_feature("is_incorrect", "bool", distinct=2, top_share=0.5, mean_chars=5.0),
        label_feature("wrong", class_names=["no", "yes"]),
    ],
)
def test_good_or_judging_target_is_not_bad_target(feature):
    meta = make_meta(features=[make_feature("question"), feature])
    spec = make_spec(
        instruction="Answer the given question in a few sentences.",
        input_fields=["question"],
        output_field=feature.name,
    )
    assert judge_one(spec, meta).verdict == "valid"


@pytest.mark.parametrize(
    "name",
    [
        "conversationId",
        "created_utc",
        "prediction_ts",
        "published_at",
        "CreationDate",
        "downloaded_timestamp",
        "__index_level_0__",
        "Unnamed: 0",
        "permalink",
        "initiatorWorkerId",
        "annotatorAge",
        "wdcFile",
        "fold",
    ],
)
def test_meta_field_by_name_the_list_missed(name):
    meta = make_meta(features=[make_feature("text"), make_feature(name)])
    spec = make_spec(instruction="Predict the value of this field for the review.", output_field=name)
    assert_rejected(judge_one(spec, meta), "meta_field")


def test_meta_field_epoch_like_integers():
    meta = make_meta(
        features=[make_feature("text"), make_feature("posted", "int64", distinct=100, mean_chars=10.0)],
        samples=[{"text": "a", "posted": 1630454400}, {"text": "b", "posted": 1630458123}],
    )
    spec = make_spec(instruction="Predict when the given review was posted.", output_field="posted")
    assert_rejected(judge_one(spec, meta), "meta_field")


def test_meta_field_timestamp_dtype():
    meta = make_meta(features=[make_feature("text"), make_feature("posted", "timestamp[s]", mean_chars=19.0)])
    spec = make_spec(instruction="Predict when the given review was posted.", output_field="posted")
    assert_rejected(judge_one(spec, meta), "meta_field")


def test_meta_field_unique_per_row_short_tokens():
    meta = make_meta(
        features=[make_feature("text"), make_feature("author", distinct=100, mean_chars=9.0)],
        samples=[{"text": "a", "author": "t2_kq8x1"}, {"text": "b", "author": "user_4412"}],
    )
    spec = make_spec(instruction="Predict who wrote the given review.", output_field="author")
    assert_rejected(judge_one(spec, meta), "meta_field")


@pytest.mark.parametrize(
    "feature, samples",
    [
        # Unique plain words are a vocabulary, not identifiers: "give the correctly spelled word".
        (make_feature("word", distinct=100, mean_chars=7.0), [{"word": "receive"}, {"word": "Separate"}]),
        # Large integers that are not epoch seconds: measurements.
        (make_feature("population", "int64", distinct=100, mean_chars=10.0), [{"population": 8336817}]),
        # A year is a count of years, not a record's timestamp.
        (make_feature("year", "int64", distinct=40, mean_chars=4.0), [{"year": 1999}]),
    ],
)
def test_meta_field_stats_keep_content(feature, samples):
    meta = make_meta(features=[make_feature("text"), feature], samples=samples)
    spec = make_spec(instruction="Predict this value for the given text.", output_field=feature.name)
    assert judge_one(spec, meta).verdict == "valid"


def code_meta() -> SourceMeta:
    return make_meta(
        source_id="github-code",
        features=[
            make_feature("code", mean_chars=2400.0),
            make_feature("repo_name", distinct=90, mean_chars=20.0),
            make_feature("path", distinct=100, mean_chars=30.0),
            make_feature("license", distinct=12, top_share=0.3, mean_chars=6.0),
            make_feature("language", distinct=30, top_share=0.2, mean_chars=6.0),
            make_feature("docstring", mean_chars=90.0),
        ],
        samples=[],
    )


@pytest.mark.parametrize("inputs", [["repo_name", "path"], ["license"], ["language"], ["path", "language"]])
def test_code_from_metadata(inputs):
    spec = make_spec(
        instruction="Generate the code of the file described by the input.",
        input_fields=inputs,
        output_field="code",
    )
    assert_rejected(judge_one(spec, code_meta()), "code_from_metadata")


@pytest.mark.parametrize("inputs", [["docstring"], ["docstring", "language"]])
def test_code_from_a_description_is_kept(inputs):
    spec = make_spec(
        instruction="Write the function that the given docstring describes.",
        input_fields=inputs,
        output_field="code",
    )
    assert judge_one(spec, code_meta()).verdict == "valid"


# --- near duplicates (issue 9, section 4) ------------------------------------------------------------


def test_near_duplicate_within_a_source_names_the_kept_task():
    first = make_spec(instruction="Classify the sentiment of the given review.")
    second = make_spec(instruction="Please classify the sentiment of the given review text.")
    kept, merged = judge_all(first, second)
    assert (kept.verdict, kept.duplicate_of) == ("valid", None)
    assert_rejected(merged, "near_duplicate")
    assert merged.duplicate_of == kept.task_id


def test_any_rewording_of_the_same_fields_is_merged_by_default():
    """The same fields make the same instances: a second instruction over them only rewords the first."""
    first = make_spec(instruction="Classify the sentiment of the given review.")
    other = make_spec(instruction="Is this customer happy or unhappy with the product?")
    assert [t.reason for t in judge_all(first, other)] == [None, "near_duplicate"]


def test_rewording_below_a_rouge_threshold_is_kept():
    first = make_spec(instruction="Classify the sentiment of the given review.")
    other = make_spec(instruction="Is this customer happy or unhappy with the product?")
    close = make_spec(instruction="Please classify the sentiment of the given review text.")
    params = FilterParams(near_duplicate_rouge=0.7)
    assert [t.reason for t in judge_all(first, other, close, params=params)] == [None, None, "near_duplicate"]


def test_different_fields_are_never_near_duplicates():
    first = make_spec(instruction="Classify the sentiment of the given review.")
    title = make_spec(instruction="Classify the sentiment of the given review title.", input_fields=["title"])
    assert [t.verdict for t in judge_all(first, title)] == ["valid", "valid"]


def test_near_duplicate_across_variants_keeps_the_first_proposal():
    spec = make_spec(instruction="Classify the sentiment of the given review.")
    reworded = make_spec(instruction="Classify the sentiment of this review.")
    generated = make_generated(
        make_proposal(spec, variant="with_description"),
        make_proposal(reworded, variant="without_description", cache_key="w" * 64),
    )
    first, second = judge(make_meta(), generated, FilterParams())
    assert (first.variant, first.verdict) == ("with_description", "valid")
    assert (second.reason, second.duplicate_of) == ("near_duplicate", first.task_id)


def test_old_task_records_without_duplicate_of_still_parse():
    record = make_task().model_dump(mode="json")
    del record["duplicate_of"]
    assert Task.model_validate(record).duplicate_of is None


# --- valid tasks and label options -------------------------------------------------------------------


def test_valid_task_gets_class_names_as_options():
    task = judge_one(make_spec())
    assert (task.verdict, task.reason) == ("valid", None)
    assert task.label_options == ["negative", "positive"]
    assert task.final_instruction == (
        "Classify the sentiment of the given review. Answer with one of: negative, positive."
    )
    meta = make_meta()
    assert task.task_id == task_id(meta.source_id, meta.revision, task.instruction, ["text"], "label")
    assert (task.source_id, task.source_revision, task.model, task.prompt_version, task.variant) == (
        "reviews",
        meta.revision,
        "fake-model",
        "v1",
        "with_description",
    )


def test_options_not_appended_when_too_long():
    names = [f"category_number_{i:02d}" for i in range(40)]  # 40 × 18 chars + separators > 600
    meta = make_meta(features=[make_feature("text"), label_feature(class_names=names)])
    task = judge_one(make_spec(instruction="Classify the topic of the given text."), meta)
    assert task.verdict == "valid"
    assert task.label_options is None
    assert task.final_instruction == "Classify the topic of the given text."


def test_options_limit_follows_params():
    task = judge_one(make_spec(), params=FilterParams(max_options_chars=10))
    assert (task.verdict, task.label_options) == ("valid", None)


def test_free_text_output_gets_no_options():
    spec = make_spec(instruction="Write a short title for the given review.", output_field="title")
    task = judge_one(spec)
    assert (task.verdict, task.label_options) == ("valid", None)
    assert task.final_instruction == spec.instruction


def test_few_distinct_values_are_options_from_samples():
    meta = make_meta(
        features=[
            make_feature("text"),
            make_feature("rating", "int64", distinct=2, top_share=0.6, mean_chars=1.0),
        ],
        samples=[{"text": "a", "rating": 5}, {"text": "b", "rating": 1}, {"text": "c", "rating": None}],
    )
    spec = make_spec(instruction="Predict the rating of the given review.", output_field="rating")
    assert judge_one(spec, meta).label_options == ["1", "5"]


def test_no_options_when_samples_miss_some_values():
    """Options seen only in the sample rows would be an incomplete label set: better none than wrong ones."""
    meta = make_meta(
        features=[
            make_feature("text"),
            make_feature("rating", "int64", distinct=3, top_share=0.4, mean_chars=1.0),
        ],
        samples=[{"text": "a", "rating": 5}, {"text": "b", "rating": 1}],
    )
    spec = make_spec(instruction="Predict the rating of the given review.", output_field="rating")
    task = judge_one(spec, meta)
    assert (task.verdict, task.label_options) == ("valid", None)


def test_few_distinct_values_can_be_degenerate_even_if_samples_show_one():
    meta = make_meta(
        features=[
            make_feature("text"),
            make_feature("rating", "int64", distinct=2, top_share=0.99, mean_chars=1.0),
        ],
        samples=[{"text": "a", "rating": 5}, {"text": "b", "rating": 5}],
    )
    spec = make_spec(instruction="Predict the rating of the given review.", output_field="rating")
    assert_rejected(judge_one(spec, meta), "degenerate_label")


def test_judge_is_deterministic():
    specs = [
        make_spec(),
        make_spec(instruction="Write a short title for the given review.", output_field="title"),
        make_spec(output_field="sentiment"),
    ]
    first = judge_all(*specs)
    second = judge_all(*specs)
    assert [t.task_id for t in first] == [t.task_id for t in second]
    assert first == second
    assert len({t.task_id for t in first}) == 3


def test_task_id_ignores_whitespace_around_instruction():
    a = judge_one(make_spec(instruction="Classify the sentiment of the given review."))
    b = judge_one(make_spec(instruction="  Classify the sentiment of the given review.\n"))
    assert a.task_id == b.task_id


# --- the published Dynosaur task specs ---------------------------------------------------------------


@pytest.fixture(params=["sample", "full"])
def published(request) -> tuple[list[dict], tuple[int, int, int]]:
    path = SAMPLE if request.param == "sample" else FULL
    if not path.exists():
        pytest.skip(f"{path} not available")
    return json.loads(path.read_text(encoding="utf-8")), PUBLISHED_COUNTS[request.param]


def meta_for(entry: dict, **features) -> SourceMeta:
    """A source whose features are exactly the entry's fields: plain strings unless given."""
    names = dict.fromkeys([*entry["input_fields"], *entry["output_field"]])
    return make_meta(
        source_id="published",
        features=[features.get(n) or make_feature(n) for n in names],
        samples=[],
    )


def spec_for(entry: dict) -> TaskSpec:
    return TaskSpec(
        instruction=entry["instruction"],
        input_fields=entry["input_fields"],
        output_field=entry["output_field"],
    )


def test_published_code_metadata_tasks_are_all_meta_field(published):
    all_entries, (code_meta, _, _) = published
    entries = [
        e for e in all_entries if len(e["output_field"]) == 1 and e["output_field"][0] in CODE_META_OUTPUTS
    ]
    assert len(entries) == code_meta
    reasons = {}
    for entry in entries:
        task = judge_one(spec_for(entry), meta_for(entry))
        reasons[(entry["task_name"], entry["instruction"])] = task.reason
    wrong = {k: v for k, v in reasons.items() if v != "meta_field"}
    assert not wrong


def test_published_multi_output_tasks_are_all_multi_output(published):
    all_entries, (_, multi, _) = published
    entries = [e for e in all_entries if len(e["output_field"]) > 1]
    assert len(entries) == multi
    assert {judge_one(spec_for(e), meta_for(e)).reason for e in entries} == {"multi_output"}


GLUE_LABELS = {
    "cola": ["unacceptable", "acceptable"],
    "sst2": ["negative", "positive"],
    "mrpc": ["not_equivalent", "equivalent"],
    "qqp": ["not_duplicate", "duplicate"],
    "mnli": ["entailment", "neutral", "contradiction"],
    "mnli_matched": ["entailment", "neutral", "contradiction"],
    "mnli_mismatched": ["entailment", "neutral", "contradiction"],
    "qnli": ["entailment", "not_entailment"],
    "rte": ["entailment", "not_entailment"],
    "wnli": ["not_entailment", "entailment"],
}


def test_published_glue_label_tasks_are_valid(published):
    all_entries, (_, _, glue) = published
    entries = [
        e for e in all_entries if e["task_name"].startswith("glue-") and e["output_field"] == ["label"]
    ]
    assert len(entries) == glue
    for entry in entries:
        config = entry["task_name"].removeprefix("glue-")
        if config == "stsb":  # a similarity score in [0, 5]: regression, no options
            label = make_feature("label", "float32", distinct=140, top_share=0.02, mean_chars=4.0)
            expected = None
        else:
            label = label_feature(class_names=GLUE_LABELS[config])
            expected = None  # each published instruction already names every label: none are appended
        task = judge_one(spec_for(entry), meta_for(entry, label=label))
        assert (task.verdict, task.reason, task.label_options) == ("valid", None, expected), entry


# --- copies_demonstration ------------------------------------------------------------------------------


def test_copies_demonstration_rejects_a_demonstration_pasted_onto_other_fields():
    """Seen with demonstrations on: the 0.5B model asked SQuAD's "Create a question provided the article."
    of a table that has no question."""
    spec = make_spec(
        instruction="Create a question provided the article.", input_fields=["text"], output_field="label"
    )
    assert_rejected(judge_one(spec), "copies_demonstration")
    nearly = make_spec(
        instruction="Please choose the correct answer for the math problem!", output_field="label"
    )
    assert_rejected(judge_one(nearly), "copies_demonstration")


def test_copies_demonstration_keeps_the_same_instruction_over_the_same_kind_of_output():
    # the demonstration's own output (`title`): the instruction fits the fields it is asked of
    spec = make_spec(
        instruction="Can you write a title for the passage?", input_fields=["text"], output_field="title"
    )
    task = judge_one(spec)
    assert (task.verdict, task.reason) == ("valid", None)
    # a task of its own that merely shares a few words with a demonstration
    own = make_spec(instruction="Choose the sentiment that the review expresses.", output_field="label")
    assert judge_one(own).verdict == "valid"


# --- procedure_talk ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instruction",
    [  # seen on the quality bench with the local 0.5B model (fields-first, prompt v2)
        "To produce the abstract, the model should extract the `abstract` field from the given row.",
        "To produce the atu_numerical field, we need to find the corresponding row in the dataset.",
        "To determine the sentiment of the given text, please provide the text as fields in the dataset row.",
        "Write a title for the review, in one sentence, without naming fields and without quoting the rows.",
        "Determine if the question is a paraphrase of another question in the dataset.",  # the paper's corpus
    ],
)
def test_procedure_talk_rejects_narration_of_the_data(instruction):
    assert_rejected(judge_one(make_spec(instruction=instruction)), "procedure_talk")


@pytest.mark.parametrize(
    "instruction",
    [
        "Classify the sentiment of the given review.",
        "To a reader who has not seen the film, summarise the review in one sentence.",  # no "To X ..., "
        "Identify the topic of the news article; the answer is one of the given categories.",
        "Answer the question using the rows of the table.",  # a table in the input has rows
    ],
)
def test_procedure_talk_keeps_instructions(instruction):
    assert judge_one(make_spec(instruction=instruction)).verdict == "valid"
