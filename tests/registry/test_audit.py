"""`dyno audit`: the stratified draw, the sample record in the ledger, answers, the report's arithmetic, and the
audited line in `dyno status`, `dyno diff` and the dataset card (on the two-release repository of dvc_repo)."""

from __future__ import annotations

import json
import math
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from dynosaur.core.errors import DynoError
from dynosaur.core.records import AuditAnswer, AuditSample
from dynosaur.registry.audit import (
    allocate,
    answers_path,
    draw_sample,
    instance_rows,
    read_answers,
    record_sample,
    stratified_sample,
    write_answers,
)
from dynosaur.registry.audit_report import (
    JUDGE_MIN_SHARED,
    audit_report,
    quality_line,
    quality_lines,
    write_audit_metrics,
)
from dynosaur.registry.audit_stats import cohen_kappa, percent, share, wilson
from dynosaur.registry.card import dataset_card
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.releases import diff
from dynosaur.registry.verify import verify
from tests.factories import make_audit_sample, make_entry, make_release, make_source_version
from tests.registry.dvc_repo import V2, sh

YES = {"valid_instruction": "yes", "input_suffices": "yes", "output_correct": "yes"}


def answer(audit: str, iid: str, reviewer: str = "ann", labels: dict | None = None, **kw) -> AuditAnswer:
    values = {**YES, **(labels or {})}
    kind = "judge" if reviewer == "judge" else "human"
    return AuditAnswer.model_validate(
        {
            "audit_id": audit,
            "instance_id": iid,
            "reviewer": reviewer,
            "kind": kind,
            "created_at": "2026-12-07T10:00:00Z",
        }
        | values
        | kw
    )


# --- the draw -------------------------------------------------------------------------------------------


