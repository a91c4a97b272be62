"""pull and verify against a real git + DVC repository with a local directory remote (tests/registry/dvc_repo.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dynosaur.core.errors import DynoError, LedgerError, NotFound
from dynosaur.core.io import canonical_json
from dynosaur.core.records import Release, Retraction
from dynosaur.registry.ledger import Ledger, read_records
from dynosaur.registry.pull import pull_release
from dynosaur.registry.verify import verify
from tests.factories import make_retraction
from tests.registry.dvc_repo import (
    CORPUS,
    DVC,
    V1,
    V2,
    cache_object,
    clone,
    corpus_md5,
    cut,
    entry,
    leftovers,
    overwrite,
    remote_object,
    sh,
)

# --- pull ------------------------------------------------------------------------------------------------


def test_pull_from_a_fresh_clone_gets_the_release_from_the_remote(base: Path) -> None:
    repo = clone(base)
    out = base / "pulled" / "v1"
    report = pull_release(repo, "v1", out, corpus_path=CORPUS)
    assert (report.version, report.tag, report.shards, report.instances) == (1, "v1", 3, 12)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(f"{s}/{t}.parquet" for s, tasks in V1.items() for t in tasks)
    for name in files:
        assert pq.read_table(out / name).equals(pq.read_table(base / "repo" / CORPUS / name))
    assert report.bytes == sum((out / f).stat().st_size for f in files)
    assert not (repo / ".dvc/cache").exists()  # streamed from the remote, nothing cached in the clone
    assert leftovers(out.parent) == []


def test_pull_an_older_release_into_an_empty_directory(base: Path) -> None:
    out = base / "empty"
    out.mkdir()
    report = pull_release(clone(base), "1", out, corpus_path=CORPUS)  # v2 is HEAD; v1 comes from its tag
    assert report.shards == 3 and not (out / "beta" / f"{'b2' * 8}.parquet").exists()
    assert pull_release(clone(base, "clone2"), "v2", base / "v2", corpus_path=CORPUS).shards == 4


def test_pull_unknown_version_is_not_found(base: Path) -> None:
    with pytest.raises(NotFound, match="unknown version 'v9'"):
        pull_release(base / "repo", "v9", base / "out", corpus_path=CORPUS)
    assert not (base / "out").exists()


def test_pull_into_a_non_empty_directory_writes_nothing(base: Path) -> None:
    out = base / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DynoError) as err:
        pull_release(base / "repo", "v1", out, corpus_path=CORPUS)
    message = str(err.value)
    assert "v1" in message and "not an empty directory" in message and "\n" not in message
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and leftovers(base) == []


def test_pull_of_a_tampered_remote_object_fails_naming_the_shard(base: Path) -> None:
    bad = entry(base, 1, "a1" * 8)
    other = entry(base, 1, "a2" * 8)
    overwrite(remote_object(base, bad.shard_md5), remote_object(base, other.shard_md5).read_bytes())
    out = base / "out"
    with pytest.raises(DynoError) as err:
        pull_release(clone(base), "v1", out, corpus_path=CORPUS)
    message = str(err.value)
    assert message.startswith("pull v1: shard alpha/" + "a1" * 8 + ".parquet") and "\n" not in message
    assert not out.exists() and leftovers(base) == []


def test_pull_of_a_missing_remote_object_leaves_nothing(base: Path) -> None:
    remote_object(base, entry(base, 1, "b1" * 8).shard_md5).unlink()
    with pytest.raises(DynoError) as err:
        pull_release(clone(base), "v1", base / "out", corpus_path=CORPUS)
    assert "b1" * 8 in str(err.value) and "neither" in str(err.value) and "\n" not in str(err.value)
    assert not (base / "out").exists() and leftovers(base) == []


def test_pull_without_the_directory_listing_fails_in_one_line(base: Path) -> None:
    listing = corpus_md5(base / "repo")
    (base / "remote/files/md5" / listing[:2] / listing[2:]).unlink()
    with pytest.raises(DynoError, match=r"^pull v2: the listing of data/corpus \(" + listing):
        pull_release(clone(base), "v2", base / "out", corpus_path=CORPUS)
    assert not (base / "out").exists() and leftovers(base) == []


@pytest.mark.parametrize("at", ["_fetch", "_check"])
def test_a_pull_killed_half_way_is_finished_by_the_next_and_leaves_no_half_file(base: Path, at: str) -> None:
    """SIGKILL while DVC downloads (`_fetch`) or while the shards are checked (`_check`)."""
    import signal
    import subprocess
    import sys

    repo, out = clone(base), base / "pulled" / "v1"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from dynosaur.registry import pull\n"
        f"real = pull.{at}\n"
        "def killed(*args, **kwargs):\n"
        "    real(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"pull.{at} = killed\n"
        f"pull.pull_release(Path({str(repo)!r}), 'v1', Path({str(out)!r}), corpus_path={CORPUS!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists() and leftovers(out.parent)  # what the killed pull had fetched: beside, not at out
    report = pull_release(repo, "v1", out, corpus_path=CORPUS)
    assert report.shards == 3
    assert leftovers(out.parent) == []
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        f"{s}/{t}.parquet" for s, tasks in V1.items() for t in tasks
    )


# --- verify ----------------------------------------------------------------------------------------------


def test_verify_a_good_registry(base: Path) -> None:
    report = verify(base / "repo")
    assert report.ok and report.problems == []
    assert (report.releases, report.shards) == (2, 4)  # v2 shares v1's three shards: each read once


def test_verify_names_a_release_file_that_pull_would_refuse(base: Path) -> None:
    """A stray file released with the corpus (issue 21 F1): every shard verifies, yet `dyno pull` refuses the
    release for ever. verify says so, from the repository and from a fresh clone."""
    repo = base / "repo"
    (repo / CORPUS / "alpha" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    cut(repo, 3, V2)
    with pytest.raises(DynoError, match=r"alpha/\.DS_Store was fetched but is not a shard"):
        pull_release(clone(base), "v3", base / "out", corpus_path=CORPUS)
    for where in (repo, clone(base, "clone2")):
        report = verify(where)
        assert not report.ok
        assert [p for p in report.problems if "alpha/.DS_Store" in p and "v3" in p and "pull" in p], report


def test_a_manifest_line_of_an_unknown_schema_is_named_by_its_line(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest written by a newer or foreign tool (here: a `schema_version: 99` key on its second line)
    fails verify and pull with the file and line, never a traceback (issue 21)."""
    import dynosaur.registry.ledger as ledger_module

    repo, real, written = base / "repo", ledger_module._line, []

    def newer(entry):
        line = real(entry)
        written.append(line)
        return line if len(written) != 2 else line.replace("{", '{"schema_version":99,', 1)

    monkeypatch.setattr(ledger_module, "_line", newer)
    cut(repo, 3, {**V2, "gamma": {"c1" * 8: 2}})
    monkeypatch.undo()
    expected = "ledger/manifests/v3.jsonl:2: not a valid manifest entry of v3 (schema_version: unknown key)"
    assert expected in verify(repo).problems
    with pytest.raises(LedgerError) as err:
        pull_release(repo, "v3", base / "out", corpus_path=CORPUS)
    assert str(err.value) == expected


