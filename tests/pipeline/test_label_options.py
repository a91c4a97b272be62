"""Label options are appended only to classification instructions that don't already list them (issue 9)."""

from __future__ import annotations

import pytest

from dynosaur.core.params import FilterParams
from dynosaur.pipeline.filter import judge
from dynosaur.pipeline.filter_output import options_to_append
from tests.factories import label_feature, make_feature, make_generated, make_meta, make_proposal, make_spec

TOPICS = ["acq", "crude", "earn", "grain"]


@pytest.mark.parametrize(
    "instruction",
    [
        "Classify the sentiment of the given review.",
        "Determine whether the hypothesis follows from the premise.",
        "What is the topic of this news article?",
        "Answer the question about the passage.",  # neither generative nor a cue: the output decides
        "Generate the category label of the given product.",  # generative verb, but it asks for a label
    ],
)
def test_classification_instructions_get_the_whole_label_set(instruction):
    assert options_to_append(instruction, TOPICS) == TOPICS


@pytest.mark.parametrize(
    "instruction",
    [
        "Write a sentence that uses all of the given words.",  # the case seen in the wild
        "Summarize the given article in one sentence.",
        "Translate the headline into French.",
        "Compose a short poem about the given words.",
    ],
)
def test_generative_instructions_get_no_options(instruction):
    assert options_to_append(instruction, TOPICS) is None


@pytest.mark.parametrize(
    "instruction, expected",
    [
        ("Classify the article as acq, crude, earn or grain.", None),
        ("Classify the article. Answers must be one of ACQ, Crude, EARN, grain.", None),
        ("Classify the article as acq, crude or earn.", TOPICS),  # one missing: the whole set, not the rest
        ("Classify the acquisition article.", TOPICS),  # "acq" inside a word does not name it
    ],
)
def test_options_already_named_are_not_repeated(instruction, expected):
    assert options_to_append(instruction, TOPICS) == expected


def test_no_options_stay_none():
    assert options_to_append("Classify the review.", None) is None


def test_judge_appends_nothing_to_a_generative_instruction_over_a_label():
    meta = make_meta(features=[make_feature("words"), label_feature("topic", class_names=TOPICS)])
    specs = [
        make_spec(
            instruction="Write a sentence that uses all of the given words.",
            input_fields=["words"],
            output_field="topic",
        ),
        make_spec(
            instruction="Classify the topic of the given words.", input_fields=["words"], output_field="topic"
        ),
    ]
    # same fields: keep both (only identical instructions merge) to compare how each is finished
    params = FilterParams(near_duplicate_rouge=1.0)
    generative, classifying = judge(meta, make_generated(make_proposal(*specs)), params)
    assert (generative.verdict, generative.label_options) == ("valid", None)
    assert generative.final_instruction == "Write a sentence that uses all of the given words."
    assert classifying.label_options == TOPICS
    assert classifying.final_instruction.endswith("Answer with one of: acq, crude, earn, grain.")
