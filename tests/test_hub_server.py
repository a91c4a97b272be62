"""The fake Hub (src/dynosaur/testing/hub_server/) against the real huggingface_hub and datasets clients."""

from __future__ import annotations

import http.client
import io
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from dynosaur.testing.hub_server import HubServer

REPO = "tester/corpus"
README = b"""---
license: cc-by-4.0
pretty_name: Test corpus
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
---
# Test corpus
"""
ROWS_0 = [{"instruction": "add", "n": 1}, {"instruction": "sub", "n": 2}]
ROWS_1 = [{"instruction": "mul", "n": 3}]


def parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def publish(api: HfApi, repo: str = REPO) -> str:
    """create_repo + one commit with a README card and two parquet shards; returns the commit sha."""
    api.create_repo(repo, repo_type="dataset")
    ops = [
        CommitOperationAdd("README.md", README),
        CommitOperationAdd("data/train-00000-of-00002.parquet", parquet(ROWS_0)),
        CommitOperationAdd("data/train-00001-of-00002.parquet", parquet(ROWS_1)),
    ]
    return api.create_commit(repo, ops, commit_message="Publish v1", repo_type="dataset").oid


def assert_clean(server: HubServer) -> None:
    assert server.unhandled == []
    assert server.errors == []


@pytest.mark.parametrize("lfs_mode", ["auto", "never"])
def test_publish_tag_and_read_back_with_real_clients(hub_server: HubServer, lfs_mode: str) -> None:
    hub_server.lfs_mode = lfs_mode
    api = HfApi()
    sha = publish(api)
    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    assert hub_server.head(REPO) == sha
    # exist_ok: the 409 answer is accepted
    assert api.create_repo(REPO, repo_type="dataset", exist_ok=True).repo_id == REPO
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(REPO, repo_type="dataset")
    assert exc.value.response.status_code == 409

    api.create_tag(REPO, tag="v1", revision=sha, repo_type="dataset", tag_message="release v1")
    info = api.dataset_info(REPO, revision="v1")
    assert info.sha == sha
    assert info.card_data["license"] == "cc-by-4.0"
    assert info.last_modified is not None
    assert sorted(s.rfilename for s in info.siblings) == [
        ".gitattributes",
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    ]
    refs = api.list_repo_refs(REPO, repo_type="dataset")
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", sha)]
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", sha)]

    shard = hf_hub_download(REPO, "data/train-00000-of-00002.parquet", repo_type="dataset", revision="v1")
    assert Path(shard).read_bytes() == parquet(ROWS_0)
    assert Path(hf_hub_download(REPO, "README.md", repo_type="dataset", revision="v1")).read_bytes() == README
    folder = Path(snapshot_download(REPO, repo_type="dataset", revision="v1"))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        ".gitattributes",
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    ]
    assert folder.name == sha
    assert "README.md" in api.list_repo_files(REPO, repo_type="dataset", revision="v1")

    lfs = {
        f.path: f.lfs
        for f in api.list_repo_tree(REPO, repo_type="dataset", revision="v1", recursive=True)
        if hasattr(f, "lfs")
    }
    if lfs_mode == "auto":  # parquet is binary: LFS, as on the Hub; README stays a regular git file
        assert lfs["data/train-00001-of-00002.parquet"].size == len(parquet(ROWS_1))
        assert lfs["README.md"] is None
        assert hub_server.calls("POST", r"\.git/info/lfs/objects/batch$")
    else:
        assert all(v is None for v in lfs.values())
        assert not hub_server.calls("POST", r"\.git/info/lfs/objects/batch$")

    rows = ROWS_0 + ROWS_1
    ds = datasets.load_dataset(REPO, revision="v1")
    assert ds["train"].to_list() == rows
    streamed = datasets.load_dataset(REPO, revision="v1", streaming=True)
    assert list(streamed["train"]) == rows
    assert_clean(hub_server)


def test_parent_commit_must_be_the_branch_head(hub_server: HubServer) -> None:
    api = HfApi()
    first = publish(api)
    second = api.create_commit(
        REPO,
        [CommitOperationAdd("notes.txt", b"second")],
        commit_message="second",
        repo_type="dataset",
        parent_commit=first,
    ).oid
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(
            REPO,
            [CommitOperationAdd("notes.txt", b"stale")],
            commit_message="stale",
            repo_type="dataset",
            parent_commit=first,
        )
    assert exc.value.response.status_code == 412
    assert "A commit has happened since" in str(exc.value)
    assert hub_server.head(REPO) == second
    assert hub_server.read_file(REPO, "notes.txt") == b"second"
    assert_clean(hub_server)


