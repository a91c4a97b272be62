"""Growing from the Hub end to end: discover → refresh → `dvc repro`, with real dvc, the test Hub and a fake LLM.

`dvc status` is clean after a run (collect is no longer always_changed), a branch that moves on the Hub reaches
the corpus only through `dyno refresh`, and checking out a tag rebuilds the same shards from the
same Hub commits.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from dynosaur.core.source_list import read_lock, read_sources_file
from dynosaur.testing.fake_openai import FakeOpenAI
from dynosaur.testing.hub_server import HubServer
from tests.project import REPO, Project

pytestmark = pytest.mark.integration

DEMO = ("vader-tweets", "chatterbot-conversations")
OUTPUTS = (
    "data/collected",
    "data/generated",
    "data/tasks",
    "data/corpus",
    "data/llm_cache",
    "data/metrics",
    "data/stats",
    "data/runs",
    "data/plots",
)


@pytest.fixture
def project(tmp_path: Path, server: FakeOpenAI, hub_server: HubServer) -> Project:
    for name in DEMO:
        hub_server.host_folder(f"demo/{name}", REPO / "data/sources" / name)
        hub_server.downloads[f"demo/{name}"] = 1000
    return Project(tmp_path / "repo", server.base_url)


def changed(project: Project) -> dict:
    return json.loads(project.run("dvc", "status", "organize", "--with-deps", "--json").stdout or "{}")


def shard_digests(project: Project) -> dict[str, str]:
    corpus = project.root / "data/corpus"
    return {
        p.relative_to(corpus).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(corpus.glob("*/*.parquet"))
    }


def test_discover_refresh_repro_is_clean_and_pinned(project: Project, hub_server: HubServer):
    found = json.loads(project.dyno("discover", "--search", "demo/", "--json").stdout)
    assert [e["id"] for e in found["added"]] == ["demo__chatterbot-conversations", "demo__vader-tweets"]
    project.dyno("refresh")
    pins = read_lock(project.root / "sources.lock").sources
    assert pins["demo__vader-tweets"].sha == hub_server.head("demo/vader-tweets")

    project.repro()
    project.commit("two Hub sources")
    assert changed(project) == {}  # clean: nothing is always_changed any more
    v1 = shard_digests(project)
    assert v1 and {k.split("/")[0] for k in v1} == {"demo__vader-tweets", "demo__chatterbot-conversations"}
    project.git("tag", "corpus-v1")

    # The Hub moves: nothing reaches the pipeline until refresh.
    folder = project.root.parent / "tweets-v2"
    shutil.copytree(REPO / "data/sources/vader-tweets", folder)
    train = folder / "data/train.jsonl"
    train.write_text("".join(train.read_text().splitlines(keepends=True)[:20]))
    moved_to = hub_server.host_folder("demo/vader-tweets", folder)
    assert changed(project) == {}
    out = project.dyno("refresh", "--json")
    report = json.loads(out.stdout)
    assert [(m["source_id"], m["new"]) for m in report["moved"]] == [("demo__vader-tweets", moved_to)]
    assert "collect" in changed(project)
    project.repro()
    project.commit("vader-tweets moved")
    assert changed(project) == {}
    v2 = shard_digests(project)
    differ = {k for k in set(v1) | set(v2) if v1.get(k) != v2.get(k)}
    assert differ and all(k.startswith("demo__vader-tweets/") for k in differ)

    # Rebuild at the tag from nothing: the same Hub commits, the same shards, byte for byte.
    project.git("checkout", "-q", "corpus-v1")
    for out_dir in OUTPUTS:
        shutil.rmtree(project.root / out_dir, ignore_errors=True)
    (project.root / "dvc.lock").unlink()
    project.repro()
    assert shard_digests(project) == v1
    assert read_sources_file(project.root / "sources.yaml").sources[0].query == "search=demo/"
