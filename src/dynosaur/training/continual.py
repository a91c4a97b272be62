"""continual: train release by release, replaying a few earlier tasks, and measure forgetting.

`train.continual.releases` lists the stages in order (e.g. [v1, v2, v3]). Stage i:

    new tasks   the tasks of release i that stage i-1's release does not have (by manifest identity; the
                first stage: all of them); tasks of `evaluate.holdout_sources` never train
    pool        the tasks trained as new in stages 0..i-1, one per identity, less the retracted ones
                (`dynosaur.training.replay_plan`); `dyno replay-plan` uses the same definitions over v1..v(N-1)
    replay      `replay.tasks` pool tasks chosen by `replay.strategy` (none in the first stage), with
                `replay.instances_per_task` seeded training instances each (never held-out ones)
    train       `train_model` for `train.max_steps` steps from stage i-1's model (`init_from`)
    evaluate    one greedy pass (`evaluate_model`) over the unseen tasks (the holdout sources' tasks in any
                listed release), the current stage's held-out instances and every earlier stage's

Each task's instances are split once (`split_holdout`, `train.holdout_fraction`), so a task keeps the same
held-out instances in every stage. Scores are ROUGE-L, macro-averaged over tasks. Forgetting of stage j
after stage i is (stage j's holdout score right after stage j) − (its score after stage i): positive means
the model forgot. `mean_forgetting` averages it over the earlier stages, after the last stage.

A replay budget (`replay.tasks`) larger than a later stage's pool is a params error, raised before any stage
trains, so a bad request never leaves some stages' models behind.

The `continual` stage of dvc.yaml writes the report (`report.json`), the continual table (one row per stage, the
columns of docs/training.md's table) as a CSV and as a chart for `dvc plots show`, and as metrics the last
stage's held-out ROUGE-L and the mean forgetting.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynosaur.core.charts import line_chart
from dynosaur.core.errors import ParamsError, TrainingError
from dynosaur.core.io import atomic_write, write_json
from dynosaur.core.params import ContinualParams, Params, load_params
from dynosaur.core.records import Record, Retraction
from dynosaur.core.runner import log, run, write_metrics
from dynosaur.registry.ledger import Ledger
from dynosaur.training.evaluation import EvalSummary
from dynosaur.training.examples import Example, group_by_task, label_options, load_examples, split_holdout
from dynosaur.training.replay_plan import (
    StageTask,
    check_request,
    new_tasks,
    plan_replay,
    release_tasks,
    replay_pool,
    task_instructions,
)
from dynosaur.training.sft import train_model


class StageReport(Record):
    release: str
    new_tasks: list[str]
    replayed_tasks: list[str]
    train_examples: int
    train_steps: int
    unseen_rouge_l: float | None
    current_holdout_rouge_l: float | None
    previous_holdout_rouge_l: dict[str, float | None] = {}  # earlier stage's release → its holdout now
    forgetting: dict[str, float] = {}  # earlier stage's release → score right after it − score now


class ContinualReport(Record):
    strategy: str
    replay_tasks: int
    instances_per_task: int
    stages: list[StageReport]
    mean_forgetting: float | None  # over the earlier stages, after the last one


class StrategyRow(Record):
    strategy: str
    final_unseen_rouge_l: float | None
    final_current_holdout_rouge_l: float | None
    final_previous_holdout_rouge_l: float | None  # mean over the earlier stages
    mean_forgetting: float | None


class StrategyComparison(Record):
    rows: list[StrategyRow]
    reports: dict[str, ContinualReport]


class Prepared(Record):
    """Everything the stages train and evaluate on, read once from the pulled releases."""

    releases: list[str]
    new: list[list[StageTask]]  # per stage
    train: dict[str, list[Example]]  # task id → its training instances
    heldout: list[dict[str, list[Example]]]  # per stage: task id → held-out instances
    unseen: dict[str, list[Example]]
    label_options: dict[str, list[str]]
    retractions: list[Retraction]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _continual(params: Params) -> ContinualParams:
    if params.train.continual is None:
        raise ParamsError("train.continual: not set; list the releases to train on in order (e.g. [v1, v2])")
    return params.train.continual


def prepare(root: Path, params: Params, work: Path) -> Prepared:
    """Pull the listed releases into `work` and split their tasks into stages, training and held-out sets."""
    from dynosaur.registry.pull import pull_release

    cont, p = _continual(params), params.train
    holdout = set(params.evaluate.holdout_sources)
    ledger = Ledger(root)
    instructions = task_instructions(ledger)
    releases = [ledger.release(v) for v in cont.releases]
    tags = [r.tag for r in releases]
    new: list[list[StageTask]] = []
    train: dict[str, list[Example]] = {}
    every: dict[str, list[Example]] = {}  # task id → all its instances, for the label options
    heldout: list[dict[str, list[Example]]] = []
    unseen: dict[str, list[Example]] = {}
    previous: list[StageTask] = []
    for release in releases:
        corpus = pull_release(root, release.tag, work / release.tag).out
        log(f"continual: pulled {release.tag}")
        tasks = [t for t in release_tasks(ledger, release, instructions) if t.source_id not in holdout]
        stage_new = new_tasks(tasks, previous)
        previous = tasks
        wanted = {t.task_id for t in stage_new}
        examples = [
            ex
            for ex in load_examples(corpus, exclude_sources=holdout, max_per_task=p.max_per_task, seed=p.seed)
            if ex.task_id in wanted
        ]
        kept, held = split_holdout(examples, p.holdout_fraction, p.seed)
        train.update(group_by_task(kept))
        every.update(group_by_task(examples))
        new.append(stage_new)
        heldout.append(held)
        if holdout:
            unseen |= group_by_task(
                load_examples(corpus, only_sources=holdout, max_per_task=p.max_per_task, seed=p.seed)
            )
    if holdout and not unseen:
        raise ParamsError(f"evaluate.holdout_sources: none of {sorted(holdout)} is in {', '.join(tags)}")
    return Prepared(
        releases=tags,
        new=new,
        train=train,
        heldout=heldout,
        unseen=unseen,
        label_options=label_options(every | unseen),
        retractions=ledger.read(Retraction),
    )


def _stage_score(summary: EvalSummary, heldout: dict[str, list[Example]]) -> float | None:
    """Macro ROUGE-L over one stage's held-out tasks, from a summary over every stage's."""
    return _r(_mean([summary.per_task[t].rouge_l for t in heldout if t in summary.per_task]))


def _replay_examples(task_id: str, examples: list[Example], n: int, seed: int, stage: int) -> list[Example]:
    """A seeded sample of `n` training instances (in their order); a new sample in every stage."""
    if len(examples) <= n:
        return list(examples)
    rng = np.random.default_rng([seed, stage, int(hashlib.sha256(task_id.encode()).hexdigest()[:15], 16)])
    return [examples[i] for i in sorted(rng.choice(len(examples), n, replace=False).tolist())]


def run_stages(data: Prepared, params: Params, out_dir: Path, root: Path | None = None) -> ContinualReport:
    """Train and evaluate stage by stage (models in `out_dir/<release>`), as the module docstring says."""
    from dynosaur.training.evaluate import evaluate_model

    cont, p = _continual(params), params.train
    strategy, k, per_task = cont.replay.strategy, cont.replay.tasks, cont.replay.instances_per_task
    check_request(strategy, k)
    pools = [replay_pool(data.new[:i], data.new[i], data.retractions) for i in range(len(data.releases))]
    for tag, pool in list(zip(data.releases, pools, strict=True))[1:]:
        if strategy != "none" and k > len(pool):
            raise ParamsError(
                f"train.continual.replay.tasks: replay budget {k} is larger than the pool of {len(pool)}"
                f" earlier tasks at {tag}; replay at most {len(pool)}"
            )
    stages: list[StageReport] = []
    model: Path | None = None
    for i, tag in enumerate(data.releases):
        pool = pools[i]
        budget = min(k, len(pool)) if strategy != "none" else 0  # the first stage has no pool
        plan, _, note = plan_replay(strategy, pool, data.new[i], budget, seed=p.seed, root=root)
        if note:
            log(f"continual: {tag}: {note}")
        replayed = [c.task_id for c in plan.chosen]
        examples = [ex for t in data.new[i] for ex in data.train.get(t.task_id, [])]
        examples += [ex for t in replayed for ex in _replay_examples(t, data.train[t], per_task, p.seed, i)]
        if not examples:
            raise TrainingError(f"continual: {tag} adds no new tasks and replays none: nothing to train on")
        log(
            f"continual: {tag}: {len(data.new[i])} new tasks, {len(replayed)} replayed,"
            f" {len(examples)} examples"
        )
        describe = {"continual": {"release": tag, "strategy": strategy, "replayed": replayed}}
        result = train_model(examples, p, out_dir / tag, init_from=model, describe=describe)
        model = out_dir / tag
        heldout = {t: xs for h in data.heldout[: i + 1] for t, xs in h.items()}
        report = evaluate_model(
            model,
            heldout,
            data.unseen,
            params.evaluate,
            prompt_format=p.prompt_format,
            label_options=data.label_options,
            context=p.max_length,
        )
        scores = [_stage_score(report.heldout, data.heldout[j]) for j in range(i + 1)]
        forgetting = {}
        for j in range(i):
            before, now = stages[j].current_holdout_rouge_l, scores[j]
            if before is not None and now is not None:
                forgetting[data.releases[j]] = round(before - now, 4)
        stages.append(
            StageReport(
                release=tag,
                new_tasks=[t.task_id for t in data.new[i]],
                replayed_tasks=replayed,
                train_examples=result.examples,
                train_steps=result.steps,
                unseen_rouge_l=_r(report.unseen.rouge_l),
                current_holdout_rouge_l=scores[i],
                previous_holdout_rouge_l=dict(zip(data.releases, scores[:i], strict=False)),
                forgetting=forgetting,
            )
        )
    last = stages[-1].forgetting if stages else {}
    return ContinualReport(
        strategy=strategy,
        replay_tasks=k,
        instances_per_task=per_task,
        stages=stages,
        mean_forgetting=_r(_mean(list(last.values()))),
    )


def run_continual(root: Path, params: Params, out_dir: Path) -> ContinualReport:
    """Pull the releases of `train.continual.releases`, then train and evaluate each stage in turn."""
    with tempfile.TemporaryDirectory(prefix="dyno-continual-") as tmp:
        data = prepare(root, params, Path(tmp))
    return run_stages(data, params, out_dir, root)


def with_strategy(params: Params, strategy: str) -> Params:
    cont = _continual(params)
    replay = cont.replay.model_copy(update={"strategy": strategy})
    train = params.train.model_copy(update={"continual": cont.model_copy(update={"replay": replay})})
    return params.model_copy(update={"train": train})


def compare_strategies(
    root: Path, params: Params, out_dir: Path, strategies: Sequence[str] = ("none", "random", "instr_diverse")
) -> StrategyComparison:
    """The continual run once per strategy (models in `out_dir/<strategy>/<release>`); one pull of each."""
    for s in strategies:
        check_request(s, 0)
    with tempfile.TemporaryDirectory(prefix="dyno-continual-") as tmp:
        data = prepare(root, params, Path(tmp))
    reports = {s: run_stages(data, with_strategy(params, s), out_dir / s, root) for s in strategies}
    finals = {s: r.stages[-1] for s, r in reports.items()}
    rows = [
        StrategyRow(
            strategy=s,
            final_unseen_rouge_l=f.unseen_rouge_l,
            final_current_holdout_rouge_l=f.current_holdout_rouge_l,
            final_previous_holdout_rouge_l=_r(_mean(list(f.previous_holdout_rouge_l.values()))),
            mean_forgetting=reports[s].mean_forgetting,
        )
        for s, f in finals.items()
    ]
    return StrategyComparison(rows=rows, reports=reports)


class TableRow(Record):
    """One row of the continual table: a stage's scores right after it trained."""

    stage: int  # 1, 2, ...
    release: str
    unseen_rouge_l: float | None
    current_holdout_rouge_l: float | None
    previous_holdout_rouge_l: float | None  # mean over the earlier stages' holdouts, now
    forgetting: float | None  # mean over the earlier stages