def test_verify_from_a_clone_reads_shards_from_the_remote(base: Path) -> None:
    report = verify(clone(base))
    assert report.ok, report.problems


def test_verify_names_an_altered_release_record(base: Path) -> None:
    path = base / "repo/ledger/releases.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    altered = lines[0].replace('"message":""', '"message":"v1, improved"')
    assert altered != lines[0]
    path.write_text("".join([altered, *lines[1:]]))
    report = verify(base / "repo")
    assert not report.ok
    assert report.problems[0] == "ledger/releases.jsonl:1: Release hash mismatch (the record was altered)"


def test_verify_names_a_broken_chain(base: Path) -> None:
    path = base / "repo/ledger/releases.jsonl"
    first, second = path.read_text().splitlines()
    relinked = Release.model_validate_json(second).model_copy(update={"parent": "sha256:" + "0" * 64})
    relinked = relinked.sealed()
    path.write_text(first + "\n" + canonical_json(relinked.model_dump(mode="json")) + "\n")
    problems = verify(base / "repo").problems
    assert problems[0].startswith(
        f"ledger/releases.jsonl:2: parent sha256:{'0' * 64} is not the hash of line 1 (sha256:"
    )
    assert problems[1].startswith("ledger/releases.jsonl:2: the line committed at tag v2 was rewritten")


