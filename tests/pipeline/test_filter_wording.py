"""The rules for what a reader saw (issue 19): `templated_instruction`, `instruction_mismatch` and
`trivial_output`, each with cases that must be rejected and cases that must be kept, the positive and negative
instructions taken from the paper's published tasks (tests/fixtures/dynosaur) or verbatim from our own runs."""

from __future__ import annotations

import pytest

from dynosaur.core.params import FilterParams
from dynosaur.pipeline import filter as flt
from dynosaur.pipeline import filter_fields, filter_output, filter_wording
from dynosaur.pipeline.wording import human_name, is_natural, label_set, states_labels, templated_reason
from tests.factories import label_feature, make_feature, make_meta, make_spec, make_stats

P = FilterParams()


# --- templated_instruction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instruction",
    [
        "Given the content, time, produce the retweet_count.",  # verbatim from the 0.5B default run
        "Given the certainty, produce the sentence.",
        "Given the text, produce the label.",
        "Given the input, please provide the output.",  # the paper's (MicPie/unpredictable_*)
        "Given the Speaker and Utterance, predict the Dialogue_Act.",  # the paper's: a raw identifier
        "Classify the `text` into a sentiment.",
    ],
)
def test_templates_are_rejected(instruction: str) -> None:
    meta = make_meta(
        features=[*make_meta().features, make_feature("Dialogue_Act"), make_feature("retweet_count")]
    )
    assert (
        filter_wording.templated_instruction(make_spec(instruction=instruction), meta, P)
        == "templated_instruction"
    )


@pytest.mark.parametrize(
    "instruction",
    [
        "Given a tweet, provide the associated hashtag.",  # the paper's own style, rated valid by its raters
        "Create a sentence with the given sentiment.",  # the paper's glue-sst2
        "Given two sentences, determine whether they entail each other or not. Answers must be one of "
        "entailment, not_entailment.",  # the paper's: a label with `_` is not a field
        "Provide a list of resources for media overlay epub3 books.",  # the paper's: a word with a digit
        "Classify the sentiment of the given movie review snippet as negative or positive.",  # our 0.5B run
    ],
)
def test_natural_instructions_are_kept(instruction: str) -> None:
    meta = make_meta(
        features=[*make_meta().features, label_feature("gold", ["entailment", "not_entailment"])]
    )
    assert filter_wording.templated_instruction(make_spec(instruction=instruction), meta, P) is None


def test_without_field_names_any_identifier_shape_counts() -> None:
    """What the bench's `natural` figure uses when it knows no fields: `_`, glued digits, backticks."""
    assert templated_reason("Tag each word of sentence_1.") == "raw identifier 'sentence_1'"
    assert templated_reason("Rate word1 against the other.") == "raw identifier 'word1'"
    assert is_natural("Rate how similar the two words are, from 0 to 10.")
    assert not is_natural("Rate the `similarity`.")


def test_human_names_never_show_an_identifier() -> None:
    assert [human_name(n) for n in ("sentence_1", "word2", "retweetCount", "word_a", "text")] == [
        "first sentence",
        "second word",
        "retweet count",
        "word A",
        "text",
    ]
    for name in ("sentence_1", "word2", "retweetCount", "atu_topic", "answers.text"):
        assert is_natural(f"Write the {human_name(name)}.")


def test_label_set_comes_from_class_names_or_the_scan() -> None:
    assert label_set(label_feature()) == ["negative", "positive"]
    scanned = make_feature("polarity", stats=make_stats(distinct=2, values=["neg", "pos"]))
    assert label_set(scanned) == ["neg", "pos"]
    assert label_set(make_feature("text")) is None
    assert states_labels("Answer positive or negative.", ["negative", "positive"])
    assert not states_labels("Answer positive or not.", ["negative", "positive"])


# --- instruction_mismatch ------------------------------------------------------------------------------


def topics_meta() -> object:
    features = [make_feature("body", mean_chars=800.0), make_feature("title", mean_chars=50.0)]
    return make_meta(features=[*features, label_feature("category", ["business", "sport", "tech"])])


@pytest.mark.parametrize(
    "instruction, output",
    [
        ("Classify the sentiment of the news article.", "category"),  # sentiment for topic labels
        ("Summarize the body of the article in 100 words.", "title"),  # issue 19: the title is the output
        ("Decide whether the article is about business.", "body"),  # a label asked, free text given
        ("Write a title for the article.", "body"),
    ],
)
def test_an_instruction_the_output_contradicts_is_rejected(instruction: str, output: str) -> None:
    inputs = ["title"] if output == "body" else ["body"]
    spec = make_spec(instruction=instruction, input_fields=inputs, output_field=output)
    assert filter_wording.instruction_mismatch(spec, topics_meta(), P) == "instruction_mismatch"


@pytest.mark.parametrize(
    "instruction, output",
    [
        ("Classify the news article into business, sport or tech.", "category"),
        ("Can you write a title for the passage?", "title"),  # the paper's SQuAD demonstration
        ("Given an article, write a title for it.", "title"),  # the paper's
        ("Create a sentence with the given sentiment.", "body"),  # the paper's: generation is no label ask
    ],
)
def test_an_instruction_that_fits_its_output_is_kept(instruction: str, output: str) -> None:
    spec = make_spec(
        instruction=instruction, input_fields=["body" if output != "body" else "title"], output_field=output
    )
    assert filter_wording.instruction_mismatch(spec, topics_meta(), P) is None


def test_sentiment_talk_is_fine_for_sentiment_labels() -> None:
    spec = make_spec(instruction="Classify the sentiment of the given review.")
    assert filter_wording.instruction_mismatch(spec, make_meta(), P) is None