def test_allocate_is_proportional_by_largest_remainder():
    assert allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    assert allocate({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}  # ties by name
    assert allocate({"a": 7, "b": 3}, 4) == {"a": 3, "b": 1}  # quotas 2.8, 1.2
    assert allocate({"a": 2, "b": 3}, 10) == {"a": 2, "b": 3}  # more asked than there is: everything
    assert sum(allocate({f"s{i}": i + 1 for i in range(9)}, 17).values()) == 17


def population() -> dict[str, dict[str, list[str]]]:
    return {
        "big": {"t1": [f"b1-{i}" for i in range(600)], "t2": [f"b2-{i}" for i in range(200)]},
        "small": {"t3": [f"s3-{i}" for i in range(150)], "t4": [f"s4-{i}" for i in range(50)]},
    }


def test_the_sample_is_stratified_by_source_then_task_and_reproducible():
    items = stratified_sample(population(), 100, seed=7, release="v3")
    by_source = Counter(i.source_id for i in items)
    by_task = Counter(i.task_id for i in items)
    assert len(items) == 100 and len({i.instance_id for i in items}) == 100
    assert by_source == {"big": 80, "small": 20}  # 800 : 200 instances
    assert by_task == {"t1": 60, "t2": 20, "t3": 15, "t4": 5}  # each source's share by its tasks' sizes
    assert all(
        i.instance_id.startswith({"t1": "b1", "t2": "b2", "t3": "s3", "t4": "s4"}[i.task_id]) for i in items
    )
    assert (
        stratified_sample(population(), 100, seed=7, release="v3") == items
    )  # same (release, seed): same draw
    other = stratified_sample(population(), 100, seed=8, release="v3")
    assert other != items and Counter(i.task_id for i in other) == by_task  # new seed: new items, same strata
    assert stratified_sample(population(), 100, seed=7, release="v4") != items
    assert len(stratified_sample(population(), 5000, seed=1, release="v3")) == 1000  # all there is


def test_sample_of_a_release_reads_its_shards(base: Path):
    sample = draw_sample(base / "repo", "v2", n=7, seed=3)
    assert sample.release == "v2" and sample.seed == 3 and len(sample.items) == 7
    sizes = {t: n for tasks in V2.values() for t, n in tasks.items()}
    assert Counter(i.source_id for i in sample.items) == {"alpha": 4, "beta": 3}  # 8 : 6 of 14
    assert all(i.task_id in sizes for i in sample.items)
    assert draw_sample(base / "repo", "v2", n=7, seed=3).items == sample.items
    assert "dynosaur" in sample.code_version and sample.prompt_versions and sample.models
    rows = instance_rows(base / "repo", sample)
    assert set(rows) == {i.instance_id for i in sample.items}
    assert all(rows[i.instance_id]["task_id"] == i.task_id for i in sample.items)


# --- the record -----------------------------------------------------------------------------------------


def test_the_sample_record_is_committed_chained_and_verified(base: Path):
    repo = base / "repo"
    sample, new = record_sample(repo, "v1", n=6, seed=1)
    assert new and sample.hash and sample.audit_id == "v1-seed1-n6"
    assert sh(repo, "git", "status", "--porcelain").strip() == ""  # committed at once
    assert "audit sample v1-seed1-n6" in sh(repo, "git", "log", "-1", "--format=%s")
    again, new = record_sample(repo, "v1", n=6, seed=1)
    assert not new and again == sample
    second, _ = record_sample(repo, "v2", n=4, seed=1)
    assert second.prev == sample.hash  # hash-chained like every ledger file
    assert Ledger(repo).read(AuditSample) == [sample, second]
    assert verify(repo).ok, verify(repo).problems


def test_verify_catches_a_tampered_sample_record(base: Path):
    repo = base / "repo"
    record_sample(repo, "v1", n=6, seed=1)
    path = repo / "ledger" / "audits.jsonl"
    stored = json.loads(path.read_text())
    victim = stored["items"][0]["instance_id"]
    path.write_text(path.read_text().replace(victim, "f" * 16))  # swap one sampled instance
    report = verify(repo)
    assert not report.ok
    assert any("ledger/audits.jsonl:1: AuditSample hash mismatch" in p for p in report.problems)


def test_verify_catches_a_rehashed_sample_by_its_git_history(base: Path):
    """A consistent forgery (hash recomputed) is caught because the committed line changed."""
    from dynosaur.registry.ledger import stored_hash

    repo = base / "repo"
    record_sample(repo, "v1", n=6, seed=1)
    path = repo / "ledger" / "audits.jsonl"
    stored = json.loads(path.read_text())
    stored["seed"] = 2
    stored["hash"] = stored_hash(stored)
    path.write_text(json.dumps(stored, sort_keys=True, separators=(",", ":")) + "\n")
    report = verify(repo)
    assert any("ledger/audits.jsonl:1: the line committed at" in p for p in report.problems), report.problems


def test_answers_are_chained_and_verify_catches_tampering(base: Path):
    repo = base / "repo"
    sample, _ = record_sample(repo, "v1", n=6, seed=1)
    iids = [i.instance_id for i in sample.items]
    write_answers(repo, [answer(sample.audit_id, iids[0])])
    write_answers(
        repo, [answer(sample.audit_id, iids[1], labels={"output_correct": "no"}, note="<b>off</b>")]
    )
    write_answers(repo, [answer(sample.audit_id, iids[0], "judge", model="m", prompt_version="p")])
    path = answers_path(repo, sample.audit_id, "ann")
    assert path == repo / "audits" / sample.audit_id / "human" / "ann.jsonl"
    assert (repo / "audits" / sample.audit_id / "judge.jsonl").exists()  # the judge apart from people
    assert [a.instance_id for a in read_answers(repo, sample.audit_id, "human")] == iids[:2]
    assert verify(repo).ok, verify(repo).problems
    path.write_text(path.read_text().replace('"no"', '"yes"'))
    problems = verify(repo).problems
    assert any(f"{path.relative_to(repo)}:2: AuditAnswer hash mismatch" in p for p in problems), problems


def test_verify_catches_an_answer_about_an_instance_outside_the_sample(base: Path):
    repo = base / "repo"
    sample, _ = record_sample(repo, "v1", n=6, seed=1)
    write_answers(repo, [answer(sample.audit_id, "0" * 16)])
    assert any("is not in audit v1-seed1-n6's recorded sample" in p for p in verify(repo).problems)


def test_a_reviewer_name_is_checked():
    with pytest.raises(DynoError):
        answers_path(Path("."), "v1-seed0-n5", "../../etc")
    with pytest.raises(DynoError):
        answers_path(Path("."), "v1-seed0-n5", "judge x")


# --- the arithmetic -------------------------------------------------------------------------------------


def test_wilson_interval_against_known_values():
    z2 = 1.959963984540054**2
    assert wilson(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))  # 0.2775: the closed form at 0
    assert wilson(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # statsmodels proportion_confint wilson
    assert wilson(164, 200) == pytest.approx((0.7609, 0.8671), abs=1e-4)  # 82% of 200, worked by hand
    # Each bound is where the score test's statistic equals z (the interval's definition, not its formula).
    for yes, n in ((3, 7), (45, 50), (1, 200)):
        for bound in wilson(yes, n):
            z = abs(yes / n - bound) / math.sqrt(bound * (1 - bound) / n)
            assert z == pytest.approx(1.959963984540054)
    low, high = wilson(1, 2)
    assert low == pytest.approx(1 - high)  # symmetric about one half
    s = share(164, 200)
    assert (s.share, percent(s.low or 0), percent(s.high or 0)) == (0.82, "76%", "87%")
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_cohen_kappa_against_known_values():
    # Wikipedia's example: 50 items, yes/yes 20, yes/no 5, no/yes 10, no/no 15: po 0.7, pe 0.5, kappa 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a"), ("b", "b")]) == pytest.approx(1.0)
    assert cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)
    assert cohen_kappa([("y", "y")] * 5) is None  # one label throughout: undefined, not 1
    assert cohen_kappa([]) is None


