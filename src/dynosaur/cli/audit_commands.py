"""`dyno audit`: sample a release, label the sample on a local page, report its measured quality, and ask
an LLM judge the same questions (see docs/quality.md#audited-quality)."""

from __future__ import annotations

import click

from dynosaur.cli.app import _root, cli, json_option
from dynosaur.cli.output import _stderr, _stdout, emit_json, escape, plain_text, table


@cli.group()
def audit() -> None:
    """Measure a release's quality: sample it, label the sample, report the share fully valid."""


release_option = click.option(
    "--release", "version", metavar="VERSION", help="The release (default: the latest)."
)
audit_option = click.option(
    "--audit", "audit_id", metavar="ID", help="One audit by its id (default: the latest)."
)


@audit.command()
@release_option
@click.option(
    "--n", "n", default=200, show_default=True, type=click.IntRange(min=1), help="How many instances."
)
@click.option("--seed", default=0, show_default=True, type=int, help="The draw's seed.")
@json_option
def sample(version: str | None, n: int, seed: int, as_json: bool) -> None:
    """Draw a stratified sample (by source, then task) and record it in ledger/audits.jsonl.

    The draw is reproducible from (release, seed, n); the record is committed at once and `dyno verify`
    checks it. Drawing the same sample again shows the recorded one.
    """
    from dynosaur.registry.audit import record_sample

    found, new = record_sample(_root(), version, n, seed)
    if as_json:
        return emit_json(found)
    sources: dict[str, int] = {}
    for item in found.items:
        sources[item.source_id] = sources.get(item.source_id, 0) + 1
    verb = "recorded" if new else "already recorded:"
    _stdout().print(
        plain_text(f"{verb} audit {found.audit_id}: {len(found.items)} instances of {found.release}")
    )
    _stdout().print(
        table(None, ["source", "instances"], [[s, c] for s, c in sorted(sources.items())], {"instances"})
    )
    _stderr().print("Label it with `dyno audit review`.")


@audit.command()
@release_option
@audit_option
@click.option("--reviewer", help="Your name (the page asks when it is not given).")
@click.option(
    "--port", default=0, type=click.IntRange(0, 65535), help="Port on 127.0.0.1 (default: a free one)."
)
def review(version: str | None, audit_id: str | None, reviewer: str | None, port: int) -> None:
    """Serve the review page on 127.0.0.1 and print its URL; Ctrl-C stops it.

    One instance at a time, three questions (1 yes, 2 no, 3 unsure; n/p move, u undoes). Each answer is
    written at once to audits/<audit>/human/<reviewer>.jsonl; reopening resumes at the first unanswered item.
    """
    from dynosaur.registry.audit import check_reviewer, find_sample, instance_rows
    from dynosaur.registry.audit_report import write_audit_metrics
    from dynosaur.registry.audit_server import ReviewServer, ReviewState

    root = _root()
    found = find_sample(root, version, audit_id)
    if reviewer is not None:
        reviewer = check_reviewer(reviewer)
    server = ReviewServer(ReviewState(root, found, instance_rows(root, found), reviewer), port)
    url = server.url + (f"?reviewer={reviewer}" if reviewer else "")
    click.echo(url)
    _stderr().print(f"audit {escape(found.audit_id)}: {len(found.items)} instances; Ctrl-C stops the server")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        write_audit_metrics(root)


@audit.command()
@release_option
@audit_option
@json_option
def report(version: str | None, audit_id: str | None, as_json: bool) -> None:
    """The share fully valid (all three answers yes), each question's share, 95% Wilson intervals and n,
    overall and per source; Cohen's kappa between reviewers; the judge's agreement with people.

    Also writes data/metrics/audit.json (`dvc metrics show`).
    """
    from dynosaur.registry.audit import find_sample
    from dynosaur.registry.audit_report import audit_report, write_audit_metrics

    root = _root()
    result = audit_report(root, find_sample(root, version, audit_id))
    write_audit_metrics(root)
    if as_json:
        return emit_json(result)
    out = _stdout()
    out.print(plain_text(f"{result.release} · audit {result.audit_id}: {result.line}"))
    figures = result.overall or result.judge_estimate
    if figures is not None:
        rows = [["all", *_cells(figures)]] + [[s, *_cells(f)] for s, f in result.sources.items()]
        cols = ["source", "n", "fully valid", "valid instruction", "input suffices", "output correct"]
        out.print(table("judge estimate" if result.overall is None else None, cols, rows, {"n"}))
    if result.reviewers:
        named = ", ".join(f"{r} ({n})" for r, n in result.reviewers.items())
        out.print(plain_text(f"reviewers: {named}; figures from {result.reviewer}"))
    for pair in result.agreement:
        out.print(
            plain_text(f"agreement {pair.a} / {pair.b} on {pair.shared} items: kappa {_kappas(pair.kappa)}")
        )
    if result.judge is not None and result.judge.agreement is not None:
        out.print(
            plain_text(
                f"judge ({result.judge_model}) agrees with {result.judge.a} on {result.judge.agreement:.0%} of"
                f" {result.judge.shared} items; kappa {_kappas(result.judge.kappa)}"
            )
        )
    if result.judge_calibration is not None and result.judge_calibration.agreement is not None:
        c = result.judge_calibration
        out.print(plain_text(f"judge agreement over all audits: {c.agreement:.0%} of {c.shared} items"))


def _cells(f) -> list[str]:
    from dynosaur.registry.audit_stats import percent

    def cell(s) -> str:
        if s.share is None:
            return "–"
        return f"{percent(s.share)} ({percent(s.low).rstrip('%')}–{percent(s.high)})"

    return [
        str(f.n),
        cell(f.fully_valid),
        cell(f.valid_instruction),
        cell(f.input_suffices),
        cell(f.output_correct),
    ]


def _kappas(kappa: dict[str, float | None]) -> str:
    return ", ".join(f"{q} {'–' if k is None else f'{k:.2f}'}" for q, k in kappa.items())


@audit.command()
@release_option
@audit_option
@json_option
def judge(version: str | None, audit_id: str | None, as_json: bool) -> None:
    """Ask the configured LLM (params.yaml: llm) the three questions for each sampled instance.

    Through the same call cache, caps and batch path as generate; its labels go to
    audits/<audit>/judge.jsonl, never with people's. `dyno audit report` shows its agreement with people.
    """
    from dynosaur.core.params import load_params
    from dynosaur.pipeline.audit_judge import judge as run_judge
    from dynosaur.registry.audit import find_sample

    root = _root()
    outcome = run_judge(root, find_sample(root, version, audit_id), load_params())
    if as_json:
        return emit_json(outcome)
    _stdout().print(
        plain_text(
            f"audit {outcome.audit_id}: judged {outcome.judged} ({outcome.already} before) with {outcome.model};"
            f" {outcome.calls_made} calls, {outcome.cache_hits} cached, {outcome.unparseable} unparseable,"
            f" {outcome.failed} failed"
            + (f", {outcome.waiting} waiting in a batch" if outcome.waiting else "")
        )
    )
