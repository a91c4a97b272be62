"""`dynosaur.training.evaluation`: ROUGE-L and exact match, per-task scores, macro averages, and the Super-NI reader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dynosaur.core.errors import DynoError, NotFound, ParamsError
from dynosaur.training.evaluation import (
    TaskScore,
    aggregate,
    exact_match,
    is_classification,
    read_superni_tasks,
    rouge_l,
    score_task,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "superni"

PAIRS = [
    ("the cat sat on the mat", "the cat is on the mat"),
    ("a b c d", "a c"),
    ("Hello, World!", "hello world"),
    ("positive", "negative"),
    ("Paris", "paris."),
    ("", "something"),
    ("something", ""),
    ("The quick brown fox jumps over the lazy dog", "A quick brown dog jumps over the lazy fox"),
    ("It's 42 degrees; take water.", "it is 42 degrees, take some water"),
    ("yes", "yes"),
    ("no no no", "no"),
    ("one two three four five", "five four three two one"),
    ("Rivers carry silt to the sea.", "Rivers carry silt to the ocean."),
    ("snake_case and kebab-case", "snake case and kebab case"),
    ("A kettle whistles", "A kettle whistles when the water boils"),
    ("x y z", "a b c"),
    ("State-of-the-art results (95.3%)", "state of the art results 95 3"),
    ("what is the capital of France?", "The capital of France is Paris."),
    ("1 2 3 1 2 3", "3 2 1 3 2 1"),
    ("Answer: B", "B"),
    ("  spaced   out\ttext\n", "spaced out text"),
]


# --- metrics -------------------------------------------------------------------------------------------


def test_rouge_l_known_values():
    assert rouge_l("The cat sat.", "the cat sat") == 1.0
    assert rouge_l("red green", "blue yellow") == 0.0
    assert rouge_l("", "") == 0.0
    # LCS "the cat on the mat" = 5 of 6 tokens on both sides.
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS "a c": P = 2/4, R = 2/2, F = 2PR/(P+R) = 2/3.
    assert rouge_l("a b c d", "a c") == pytest.approx(2 / 3)
    # Order matters: LCS of a reversed sequence of distinct tokens is 1.
    assert rouge_l("one two three", "three two one") == pytest.approx(1 / 3)


def test_rouge_l_matches_rouge_score():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for prediction, reference in PAIRS:
        expected = scorer.score(reference, prediction)["rougeL"].fmeasure  # score(target, prediction)
        assert rouge_l(prediction, reference) == pytest.approx(expected), (prediction, reference)


def test_exact_match_normalises_like_squad():
    assert exact_match("The Paris.", "paris") == 1.0
    assert exact_match("an  apple!", "Apple") == 1.0
    assert exact_match("  Positive\n", "positive") == 1.0
    assert exact_match("positive", "negative") == 0.0
    assert exact_match("theater", "ater") == 0.0  # articles are whole words only


def test_is_classification():
    assert is_classification(["a long free-text answer about anything"], ["yes", "no"])
    assert is_classification(["positive", "negative", "Positive."], None)
    assert is_classification([["yes", "Yes"], "no"], None)
    assert not is_classification(["the capital is Paris, on the Seine"] * 3, None)  # too long
    assert not is_classification([f"label{i}" for i in range(11)], None)  # too many
    assert not is_classification([], None)


def test_score_task_classification_and_multiple_references():
    score = score_task(
        ["positive", "Negative.", "negative", "positive"],
        ["positive", "negative", "positive", "positive"],
        None,
    )
    assert score == TaskScore(n=4, rouge_l=0.75, exact_match=0.75)
    free = score_task(
        ["a kettle whistles", "owls hunt"],
        [
            ["A kettle whistles when the water boils.", "A kettle whistles."],
            "Owls hunt at night in the woods.",
        ],
    )
    assert free.exact_match is None
    assert free.rouge_l == pytest.approx((1.0 + rouge_l("owls hunt", "Owls hunt at night in the woods.")) / 2)


def test_score_task_rejects_misaligned_or_empty_inputs():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        score_task(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no predictions"):
        score_task([], [])


def test_aggregate_macro_averages_over_tasks():
    scores = {
        "task2": TaskScore(n=100, rouge_l=0.2, exact_match=None),
        "task1": TaskScore(n=2, rouge_l=0.8, exact_match=0.5),
        "task3": TaskScore(n=10, rouge_l=0.5, exact_match=1.0),
    }
    summary = aggregate(scores)
    assert (summary.tasks, summary.instances) == (3, 112)
    assert summary.rouge_l == pytest.approx(0.5)  # macro: a big task counts as much as a small one
    assert summary.exact_match == pytest.approx(0.75)  # only over classification-like tasks
    assert list(summary.per_task) == ["task1", "task2", "task3"]
    empty = aggregate({})
    assert (empty.tasks, empty.rouge_l, empty.exact_match) == (0, None, None)


# --- the Super-NI reader -------------------------------------------------------------------------------


def test_reader_on_the_fixture():
    tasks = read_superni_tasks(FIXTURES)
    assert [t.name for t in tasks] == ["task001_sentiment", "task002_copy", "task1005_capital_city"]
    assert [len(t.instances) for t in tasks] == [4, 3, 2]
    sentiment, copy, capital = tasks
    assert sentiment.definition == (
        "In this task, you are given a short product review.\n"
        'Classify its sentiment as "positive" or "negative".'
    )
    assert sentiment.categories == ["Sentiment Analysis"]
    assert sentiment.positive_examples[0].output == "positive"
    assert sentiment.instances[0].id == "task001-a1"
    assert sentiment.instances[1].outputs == ["negative"]
    assert copy.instances[1].outputs == [
        "A kettle whistles when the water boils.",
        "a kettle whistles when the water boils",
    ]
    assert (capital.positive_examples, capital.instances[0].input) == ([], "France")


def test_reader_caps_instances_and_scores_end_to_end():
    tasks = read_superni_tasks(FIXTURES, max_instances=2)
    assert [len(t.instances) for t in tasks] == [2, 2, 2]
    assert read_superni_tasks(FIXTURES) == read_superni_tasks(FIXTURES)
    scores = {
        t.name: score_task([i.input for i in t.instances], [i.outputs for i in t.instances]) for t in tasks
    }
    assert scores["task002_copy"].rouge_l == 1.0  # copying the input is the copy task's answer
    assert scores["task001_sentiment"].exact_match == 0.0
    assert aggregate(scores).tasks == 3


def test_reader_orders_by_task_number_and_skips_other_files(tmp_path: Path):
    shutil.copy(FIXTURES / "task002_copy.json", tmp_path / "task1005_b.json")
    shutil.copy(FIXTURES / "task002_copy.json", tmp_path / "task101_a.json")
    (tmp_path / "tasks.txt").write_text("task101_a\n")
    (tmp_path / "task_notes.json").write_text("not a task")
    (tmp_path / "task7_dir.json").mkdir()
    assert [t.name for t in read_superni_tasks(tmp_path)] == ["task101_a", "task1005_b"]


@pytest.mark.parametrize(
    "content, hint",
    [
        ("{not json", "not a readable Super-NI task file"),
        (json.dumps({"Definition": ["d"]}), "Instances"),
        (json.dumps({"Definition": "d", "Instances": []}), "Definition"),
        (
            json.dumps({"Definition": ["d"], "Instances": [{"id": "1", "input": "x", "output": "y"}]}),
            "output",
        ),
    ],
)
def test_malformed_task_file_is_a_one_line_error_naming_it(tmp_path: Path, content: str, hint: str):
    shutil.copy(FIXTURES / "task001_sentiment.json", tmp_path)
    (tmp_path / "task099_broken.json").write_text(content)
    with pytest.raises(DynoError) as exc:
        read_superni_tasks(tmp_path)
    message = str(exc.value)
    assert "task099_broken.json" in message and hint in message
    assert "\n" not in message


def test_reader_bad_arguments(tmp_path: Path):
    with pytest.raises(NotFound):
        read_superni_tasks(tmp_path / "missing")
    with pytest.raises(ParamsError):
        read_superni_tasks(FIXTURES, max_instances=-1)
