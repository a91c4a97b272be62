"""Replay plans and continual training over real releases: a temporary git + DVC project with three releases
(v1: source alpha; v2: + beta; v3: + gamma), built once for the module as tests/test_registry.py builds its
own. Every source gets two tasks from the fake LLM (predict the label; predict the question).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dynosaur.cli.main import main
from dynosaur.core.errors import DynoError, ParamsError
from dynosaur.core.params import parse_params
from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
from tests.project import Project

pytestmark = pytest.mark.integration


def release(project: Project, message: str) -> dict:
    project.commit(f"corpus for: {message}")
    return json.loads(project.dyno("release", "-m", message, "--json").stdout)["release"]


def corpus_stages_only(project: Project) -> None:
    """Only collect → organize: a release needs every stage up to date; no training stage is tested here."""
    path = project.root / "dvc.yaml"
    pipeline = yaml.safe_load(path.read_text())
    keep = ("collect", "generate", "filter", "organize")
    pipeline["stages"] = {k: v for k, v in pipeline["stages"].items() if k in keep}
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    tmp = tmp_path_factory.mktemp("continual")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(responder=tasks_from_schema) as server:
        mp.setenv("DVC_NO_ANALYTICS", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        project = Project(tmp / "repo", server.base_url)
        project.run("dvc", "remote", "add", "-d", "store", str(tmp / "remote"))
        corpus_stages_only(project)
        for version, source in (("v1", "alpha"), ("v2", "beta"), ("v3", "gamma")):
            project.add_source(source)
            project.repro()
            assert release(project, f"add {source}")["tag"] == version
    yield project


def manifest(project: Project, version: str) -> list[dict]:
    lines = (project.root / "ledger/manifests" / f"{version}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def run_main(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """`dyno ARGS` through the real entry point: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, expected: str) -> None:
    assert err.count("\n") == 1 and err.startswith("Error: ") and expected in err, err


# --- replay plans ----------------------------------------------------------------------------------------


def test_replay_plan_picks_an_earlier_task_with_a_why(project: Project):
    pytest.importorskip("sentence_transformers")
    from dynosaur.training.replay_plan import replay_plan

    alpha = {e["task_id"] for e in manifest(project, "v1")}
    beta = {e["task_id"] for e in manifest(project, "v2")} - alpha
    assert len(alpha) == len(beta) == 2

    report = replay_plan(project.root, "v2", "instr_diverse", 1, seed=0)
    assert (report.release, report.earlier, report.pool) == ("v2", ["v1"], 2)
    assert set(report.new_tasks) == beta
    [pick] = report.plan.chosen
    assert pick.task_id in alpha and pick.source_id == "alpha"
    assert pick.why.startswith("k-center pick 1 over instruction embeddings")
    assert report.plan.coverage is not None and report.plan.coverage.space == "instruction"
    [near] = report.neighbours
    assert near.task_id == pick.task_id and near.new_task_id in beta and -1 <= near.cosine <= 1

    # The pool's shards are in the local DVC cache: data_diverse embeds their inputs.
    diverse = replay_plan(project.root, "v2", "data_diverse", 2, seed=0)
    assert diverse.note is None and diverse.plan.coverage.space == "input"
    assert {p.task_id for p in diverse.plan.chosen} == alpha


def test_replay_plan_cli(project: Project, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.chdir(project.root)
    code, out, err = run_main(
        capsys, "replay-plan", "--release", "v2", "--strategy", "instr_diverse", "--tasks", "1", "--json"
    )
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["plan"]["strategy"] == "instr_diverse" and len(report["plan"]["chosen"]) == 1
    assert report["plan"]["chosen"][0]["source_id"] == "alpha" and report["plan"]["chosen"][0]["why"]

    code, out, err = run_main(
        capsys, "replay-plan", "--release", "v2", "--strategy", "instr_similar", "--tasks", "2"
    )
    assert code == 0 and "nearest new task" in out and "coverage over instruction embeddings" in out

    code, _, err = run_main(
        capsys, "replay-plan", "--release", "v2", "--strategy", "instr_diverse", "--tasks", "99"
    )
    assert code == 2
    assert_one_line_error(err, "replay budget 99 is larger than the pool of 2 earlier tasks")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--release", "v1", "--strategy", "instr_diverse", "--tasks", "1"],
            1,
            "v1 has no earlier releases to replay from",
        ),
        (["--release", "v7", "--strategy", "instr_diverse", "--tasks", "1"], 1, "unknown version 'v7'"),
        (
            ["--release", "v2", "--strategy", "most_fun", "--tasks", "1"],
            2,
            "unknown replay strategy 'most_fun'",
        ),
    ],
)
def test_replay_plan_errors_are_one_line(
    project: Project,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
):
    monkeypatch.chdir(project.root)
    got, out, err = run_main(capsys, "replay-plan", *args)
    assert (got, out) == (code, "")
    assert_one_line_error(err, message)


def test_replay_plan_library_errors_are_typed(project: Project):
    from dynosaur.training.replay_plan import replay_plan

    with pytest.raises(ParamsError):
        replay_plan(project.root, "v2", "random", 3, seed=0)
    with pytest.raises(DynoError, match="no earlier releases"):
        replay_plan(project.root, "v1", "random", 1, seed=0)


def test_the_pool_is_every_earlier_release(project: Project):
    pytest.importorskip("sentence_transformers")
    from dynosaur.training.replay_plan import replay_plan

    gamma = {e["task_id"] for e in manifest(project, "v3") if e["source_id"] == "gamma"}
    report = replay_plan(project.root, "v3", "instr_similar", 4, seed=0)
    assert (report.earlier, set(report.new_tasks), report.pool) == (["v1", "v2"], gamma, 4)
    assert {p.source_id for p in report.plan.chosen} == {"alpha", "beta"}
    assert all(p.why.startswith("nearest to new task") for p in report.plan.chosen)