def synthetic_audit(root: Path, n: int, release: str = "v1", seed: int = 0) -> AuditSample:
    """A recorded sample of n items over two sources (no shards needed for the report)."""
    sample = make_audit_sample(n, release, seed, strata=(("t2", "b"), ("t1", "a")))
    Ledger(root).append(AuditSample, [sample])
    return Ledger(root).read(AuditSample)[-1]


def test_report_shares_per_source_and_kappa(tmp_path: Path):
    sample = synthetic_audit(tmp_path, 10)
    iids = [i.instance_id for i in sample.items]
    ann = [
        answer(sample.audit_id, iid, labels={} if k < 8 else {"output_correct": "no"})
        for k, iid in enumerate(iids)
    ]
    bob = [
        answer(sample.audit_id, iid, "bob", labels={} if k < 6 else {"input_suffices": "unsure"})
        for k, iid in enumerate(iids[:8])
    ]
    write_answers(tmp_path, ann + bob)
    # ann takes her 9th answer back (an undo): 9 complete items remain hers
    write_answers(tmp_path, [answer(sample.audit_id, iids[9], labels={"output_correct": None})])
    report = audit_report(tmp_path, sample)
    assert report.reviewer == "ann" and report.reviewers == {"ann": 9, "bob": 8}
    assert report.overall is not None and report.overall.n == 9
    assert (report.overall.fully_valid.yes, report.overall.output_correct.yes) == (8, 8)
    assert report.overall.input_suffices.share == 1.0
    assert report.overall.fully_valid.low == pytest.approx(wilson(8, 9)[0])
    assert report.sources["a"].n + report.sources["b"].n == 9
    pair = report.agreement[0]
    assert (pair.a, pair.b, pair.shared) == ("ann", "bob", 8)
    assert pair.agreement == pytest.approx(6 / 8)
    assert pair.kappa["output_correct"] is None  # both all yes on the shared items: undefined
    assert pair.kappa["fully_valid"] == pytest.approx(cohen_kappa([(True, True)] * 6 + [(True, False)] * 2))
    assert report.line == "Audited: 89% fully valid, 95% CI 57–98%, n = 9 of 10 sampled, on 2026-12-07"


