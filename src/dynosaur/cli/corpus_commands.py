"""Inspecting the working corpus: `dyno status`, `dyno tasks`, `dyno show`."""

from __future__ import annotations

from typing import Any

import click

from dynosaur.cli.app import _workspace, cli, json_option
from dynosaur.cli.output import _stderr, _stdout, emit_json, escape, plain_text, print_grouped, short
from dynosaur.cli.tables import (
    GAP,
    Col,
    fit,
    render,
    short_origin,
    source_detail,
    truncate,
)


@cli.command()
@json_option
def status(as_json: bool) -> None:
    """Per-source table: origin, revision, licence, tasks valid/rejected, instances; and totals."""
    from dynosaur.registry.status import status as build

    report = build(_workspace())
    if as_json:
        return emit_json(report)
    out = _stdout()
    cols = [
        Col("source", "id"),
        Col("origin", "cut", min_width=14, drop=2, cut=short_origin),
        Col("revision", "cut", min_width=7, drop=1, cut=truncate),
        Col("licence", "cut", min_width=12),
        Col("status"),
        Col("valid", "number"),
        Col("rejected", "number"),
        Col("instances", "number"),
    ]
    counts = lambda s: [s.tasks_valid, s.tasks_rejected, f"{s.instances:,}"]  # noqa: E731
    rows = [
        [s.source_id, s.origin, short(s.revision), s.license, s.status, *counts(s)] for s in report.sources
    ]
    total = ["total", "", "", "", "", *counts(report)]
    if fit(cols, [*rows, total], out.width - 1).hidden:
        # Too narrow for them all: origin, revision and licence go on a second line, under the source's id.
        cols = [cols[0], *cols[4:6], Col("rejected", "number", drop=1), cols[7]]
        total = ["total", "", *counts(report)]
        rows = [[s.source_id, s.status, *counts(s)] for s in report.sources]
        fitted = fit(cols, [*rows, total], out.width - 1)
        spare = out.width - 1 - sum(fitted.widths) - GAP * (len(fitted.widths) - 1)
        width = max(24, fitted.widths[0] + spare) - 2
        for row, s in zip(rows, report.sources, strict=True):
            row[0] += f"\n  {source_detail(s.origin, s.revision, s.license, width)}"
    out.print(render(None, cols, rows, out.width, footer=[total]), crop=False)
    # Reasons go under the table, one line per source: in a column they would take a line per word.
    for s in report.sources:
        if s.reason:
            out.print(plain_text(f"{s.source_id}: {s.status}: {s.reason}"))
    for tag, line in report.quality.items():
        out.print(plain_text(f"{tag}: {line}"))


@cli.command()
@click.option("--source", "-s", help="Only this source's tasks.")
@click.option("--rejected", is_flag=True, help="The rejected tasks, with their reason codes.")
@json_option
def tasks(source: str | None, rejected: bool, as_json: bool) -> None:
    """List the valid tasks (or, with --rejected, the rejected ones and why)."""
    from dynosaur.registry.status import tasks as list_tasks

    found = list_tasks(_workspace(), source, rejected)
    if as_json:
        return emit_json(found)
    out = _stdout()
    out.print(f"{len(found)} {'rejected' if rejected else 'valid'} tasks")
    fields = lambda t: f"{', '.join(t.input_fields)} → {t.output_field}"  # noqa: E731
    cols = [Col("task", "id"), Col("source", "id", drop=1), Col("fields", "wrap", min_width=12)]
    cols += [Col("instruction", "wrap", min_width=40)] + ([Col("reason")] if rejected else [])
    rows: list[list[Any]] = [
        [t.task_id, t.source_id, fields(t), t.final_instruction] + ([t.reason] if rejected else [])
        for t in found
    ]
    print_grouped(out, cols, rows, flat=source is None)


@cli.command()
@click.argument("task_id")
@click.option("-n", default=3, show_default=True, type=click.IntRange(1, 1000), help="How many instances.")
@json_option
def show(task_id: str, n: int, as_json: bool) -> None:
    """Show a task and a sample of its instances. TASK_ID may be any unique prefix of the id; a task that
    only a release still has (its source removed) is read from the ledger."""
    from dynosaur.core.records import Task
    from dynosaur.registry.ledger import Ledger
    from dynosaur.registry.status import find_task, released_instances, sample_instances

    ws = _workspace()
    ledger = Ledger(ws.root)
    task = find_task(ws, task_id, ledger)
    if isinstance(task, Task):
        rows = sample_instances(ws, task.task_id, n)
    else:
        tag, rows = released_instances(ws.root, ledger, task.task_id, n)
        where = f"release {tag}" if tag else "no release"
        if not as_json:
            _stderr().print(
                f"[yellow]note:[/] task {task.task_id} is not in the workspace; read from the ledger ({where})"
                + ("" if rows or not tag else f"; `dyno pull {tag} --out DIR` brings its instances back")
            )
    if as_json:
        return emit_json({"task": task.model_dump(mode="json"), "instances": rows})
    from rich.panel import Panel

    out = _stdout()
    out.print(
        Panel(
            escape(task.final_instruction),
            title=escape(f"task {task.task_id} · {task.source_id}"),
            title_align="left",
        )
    )
    for row in rows:
        body = f"[bold]input[/]\n{escape(row['input'])}\n\n[bold]output[/]\n{escape(row['output'])}"
        title = escape(f"{row['split']}#{row['row']} · {row['instance_id']}")
        out.print(Panel(body, title=title, title_align="left"))