# --- continual training ----------------------------------------------------------------------------------


def tiny_params(project: Project, strategy: str = "instr_diverse"):
    """Two stages (v1, then v3's new tasks: beta's; gamma is held out as the unseen source), tiny training."""
    data = dict(project.params)
    data["train"] = {
        "base_model": "scratch:tiny-gpt2",
        "prompt_format": "plain",
        "max_length": 256,
        "max_steps": 10,
        "lr": 3e-3,
        "warmup_steps": 2,
        "batch_size": 8,
        "seed": 0,
        "max_per_task": 20,
        "holdout_fraction": 0.2,
        "continual": {
            "releases": ["v1", "v3"],
            "replay": {"strategy": strategy, "tasks": 1, "instances_per_task": 5},
        },
    }
    data["evaluate"] = {
        "holdout_sources": ["gamma"],
        "max_instances_per_task": 2,
        "max_new_tokens": 8,
        "batch_size": 16,
    }
    return parse_params(data)


@pytest.mark.slow
def test_two_stage_continual_run_reports_forgetting(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The stage's main, as `dvc repro continual` runs it: report, metrics and the plots' table."""
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from dynosaur.training import continual

    params = tiny_params(project)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    monkeypatch.setenv("DYNO_PARAMS", str(tmp_path / "params.yaml"))
    monkeypatch.chdir(project.root)
    out, metrics, plots = tmp_path / "models", tmp_path / "continual.json", tmp_path / "continual.csv"
    continual.main(argparse.Namespace(out=out, metrics=metrics, table=plots, plot=tmp_path / "continual.svg"))
    report = continual.ContinualReport.model_validate_json((out / "report.json").read_text())

    alpha = {e["task_id"] for e in manifest(project, "v1")}
    beta = {e["task_id"] for e in manifest(project, "v2")} - alpha
    assert (report.strategy, report.replay_tasks, report.instances_per_task) == ("instr_diverse", 1, 5)
    first, second = report.stages
    assert (first.release, set(first.new_tasks), first.replayed_tasks) == ("v1", alpha, [])
    assert (second.release, set(second.new_tasks)) == ("v3", beta)
    assert len(second.replayed_tasks) == 1 and second.replayed_tasks[0] in alpha
    assert first.train_steps == second.train_steps == 10
    # Each task: 40 instances, sampled down to 20, 4 of them held out: 2 × 16; then 2 × 16 + 5 replayed.
    assert (first.train_examples, second.train_examples) == (2 * 16, 2 * 16 + 5)
    for stage in report.stages:
        assert stage.unseen_rouge_l is not None and 0 <= stage.unseen_rouge_l <= 1
        assert stage.current_holdout_rouge_l is not None
    assert first.previous_holdout_rouge_l == {} and first.forgetting == {}
    assert list(second.previous_holdout_rouge_l) == ["v1"] and list(second.forgetting) == ["v1"]
    assert second.forgetting["v1"] == pytest.approx(
        first.current_holdout_rouge_l - second.previous_holdout_rouge_l["v1"], abs=1e-4
    )
    assert report.mean_forgetting == second.forgetting["v1"]
    config = json.loads((out / "v3/train_config.json").read_text())
    assert config["init_from"] == str(out / "v1")

    # The metrics (the last stage's held-out score, the mean forgetting) and the table, one row per stage.
    written = json.loads(metrics.read_text())
    assert written == {"rouge_l": second.current_holdout_rouge_l, "forgetting": report.mean_forgetting}
    rows = list(csv.DictReader(plots.read_text().splitlines()))
    assert [(r["stage"], r["release"]) for r in rows] == [("1", "v1"), ("2", "v3")]
    assert rows[0]["previous_holdout_rouge_l"] == rows[0]["forgetting"] == ""  # nothing earlier
    assert float(rows[1]["unseen_rouge_l"]) == second.unseen_rouge_l


@pytest.mark.slow
def test_compare_strategies_tabulates_each_run(project: Project, tmp_path: Path):
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from dynosaur.training.continual import compare_strategies

    table = compare_strategies(project.root, tiny_params(project), tmp_path / "models", ["none", "random"])
    assert [row.strategy for row in table.rows] == ["none", "random"]
    none, rand = table.reports["none"], table.reports["random"]
    assert none.stages[1].replayed_tasks == [] and len(rand.stages[1].replayed_tasks) == 1
    assert none.stages[0] == rand.stages[0]  # no replay in the first stage: the same seeded run
    assert none.stages[1].train_examples == 2 * 16
    for row, report in zip(table.rows, (none, rand), strict=True):
        assert row.mean_forgetting == report.mean_forgetting
        assert row.final_previous_holdout_rouge_l == report.stages[1].previous_holdout_rouge_l["v1"]
    assert (tmp_path / "models/none/v3").is_dir() and (tmp_path / "models/random/v3").is_dir()


def test_the_stage_passes_over_when_continual_is_not_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from dynosaur.training import continual

    (tmp_path / "params.yaml").write_text("train:\n  continual: null\n")
    monkeypatch.setenv("DYNO_PARAMS", str(tmp_path / "params.yaml"))
    args = argparse.Namespace(
        out=tmp_path / "out",
        metrics=tmp_path / "metrics.json",
        table=tmp_path / "c.csv",
        plot=tmp_path / "c.svg",
    )
    continual.main(args)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {}  # no scores, not made-up ones
    assert "nothing to show yet" in (tmp_path / "c.svg").read_text()
    assert (tmp_path / "out/report.json").is_file()
    assert (tmp_path / "c.csv").read_text() == ",".join(continual.TABLE_COLUMNS) + "\n"  # DVC needs the file
