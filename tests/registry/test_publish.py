"""`dyno publish` and `dyno pull` at their edges, in process against the Hub test server: shards checked
before upload, one line for an unreachable or malformed Hub, one line for an --out that cannot be made."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dynosaur.cli.main import main
from dynosaur.core.errors import DynoError, PublishConflict
from dynosaur.core.records import SourceVersion, Totals
from dynosaur.registry.card import dataset_card, default_pretty_name
from dynosaur.registry.hub import check_shards, publish, source_languages
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.pull import pull_release
from dynosaur.testing.hub_server import HubServer
from tests.factories import make_entry, make_release, make_source_version
from tests.hub_fixtures import point_clients_at
from tests.registry.dvc_repo import CORPUS, V1, cache_object, entry, overwrite

REPO = "tester/corpus"


def tagged(hub: HubServer, tag: str) -> bool:
    try:
        return hub.head(REPO, tag) is not None
    except KeyError:  # the repo was never created
        return False


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run `dyno` in process: it must exit 1 with exactly one `Error:` line on stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1 and len(err) == 1 and err[0].startswith("Error: "), err
    return err[0]


def _stdout(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run `dyno` in process; it must succeed. Its stdout."""
    try:
        main([*argv])
    except SystemExit as exit_:
        assert exit_.code in (0, None), capsys.readouterr().err
    return capsys.readouterr().out


def test_publish_then_publish_again_is_a_no_op(base: Path, hub_server: HubServer):
    out = publish(base / "repo", "v1", REPO)
    assert out.tag == "v1" and hub_server.head(REPO, "v1") == out.commit and out.uploaded == 3
    assert "already" in publish(base / "repo", "v1", REPO).message


def test_publish_refuses_a_shard_that_is_not_the_released_file(base: Path, hub_server: HubServer):
    """The DVC cache object of a shard replaced (another shard's bytes): nothing is uploaded."""
    bad, other = entry(base, 1, "a1" * 8), entry(base, 1, "b1" * 8)
    repo = base / "repo"
    overwrite(cache_object(repo, bad.shard_md5), cache_object(repo, other.shard_md5).read_bytes())
    with pytest.raises(DynoError) as err:
        publish(repo, "v1", REPO)
    message = str(err.value)
    assert message.startswith(f"publish v1: shard alpha/{bad.task_id}.parquet (task {bad.task_id}")
    assert f"but ledger/manifests/v1.jsonl records {bad.shard_sha256}" in message and "\n" not in message
    assert not tagged(hub_server, "v1")
    assert not [p for p in hub_server.list_files(REPO) if p.endswith(".parquet")]


def test_shards_without_a_file_hash_are_checked_by_their_rows(base: Path):
    repo = base / "repo"
    release = Ledger(repo).release(1)
    good, bad = entry(base, 1, "a1" * 8), entry(base, 1, "a2" * 8)
    files = {e.shard: cache_object(repo, e.shard_md5) for e in (good, bad)}
    files[bad.shard] = files[good.shard]
    old_style = [e.model_copy(update={"shard_sha256": None}) for e in (good, bad)]
    with pytest.raises(
        DynoError, match=f"shard alpha/{bad.task_id}.parquet .* holds|is not the released file"
    ):
        check_shards(release, old_style, files)
    check_shards(release, old_style[:1], files)


def test_publish_to_an_unreachable_hub_is_one_line(
    base: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_clients_at(monkeypatch, f"http://127.0.0.1:{port}")
    monkeypatch.chdir(base / "repo")
    line = one_error_line(capsys, ["publish", "v1", "--repo", REPO])
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in line


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", r"/api/repos/create", b"{}"),  # KeyError: 'url' in the client
        ("GET", r"/refs", b"[1, 2]"),
        ("POST", r"/commit/main", b'{"nothing": "useful"}'),
        ("POST", r"/api/repos/create", b"<html>not json</html>"),
    ],
    ids=["create-no-url", "refs-not-an-object", "commit-no-oid", "create-not-json"],
)
def test_publish_against_a_hub_answering_malformed_bodies_is_one_line(
    base: Path,
    hub_server: HubServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    method: str,
    path: str,
    body: bytes,
):
    rule = hub_server.fail_next(method, path, status=200, body=body)
    monkeypatch.chdir(base / "repo")
    line = one_error_line(capsys, ["publish", "v1", "--repo", REPO])
    assert rule.hits == 1 and "malformed response" in line and "hf_test_dummy_token" not in line
    assert not tagged(hub_server, "v1")