def test_no_answers_no_figure(tmp_path: Path):
    sample = synthetic_audit(tmp_path, 4)
    report = audit_report(tmp_path, sample)
    assert report.overall is None and report.line == "not audited" and quality_line(None) == "not audited"
    assert write_audit_metrics(tmp_path) is None  # no figure, no metrics file


def test_the_judge_estimate_needs_80_percent_agreement_on_50_items(tmp_path: Path):
    people = synthetic_audit(tmp_path, 60, "v1")
    iids = [i.instance_id for i in people.items]
    bad = {"output_correct": "no"}
    # people: 48 fully valid of 60; the judge agrees on 49 of 60 (81.7%)
    write_answers(
        tmp_path, [answer(people.audit_id, iid, labels=bad if k >= 48 else {}) for k, iid in enumerate(iids)]
    )
    judged = [
        answer(
            people.audit_id,
            iid,
            "judge",
            labels=bad if k >= 47 and k != 59 else {},
            model="m",
            prompt_version="p",
        )
        for k, iid in enumerate(iids)
    ]
    write_answers(tmp_path, judged)
    report = audit_report(tmp_path, people)
    assert report.judge is not None and report.judge.shared == 60
    assert report.judge.agreement == pytest.approx(58 / 60)  # k=47 and k=59 disagree
    assert report.judge_estimate is None  # people audited this release: their figure, not the judge's
    unreviewed = synthetic_audit(tmp_path, 20, "v2")
    write_answers(
        tmp_path,
        [
            answer(unreviewed.audit_id, i.instance_id, "judge", model="m", prompt_version="p")
            for i in unreviewed.items
        ],
    )
    estimate = audit_report(tmp_path, unreviewed)
    assert (
        estimate.overall is None and estimate.judge_estimate is not None and estimate.judge_estimate.n == 20
    )
    assert estimate.line.startswith("Not audited by people; LLM judge estimate: 100% fully valid")
    assert "the judge agreed with people on 97% of 60 items" in estimate.line
    # another judge model has no calibration: no estimate
    other = synthetic_audit(tmp_path, 5, "v3")
    write_answers(
        tmp_path,
        [
            answer(other.audit_id, i.instance_id, "judge", model="other", prompt_version="p")
            for i in other.items
        ],
    )
    assert audit_report(tmp_path, other).line == "not audited"


@pytest.mark.parametrize(
    "shared, agreeing, always_yes, shown",
    [(49, 49, False, False), (50, 40, False, True), (50, 39, False, False), (50, 40, True, False)],
)
def test_the_judge_gate_at_its_edges(
    tmp_path: Path, shared: int, agreeing: int, always_yes: bool, shown: bool
):
    """People call the first 10 items invalid. The judge copies them on the first `agreeing` items and says
    the opposite on the rest; or it says yes to everything, which agrees on 80% of 50 by the base rate alone
    (kappa 0, what the default model did on the main job's audit): no estimate from a judge that does not tell
    the two apart."""
    no = {"valid_instruction": "no"}
    people = synthetic_audit(tmp_path, shared, "v1")
    write_answers(
        tmp_path,
        [
            answer(people.audit_id, i.instance_id, labels=no if k < 10 else {})
            for k, i in enumerate(people.items)
        ],
    )
    judged = []
    for k, i in enumerate(people.items):
        invalid = (k < 10) == (k < agreeing)  # the people's verdict, or its opposite past `agreeing`
        labels = {} if always_yes or not invalid else no
        judged.append(answer(people.audit_id, i.instance_id, "judge", labels=labels, model="m"))
    write_answers(tmp_path, judged)
    unreviewed = synthetic_audit(tmp_path, 3, "v2")
    write_answers(
        tmp_path, [answer(unreviewed.audit_id, i.instance_id, "judge", model="m") for i in unreviewed.items]
    )
    assert JUDGE_MIN_SHARED == 50
    assert (audit_report(tmp_path, unreviewed).judge_estimate is not None) is shown


