"""Running the pipeline: `dyno repro` (DVC, Ctrl-C handled) and `dyno generate` (with its `--dry-run` cost preview)."""

from __future__ import annotations

import sys
from typing import Any

import click

from dynosaur.cli.app import _root, _workspace, cli, json_option
from dynosaur.cli.output import _stdout, emit_json, table


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("dvc_args", nargs=-1, type=click.UNPROCESSED, metavar="[DVC REPRO ARGS]...")
def repro(dvc_args: tuple[str, ...]) -> None:
    """Run `dvc repro` with these arguments, from the project root. Ctrl-C exits 130 with one line.

    DVC reports a stage stopped by Ctrl-C as `failed to reproduce` and exit 255; `dyno repro` waits for it
    and exits 130 with the stage's "Interrupted" line. The next run resumes: every LLM answer and every
    finished source is kept.
    """
    _run_repro(list(dvc_args))


def _run_repro(args: list[str]) -> None:
    from dynosaur.core.errors import INTERRUPTED
    from dynosaur.registry.vcs import repro as run_repro

    code, interrupted = run_repro(_root(), args)
    if interrupted:
        click.echo(INTERRUPTED, err=True)
        sys.exit(130)
    if code:
        sys.exit(code)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the calls, tokens and cost; call nothing.")
@json_option
def generate(dry_run: bool, as_json: bool) -> None:
    """Run the generate stage (`dyno repro generate`: collect first if it is stale); with --dry-run, preview
    what it would spend instead."""
    if not dry_run:
        if as_json:
            raise click.UsageError("--json goes with --dry-run")
        return _run_repro(["generate"])
    # The one command that reaches into stages/: it must build the very requests the stage would send.
    from dynosaur.pipeline.generate import dry_run as plan

    ws = _workspace()
    report = plan(ws.collected, ws.cache, ws.generated, ws.batches)
    if as_json:
        return emit_json(report)
    rows: list[list[Any]] = [
        ["sources", report.sources],
        ["sources to generate", report.sources_to_generate],
        ["requests", report.requests],
        ["cached", report.cached],
        ["calls", report.calls],
        *([["in running batches", report.in_flight]] if report.mode == "batch" else []),
        ["calls within caps", report.calls_within_caps],
        ["prompt tokens (≈)", f"{report.prompt_tokens:,}"],
        ["completion tokens (max)", f"{report.max_completion_tokens:,}"],
        [
            "cost (max, USD)",
            f"{report.max_cost_usd:.4f}" + (" at batch prices" if report.mode == "batch" else ""),
        ],
    ]
    _stdout().print(table(f"generate --dry-run · {report.model}", ["", "value"], rows, {"value"}))
