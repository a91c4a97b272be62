"""`dyno publish` and `dyno pull` at their edges, in process against the Hub test server: shards checked
before upload, one line for an unreachable or malformed Hub, one line for an --out that cannot be made."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dynosaur.cli.main import main
from dynosaur.core.errors import DynoError
from dynosaur.registry.hub import check_shards, publish
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.pull import pull_release
from dynosaur.testing.hub_server import HubServer
from tests.hub_fixtures import point_clients_at
from tests.registry.dvc_repo import CORPUS, cache_object, entry, overwrite

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