def test_verify_names_an_altered_manifest(base: Path) -> None:
    path = base / "repo/ledger/manifests/v1.jsonl"
    path.write_text(path.read_text().replace('"instances":5', '"instances":6', 1))
    report = verify(base / "repo")
    assert report.problems == ["ledger/manifests/v1.jsonl: manifest of v1 does not match its digest"]


def test_verify_names_a_damaged_shard(base: Path) -> None:
    bad, other = entry(base, 1, "a1" * 8), entry(base, 1, "b1" * 8)
    cache_object(base / "repo", bad.shard_md5).unlink()
    overwrite(remote_object(base, bad.shard_md5), remote_object(base, other.shard_md5).read_bytes())
    report = verify(base / "repo")
    assert not report.ok
    shard = f"shard alpha/{bad.task_id}.parquet (task {bad.task_id}, md5 {bad.shard_md5})"
    assert report.problems[0].startswith(f"ledger/manifests/v1.jsonl: {shard} holds 4 instances")
    assert len(report.problems) == 2 and report.problems[1].startswith("ledger/manifests/v2.jsonl")


def test_verify_names_a_shard_missing_everywhere(base: Path) -> None:
    gone = entry(base, 2, "b2" * 8)
    cache_object(base / "repo", gone.shard_md5).unlink()
    remote_object(base, gone.shard_md5).unlink()
    shard = f"shard beta/{gone.task_id}.parquet (task {gone.task_id}, md5 {gone.shard_md5})"
    assert verify(base / "repo").problems == [
        f"ledger/manifests/v2.jsonl: {shard} is in neither the local DVC cache nor the DVC remote 'store'"
    ]


def test_verify_without_a_remote_says_so_for_shards_not_in_the_cache(base: Path) -> None:
    sh(base / "repo", DVC, "remote", "default", "--unset")
    assert verify(base / "repo").ok  # everything is in the local cache: the remote is never opened
    gone = entry(base, 1, "a2" * 8)
    cache_object(base / "repo", gone.shard_md5).unlink()
    (problem,) = verify(base / "repo").problems
    assert problem.endswith(
        "is not in the local DVC cache, and no default DVC remote is configured"
        " (`dvc remote add -d NAME URL`)"
    )


def test_verify_names_a_missing_tag(base: Path) -> None:
    sh(base / "repo", "git", "tag", "-d", "v2")
    assert verify(base / "repo").problems == [
        "ledger/releases.jsonl:2: git tag v2 is missing (an interrupted release? `dyno release` tags it)"
    ]


# --- tampering with committed history: the ledger can only grow -------------------------------------------


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines), encoding="utf-8")


def _committed_retractions(repo: Path, *targets: str) -> Path:
    """Retractions appended and committed, as `dyno retract` does."""
    ledger = Ledger(repo)
    for target in targets:
        ledger.append(Retraction, [make_retraction(kind="source", target=target)])
        sh(repo, "git", "add", "ledger")
        sh(repo, "git", "commit", "-qm", f"retract source {target}")
    return ledger.path(Retraction)