TABLE_COLUMNS = list(TableRow.model_fields)


def table_rows(report: ContinualReport) -> list[TableRow]:
    return [
        TableRow(
            stage=i,
            release=s.release,
            unseen_rouge_l=s.unseen_rouge_l,
            current_holdout_rouge_l=s.current_holdout_rouge_l,
            previous_holdout_rouge_l=_r(_mean(list(s.previous_holdout_rouge_l.values()))),
            forgetting=_r(_mean(list(s.forgetting.values()))),
        )
        for i, s in enumerate(report.stages, 1)
    ]


def table_csv(rows: Sequence[TableRow]) -> str:
    """The continual table as CSV (an empty cell where a score is undefined)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    for row in rows:
        writer.writerow("" if v is None else v for v in row.model_dump().values())
    return buf.getvalue()


def report_metrics(report: ContinualReport) -> dict:
    """The metrics file: the last stage's ROUGE-L on its own held-out instances, and the mean forgetting
    (every stage's numbers are in report.json and the table)."""
    rows = table_rows(report)
    final = rows[-1].current_holdout_rouge_l if rows else None
    return {k: v for k, v in (("rouge_l", final), ("forgetting", report.mean_forgetting)) if v is not None}


def table_chart(rows: Sequence[TableRow]) -> str:
    series = ("unseen_rouge_l", "current_holdout_rouge_l", "previous_holdout_rouge_l", "forgetting")
    return line_chart(
        "Continual training, release by release (ROUGE-L)",
        "stage",
        [r.stage for r in rows],
        {name: [getattr(r, name) for r in rows] for name in series},
    )


def main(args: argparse.Namespace) -> None:
    params = load_params()
    if params.train.continual is None:  # the default: `dvc repro` passes over this stage, writing a marker
        log("continual: train.continual is not set; nothing to train")
        write_json(args.out / "report.json", {"skipped": "train.continual is not set"})
        write_metrics(args.metrics, {})  # DVC needs the file: a row of dashes in `dvc metrics show`
        atomic_write(args.table, table_csv([]))
        atomic_write(args.plot, table_chart([]))
        return
    report = run_continual(Path("."), params, args.out)
    write_json(args.out / "report.json", report)
    write_metrics(args.metrics, report_metrics(report))
    atomic_write(args.table, table_csv(table_rows(report)))
    atomic_write(args.plot, table_chart(table_rows(report)))
    log(f"continual: {len(report.stages)} stages, mean forgetting {report.mean_forgetting}")


if __name__ == "__main__":
    run(main, "out", "metrics", "table", "plot")
