"""What an audit measured: the share fully valid (all three answers yes), each question's share, their 95%
Wilson intervals and n, overall and per source; agreement between reviewers (Cohen's kappa); the judge's
agreement with people; and the one line that `dyno status`, `dyno diff` and the dataset card print.

One label per item. Several people may review the same sample: the figures use the *primary* reviewer's
answers (the one who completed most items, ties by name), the others serve to measure agreement. "Unsure"
is not "yes": an item is fully valid only when all three answers are yes. Only complete items (all three
questions answered) count, so n is the number of items labelled, which may be fewer than the sample.

The judge's figure is never the audited figure. A judge-only estimate is shown, marked as such, only for a
release without human answers, and only when the same judge model agreed with people on the fully-valid
verdict for at least 80% of at least 50 items they both labelled (pooled over every audit).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from dynosaur.core.io import write_json
from dynosaur.core.records import AUDIT_QUESTIONS, AuditAnswer, AuditSample
from dynosaur.registry.audit import JUDGE, latest, read_answers, samples
from dynosaur.registry.audit_stats import Share, cohen_kappa, percent, share
from dynosaur.registry.ledger import Ledger

JUDGE_MIN_AGREEMENT = 0.80
JUDGE_MIN_SHARED = 50
# Agreement beyond chance (Cohen's kappa on the fully-valid verdict): when people find 90% of a sample valid,
# a judge that says yes to everything agrees on 90% and tells nothing apart. 0.4: "moderate" (Landis & Koch).
JUDGE_MIN_KAPPA = 0.40
METRICS = "data/metrics/audit.json"  # `dvc metrics show` reads data/metrics (dvc.yaml's `metrics:`)
NOT_AUDITED = "not audited"


class Figures(BaseModel):
    """The shares among n complete items."""

    n: int
    fully_valid: Share
    valid_instruction: Share
    input_suffices: Share
    output_correct: Share


class Agreement(BaseModel):
    """Two label sets on the items both completed: kappa per question and on the fully-valid verdict."""

    a: str
    b: str
    shared: int
    agreement: float | None = None  # share of shared items with the same fully-valid verdict
    kappa: dict[str, float | None] = {}


class AuditReport(BaseModel):
    audit_id: str
    release: str
    seed: int
    sampled: int
    reviewer: str | None = None  # the primary reviewer, whose answers the figures use
    reviewers: dict[str, int] = {}  # name → complete items
    labelled_on: str | None = None  # the date of the last answer counted
    overall: Figures | None = None
    sources: dict[str, Figures] = {}
    agreement: list[Agreement] = []  # between reviewers, each pair
    judge: Agreement | None = None  # the judge against the primary reviewer, on this audit's items
    judge_model: str | None = None
    judge_calibration: Agreement | None = None  # pooled over every audit, for this judge model
    judge_estimate: Figures | None = None  # only without human answers and a calibrated judge
    line: str = NOT_AUDITED


def figures(answers: list[AuditAnswer]) -> Figures:
    """The shares among the complete answers given."""
    done = [a for a in answers if a.complete]
    per_question = {q: share(sum(getattr(a, q) == "yes" for a in done), len(done)) for q in AUDIT_QUESTIONS}
    return Figures(
        n=len(done), fully_valid=share(sum(a.fully_valid for a in done), len(done)), **per_question
    )


def agreement(a: str, b: str, left: dict[str, AuditAnswer], right: dict[str, AuditAnswer]) -> Agreement:
    """Agreement of two label sets (instance id → answer) on the items both completed."""
    shared = sorted(i for i in left.keys() & right.keys() if left[i].complete and right[i].complete)
    kappa = {
        q: cohen_kappa([(getattr(left[i], q), getattr(right[i], q)) for i in shared]) for q in AUDIT_QUESTIONS
    }
    kappa["fully_valid"] = cohen_kappa([(left[i].fully_valid, right[i].fully_valid) for i in shared])
    same = sum(left[i].fully_valid == right[i].fully_valid for i in shared)
    return Agreement(
        a=a, b=b, shared=len(shared), agreement=same / len(shared) if shared else None, kappa=kappa
    )


def _by_reviewer(answers: list[AuditAnswer], items: set[str]) -> dict[str, dict[str, AuditAnswer]]:
    out: dict[str, dict[str, AuditAnswer]] = {}
    for (reviewer, iid), answer in latest(answers).items():
        if iid in items:
            out.setdefault(reviewer, {})[iid] = answer
    return out


def _judge_labels(answers: list[AuditAnswer], items: set[str]) -> tuple[str | None, dict[str, AuditAnswer]]:
    """The judge's latest model and its answers from that model."""
    judged = [a for a in answers if a.kind == "judge" and a.instance_id in items]
    if not judged:
        return None, {}
    model = judged[-1].model
    return model, _by_reviewer([a for a in judged if a.model == model], items).get(JUDGE, {})


def calibration(root: Path, model: str, audits: list[AuditSample] | None = None) -> Agreement:
    """The judge model's agreement with people over every audit's shared items (each against its primary)."""
    pooled_human: dict[str, AuditAnswer] = {}
    pooled_judge: dict[str, AuditAnswer] = {}
    for sample in audits if audits is not None else samples(root):
        items = {i.instance_id for i in sample.items}
        answers = read_answers(root, sample.audit_id)
        people = _by_reviewer([a for a in answers if a.kind == "human"], items)
        primary = _primary(people)
        judge_model, judged = _judge_labels(answers, items)
        if primary is None or judge_model != model:
            continue
        for iid in items:
            key = f"{sample.audit_id}/{iid}"
            if iid in people[primary] and iid in judged:
                pooled_human[key], pooled_judge[key] = people[primary][iid], judged[iid]
    return agreement("people", JUDGE, pooled_human, pooled_judge)