def _reseal(record: dict) -> dict:
    body = {k: v for k, v in record.items() if k != "hash"}
    return {**body, "hash": "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()}


@pytest.mark.parametrize("commit", [False, True], ids=["uncommitted", "committed"])
def test_verify_catches_the_last_release_record_deleted(base: Path, commit: bool) -> None:
    repo = base / "repo"
    path = repo / "ledger/releases.jsonl"
    _rewrite(path, path.read_text().splitlines(keepends=True)[:1])
    if commit:
        sh(repo, "git", "commit", "-qam", "drop v2")
    problems = verify(repo).problems
    assert "ledger/releases.jsonl: git tag v2 has no release record (was it deleted?)" in problems
    assert any(
        p.startswith("ledger/releases.jsonl:2: the line committed at tag v2 is gone") for p in problems
    )


@pytest.mark.parametrize("commit", [False, True], ids=["uncommitted", "committed"])
def test_a_deleted_retraction_stops_the_pipeline_reader_and_verify(base: Path, commit: bool) -> None:
    """A committed tombstone deleted (and the deletion committed): the source must not quietly come back."""
    repo = base / "repo"
    path = _committed_retractions(repo, "alpha", "beta")
    _rewrite(path, path.read_text().splitlines(keepends=True)[:1])
    if commit:
        sh(repo, "git", "commit", "-qam", "forget beta")
    with pytest.raises(
        LedgerError, match=r"^ledger/retractions.jsonl:2: the line committed at commit \w+ is gone"
    ):
        read_records(path, Retraction, repo)
    assert any(p.startswith("ledger/retractions.jsonl:2: ") for p in verify(repo).problems)


def test_reordered_retractions_fail_naming_the_line(base: Path) -> None:
    repo = base / "repo"
    path = _committed_retractions(repo, "alpha", "beta")
    first, second = path.read_text().splitlines(keepends=True)
    _rewrite(path, [second, first])
    with pytest.raises(LedgerError, match=r"^ledger/retractions.jsonl:1: "):
        read_records(path, Retraction, repo)
    assert verify(repo).problems[0].startswith("ledger/retractions.jsonl:1: ")


def test_a_consistent_forgery_is_caught_by_the_tags(base: Path) -> None:
    """v1 edited, its hash recomputed, v2's parent and hash too: every line and link checks out."""
    repo = base / "repo"
    path = repo / "ledger/releases.jsonl"
    v1, v2 = (json.loads(line) for line in path.read_text().splitlines())
    v1 = _reseal({**v1, "message": "a better story"})
    v2 = _reseal({**v2, "parent": v1["hash"]})
    _rewrite(path, [canonical_json(v1) + "\n", canonical_json(v2) + "\n"])
    sh(repo, "git", "commit", "-qam", "history, improved")
    assert [r.message for r in read_records(path, Release, repo, history=False)] == ["a better story", ""]
    problems = verify(repo).problems
    assert problems[0] == (
        "ledger/releases.jsonl:1: the line committed at tag v1 was rewritten or moved; committed ledger lines"
        " are never changed or deleted (restore the file from git)"
    )
    assert "ledger/releases.jsonl: git tag v1 is not on the commit that recorded v1" in problems[-2]


def test_a_moved_tag_is_named_with_both_commits_and_the_command_that_fixes_it(base: Path) -> None:
    repo = base / "repo"
    recorded = sh(repo, "git", "rev-parse", "v1^{commit}").strip()
    elsewhere = sh(repo, "git", "rev-parse", "v2^{commit}").strip()
    sh(repo, "git", "tag", "-f", "-a", "v1", "-m", "moved", elsewhere)
    (problem,) = verify(repo).problems
    assert problem == (
        f"ledger/releases.jsonl: git tag v1 names commit {elsewhere[:12]}, but v1 was recorded by commit"
        f" {recorded[:12]}: move it back with `git tag -f -a v1 -m v1 {recorded}`"
        " (and `git push -f origin v1` where it was pushed)"
    )
    sh(repo, "git", "tag", "-f", "-a", "v1", "-m", "v1", recorded)
    assert verify(repo).ok


def test_a_tag_without_a_record_fails_verify(base: Path) -> None:
    sh(base / "repo", "git", "tag", "-a", "v3", "-m", "v3")
    assert verify(base / "repo").problems == [
        "ledger/releases.jsonl: git tag v3 has no release record (was it deleted?)"
    ]


def test_an_older_checkout_is_not_tampering(base: Path) -> None:
    """HEAD at v1 (to reproduce it): v2 lies ahead, not missing."""
    repo = base / "repo"
    sh(repo, "git", "checkout", "-q", "v1")
    assert [r.tag for r in Ledger(repo).releases()] == ["v1"]
    report = verify(repo)
    assert report.ok, report.problems


# --- the remote alone ------------------------------------------------------------------------------------


def test_verify_remote_ignores_the_local_cache(base: Path) -> None:
    gone = entry(base, 1, "a1" * 8)
    remote_object(base, gone.shard_md5).unlink()
    assert verify(base / "repo").ok  # the local cache has it
    problems = verify(base / "repo", remote=True).problems
    shard = f"shard alpha/{gone.task_id}.parquet (task {gone.task_id}, md5 {gone.shard_md5})"
    assert problems == [f"ledger/manifests/v1.jsonl: {shard} is not in the DVC remote 'store'"]


def test_verify_names_a_corpus_listing_missing_from_the_remote(base: Path) -> None:
    listing = corpus_md5(base / "repo")
    remote_object(base, listing).unlink()
    assert verify(base / "repo").ok
    assert verify(base / "repo", remote=True).problems == [
        f"ledger/manifests/v2.jsonl: the corpus listing {listing} of v2 is not in the DVC remote 'store'"
    ]


def test_ensure_on_remote_pushes_what_the_remote_lacks(base: Path) -> None:
    from dynosaur.registry.vcs import ensure_on_remote

    repo = base / "repo"
    wanted = [e.shard_md5 for e in Ledger(repo).read_manifest(Ledger(repo).release(2))] + [corpus_md5(repo)]
    assert ensure_on_remote(repo, wanted) == []
    for oid in wanted[:2] + wanted[-1:]:
        remote_object(base, oid).unlink()
    assert ensure_on_remote(repo, wanted) == [
        "pushed 3 objects that DVC's push had left off the remote 'store'"
    ]
    assert all(remote_object(base, oid).exists() for oid in wanted)
    assert verify(repo, remote=True).ok
    cache_object(repo, wanted[0]).unlink()
    remote_object(base, wanted[0]).unlink()
    with pytest.raises(DynoError, match="on neither the DVC remote 'store' nor in the local cache"):
        ensure_on_remote(repo, wanted)


# --- diff churn from the shards ---------------------------------------------------------------------------


def test_diff_counts_churn_from_instance_ids_locally_and_from_a_clone(base: Path) -> None:
    """Task a1 re-made with 6 new instances in place of its 5: +6 −5, not a net +1."""
    from dynosaur.registry.releases import diff

    repo = base / "repo"
    cut(repo, 3, {**V2, "alpha": {**V2["alpha"], "a1" * 8: 6}}, first_ids={"a1" * 8: 100})
    for where in (repo, clone(base)):  # the local DVC cache, then the remote
        report = diff(where, "v2", "v3")
        [task] = report.tasks
        assert (task.task_id, task.change, task.instances_added, task.instances_removed) == (
            "a1" * 8,
            "changed",
            6,
            5,
        )
        assert (report.totals.instances_added, report.totals.instances_removed) == (
            6,
            5,
        ) and report.churn_from_ids
    assert len(diff(repo, "v2", "v3", instances=True).instances["a1" * 8].added) == 6
