"""The audit end to end, as the issue's "done when" reads: `dvc repro` with the scripted LLM, two releases,
`dyno audit sample` of v1, twenty items labelled through `dyno audit review`'s HTTP API (the page itself is
driven in a browser by tests/registry/test_audit_page.py), then the figure in `dyno audit report`,
`dyno status`, `dyno diff v1 v2`, `dvc metrics show` and the card `dyno publish` writes; `dyno verify` passes,
and fails once an answer is altered."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from dynosaur.registry.hub import publish
from dynosaur.testing.fake_openai import FakeOpenAI
from dynosaur.testing.hub_server import HubServer
from tests.project import Project

pytestmark = pytest.mark.integration


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url + "api/answer", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_sample_label_and_see_the_figure_everywhere(
    tmp_path: Path, server: FakeOpenAI, hub_server: HubServer
):
    project = Project(tmp_path / "repo", server.base_url)
    project.run("dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    project.add_source("alpha")
    project.add_source("beta")
    project.repro()
    project.commit("v1 corpus")
    project.dyno("release", "-m", "first")
    project.add_source("gamma")
    project.repro()
    project.commit("v2 corpus")
    project.dyno("release", "-m", "second")

    sample = json.loads(project.dyno("audit", "sample", "--release", "v1", "--n", "20", "--json").stdout)
    assert len(sample["items"]) == 20 and {i["source_id"] for i in sample["items"]} == {"alpha", "beta"}
    assert json.loads(project.dyno("status", "--json").stdout)["quality"] == {
        "v1": "not audited",
        "v2": "not audited",
    }

    proc = subprocess.Popen(
        [project.env()["PATH"].split(":")[0] + "/dyno", "audit", "review", "--reviewer", "ann"],
        cwd=project.root,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().split("?")[0]
        for k, item in enumerate(sample["items"]):
            answers = {
                "valid_instruction": "yes",
                "input_suffices": "yes",
                "output_correct": "no" if k < 3 else "yes",
            }
            state = post(url, {"reviewer": "ann", "instance_id": item["instance_id"], **answers})
        assert state["progress"]["done"] == 20 and state["progress"]["fully_valid"]["yes"] == 17
    finally:
        proc.terminate()
        proc.wait(10)

    report = json.loads(project.dyno("audit", "report", "--json").stdout)
    line = report["line"]
    assert line.startswith("Audited: 85% fully valid, 95% CI 64–95%, n = 20, on 20")
    assert json.loads(project.dyno("status", "--json").stdout)["quality"] == {"v1": line, "v2": "not audited"}
    assert f"v1: {line}" in project.dyno("status").stdout
    diff = json.loads(project.dyno("diff", "v1", "v2", "--json").stdout)
    assert diff["quality"] == {"v1": line, "v2": "not audited"}
    assert "v2: not audited" in project.dyno("diff", "v1", "v2").stdout
    metrics = project.run("dvc", "metrics", "show", "--json").stdout
    assert '"fully_valid": 0.85' in metrics

    publish(project.root, "v1", "tester/corpus")
    card = hub_server.read_file("tester/corpus", "README.md").decode()
    assert f"**Quality**: {line}." in card
    publish(project.root, "v2", "tester/corpus")
    assert "**Quality**: not audited." in hub_server.read_file("tester/corpus", "README.md").decode()

    assert project.dyno("verify").returncode == 0
    (answers_file,) = (project.root / "audits").glob("*/human/ann.jsonl")
    answers_file.write_text(
        answers_file.read_text().replace('"output_correct":"no"', '"output_correct":"yes"', 1)
    )
    failed = project.dyno("verify", check=False)
    assert failed.returncode == 1 and "AuditAnswer hash mismatch" in failed.stderr
