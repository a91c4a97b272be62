"""`dynosaur.pipeline.near_duplicates`: ROUGE-L on word tokens, and one task kept per near-duplicate group."""

from __future__ import annotations

import pytest

from dynosaur.pipeline.near_duplicates import lcs_length, merge_near_duplicates, near_duplicate_pairs, rouge_l
from tests.factories import make_task


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("Classify the review.", "classify THE review!!", 1.0),
        ("the cat sat", "the cat sat on the mat", 2 * 1.0 * 0.5 / 1.5),  # P = 3/3, R = 3/6
        ("a b c d", "d c b a", 0.25),  # LCS 1 of 4
        ("one two", "three four", 0.0),
        ("", "", 1.0),
        ("", "words", 0.0),
        ("Résumez le texte donné.", "résumez le texte", 2 * 1.0 * 0.75 / 1.75),  # Unicode words count
    ],
)
def test_rouge_l(a, b, expected):
    assert rouge_l(a, b) == pytest.approx(expected)
    assert rouge_l(b, a) == pytest.approx(expected)


def test_lcs_length_is_a_subsequence_not_a_substring():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4


def test_rouge_l_matches_self_instruct_on_a_paraphrase():
    a = "Given the hardware information of two phones, please compare and determine which phone has a better system chip."
    b = "Compare the hardware of two phones and determine which phone has a better system chip."
    assert rouge_l(a, b) >= 0.7
    assert rouge_l(a, b) == pytest.approx(2 * 14 / (18 + 15))  # LCS 14 of 18 and 15 words


def tasks(*instructions_inputs_output):
    return [
        make_task(task_id=f"t{i}", instruction=ins, input_fields=inputs, output_field=output)
        for i, (ins, inputs, output) in enumerate(instructions_inputs_output)
    ]


def test_merge_keeps_the_first_and_names_it():
    merged = merge_near_duplicates(
        tasks(
            ("Classify the sentiment of the given review.", ["text"], "label"),
            ("Classify the sentiment of this review.", ["text"], "label"),
            ("Please classify the sentiment of the given review text.", ["text"], "label"),
        ),
        0.7,
    )
    assert [(t.verdict, t.reason, t.duplicate_of) for t in merged] == [
        ("valid", None, None),
        ("rejected", "near_duplicate", "t0"),
        ("rejected", "near_duplicate", "t0"),
    ]
    assert all(t.label_options is None for t in merged[1:])


def test_merge_needs_the_same_fields():
    merged = merge_near_duplicates(
        tasks(
            ("Classify the sentiment of the given review.", ["text", "title"], "label"),
            ("Classify the sentiment of the given review.", ["title", "text"], "label"),  # same set
            ("Classify the sentiment of the given review.", ["text"], "label"),
            ("Classify the sentiment of the given review.", ["text", "title"], "stars"),
        ),
        0.7,
    )
    assert [t.reason for t in merged] == [None, "near_duplicate", None, None]


def test_merge_threshold():
    pair = tasks(
        ("Summarise the given article in one sentence.", ["article"], "summary"),
        ("Write a headline-style summary for this news story.", ["article"], "summary"),
    )
    assert rouge_l(pair[0].instruction, pair[1].instruction) < 0.7
    assert [t.reason for t in merge_near_duplicates(pair, 0.7)] == [None, None]
    assert [t.reason for t in merge_near_duplicates(pair, 0.0)] == [None, "near_duplicate"]


def test_rejected_tasks_are_neither_kept_nor_merged():
    first, second = tasks(
        ("Classify the sentiment of the given review.", ["text"], "label"),
        ("Classify the sentiment of this review.", ["text"], "label"),
    )
    first = first.model_copy(update={"verdict": "rejected", "reason": "meta_field"})
    merged = merge_near_duplicates([first, second], 0.7)
    assert [(t.verdict, t.reason) for t in merged] == [("rejected", "meta_field"), ("valid", None)]


def test_near_duplicate_pairs_are_what_merge_would_merge():
    group = tasks(
        ("Classify the sentiment of the given review.", ["text"], "label"),
        ("Classify the sentiment of this review.", ["text"], "label"),
        ("Write a short title for the given review.", ["text"], "title"),
    )
    assert near_duplicate_pairs(group, 0.7) == [("t0", "t1")]
    assert near_duplicate_pairs(merge_near_duplicates(group, 0.7), 0.7) == []


@pytest.mark.parametrize(
    "a, b",
    [
        (
            "Given a question, provide the downvoted answer.",
            "Given a question, please provide the upvoted answer.",
        ),
        ("Summarise the article in one sentence.", "Write a one-sentence summary of the article!"),
        ("Is the review positive?", "Does this review say something positive or negative?"),
    ],
)
def test_rouge_l_agrees_with_rouge_score_on_ascii(a, b):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure
    assert rouge_l(a, b) == pytest.approx(expected)
