"""`dynosaur.pipeline.paper_tasks`: the known-bad labelling, and the filter's figures on the paper's tasks.

The vendored sample (tests/fixtures/dynosaur/) holds every known-bad category and complete paraphrase
groups, so these run everywhere; the whole published file is used when it sits beside this checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynosaur.core.params import FilterParams
from dynosaur.pipeline.paper_tasks import (
    KNOWN_BAD_CATEGORIES,
    PaperTask,
    PaperTaskFigures,
    judge_paper_tasks,
    known_bad,
    load_paper_tasks,
    main,
    paper_task_figures,
)

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "dynosaur" / "instructions-sample.json"
FULL = Path(__file__).resolve().parents[3] / "shared" / "data" / "dynosaur" / "instructions-full.json"


def paper_task(
    output: list[str], inputs: list[str], name: str = "some/dataset", instruction: str = ""
) -> PaperTask:
    return PaperTask(
        task_name=name,
        instruction=instruction or f"Given the {', '.join(inputs)}, predict the {', '.join(output)}.",
        input_fields=inputs,
        output_field=output,
    )


@pytest.mark.parametrize(
    "output, inputs, category",
    [
        (["repo_name", "path"], ["code"], "multi_output"),
        (["size"], ["code"], "repository_metadata"),
        (["license"], ["code_text"], "repository_metadata"),
        (["code"], ["repo_name", "path"], "code_from_metadata"),
        (["code"], ["language"], "code_from_metadata"),
        (["downvoted_answer"], ["title_body"], "bad_target"),
        (["conversationId"], ["respondentWorkerId"], "bookkeeping"),
        (["created_utc"], ["permalink"], "bookkeeping"),
        (["prediction_ts"], ["split_text"], "bookkeeping"),
        (["code"], ["text"], None),  # code from a description
        (["language"], ["code"], None),  # which language a file is in
        (["upvoted_answer"], ["title_body"], None),
        (["pub_date"], ["text"], None),  # dating a text is content, not the record's timestamp
        (["label"], ["sentence"], None),
    ],
)
def test_known_bad_labelling(output, inputs, category):
    assert known_bad(paper_task(output, inputs)) == category


def test_every_category_is_in_the_sample():
    labels = {known_bad(t) for t in load_paper_tasks(SAMPLE)}
    assert labels >= set(KNOWN_BAD_CATEGORIES)


def test_issue_9_misses_are_rejected_with_their_codes():
    """Kept before issue 9: bookkeeping names the list missed, downvoted answers, code from metadata."""
    tasks = [
        paper_task(["conversationId"], ["initiatorWorkerId"], "re_dial"),
        paper_task(["created_utc"], ["body"], "reddit"),
        paper_task(["prediction_ts"], ["split_text"], "xtreme"),
        paper_task(["downvoted_answer"], ["title_body"], "stackexchange"),
        paper_task(["code"], ["license"], "github-code"),
        paper_task(["code"], ["text"], "xlcost"),
    ]
    verdicts = judge_paper_tasks(tasks, FilterParams())
    assert [v.reason for v in verdicts] == [
        "meta_field",
        "meta_field",
        "meta_field",
        "bad_target",
        "code_from_metadata",
        None,
    ]


def test_each_task_name_is_one_source():
    """Rewordings are merged within a task name, never across task names."""
    a = "Given a question, please provide the upvoted answer."
    b = "Answer the question as the top-voted reply did."
    tasks = [
        paper_task(["upvoted_answer"], ["title_body"], "se-ai", a),
        paper_task(["upvoted_answer"], ["title_body"], "se-ai", b),
        paper_task(["upvoted_answer"], ["title_body"], "se-bio", b),
    ]
    verdicts = judge_paper_tasks(tasks, FilterParams())
    assert [v.reason for v in verdicts] == [None, "near_duplicate", None]
    assert verdicts[1].duplicate_of == verdicts[0].task_id
    assert [v.source_id for v in verdicts] == ["se-ai", "se-ai", "se-bio"]


def test_figures_on_the_sample_meet_the_targets():
    figures = paper_task_figures(load_paper_tasks(SAMPLE))
    assert isinstance(figures, PaperTaskFigures)
    assert (figures.tasks, figures.task_names) == (301, 88)
    assert figures.known_bad == 83
    assert figures.known_bad_rejected_share >= 0.95
    assert figures.redundancy <= 0.05
    assert figures.rest_kept_share >= 0.95
    assert figures.paraphrase_groups == figures.paraphrase_groups_merged > 0
    assert "quotes_sample" in figures.inapplicable_rules


def test_self_instruct_threshold_leaves_paraphrases():
    """At ROUGE-L 0.7 reworded instructions over the same fields survive: the figure can fail."""
    figures = paper_task_figures(load_paper_tasks(SAMPLE), FilterParams(near_duplicate_rouge=0.7))
    assert figures.redundancy > 0.05
    assert figures.paraphrase_groups_merged < figures.paraphrase_groups


def test_entry_point_prints_the_figures(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the defaults
    main([str(SAMPLE), "--json"])
    figures = PaperTaskFigures.model_validate(json.loads(capsys.readouterr().out))
    assert figures == paper_task_figures(load_paper_tasks(SAMPLE))
    main([str(SAMPLE)])
    out = capsys.readouterr().out
    assert "known-bad rejected: 83/83" in out
    assert "paraphrase redundancy left" in out


def test_entry_point_reads_the_threshold_from_params(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("filter:\n  near_duplicate_rouge: 0.7\n")
    main([str(SAMPLE), "--json"])
    assert json.loads(capsys.readouterr().out)["near_duplicate_rouge"] == 0.7


def test_figures_on_the_whole_published_file():
    if not FULL.exists():
        pytest.skip(f"{FULL} not available")
    figures = paper_task_figures(load_paper_tasks(FULL))
    assert (figures.tasks, figures.task_names) == (5740, 2061)
    assert figures.known_bad_by_category == {
        "multi_output": 257,
        "repository_metadata": 547,
        "code_from_metadata": 176,
        "bad_target": 173,
        "bookkeeping": 85,
    }
    assert figures.known_bad_rejected_share >= 0.95
    assert figures.redundancy <= 0.05
    assert figures.rest_kept_share >= 0.95
