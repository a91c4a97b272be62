"""Growing from the Hub: `dyno discover` adds sources to sources.yaml, `dyno refresh` moves sources.lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from dynosaur.cli.app import _root, cli, json_option
from dynosaur.cli.output import _stderr, _stdout, emit_json, escape, short, table
from dynosaur.core.errors import HubError


def _moved_table(title: str, moved: Sequence[Any]):
    rows = [[m.source_id, m.hub, m.revision, short(m.old) if m.old else "new", short(m.new)] for m in moved]
    return table(title, ["source", "repo", "revision", "was", "now"], rows)


@cli.command()
@click.option(
    "--task-category",
    "task_categories",
    multiple=True,
    metavar="NAME",
    help="A Hub task category (any of them; repeatable).",
)
@click.option(
    "--language", "languages", multiple=True, metavar="CODE", help="A language (any of them; repeatable)."
)
@click.option(
    "--min-downloads", type=click.IntRange(min=0), help="Only datasets downloaded at least this often."
)
@click.option("--search", help="A substring of the dataset id.")
@click.option(
    "--since",
    default="last",
    show_default=True,
    metavar="WHEN",
    help="Only datasets modified after WHEN: `last` (after this query last ran), `any`, or an ISO 8601 time.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Add at most this many sources.")
@click.option("--dry-run", is_flag=True, help="Show what would be added; write nothing.")
@json_option
def discover(
    task_categories: tuple[str, ...],
    languages: tuple[str, ...],
    min_downloads: int | None,
    search: str | None,
    since: str,
    limit: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Find datasets on the Hub and add one source per config to sources.yaml.

    Defaults come from `params.yaml: discover`; the licence policy is `params.yaml: licenses`. Skips what is
    already a source, retracted sources, evaluation benchmarks and gated datasets. Then run `dyno refresh`
    to pin the new sources, and `dvc repro`.
    """
    from dynosaur.core.params import load_params
    from dynosaur.pipeline.discover import Query
    from dynosaur.pipeline.discover import discover as run_discover

    root = _root()
    params = load_params()
    d = params.discover
    query = Query(
        task_categories=list(task_categories) or d.task_categories,
        languages=list(languages) or d.languages,
        min_downloads=d.min_downloads if min_downloads is None else min_downloads,
        search=search if search is not None else d.search,
        revision=d.revision,
    )
    report = run_discover(
        root,
        params,
        query,
        since=None if since == "any" else since,
        limit=limit if limit is not None else d.limit,
        dry_run=dry_run,
    )
    if as_json:
        return emit_json(report)
    out = _stdout()
    verb = "would add" if dry_run else "added"
    rows = [[e.id, e.hub, e.config or ""] for e in report.added]
    out.print(
        table(f"{verb} {len(report.added)} sources · {report.query}", ["source", "repo", "config"], rows)
    )
    if report.moved:
        out.print(_moved_table(f"{len(report.moved)} known sources moved on the Hub", report.moved))
    for line in report.malformed[:20]:
        _stderr().print(escape(line))
    skipped = ", ".join(f"{k} {v:,}" for k, v in report.skipped.items()) or "none"
    _stderr().print(f"{report.listed:,} datasets listed; skipped: {escape(skipped)}")
    if report.added and not dry_run:
        _stderr().print("Run `dyno refresh` to pin them, then `dvc repro`.")


@cli.command()
@click.option(
    "--concurrency", type=click.IntRange(1, 256), default=16, show_default=True, help="Hub requests at once."
)
@click.option("--dry-run", is_flag=True, help="Show what moved; do not write sources.lock.")
@json_option
def refresh(concurrency: int, dry_run: bool, as_json: bool) -> None:
    """Pin every Hub source's revision to the commit it points at now (sources.lock), and say what moved.

    `dvc repro` reads Hub sources at their pinned commits only: until a refresh, nothing that moves on the Hub
    reaches the corpus, and a release tag rebuilds from the same commits.
    """
    from dynosaur.core.errors import some
    from dynosaur.core.params import load_params
    from dynosaur.pipeline.discover import refresh as run_refresh

    root = _root()
    params = load_params()
    report = run_refresh(
        root, params, concurrency=concurrency, timeout_s=params.collect.timeout_s, dry_run=dry_run
    )
    if as_json:
        emit_json(report)
    else:
        out = _stdout()
        if report.moved or report.added:
            out.print(
                _moved_table(
                    f"{len(report.moved)} moved, {len(report.added)} newly pinned",
                    [*report.moved, *report.added],
                )
            )
        err = _stderr()
        for source_id, reason in sorted(report.failed.items())[:20]:
            err.print(f"{escape(source_id)}: {escape(reason)}")
        err.print(
            f"{report.sources:,} Hub sources ({report.requests:,} requests): {report.unchanged:,} unchanged,"
            f" {len(report.moved):,} moved, {len(report.added):,} newly pinned, {len(report.removed):,} removed"
            + (" (dry run: sources.lock not written)" if dry_run else "")
        )
    if report.failed:
        raise HubError(
            f"{len(report.failed)} Hub source(s) could not be resolved ({some(sorted(report.failed))});"
            " their previous pins are kept"
        )