@pytest.mark.parametrize("where", ["under-a-file", "under-proc"])
def test_pull_onto_a_path_that_cannot_be_made_is_one_line(
    base: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
):
    repo = base / "repo"
    (base / "a-file").write_text("x")
    out = base / "a-file" / "v1" if where == "under-a-file" else Path("/proc/dyno-test/v1")
    with pytest.raises(DynoError, match=r"^pull v1: cannot create "):
        pull_release(repo, "v1", out, corpus_path=CORPUS)
    stages = {
        "collect": "--out c",
        "generate": "--out g --cache k",
        "filter": "--out t",
        "organize": f"--out {CORPUS}",
    }
    (repo / "dvc.yaml").write_text(  # what `dyno` reads the corpus path from
        "stages:\n" + "".join(f"  {name}:\n    cmd: python -m x {args}\n" for name, args in stages.items())
    )
    monkeypatch.chdir(repo)
    assert f"cannot create {out}" in one_error_line(capsys, ["pull", "v1", "--out", str(out)])


# --- publishing after others pushed -----------------------------------------------------------------------


def commit_message(hub: HubServer, revision: str) -> str:
    return subprocess.run(
        ["git", "log", "-1", "--format=%B", revision],
        cwd=hub.repo(REPO).path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_a_foreign_push_on_other_paths_is_kept(base: Path, hub_server: HubServer):
    repo = base / "repo"
    v1 = publish(repo, "v1", REPO).commit
    theirs = hub_server.commit(REPO, {"notes.txt": b"a colleague's notes\n"})
    out = publish(repo, "v2", REPO)
    assert out.parent == theirs and out.others == ["notes.txt"] and out.replaced == []
    assert "notes.txt" in hub_server.list_files(REPO, "v2") and hub_server.head(REPO, "v1") == v1
    assert out.uploaded == 1 and out.reused == 3  # v2 adds one shard to v1's three


def test_a_foreign_change_that_was_reverted_is_no_change(base: Path, hub_server: HubServer):
    repo = base / "repo"
    publish(repo, "v1", REPO)
    hub_server.commit(REPO, {"notes.txt": b"oops\n"})
    hub_server.commit(REPO, delete=["notes.txt"])
    out = publish(repo, "v2", REPO)
    assert out.others == [] and hub_server.head(REPO, "v2") == out.commit


def test_a_colliding_foreign_push_is_refused_named_then_forced(
    base: Path, hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    repo = base / "repo"
    v1 = publish(repo, "v1", REPO).commit
    shard = f"data/{entry(base, 1, 'a1' * 8).shard}"
    card = hub_server.read_file(REPO, "README.md") + b"\nEdited in the web UI.\n"
    theirs = hub_server.commit(REPO, {"README.md": card, shard: b"not a shard", "notes.txt": b"mine\n"})

    with pytest.raises(PublishConflict) as err:
        publish(repo, "v2", REPO)
    assert f"others changed README.md, {shard}, which publishing v2 would overwrite" in str(err.value)
    assert hub_server.head(REPO) == theirs and hub_server.head(REPO, "v2") is None

    monkeypatch.chdir(repo)
    plan = json.loads(_stdout(capsys, ["publish", "v2", "--repo", REPO, "--dry-run", "--json"]))
    assert plan["dry_run"] and plan["commit"] is None and plan["parent"] == theirs
    assert plan["replaced"] == ["README.md", shard] and plan["others"] == ["README.md", shard, "notes.txt"]
    assert plan["message"].startswith("would refuse: ") and "--force" in plan["message"]
    forced = json.loads(_stdout(capsys, ["publish", "v2", "--repo", REPO, "--dry-run", "--force", "--json"]))
    assert forced["message"] == "would publish v2 to tester/corpus"
    assert {"CHANGELOG.md", "README.md", "manifest.jsonl", shard} <= set(forced["uploads"])
    assert hub_server.head(REPO) == theirs  # a dry run changes nothing

    out = publish(repo, "v2", REPO, force=True)
    assert out.replaced == ["README.md", shard] and hub_server.head(REPO, "v1") == v1
    assert f"Replaces changes made by others to: README.md, {shard} (--force)" in commit_message(
        hub_server, "v2"
    )
    assert (
        hub_server.read_file(REPO, shard, revision="v2")
        == cache_object(repo, entry(base, 1, "a1" * 8).shard_md5).read_bytes()
    )
    assert "notes.txt" in hub_server.list_files(REPO, "v2")


def test_uploads_are_named_by_shard_path(base: Path, hub_server: HubServer, monkeypatch: pytest.MonkeyPatch):
    """What the progress bars show is the local file's name: the shard's, not its DVC md5."""
    from huggingface_hub import HfApi

    sent: list[str] = []
    original = HfApi.create_commit

    def spy(self, repo_id, operations, **kwargs):
        sent.extend(str(op.path_or_fileobj) for op in operations if isinstance(op.path_or_fileobj, str))
        return original(self, repo_id, operations, **kwargs)

    monkeypatch.setattr(HfApi, "create_commit", spy)
    publish(base / "repo", "v1", REPO)
    assert sorted(Path(p).name for p in sent) == sorted(f"{t}.parquet" for s in V1 for t in V1[s])
    assert all(p.endswith(f"data/{s}/{Path(p).name}") for p in sent for s in [Path(p).parent.name])


# --- the card ---------------------------------------------------------------------------------------------


def test_the_card_lists_only_the_versions_the_repo_holds(base: Path, hub_server: HubServer):
    publish(base / "repo", "v2", "tester/only-v2")  # v1 never went there
    card = hub_server.read_file("tester/only-v2", "README.md", revision="v2").decode()
    assert "loadable by its tag (v2)" in card and "v1" not in card.split("## Load a version")[1]
    publish(base / "repo", "v1", REPO)
    publish(base / "repo", "v2", REPO)
    assert "loadable by its tag (v1, v2)" in hub_server.read_file(REPO, "README.md", revision="v2").decode()


@pytest.mark.parametrize(
    "repo_id, pretty",
    [("tester/dynosaur-corpus", "Dynosaur corpus"), ("tester/my_instructions", "My instructions (Dynosaur)")],
)
def test_the_default_pretty_name_never_repeats_itself(repo_id: str, pretty: str):
    assert default_pretty_name(repo_id) == pretty


def test_a_card_with_mixed_licences_lists_them_as_the_hub_accepts(hub_server: HubServer):
    from huggingface_hub import DatasetCard

    from dynosaur.core.licenses import HUB_LICENSES

    entries = [
        make_entry("1" * 16, source_id="a", license="mit"),
        make_entry("2" * 16, source_id="b", license="BSD-3-Clause"),
        make_entry("3" * 16, source_id="c", license="cc-by-4.0"),
        make_entry("4" * 16, source_id="d", license="my-own-licence"),
    ]
    release = make_release(1, totals=Totals(sources=4, tasks=4, instances=40)).sealed()
    text = dataset_card("tester/dynosaur-corpus", release, entries, [], ["v1"], languages=["en", "fr", "en"])
    card = DatasetCard(text)
    card.validate(repo_type="dataset")  # huggingface_hub's check, answered by the Hub test server
    meta = card.data.to_dict()
    assert meta["license"] == ["bsd-3-clause", "cc-by-4.0", "mit", "other"]
    assert set(meta["license"]) <= HUB_LICENSES
    assert meta["license_name"] == "my-own-licence" and meta["license_link"] == "README.md#licences"
    assert meta["pretty_name"] == "Dynosaur corpus" and meta["language"] == ["en", "fr"]
    assert "corpus corpus" not in text.lower()
    one = dataset_card("tester/x", release, entries[:1], [], ["v1"], pretty_name="My corpus")
    assert (
        DatasetCard(one).data.to_dict()["license"] == "mit"
        and "language" not in DatasetCard(one).data.to_dict()
    )
    assert DatasetCard(one).data.pretty_name == "My corpus"


def test_languages_are_those_of_the_released_source_versions():
    sources = [
        make_source_version(source_id="alpha", revision="r1", languages=["de", "en"]),
        make_source_version(source_id="beta", revision="r1", languages=["fr", "en"]),
        make_source_version(source_id="alpha", revision="r0", languages=["es"]),  # not the released revision
        make_source_version(source_id="gamma", revision="r1"),  # released before languages were kept
    ]
    entries = [
        make_entry(c * 16, source_id=s, source_revision="r1")
        for c, s in (("1", "alpha"), ("2", "beta"), ("3", "gamma"))
    ]
    assert source_languages(sources, entries) == ["de", "en", "fr"]


def test_publish_dry_run_never_sends_the_token_in_clear(
    base: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """HF_ENDPOINT over plain http to a host that is not loopback: refused before any connection; with
    `hub.allow_insecure_http: true` in params.yaml it goes ahead (issue 21 F5)."""
    attempts: list = []

    def connect(self, address):
        attempts.append(address)
        raise ConnectionRefusedError(111, "refused by the test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    point_clients_at(monkeypatch, "http://192.0.2.10:8080")
    monkeypatch.chdir(base / "repo")
    with pytest.raises(SystemExit) as exit_:
        main(["publish", "v1", "--repo", REPO, "--dry-run"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert "the Hugging Face token would go in clear" in err and "hf_test_dummy_token" not in err
    assert attempts == []
    (base / "repo" / "params.yaml").write_text("hub:\n  allow_insecure_http: true\n")
    line = one_error_line(capsys, ["publish", "v1", "--repo", REPO, "--dry-run"])
    assert "cannot reach the Hub" in line and attempts


# --- kills and lost answers (issue 21): one commit and one tag per release, whatever happens -------------


def release_commits(tag: str) -> list[str]:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        commits = HfApi().list_repo_commits(REPO, repo_type="dataset")
    except RepositoryNotFoundError:
        return []
    return [c.commit_id for c in commits if c.title.startswith(f"{tag}:")]


def assert_published_once(hub: HubServer, base: Path, tag: str = "v1") -> None:
    """Exactly one commit and one tag for the release, and the Hub's data at the tag is the release."""
    import datasets

    (commit,) = release_commits(tag)
    assert hub.head(REPO, tag) == commit
    release = Ledger(base / "repo").release(tag)
    rows = datasets.load_dataset(REPO, revision=tag, split="train")
    assert len(rows) == release.totals.instances
    assert sorted(rows["instance_id"]) == sorted(
        i for e in Ledger(base / "repo").read_manifest(release) for i in _ids(base, e)
    )


def _ids(base: Path, e) -> list[str]:
    import pyarrow.parquet as pq

    return (
        pq.read_table(cache_object(base / "repo", e.shard_md5), columns=["instance_id"]).column(0).to_pylist()
    )


KILL_AT = {  # step → the client call after which the publish process is killed
    "upload": "preupload_lfs_files",  # shards sent to LFS, no commit yet
    "commit": "create_commit",  # the commit is on the Hub, not tagged
    "tag": "create_tag",  # tagged, before publish returns
}


@pytest.mark.parametrize("step", list(KILL_AT))
def test_a_publish_killed_at_any_step_is_finished_by_the_next(base: Path, hub_server: HubServer, step: str):
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from huggingface_hub import HfApi\n"
        "from dynosaur.registry.hub import publish\n"
        f"real = getattr(HfApi, {KILL_AT[step]!r})\n"
        "def killed(self, *args, **kwargs):\n"
        "    real(self, *args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"setattr(HfApi, {KILL_AT[step]!r}, killed)\n"
        f"publish(Path('.').resolve(), 'v1', {REPO!r})\n"
    )
    tmp = base / "tmp"  # the killed process's temporary folder
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=base / "repo", env=env, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(release_commits("v1")) == (0 if step == "upload" else 1)
    again = publish(base / "repo", "v1", REPO)
    expected = {"upload": "published v1", "commit": "tagged v1", "tag": "v1 is already on"}[step]
    assert again.message.startswith(expected), again.message
    assert_published_once(hub_server, base)
    # The killed publish's staged shards (links, or a whole pulled release) are gone after the next one,
    # not left behind in the temporary folder or the project.
    assert list(tmp.iterdir()) == []
    assert list((base / "repo" / ".dvc" / "tmp").glob("dyno-publish*")) == []


@pytest.mark.parametrize("fault", ["500", "hang-up"])
@pytest.mark.parametrize("pushed_after", [False, True], ids=["alone", "then-a-foreign-push"])
def test_a_commit_applied_whose_answer_is_lost_is_tagged_not_made_again(
    base: Path, hub_server: HubServer, fault: str, pushed_after: bool
):
    """The Hub applies the commit, then answers 500 or never answers (a timeout): the retry finds that
    commit among those since the last tag (even under someone else's push) and tags it."""
    rule = hub_server.fail_next("POST", r"/commit/main$", status=500, after=True, hang_up=fault == "hang-up")
    with pytest.raises(DynoError) as err:
        publish(base / "repo", "v1", REPO)
    assert rule.hits == 1 and "\n" not in str(err.value)
    (applied,) = release_commits("v1")
    if pushed_after:
        hub_server.commit(REPO, {"NOTES.md": b"someone else's notes\n"})
        assert hub_server.head(REPO) != applied
    again = publish(base / "repo", "v1", REPO)
    assert again.message.startswith("tagged v1") and again.commit == applied
    assert_published_once(hub_server, base)
    assert "already" in publish(base / "repo", "v1", REPO).message


def test_publish_holds_a_lock_per_hub_repo(
    base: Path, hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
):
    from dynosaur.core.errors import LockHeld
    from dynosaur.registry.hub import publish_lock_name
    from dynosaur.registry.lock import registry_lock

    monkeypatch.setenv("DYNO_LOCK_WAIT_S", "0.2")
    with registry_lock(base / "repo", "publish elsewhere", name=publish_lock_name(REPO)):
        with pytest.raises(LockHeld, match="holds the lock"):
            publish(base / "repo", "v1", REPO)
        other = publish(base / "repo", "v1", "tester/another-corpus")  # another repo: not blocked
    assert other.tag == "v1" and release_commits("v1") == []
    publish(base / "repo", "v1", REPO)
    assert_published_once(hub_server, base)


def test_a_head_that_moves_while_publishing_is_said_before_committing(
    base: Path, hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
):
    """Someone pushes while v2's shards are read and checked: publish re-reads the head before committing and
    says so, and nothing is committed (`parent_commit` would refuse it anyway, with a 412)."""
    from huggingface_hub import HfApi

    import dynosaur.registry.hub as hub_module

    publish(base / "repo", "v1", REPO)
    real_files, commits = hub_module._files, []

    def files_then_a_push(api, repo_id, revision):
        if revision is not None and not commits:
            commits.append(hub_server.commit(REPO, {"NOTES.md": b"pushed meanwhile\n"}))
        return real_files(api, repo_id, revision)

    monkeypatch.setattr(hub_module, "_files", files_then_a_push)
    monkeypatch.setattr(HfApi, "create_commit", lambda *a, **k: pytest.fail("committed on a moved head"))
    with pytest.raises(
        DynoError, match=r"head moved from \w+ to \w+ while v2 was being prepared; nothing was"
    ):
        publish(base / "repo", "v2", REPO)
    assert hub_server.head(REPO, "v2") is None


def test_publish_reads_the_sources_languages_from_the_ledger_not_their_cards(
    base: Path, hub_server: HubServer
):
    """collect read each source's card; release keeps its `language` list in the SourceVersion record, and
    publish takes it from there: it downloads no source's card (issue 23 §7)."""
    from huggingface_hub import DatasetCard

    repo = base / "repo"
    (repo / "hosted").mkdir()
    (repo / "hosted/README.md").write_text("---\nlanguage: fr\n---\n\nAlpha.\n")
    sha = hub_server.host_folder("demo/alpha", repo / "hosted")
    Ledger(repo).append(
        SourceVersion,
        [
            make_source_version(
                source_id="alpha", origin="hub:demo/alpha", revision="rev1", languages=["en", "de"]
            ),
            make_source_version(
                source_id="beta", origin="local:data/sources/beta", revision="rev1"
            ),  # old: none
        ],
    )
    assert sha  # the card is there to fetch: publish must not
    publish(repo, "v1", REPO)
    assert not hub_server.calls(path_regex=r"/demo/alpha/")
    card = DatasetCard(hub_server.read_file(REPO, "README.md", revision="v1").decode())
    assert card.data.language == ["de", "en"]