# --- the line in status, diff, the card and dvc metrics ---------------------------------------------------


def label(repo: Path, sample: AuditSample, no: int = 0) -> None:
    items = sample.items
    write_answers(
        repo,
        [
            answer(sample.audit_id, i.instance_id, labels={"output_correct": "no"} if k < no else {})
            for k, i in enumerate(items)
        ],
    )


def test_diff_and_status_show_the_audited_line(base: Path):
    from dynosaur.registry.status import release_quality_lines

    repo = base / "repo"
    assert diff(repo, "v1", "v2").quality == {"v1": "not audited", "v2": "not audited"}
    sample, _ = record_sample(repo, "v1", n=10, seed=0)
    label(repo, sample, no=2)
    lines = diff(repo, "v1", "v2").quality
    assert lines["v1"].startswith("Audited: 80% fully valid, 95% CI 49–94%, n = 10, on ")
    assert lines["v2"] == "not audited"
    assert release_quality_lines(repo) == lines
    metrics = json.loads((write_audit_metrics(repo) or Path("missing")).read_text())
    assert metrics == {
        "v1": {
            "fully_valid": 0.8,
            "ci_low": round(wilson(8, 10)[0], 4),
            "ci_high": round(wilson(8, 10)[1], 4),
            "n": 10,
            "valid_instruction": 1.0,
            "input_suffices": 1.0,
            "output_correct": 0.8,
        }
    }


def test_the_card_says_audited_or_not_audited(hub_server):
    """(hub_server: huggingface_hub must first be imported with its test env, or later publish tests show
    progress bars: its constants are read at import.)"""
    release = make_release()
    entries = [make_entry()]
    card = dataset_card("me/corpus", release, entries, [make_source_version()], [])
    assert "**Quality**: not audited." in card and "fully valid" not in card
    line = "Audited: 82% fully valid, 95% CI 76–87%, n = 200, on 2026-12-07"
    assert f"**Quality**: {line}." in dataset_card(
        "me/corpus", release, entries, [make_source_version()], [], quality=line
    )


def test_quality_lines_without_any_audit(tmp_path: Path):
    assert quality_lines(tmp_path, ["v1", "workspace"]) == {"v1": "not audited", "workspace": "not audited"}


def test_the_cli_samples_and_reports(base: Path, monkeypatch: pytest.MonkeyPatch):
    repo = base / "repo"
    monkeypatch.chdir(repo)
    from click.testing import CliRunner

    from dynosaur.cli.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["audit", "sample", "--release", "v2", "--n", "5", "--seed", "4", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["audit_id"] == "v2-seed4-n5" and len(record["items"]) == 5
    sample = Ledger(repo).read(AuditSample)[-1]
    label(repo, sample, no=1)
    result = runner.invoke(cli, ["audit", "report", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["overall"]["n"] == 5 and report["overall"]["fully_valid"]["yes"] == 4
    assert report["line"].startswith("Audited: 80% fully valid")
    text = runner.invoke(cli, ["audit", "report"]).output
    assert "v2 · audit v2-seed4-n5: Audited: 80% fully valid" in text
    assert (repo / "data/metrics/audit.json").exists()
    unknown = runner.invoke(cli, ["audit", "report", "--release", "v1"])
    assert unknown.exit_code != 0
    assert math.isclose(report["overall"]["fully_valid"]["share"], 0.8)
    assert (
        subprocess.run(
            ["git", "status", "--porcelain", "ledger"], cwd=repo, capture_output=True, text=True
        ).stdout
        == ""
    )
