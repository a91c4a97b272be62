"""The release registry: `dyno release`, `releases`, `diff`, `pull`, `publish`, `retract`, `verify`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dynosaur.cli.app import _root, cli, json_option
from dynosaur.cli.output import _stderr, _stdout, emit_json, escape, plain_text, print_grouped
from dynosaur.cli.tables import (
    Col,
    licence_change,
    licence_shares,
    render,
    truncate,
)
from dynosaur.core.errors import LedgerError


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
        from dynosaur.registry.hub_pull import pull_from_hub

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
