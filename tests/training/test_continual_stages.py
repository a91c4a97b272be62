"""`dynosaur.training.continual` without releases: the checks made before any stage trains, and the continual
table (metrics and plot rows) from a report."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dynosaur.core.errors import ParamsError
from dynosaur.core.params import parse_params
from dynosaur.training import continual
from dynosaur.training.continual import ContinualReport, Prepared, StageReport
from dynosaur.training.examples import Example
from dynosaur.training.replay_plan import StageTask


def task(task_id: str, release: str) -> StageTask:
    return StageTask(
        task_id=task_id,
        source_id="src",
        identity=f"id-{task_id}",
        instruction=f"Do {task_id}.",
        shard=f"src/{task_id}.parquet",
        release=release,
    )


def prepared() -> Prepared:
    """v1 adds one task, v2 another: the pool of v2 holds one earlier task."""
    examples = {
        t: [Example(task_id=t, source_id="src", instruction="x", input="i", output="o")] for t in "ab"
    }
    return Prepared(
        releases=["v1", "v2"],
        new=[[task("a", "v1")], [task("b", "v2")]],
        train=examples,
        heldout=[{}, {}],
        unseen={},
        label_options={},
        retractions=[],
    )


def params(strategy: str, tasks: int):
    return parse_params(
        {
            "train": {
                "max_steps": 2,
                "continual": {"releases": ["v1", "v2"], "replay": {"strategy": strategy, "tasks": tasks}},
            }
        }
    )


def test_a_replay_budget_larger_than_the_pool_fails_before_any_stage_trains(tmp_path: Path):
    with pytest.raises(ParamsError) as info:
        continual.run_stages(prepared(), params("random", 3), tmp_path / "models")
    assert str(info.value) == (
        "train.continual.replay.tasks: replay budget 3 is larger than the pool of 1 earlier tasks at v2;"
        " replay at most 1"
    )
    assert not (tmp_path / "models").exists()  # no stage's model left behind


def report() -> ContinualReport:
    def stage(release: str, unseen: float, current: float, previous: dict, forgetting: dict) -> StageReport:
        return StageReport(
            release=release,
            new_tasks=["t"],
            replayed_tasks=[],
            train_examples=10,
            train_steps=5,
            unseen_rouge_l=unseen,
            current_holdout_rouge_l=current,
            previous_holdout_rouge_l=previous,
            forgetting=forgetting,
        )

    return ContinualReport(
        strategy="instr_diverse",
        replay_tasks=1,
        instances_per_task=5,
        stages=[
            stage("v1", 0.1, 0.5, {}, {}),
            stage("v2", 0.2, 0.6, {"v1": 0.4}, {"v1": 0.1}),
            stage("v3", 0.3, 0.7, {"v1": 0.3, "v2": 0.5}, {"v1": 0.2, "v2": 0.1}),
        ],
        mean_forgetting=0.15,
    )


def test_the_continual_table_as_metrics_and_plot_rows():
    rows = continual.table_rows(report())
    assert [(r.stage, r.release) for r in rows] == [(1, "v1"), (2, "v2"), (3, "v3")]
    assert (rows[2].previous_holdout_rouge_l, rows[2].forgetting) == (0.4, 0.15)  # means over v1, v2
    assert rows[0].previous_holdout_rouge_l is None and rows[0].forgetting is None

    # the metrics file: the last stage's own held-out score and the mean forgetting (the rest: report.json)
    assert continual.report_metrics(report()) == {"rouge_l": 0.7, "forgetting": 0.15}
    chart = continual.table_chart(rows)
    assert chart.startswith("<svg") and chart.count("<polyline") == 4  # one line per score

    table = list(csv.DictReader(continual.table_csv(rows).splitlines()))
    assert (
        list(table[0])
        == continual.TABLE_COLUMNS
        == [
            "stage",
            "release",
            "unseen_rouge_l",
            "current_holdout_rouge_l",
            "previous_holdout_rouge_l",
            "forgetting",
        ]
    )
    assert table[0]["forgetting"] == "" and table[2]["forgetting"] == "0.15"