# --- trivial_output ------------------------------------------------------------------------------------


def pairs_meta(rows: list[dict[str, object]]) -> object:
    return make_meta(features=[make_feature("sentence"), make_feature("answer")], samples=rows)


@pytest.mark.parametrize(
    "rows",
    [
        [
            {"sentence": "The cat sat.", "answer": "The cat sat."},
            {"sentence": "Dogs bark", "answer": "dogs bark"},
        ],
        [
            {"sentence": "one two three", "answer": "3"},
            {"sentence": "four five", "answer": "2"},
        ],  # word count
        [
            {"sentence": "Paris is big", "answer": "Paris"},
            {"sentence": "Rome is old", "answer": "Rome"},
        ],  # first
    ],
    ids=["copy", "length", "position"],
)
def test_an_output_needing_no_understanding_is_rejected(rows: list[dict[str, object]]) -> None:
    spec = make_spec(
        instruction="Answer about the sentence.", input_fields=["sentence"], output_field="answer"
    )
    assert filter_output.trivial_output(spec, pairs_meta(rows), P) == "trivial_output"


def test_an_output_that_needs_the_input_understood_is_kept() -> None:
    rows = [
        {"sentence": "Paris is the capital of France", "answer": "France"},  # last word once, not always
        {"sentence": "Which river flows through Rome?", "answer": "The Tiber"},
    ]
    spec = make_spec(instruction="Answer the question.", input_fields=["sentence"], output_field="answer")
    assert filter_output.trivial_output(spec, pairs_meta(rows), P) is None


def test_every_rule_is_a_reason_code_once() -> None:
    assert len(set(flt.REASONS)) == len(flt.REASONS)
    assert {r.__name__ for r in flt.RULES} <= set(flt.REASONS)
    assert {"templated_instruction", "instruction_mismatch", "trivial_output"} <= set(flt.REASONS)


def test_generative_asks_are_one_definition_each() -> None:
    """Issue 23 §1: a second `GENERATIVE` silently replaced the first for `underdetermined_output`, so
    "Invent ..." (in the first list, not the second) was rejected as underdetermined."""
    spec = make_spec(
        instruction="Invent a short review with the given sentiment.",
        input_fields=["label"],
        output_field="text",
    )
    assert filter_output.underdetermined_output(spec, make_meta(), P) is None
    lookup = make_spec(
        instruction="Look up the review with the given sentiment.",
        input_fields=["label"],
        output_field="text",
    )
    assert filter_output.underdetermined_output(lookup, make_meta(), P) == "underdetermined_output"


def test_the_docs_list_every_reason_code() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "pipeline.md").read_text(encoding="utf-8")
    assert [r for r in flt.REASONS if f"`{r}`" not in text] == []


# --- unlisted_mapping (propose, then snap) -----------------------------------------------------------


def test_snapping_drops_a_proposal_no_enumerated_mapping_fits() -> None:
    snap = FilterParams(snap_to_mappings=True)
    # long texts with a label: enumerated text → label only (an 800-character text from a label alone is not)
    meta = make_meta(features=[make_feature("text", mean_chars=800.0), label_feature()])
    fits = make_spec(instruction="Classify the review as negative or positive.")
    backwards = make_spec(
        instruction="Write the review's label.", input_fields=["label"], output_field="text"
    )
    assert filter_fields.unlisted_mapping(fits, meta, snap) is None
    assert filter_fields.unlisted_mapping(backwards, meta, snap) == "unlisted_mapping"
    assert filter_fields.unlisted_mapping(backwards, meta, P) is None  # off by default


# --- a score's scale, a label set of up to 20 -------------------------------------------------------------


def test_a_score_instruction_without_a_number_gets_its_scale() -> None:
    from dynosaur.pipeline.source_features import feature_stats
    from dynosaur.pipeline.wording import with_scale

    ratings = ["0.23", "9.8", *(f"{i / 4:.2f}" for i in range(3, 33))]  # 32 distinct values: a score
    similarity = make_feature("similarity", "float64", stats=feature_stats(ratings))
    said = with_scale("Rate how similar the two words are.", similarity)
    assert said == "Rate how similar the two words are. Answer with a number from 0 to 10."
    assert with_scale("Rate them from 1 to 5.", similarity) == "Rate them from 1 to 5."  # a scale is named
    assert with_scale("Classify the review.", label_feature()) == "Classify the review."  # a label: options


def test_feature_stats_record_a_numeric_range_only_for_numbers() -> None:
    from dynosaur.pipeline.source_features import feature_stats

    assert (feature_stats(["1", "2.5", "-3"]).low, feature_stats(["1", "2.5", "-3"]).high) == (-3.0, 2.5)
    assert feature_stats(["1", "two"]).low is None


def test_a_scanned_label_set_of_up_to_20_values_is_appended() -> None:
    types = [f"type {chr(65 + i)}" for i in range(16)]  # 16 values: more than max_label_options (10)
    feature = make_feature("tale_type", stats=make_stats(distinct=16, mean_chars=6.0, values=types))
    meta = make_meta(features=[make_feature("text", mean_chars=800.0), feature])
    assert filter_output.label_options("tale_type", meta, P) == types


def test_values_that_never_repeat_are_not_a_label_set() -> None:
    """16 rows, 16 different short answers: the scan saw every value once, so they are answers, not labels."""
    answers = [f"answer {i}" for i in range(16)]
    feature = make_feature(
        "answer", stats=make_stats(scanned=16, distinct=16, mean_chars=8.0, values=answers)
    )
    meta = make_meta(features=[make_feature("question"), feature])
    assert filter_output.label_options("answer", meta, P) is None
