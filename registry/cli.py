"""`dyno`: a thin click layer over the registry's functions.

Each command parses its options, calls one function that returns a pydantic model (or a list of them) and
renders it: `--json` prints `model_dump(mode="json")` to stdout and nothing else; otherwise a rich table.
Progress, hints and errors go to stderr. A `DynoError` prints as one `Error: ...` line with its exit code
(2 for usage and params errors); `DYNO_DEBUG=1` shows the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from registry.errors import DynoError

ERR = None  # the stderr console, created on first use


def _stderr():
    global ERR
    if ERR is None:
        from rich.console import Console

        ERR = Console(stderr=True)
    return ERR


def _stdout():
    from rich.console import Console

    return Console()


def emit_json(obj: BaseModel | Sequence[BaseModel] | dict) -> None:
    if isinstance(obj, BaseModel):
        data: Any = obj.model_dump(mode="json")
    elif isinstance(obj, dict):
        data = obj
    else:
        data = [o.model_dump(mode="json") for o in obj]
    click.echo(json.dumps(data, indent=1, ensure_ascii=False))


def table(title: str | None, columns: list[str], rows: list[list[Any]], justify_right: set[str] = frozenset()):
    from rich.markup import escape
    from rich.table import Table

    # Cells hold data (LLM-written instructions, dataset text): escaped, so `[...]` is not rich markup.
    t = Table(title=None if title is None else escape(title), title_justify="left")
    for c in columns:
        t.add_column(c, justify="right" if c in justify_right else "left", overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else escape(str(v)) for v in r])
    return t


def short(revision: str) -> str:
    return revision.removeprefix("sha256:")[:12]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout (nothing else).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dynosaur")
def cli() -> None:
    """Dynosaur: grow instruction-tuning corpora from annotated datasets.

    Run the pipeline with `dvc repro`; inspect what it made with these commands.
    """


def _workspace():
    from registry.workspace import Workspace

    return Workspace.load(Path("."))


@cli.command()
@json_option
def status(as_json: bool) -> None:
    """Per-source table: origin, revision, licence, tasks valid/rejected, instances; and totals."""
    from registry.status import status as build

    report = build(_workspace())
    if as_json:
        return emit_json(report)
    rows = [
        [s.source_id, s.origin, short(s.revision), s.license, s.status + (f": {s.reason}" if s.reason else ""),
         s.tasks_valid, s.tasks_rejected, f"{s.instances:,}"]
        for s in report.sources
    ]
    rows.append(["total", "", "", "", "", report.tasks_valid, report.tasks_rejected, f"{report.instances:,}"])
    cols = ["source", "origin", "revision", "licence", "status", "valid", "rejected", "instances"]
    _stdout().print(table(None, cols, rows, {"valid", "rejected", "instances"}))


@cli.command()
@click.option("--source", "-s", help="Only this source's tasks.")
@click.option("--rejected", is_flag=True, help="The rejected tasks, with their reason codes.")
@json_option
def tasks(source: str | None, rejected: bool, as_json: bool) -> None:
    """List the valid tasks (or, with --rejected, the rejected ones and why)."""
    from registry.status import tasks as list_tasks

    found = list_tasks(_workspace(), source, rejected)
    if as_json:
        return emit_json(found)
    cols = ["task", "source", "inputs", "output", "instruction"] + (["reason"] if rejected else [])
    rows = [
        [t.task_id, t.source_id, ", ".join(t.input_fields), t.output_field, t.final_instruction]
        + ([t.reason] if rejected else [])
        for t in found
    ]
    _stdout().print(table(f"{len(found)} {'rejected' if rejected else 'valid'} tasks", cols, rows))


@cli.command()
@click.argument("task_id")
@click.option("-n", default=3, show_default=True, type=click.IntRange(1, 1000), help="How many instances.")
@json_option
def show(task_id: str, n: int, as_json: bool) -> None:
    """Show a task and a sample of its instances."""
    from registry.status import find_task, sample_instances

    ws = _workspace()
    task = find_task(ws, task_id)
    rows = sample_instances(ws, task_id, n)
    if as_json:
        return emit_json({"task": task.model_dump(mode="json"), "instances": rows})
    from rich.markup import escape
    from rich.panel import Panel

    out = _stdout()
    out.print(Panel(escape(task.final_instruction), title=escape(f"task {task.task_id} · {task.source_id}"),
                    title_align="left"))
    for row in rows:
        body = f"[bold]input[/]\n{escape(row['input'])}\n\n[bold]output[/]\n{escape(row['output'])}"
        title = escape(f"{row['split']}#{row['row']} · {row['instance_id']}")
        out.print(Panel(body, title=title, title_align="left"))


@cli.command()
@click.option("--dry-run", is_flag=True, required=True, help="Print the calls, tokens and cost; call nothing.")
@json_option
def generate(dry_run: bool, as_json: bool) -> None:
    """Preview what the generate stage would spend (the stage itself runs under `dvc repro`)."""
    # The one command that reaches into stages/: it must build the very requests the stage would send.
    from stages.generate import dry_run as plan

    ws = _workspace()
    report = plan(ws.collected, ws.cache, ws.generated)
    if as_json:
        return emit_json(report)
    rows = [
        ["sources", report.sources], ["sources to generate", report.sources_to_generate],
        ["requests", report.requests], ["cached", report.cached], ["calls", report.calls],
        ["calls within caps", report.calls_within_caps],
        ["prompt tokens (≈)", f"{report.prompt_tokens:,}"],
        ["completion tokens (max)", f"{report.max_completion_tokens:,}"],
        ["cost (max, USD)", f"{report.max_cost_usd:.4f}"],
    ]
    _stdout().print(table(f"generate --dry-run · {report.model}", ["", "value"], rows, {"value"}))


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line for a DynoError, a traceback for anything else (a bug)."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        _stderr().print("Aborted.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except DynoError as exc:
        if os.environ.get("DYNO_DEBUG"):
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
