"""Publishing and consuming releases on the Hub, and `hub:` sources, against the Hub-compatible test server.

The real `huggingface_hub` and `datasets` clients talk to `dynosaur.testing.hub_server.HubServer` on 127.0.0.1; the
pipeline and `dyno` run as subprocesses that reach it through HF_ENDPOINT.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from dynosaur.core.records import SourceMeta
from dynosaur.core.segments import RecordFolder
from dynosaur.testing.fake_openai import FakeOpenAI
from dynosaur.testing.hub_server import HubServer
from tests.project import REPO, Project

pytestmark = pytest.mark.integration

CORPUS = "tester/dynosaur-corpus"
DEMO = ("vader-tweets", "chatterbot-conversations", "vader-amazon-reviews")


@pytest.fixture
def project(tmp_path: Path, server: FakeOpenAI, hub_server: HubServer) -> Project:
    for name in DEMO:  # the demo sources, hosted as Hub datasets
        hub_server.host_folder(f"demo/{name}", REPO / "data/sources" / name, tag="v1.0")
    project = Project(tmp_path / "repo", server.base_url)
    project.run("dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    project.commit("remote")
    return project


def add_hub_source(project: Project, name: str, revision: str = "main") -> None:
    project.params["sources"].append({"id": name, "hub": f"demo/{name}", "revision": revision})
    project.write_params()


def release(project: Project, message: str) -> dict:
    project.repro()
    project.commit(message)
    return json.loads(project.dyno("release", "-m", message, "--json").stdout)["release"]


def local_rows(project: Project, version: str, out: Path) -> list[dict]:
    project.dyno("pull", version, "--out", str(out))
    return sorted(
        (r for p in sorted(out.glob("*/*.parquet")) for r in pq.read_table(p).to_pylist()),
        key=lambda r: r["instance_id"],
    )


def test_publish_versions_and_load_them_back(project: Project, hub_server: HubServer, tmp_path: Path):
    add_hub_source(project, "vader-tweets")
    add_hub_source(project, "chatterbot-conversations", revision="v1.0")
    v1 = release(project, "two hub sources")
    collected = RecordFolder(project.root / "data/collected", SourceMeta).raw("vader-tweets")
    assert collected is not None
    assert collected["origin"] == "hub:demo/vader-tweets"
    assert collected["revision"] == hub_server.head("demo/vader-tweets")  # a branch, resolved to its sha

    out = json.loads(project.dyno("publish", "v1", "--repo", CORPUS, "--json").stdout)
    assert out["tag"] == "v1" and out["uploaded"] == v1["totals"]["tasks"]
    assert hub_server.head(CORPUS, "v1") == out["commit"]
    again = json.loads(project.dyno("publish", "v1", "--repo", CORPUS, "--json").stdout)
    assert again["commit"] == out["commit"] and "already" in again["message"]

    add_hub_source(project, "vader-amazon-reviews")
    v2 = release(project, "add amazon reviews")
    out2 = json.loads(project.dyno("publish", "v2", "--repo", CORPUS, "--json").stdout)
    assert (out2["uploaded"], out2["reused"]) == (
        v2["totals"]["tasks"] - v1["totals"]["tasks"],
        v1["totals"]["tasks"],
    )

    import datasets

    for version, rel in (("v1", v1), ("v2", v2)):
        ds = datasets.load_dataset(CORPUS, revision=version, split="train")
        hub = sorted(ds.to_list(), key=lambda r: r["instance_id"])
        assert len(hub) == rel["totals"]["instances"]
        assert hub == local_rows(project, version, tmp_path / f"local-{version}")

    card = hub_server.read_file(CORPUS, "README.md", revision="v2").decode()
    meta = yaml.safe_load(card.split("---")[1])
    # The sources' licence ids as a list the Hub accepts; their language from their own cards.
    assert meta["license"] == ["bsd-3-clause", "mit"] and "license_name" not in meta
    assert meta["language"] == ["en"] and meta["pretty_name"] == "Dynosaur corpus"
    assert f"{v2['totals']['instances']:,} instances" in card
    assert "| vader-amazon-reviews | hub:demo/vader-amazon-reviews |" in card
    assert 'load_dataset("tester/dynosaur-corpus", revision="v2"' in card
    assert "## v2" in hub_server.read_file(CORPUS, "CHANGELOG.md", revision="v2").decode()

    pulled = tmp_path / "from-hub"
    project.dyno("pull", "v1", "--hub", CORPUS, "--out", str(pulled))
    assert sorted(p.relative_to(pulled).as_posix() for p in pulled.glob("*/*.parquet")) == sorted(
        json.loads(line)["shard"]
        for line in (project.root / "ledger/manifests/v1.jsonl").read_text().splitlines()
    )

    # Older after newer is refused; tags never move.
    project.dyno("publish", "v2", "--repo", "tester/other-corpus")
    refused = project.dyno("publish", "v1", "--repo", "tester/other-corpus", check=False)
    assert refused.returncode == 1 and "publishing the older v1 after it is refused" in refused.stderr
    assert hub_server.head(CORPUS, "v1") == out["commit"]


def test_concurrent_push_and_faults_never_leave_half_a_release(project: Project, hub_server: HubServer):
    add_hub_source(project, "vader-tweets")
    release(project, "v1")
    project.dyno("publish", "v1", "--repo", CORPUS)
    add_hub_source(project, "chatterbot-conversations")
    release(project, "v2")

    # Someone else edits the card: the publish refuses cleanly, naming it; the Hub keeps their commit, no v2.
    card = hub_server.read_file(CORPUS, "README.md") + b"\nEdited in the web UI.\n"
    theirs = hub_server.commit(CORPUS, {"README.md": card, "notes.txt": b"someone else's push\n"})
    proc = project.dyno("publish", "v2", "--repo", CORPUS, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "others changed README.md, which publishing v2 would overwrite" in proc.stderr
    assert hub_server.head(CORPUS) == theirs and hub_server.head(CORPUS, "v2") is None
    # They revert the card: v2 goes on top of their commit and keeps their notes.
    hub_server.commit(CORPUS, {"README.md": card[: -len(b"\nEdited in the web UI.\n")]})
    out = json.loads(project.dyno("publish", "v2", "--repo", CORPUS, "--json").stdout)
    assert out["others"] == ["notes.txt"] and "notes.txt" in hub_server.list_files(CORPUS, "v2")


def test_publish_faults(project: Project, hub_server: HubServer, monkeypatch):
    add_hub_source(project, "vader-tweets")
    release(project, "v1")

    def fails(*args: str, code: int = 1, message: str) -> None:
        proc = project.dyno(*args, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == code and lines[-1].startswith("Error:") and message in lines[-1], (
            proc.stderr
        )
        assert "hf_test_dummy_token" not in proc.stderr + proc.stdout

    fails("publish", "v1", "--repo", "not-a-repo-id", code=2, message="not a Hub repo id")
    fails("publish", "v1", "--repo", "someone-else/corpus", message="not allowed to write")
    fails("publish", "v9", "--repo", CORPUS, message="unknown version")

    rule = hub_server.fail_next("POST", r"/commit/", status=500)
    fails("publish", "v1", "--repo", CORPUS, message="Hub error 500")
    assert rule.hits == 1 and hub_server.head(CORPUS, "v1") is None
    assert not any(p.endswith(".parquet") for p in hub_server.list_files(CORPUS))  # nothing half-published
    project.dyno("publish", "v1", "--repo", CORPUS)  # re-running completes it
    assert hub_server.head(CORPUS, "v1") is not None

    add_hub_source(project, "chatterbot-conversations")
    release(project, "v2")
    hub_server.fail_next("POST", r"/commit/", status=500, after=True)  # the commit lands, the answer is lost
    fails("publish", "v2", "--repo", CORPUS, message="Hub error 500")
    out = json.loads(project.dyno("publish", "v2", "--repo", CORPUS, "--json").stdout)
    assert out["message"].startswith("tagged v2") and hub_server.head(CORPUS, "v2") == hub_server.head(CORPUS)

    monkeypatch.delenv("HF_TOKEN")
    fails("publish", "v2", "--repo", CORPUS, message="no Hugging Face token")


def test_a_moved_hub_revision_is_a_new_source_version(project: Project, hub_server: HubServer):
    add_hub_source(project, "vader-tweets")
    release(project, "v1")
    card = hub_server.read_file("demo/vader-tweets", "README.md")
    hub_server.commit("demo/vader-tweets", {"README.md": card + b"\nA note added upstream.\n"})
    assert release(project, "nothing pinned moved") is None  # collect reads pins; it never asks the Hub
    project.dyno("refresh")  # pins main where it is now: the new commit
    v2 = release(project, "upstream moved")
    assert v2 is not None
    d = json.loads(project.dyno("diff", "v1", "v2", "--json").stdout)
    (source,) = d["sources"]
    assert source["source_id"] == "vader-tweets" and source["revision_before"] != source["revision_after"]
    assert source["tasks_changed"] + source["tasks_added"] + source["tasks_removed"] >= 1