def test_concurrent_commits_on_the_same_parent_one_wins(hub_server: HubServer) -> None:
    api = HfApi()
    base = publish(api)
    results: list[object] = []

    def attempt(i: int) -> None:
        try:
            results.append(
                api.create_commit(
                    REPO,
                    [CommitOperationAdd(f"f{i}.txt", b"x")],
                    commit_message=f"c{i}",
                    repo_type="dataset",
                    parent_commit=base,
                ).oid
            )
        except HfHubHTTPError as err:
            results.append(err.response.status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1 and sorted(r for r in results if not isinstance(r, str)) == [412, 412, 412]
    assert hub_server.head(REPO) == winners[0]
    assert_clean(hub_server)


def test_delete_removes_at_the_new_revision_only(hub_server: HubServer) -> None:
    api = HfApi()
    sha = publish(api)
    api.create_tag(REPO, tag="v1", revision=sha, repo_type="dataset")
    new = api.create_commit(
        REPO,
        [CommitOperationDelete("data/train-00001-of-00002.parquet")],
        commit_message="drop a shard",
        repo_type="dataset",
    ).oid
    assert "data/train-00001-of-00002.parquet" not in api.list_repo_files(REPO, repo_type="dataset")
    assert "data/train-00001-of-00002.parquet" in api.list_repo_files(
        REPO, repo_type="dataset", revision="v1"
    )
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "data/train-00001-of-00002.parquet", repo_type="dataset", revision=new)
    assert datasets.load_dataset(REPO, revision=new)["train"].to_list() == ROWS_0
    # folder deletion, and deleting what is not there
    api.create_commit(REPO, [CommitOperationDelete("data/")], commit_message="drop data", repo_type="dataset")
    assert hub_server.list_files(REPO) == [".gitattributes", "README.md"]
    with pytest.raises(RemoteEntryNotFoundError):
        api.create_commit(REPO, [CommitOperationDelete("nope.txt")], commit_message="x", repo_type="dataset")
    assert hub_server.list_files(REPO, "v1")[-1] == "data/train-00001-of-00002.parquet"
    assert_clean(hub_server)


def test_other_users_namespace_is_read_only(hub_server: HubServer) -> None:
    hub_server.create_repo("someone-else/data")
    theirs = hub_server.commit("someone-else/data", {"a.txt": "theirs"})
    api = HfApi()
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(
            "someone-else/data",
            [CommitOperationAdd("b.txt", b"mine")],
            commit_message="x",
            repo_type="dataset",
        )
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("someone-else/new", repo_type="dataset")
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_tag("someone-else/data", tag="v1", repo_type="dataset")
    assert exc.value.response.status_code == 403
    assert hub_server.head("someone-else/data") == theirs
    assert api.dataset_info("someone-else/data").sha == theirs  # public: readable
    # the user's org is writable; grant() adds a namespace
    api.create_repo("tester-org/shared", repo_type="dataset")
    hub_server.grant("someone-else")
    api.create_commit(
        "someone-else/data", [CommitOperationAdd("b.txt", b"mine")], commit_message="x", repo_type="dataset"
    )
    assert api.whoami()["name"] == "tester"
    assert_clean(hub_server)


def test_injected_500_on_commit_commits_nothing(hub_server: HubServer) -> None:
    api = HfApi()
    sha = publish(api)
    rule = hub_server.fail_next("POST", r"/api/datasets/tester/corpus/commit/", status=500)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(REPO, [CommitOperationAdd("x.txt", b"x")], commit_message="x", repo_type="dataset")
    assert exc.value.response.status_code == 500
    assert rule.hits == 1
    assert hub_server.head(REPO) == sha
    assert "x.txt" not in hub_server.list_files(REPO)
    # after=True: the commit lands but the answer is lost
    hub_server.fail_next("POST", r"/commit/main$", status=504, after=True)
    with pytest.raises(HfHubHTTPError):
        api.create_commit(
            REPO,
            [CommitOperationAdd("y.txt", b"y")],
            commit_message="y",
            repo_type="dataset",
            parent_commit=sha,
        )
    assert hub_server.head(REPO) != sha and "y.txt" in hub_server.list_files(REPO)
    assert_clean(hub_server)


def test_injected_503_on_a_retried_call_is_absorbed(hub_server: HubServer) -> None:
    api = HfApi()
    publish(api)
    rule = hub_server.fail_next("POST", r"/preupload/", status=503)  # preupload goes through http_backoff
    api.create_commit(REPO, [CommitOperationAdd("z.txt", b"z")], commit_message="z", repo_type="dataset")
    assert rule.hits == 1 and "z.txt" in hub_server.list_files(REPO)