def _primary(people: dict[str, dict[str, AuditAnswer]]) -> str | None:
    counts = {r: sum(a.complete for a in got.values()) for r, got in people.items()}
    ranked = sorted((r for r in counts if counts[r]), key=lambda r: (-counts[r], r))
    return ranked[0] if ranked else None


def audit_report(root: Path, sample: AuditSample, audits: list[AuditSample] | None = None) -> AuditReport:
    """The figures of one audit (see the module docstring)."""
    items = {i.instance_id for i in sample.items}
    source_of = {i.instance_id: i.source_id for i in sample.items}
    answers = read_answers(root, sample.audit_id)
    people = _by_reviewer([a for a in answers if a.kind == "human"], items)
    report = AuditReport(
        audit_id=sample.audit_id,
        release=sample.release,
        seed=sample.seed,
        sampled=len(sample.items),
        reviewers={r: sum(a.complete for a in got.values()) for r, got in sorted(people.items())},
    )
    primary = _primary(people)
    judge_model, judged = _judge_labels(answers, items)
    report.judge_model = judge_model
    if primary is not None:
        chosen = [a for a in people[primary].values() if a.complete]
        report.reviewer = primary
        report.labelled_on = max(a.created_at for a in chosen)[:10]
        report.overall = figures(chosen)
        by_source: dict[str, list[AuditAnswer]] = {}
        for a in chosen:
            by_source.setdefault(source_of[a.instance_id], []).append(a)
        report.sources = {s: figures(got) for s, got in sorted(by_source.items())}
        names = sorted(people)
        report.agreement = [
            agreement(a, b, people[a], people[b]) for i, a in enumerate(names) for b in names[i + 1 :]
        ]
        if judged:
            report.judge = agreement(primary, JUDGE, people[primary], judged)
    if judge_model is not None:
        report.judge_calibration = calibration(root, judge_model, audits)
        if primary is None and judge_qualifies(report.judge_calibration):
            report.judge_estimate = figures(list(judged.values()))
    report.line = quality_line(report)
    return report


def judge_qualifies(calibrated: Agreement | None) -> bool:
    return (
        calibrated is not None
        and calibrated.shared >= JUDGE_MIN_SHARED
        and (calibrated.agreement or 0) >= JUDGE_MIN_AGREEMENT
        and (calibrated.kappa.get("fully_valid") or 0) >= JUDGE_MIN_KAPPA
    )


def _interval(s: Share) -> str:
    assert s.share is not None and s.low is not None and s.high is not None
    return f"{percent(s.share)} fully valid, 95% CI {percent(s.low).rstrip('%')}–{percent(s.high)}"


def quality_line(report: AuditReport | None) -> str:
    """ "Audited: 82% fully valid, 95% CI 76–87%, n = 200, on 2026-…", a marked judge estimate, or
    "not audited". Never a figure nobody measured."""
    if report is None:
        return NOT_AUDITED
    if report.overall is not None and report.overall.n:
        of = f" of {report.sampled} sampled" if report.overall.n < report.sampled else ""
        return (
            f"Audited: {_interval(report.overall.fully_valid)}, n = {report.overall.n}{of},"
            f" on {report.labelled_on}"
        )
    if report.judge_estimate is not None and report.judge_estimate.n and report.judge_calibration:
        c = report.judge_calibration
        assert c.agreement is not None
        return (
            f"Not audited by people; LLM judge estimate: {_interval(report.judge_estimate.fully_valid)},"
            f" n = {report.judge_estimate.n} (the judge agreed with people on {percent(c.agreement)}"
            f" of {c.shared} items)"
        )
    return NOT_AUDITED


def release_quality(root: Path) -> dict[str, AuditReport]:
    """tag → the report of its latest audit with human answers (else its latest audit), for each audited
    release, in release order."""
    audits = samples(root)
    out: dict[str, AuditReport] = {}
    for sample in audits:
        report = audit_report(root, sample, audits)
        previous = out.get(sample.release)
        if previous is None or report.overall is not None or previous.overall is None:
            out[sample.release] = report
    return dict(sorted(out.items(), key=lambda kv: int(kv[0][1:])))


def quality_lines(root: Path, names: list[str]) -> dict[str, str]:
    """name (a tag, or `workspace`) → its quality line."""
    reports = release_quality(root) if Ledger(root).path(AuditSample).exists() else {}
    return {name: quality_line(reports.get(name)) for name in names}


def audit_metrics(reports: dict[str, AuditReport]) -> dict:
    """What `dvc metrics` shows: per audited release, the share fully valid, its interval and n."""
    out: dict = {}
    for tag, r in reports.items():
        if r.overall is None or r.overall.fully_valid.share is None:
            continue
        fv = r.overall.fully_valid
        out[tag] = {
            "fully_valid": round(fv.share, 4) if fv.share is not None else None,
            "ci_low": round(fv.low, 4) if fv.low is not None else None,
            "ci_high": round(fv.high, 4) if fv.high is not None else None,
            "n": r.overall.n,
            **{q: round(getattr(r.overall, q).share or 0, 4) for q in AUDIT_QUESTIONS},
        }
    return out


def write_audit_metrics(root: Path) -> Path | None:
    """Write data/metrics/audit.json (only when a release is audited: no figure, no file)."""
    metrics = audit_metrics(release_quality(root))
    path = root / METRICS
    if not metrics and not path.exists():
        return None
    write_json(path, metrics)
    return path
