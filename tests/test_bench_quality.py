"""`bench/quality.py`: its pure scoring and judging functions, and one small end-to-end run against the
scripted fake LLM (two hand-made sources, `dvc repro organize` for real), so the bench keeps running in CI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
from tests.project import write_source

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def load_quality() -> ModuleType:
    """bench/quality.py as a module (it imports `_common` from bench/). Importing `_common` sets the offline
    variables in os.environ and quality.py puts scripts/ on sys.path: both are put back, for the other tests."""
    env, path = dict(os.environ), list(sys.path)
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_quality", BENCH / "quality.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(env)
        sys.path[:] = path
    return module


q = load_quality()


# --- natural -------------------------------------------------------------------------------------------


def test_natural_counts_what_a_person_would_write():
    instructions = [
        "Read the review and say whether the reviewer liked the film.",
        "Suggest a title for this fairy tale.",
    ]
    assert q.natural_count(instructions) == 2


def test_natural_rejects_templates_and_raw_identifiers():
    instructions = [
        "Given the text, produce the category.",  # the bare template shape
        "Use sentence_1 to write the label.",  # a raw identifier
        "Classify the post by its topic.",
    ]
    assert q.natural_count(instructions) == 1
    assert q.share(q.natural_count(instructions), len(instructions)) == pytest.approx(1 / 3)
    assert q.share(0, 0) is None


# --- label set -----------------------------------------------------------------------------------------


def test_label_set_prefers_the_entry_labels_over_the_filter_options():
    entry = {"inputs": ["text"], "output": "category", "labels": ["positive", "negative"]}
    assert q.task_labels(entry, ["0", "1"]) == ["positive", "negative"]
    assert q.task_labels({"inputs": ["text"], "output": "category"}, ["pos", "neg"]) == ["pos", "neg"]
    assert q.task_labels(None, ["pos", "neg"]) == ["pos", "neg"]
    assert q.task_labels(None, None) is None  # not a label output


def test_label_set_stated_in_words():
    labels = ["positive", "negative"]
    stated = "Is this review positive or negative?"
    assert q.label_set_stated(stated, labels) is True
    final = "Classify the review. Answer with one of: positive, negative."  # the filter's appendix counts
    assert q.label_set_stated(final, labels) is True


def test_label_set_fails_when_a_label_is_missing_or_not_a_whole_word():
    labels = ["positive", "negative"]
    assert q.label_set_stated("Say whether the review is positive.", labels) is False
    assert q.label_set_stated("Say whether the review is positively negativeish.", labels) is False
    assert q.label_set_stated("Summarise the review.", None) is None  # not counted at all


# --- same text -----------------------------------------------------------------------------------------


def test_same_text_counts_repeats_after_normalisation():
    assert q.same_text(["Classify the post.", "Summarise the post."]) == 0
    assert q.same_text(["Classify the post.", "classify  the\tPOST. ", "CLASSIFY THE POST."]) == 2


def test_same_text_is_word_for_word_not_paraphrase():
    assert q.same_text(["Classify the post.", "Classify this post."]) == 0


# --- judgements ----------------------------------------------------------------------------------------


def judgement(key: str, inp: str, out: str, *answers: bool | None) -> dict[str, Any]:
    return {"task_key": key, "input": inp, "output": out, **dict(zip(q.QUESTIONS, answers, strict=True))}


def test_task_key_is_stable_and_changes_with_the_text():
    key = q.task_key("src", "Classify the post.", ["text"], "category")
    assert key == q.task_key("src", "Classify the post.", ["text"], "category")
    assert len(key) == 16
    assert key != q.task_key("src", "Classify this post.", ["text"], "category")
    assert key != q.task_key("other", "Classify the post.", ["text"], "category")
    assert key != q.task_key("src", "Classify the post.", ["text", "title"], "category")


def test_judgement_summary_matches_kept_tasks_only():
    kept = [
        {"task_key": "a", "source": "s", "instruction": "A."},
        {"task_key": "b", "source": "s", "instruction": "B."},
    ]
    judgements = [
        judgement("a", "x1", "y1", True, True, True),
        judgement("a", "x2", "y2", True, False, True),
        judgement("a", "x3", "y3", True, True, True),
        judgement("b", "x1", "y1", False, True, True),
        judgement("b", "x2", "y2", None, None, None),  # sampled, not filled in: not judged
        judgement("gone", "x1", "y1", True, True, True),  # a task this run did not keep
    ]
    s = q.judgement_summary(judgements, kept)
    assert s["judged"] == 4
    assert s["fully_valid"] == 2 and s["fully_valid_share"] == 0.5
    assert s["instruction_valid_share"] == 0.75
    assert s["input_suffices_share"] == 0.75
    assert s["output_correct_share"] == 1.0
    assert s["unmatched"] == 1
    assert s["tasks_judged"] == 2
    assert [t["task_key"] for t in s["to_judge"]] == ["b"]  # a has its 3, b has 1
    assert not q.judged_target_met(s)


def test_an_instance_judged_twice_counts_once_with_its_last_answer():
    kept = [{"task_key": "a", "source": "s", "instruction": "A."}]
    judgements = [judgement("a", "x", "y", False, True, True), judgement("a", "x", "y", True, True, True)]
    s = q.judgement_summary(judgements, kept)
    assert s["judged"] == 1 and s["fully_valid_share"] == 1.0


def test_judged_target_needs_enough_judgements():
    kept = [{"task_key": f"k{i}", "source": "s", "instruction": "I."} for i in range(30)]
    few = [judgement(f"k{i}", "x", "y", True, True, True) for i in range(30)]
    assert q.judgement_summary(few, kept)["fully_valid_share"] == 1.0
    assert not q.judged_target_met(q.judgement_summary(few, kept))  # 30 < 60 judged
    many = few + [judgement(f"k{i}", f"x{j}", "y", True, True, True) for i in range(30) for j in (1, 2)]
    assert q.judged_target_met(q.judgement_summary(many, kept))
    bad = many[:50] + [judgement(f"k{i}", f"x{j}", "y", False, True, True) for i in range(15) for j in (3, 4)]
    assert q.judgement_summary(bad, kept)["judged"] == 80
    assert not q.judged_target_met(q.judgement_summary(bad, kept))  # 50 / 80 fully valid


def task_for_sampling(key: str = "k") -> dict[str, Any]:
    return {"task_key": key, "source": "s", "instruction": "Classify the post.", "inputs": ["text"],
            "output": "category", "model": "fake", "judged_commit": "abc"}  # fmt: skip


def test_sample_for_judging_is_seeded_and_skips_judged_instances():
    instances = [{"input": f"post {i}", "output": "sports"} for i in range(20)]
    task = task_for_sampling()
    first = q.sample_for_judging(task, instances, [], seed=0)
    assert len(first) == 3
    assert first == q.sample_for_judging(task, instances, [], seed=0)  # the same draw
    assert first != q.sample_for_judging(task, instances, [], seed=1)
    line = first[0]
    assert set(line) == {"task_key", "source", "instruction", "input_fields", "output_field", "input", "output",
                         "instruction_valid", "input_suffices", "output_correct", "note", "judged_commit",
                         "model"}  # fmt: skip
    assert all(line[question] is None for question in q.QUESTIONS)
    # two judged (one sampled line still null): one more is drawn, never a judged one
    done = [
        {**first[0], **dict.fromkeys(q.QUESTIONS, True)},
        {**first[1], **dict.fromkeys(q.QUESTIONS, False)},
    ]
    more = q.sample_for_judging(task, instances, [*done, first[2]], seed=0)
    assert len(more) == 1
    assert (more[0]["input"], more[0]["output"]) not in {(d["input"], d["output"]) for d in done}
    # three judged: nothing to sample
    done.append({**more[0], **dict.fromkeys(q.QUESTIONS, True)})
    assert q.sample_for_judging(task, instances, done, seed=0) == []


def test_sample_for_judging_with_few_instances_takes_what_there_is():
    instances = [{"input": "a", "output": "x"}, {"input": "a", "output": "x"}]  # one distinct instance
    assert len(q.sample_for_judging(task_for_sampling(), instances, [])) == 1


def test_load_judgements(tmp_path: Path):
    path = tmp_path / "j.jsonl"
    assert q.load_judgements(path) == []
    path.write_text(json.dumps(judgement("a", "x", "y", True, True, True)) + "\n\n")
    assert len(q.load_judgements(path)) == 1
    path.write_text("{not json\n")
    with pytest.raises(SystemExit, match="j.jsonl:1"):
        q.load_judgements(path)


def test_the_committed_judgements_file_parses():
    for line in q.load_judgements(q.JUDGEMENTS):
        assert set(q.QUESTIONS) <= set(line) and "task_key" in line


def test_paper_wrongly_rejected():
    assert q.paper_wrongly_rejected({"rest": 1000, "rest_kept": 999}) == pytest.approx(0.001)
    assert q.PAPER_WRONGLY_REJECTED[1](0.001)
    assert not q.PAPER_WRONGLY_REJECTED[1](q.paper_wrongly_rejected({"rest": 4502, "rest_kept": 4456}))
    assert q.paper_wrongly_rejected("n/a") is None


# --- end to end ----------------------------------------------------------------------------------------


def hand_made_sources(root: Path) -> Path:
    """Two small Hub-layout sources: post topics (a class label) and tales (title, content)."""
    topics = ["sports", "politics"]
    write_source(
        root,
        "topics",
        {
            split: [
                {
                    "text": f"{split} post {i} about the {topics[i % 2]} of the week, in some words",
                    "category": i % 2,
                }
                for i in range(n)
            ]
            for split, n in (("train", 24), ("validation", 6))
        },
        features=[
            {"name": "text", "dtype": "string"},
            {"name": "category", "dtype": {"class_label": {"names": {"0": "sports", "1": "politics"}}}},
        ],
        description="Short forum posts, each filed under one topic.",
    )
    write_source(
        root,
        "tales",
        {
            split: [
                {
                    "title": f"The {split} tale number {i}",
                    "content": f"Once upon a time, in tale {i}, a fox ran.",
                }
                for i in range(n)
            ]
            for split, n in (("train", 24), ("validation", 6))
        },
        features=[{"name": "title", "dtype": "string"}, {"name": "content", "dtype": "string"}],
        description="Very short fairy tales with their titles.",
    )
    return root / "data" / "sources"


@pytest.mark.integration
def test_quality_bench_runs_end_to_end_on_the_fake_llm(tmp_path: Path):
    sources = hand_made_sources(tmp_path / "src")
    mappings = tmp_path / "valid.yaml"
    mappings.write_text(
        yaml.safe_dump(
            {
                "sources": {
                    "topics": {
                        "extra_inputs_ok": [],
                        "valid": [
                            {"inputs": ["text"], "output": "category", "labels": ["sports", "politics"]}
                        ],
                    },
                    "tales": {"extra_inputs_ok": [], "valid": [{"inputs": ["content"], "output": "title"}]},
                }
            }
        )
    )
    results, sample = tmp_path / "results", tmp_path / "to_judge.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with FakeOpenAI(responder=tasks_from_schema) as srv:
        base = [sys.executable, str(BENCH / "quality.py"), "--sources", str(sources), "--only", "topics,tales",
                "--mappings", str(mappings), "--base-url", srv.base_url, "--model", "fake-model",
                "--results-dir", str(results), "--name", "q", "--no-paper-tasks"]  # fmt: skip
        judgements = tmp_path / "judgements.jsonl"
        proc = subprocess.run(
            [*base, "--judgements", str(judgements), "--sample-for-judging", str(sample)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        data = json.loads((results / "q.json").read_text())
        total, per_source = data["overall"], data["sources"]
        assert set(per_source) == {"topics", "tales"}
        assert total["kept"] >= 2
        for key in (
            "natural",
            "label_set",
            "same_text",
            "precision",
            "yield",
            "judged",
            "judged_fully_valid",
        ):
            assert key in total
        for sid in ("topics", "tales"):
            for key in ("natural", "natural_count", "label_set", "label_tasks", "label_stated", "same_text"):
                assert key in per_source[sid]
        # the fake's fields-first instructions read naturally and differ; the topic label options are
        # appended by the filter, so the final instruction names them
        assert total["natural"] == 1.0
        assert total["same_text"] == 0
        topic = [t for t in per_source["topics"]["tasks"] if t["output"] == "category"]
        assert topic and all(t["labels"] == ["sports", "politics"] for t in topic)
        assert per_source["topics"]["label_tasks"] >= 1
        assert set(data["met"]) >= {"natural", "label_set", "precision", "yield", "same_text",
                                    "judged_fully_valid", "paper_wrongly_rejected"}  # fmt: skip
        assert data["met"]["judged_fully_valid"] is False  # nothing judged yet
        # the readable listing and the judging lines are printed
        assert "kept instructions, verbatim" in proc.stdout and "still to judge" in proc.stdout
        for t in topic:
            assert t["final_instruction"] in proc.stdout
        # 3 instances per kept task to judge, in the judgements file's shape
        lines = [json.loads(line) for line in sample.read_text().splitlines()]
        assert len(lines) == 3 * total["kept"]
        keys = {t["task_key"] for r in per_source.values() for t in r["tasks"]}
        assert {line["task_key"] for line in lines} == keys
        assert all(line["instruction_valid"] is None for line in lines)

        # a person judges them all valid: the next run matches every one (same text, same keys), and
        # nothing is left to judge or sampled again
        judgements.write_text(
            "".join(json.dumps({**line, **dict.fromkeys(q.QUESTIONS, True)}) + "\n" for line in lines)
        )
        proc = subprocess.run(
            [*base, "--judgements", str(judgements), "--sample-for-judging", str(sample), "--no-listing"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((results / "q.json").read_text())
    assert data["judgements"]["judged"] == len(lines)
    assert data["judgements"]["fully_valid_share"] == 1.0
    assert data["judgements"]["to_judge"] == []
    assert sample.read_text() == ""
    assert "kept instructions, verbatim" not in proc.stdout