def test_missing_things_raise_the_client_errors(hub_server: HubServer) -> None:
    api = HfApi()
    publish(api)
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("tester/nope")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/nope", "README.md", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(REPO, revision="v9")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "README.md", repo_type="dataset", revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "missing.txt", repo_type="dataset")
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree(REPO, path_in_repo="nowhere", repo_type="dataset"))
    assert api.get_paths_info(REPO, ["README.md", "missing.txt"], repo_type="dataset")[0].path == "README.md"
    assert_clean(hub_server)


def test_host_folder_branches_and_history(hub_server: HubServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "README.md").write_bytes(README)
    (src / "data" / "train-00000-of-00001.parquet").write_bytes(parquet(ROWS_1))
    sha = hub_server.host_folder("tester/hosted", src, tag="v0")
    api = HfApi()
    assert api.dataset_info("tester/hosted", revision="v0").sha == sha
    paths = {
        p.path: p
        for p in api.get_paths_info(
            "tester/hosted", ["data/train-00000-of-00001.parquet"], repo_type="dataset", revision="v0"
        )
    }
    assert paths["data/train-00000-of-00001.parquet"].lfs is not None
    assert datasets.load_dataset("tester/hosted", revision=sha)["train"].to_list() == ROWS_1
    api.create_branch("tester/hosted", branch="dev", revision="v0", repo_type="dataset")
    dev = api.create_commit(
        "tester/hosted",
        [CommitOperationAdd("dev.txt", b"dev")],
        commit_message="on dev",
        repo_type="dataset",
        revision="dev",
    ).oid
    assert hub_server.head("tester/hosted", "dev") == dev and hub_server.head("tester/hosted") == sha
    commits = api.list_repo_commits("tester/hosted", repo_type="dataset", revision="dev")
    assert [c.title for c in commits] == ["on dev", "Upload folder", "initial commit"]
    assert_clean(hub_server)


def test_http_details_ranges_auth_and_keep_alive(hub_server: HubServer) -> None:
    hub_server.create_repo(REPO)
    hub_server.commit(REPO, {"a.txt": b"0123456789"}, lfs=False)
    conn = http.client.HTTPConnection("127.0.0.1", hub_server.port, timeout=5)
    path = f"/datasets/{REPO}/resolve/main/a.txt"

    def call(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
        conn.request(method, url, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()

    resp, body = call("HEAD", path)
    assert resp.status == 200 and body == b"" and resp.getheader("Content-Length") == "10"
    assert resp.getheader("X-Repo-Commit") == hub_server.head(REPO)
    resp, body = call("GET", path, headers={"Range": "bytes=2-4"})
    assert (resp.status, body, resp.getheader("Content-Range")) == (206, b"234", "bytes 2-4/10")
    resp, body = call("GET", path, headers={"Range": "bytes=-3"})
    assert body == b"789"
    resp, _ = call("GET", path, headers={"Range": "bytes=20-"})
    assert resp.status == 416
    # a POST with a body to an unknown route: 404, logged, and the connection stays usable
    resp, body = call(
        "POST", "/api/not-a-route", body=b'{"x": 1}' * 1000, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 404 and "not-a-route" in json.loads(body)["error"]
    resp, body = call("GET", "/api/whoami-v2")
    assert resp.status == 401
    resp, body = call("GET", "/api/whoami-v2", headers={"Authorization": "Bearer hf_x"})
    assert resp.status == 200 and json.loads(body)["name"] == "tester"
    conn.close()
    assert hub_server.unhandled == [("POST", "/api/not-a-route")]
    assert hub_server.errors == []


def test_runs_as_a_separate_process(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dynosaur.testing.hub_server",
            "--root",
            str(tmp_path / "hub"),
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the fake hub did not start"
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", int(port_file.read_text()), timeout=5)
        conn.request("GET", "/api/whoami-v2", headers={"Authorization": "Bearer hf_x"})
        assert json.loads(conn.getresponse().read())["name"] == "tester"
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_subprocesses_reach_it_through_the_environment(hub_server: HubServer) -> None:
    hub_server.create_repo(REPO)
    sha = hub_server.commit(REPO, {"hello.txt": "hi"})
    code = (
        "from huggingface_hub import HfApi, hf_hub_download\n"
        f"print(HfApi().dataset_info({REPO!r}).sha)\n"
        f"print(open(hf_hub_download({REPO!r}, 'hello.txt', repo_type='dataset')).read())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == [sha, "hi"]
    assert ("GET", f"/api/datasets/{REPO}") in hub_server.requests
