"""The registry end to end, in a temporary git + DVC repo with a local directory remote.

Release v1, add a source, release v2, diff them (exact counts), retract a source, release v3, pull v1 and v3
from a fresh clone and compare rows with what was released, `dvc get --rev` from outside, then tamper with
a record and a shard and watch `dyno verify` name them. Plus the bad-input cases and a crash at each step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dynosaur.testing.fake_openai import FakeOpenAI
from tests.project import Project

pytestmark = pytest.mark.integration

PER_SOURCE = 2 * 40  # two valid tasks × (30 train + 10 validation) rows


@pytest.fixture
def project(tmp_path: Path, server: FakeOpenAI) -> Project:
    project = Project(tmp_path / "repo", server.base_url)
    project.run("dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    project.git("add", "-A")
    project.git("commit", "-qm", "remote")
    return project


def rows_of(folder: Path) -> dict[str, list[dict]]:
    return {
        p.relative_to(folder).as_posix(): pq.read_table(p).to_pylist()
        for p in sorted(folder.glob("*/*.parquet"))
    }


def release(project: Project, message: str = "") -> dict:
    project.commit(f"corpus for: {message}")
    return json.loads(project.dyno("release", "-m", message, "--json").stdout)


def test_release_diff_retract_pull_verify(project: Project, tmp_path: Path):
    project.add_source("alpha")
    project.add_source("beta")
    project.repro()
    v1 = release(project, "first")["release"]
    assert (v1["tag"], v1["totals"]) == ("v1", {"sources": 2, "tasks": 4, "instances": 2 * PER_SOURCE})
    assert v1["licenses"] == {"mit": 2 * PER_SOURCE}
    released_v1 = rows_of(project.root / "data/corpus")

    again = json.loads(project.dyno("release", "--json").stdout)
    assert again["release"] is None and again["message"] == "nothing changed since v1: no release"

    project.add_source("gamma", license="cc-by-4.0")
    project.repro()
    v2 = release(project, "add gamma")["release"]
    assert v2["parent"] == v1["hash"] and v2["totals"]["instances"] == 3 * PER_SOURCE

    d = json.loads(project.dyno("diff", "v1", "v2", "--json").stdout)
    assert d["totals"] | {} == {
        "tasks_before": 4,
        "tasks_after": 6,
        "instances_before": 2 * PER_SOURCE,
        "instances_after": 3 * PER_SOURCE,
        "tasks_added": 2,
        "tasks_removed": 0,
        "tasks_retracted": 0,
        "tasks_changed": 0,
        "instances_added": PER_SOURCE,
        "instances_removed": 0,
    }
    assert [(s["source_id"], s["tasks_added"], s["instances_added"]) for s in d["sources"]] == [
        ("gamma", 2, PER_SOURCE)
    ]

    project.dyno("retract", "--source", "alpha", "--reason", "licence turned out to be wrong")
    stale = project.dyno("release", check=False)  # the pipeline must run first
    assert stale.returncode == 1 and "not up to date" in stale.stderr
    project.repro()
    v3 = release(project, "without alpha")["release"]
    assert v3["totals"] == {"sources": 2, "tasks": 4, "instances": 2 * PER_SOURCE}
    assert any(
        line.startswith("alpha: 2 tasks retracted") and "licence turned out to be wrong" in line
        for line in v3["changelog"]
    )
    d = json.loads(project.dyno("diff", "v2", "v3", "--json").stdout)
    assert d["totals"]["tasks_retracted"] == 2 and d["totals"]["instances_after"] == 2 * PER_SOURCE
    released_v3 = rows_of(project.root / "data/corpus")
    assert not any(k.startswith("alpha/") for k in released_v3)

    # A later repro + release does not bring alpha back.
    project.repro()
    assert release(project)["release"] is None

    # Any version, from a fresh clone, by name: rows equal what was released.
    clone = project.clone(tmp_path / "clone")
    clone.dyno("pull", "v1", "--out", str(tmp_path / "v1"))
    clone.dyno("pull", "v3", "--out", str(tmp_path / "v3"))
    assert rows_of(tmp_path / "v1") == released_v1
    assert rows_of(tmp_path / "v3") == released_v3

    # Consumers without this project: plain `dvc get` at the tag.
    got = tmp_path / "got-v1"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dvc"),
            "get",
            str(project.root),
            "data/corpus",
            "--rev",
            "v1",
            "-o",
            str(got),
        ],
        check=True,
        capture_output=True,
        env=project.env(),
        cwd=tmp_path,
    )
    assert rows_of(got) == released_v1

    assert project.dyno("verify").returncode == 0
    listing = json.loads(project.dyno("releases", "--json").stdout)
    assert [r["tag"] for r in listing] == ["v1", "v2", "v3"]

    # Tampering is named: a past record, then a shard in the remote.
    ledger = project.root / "ledger/releases.jsonl"
    original = ledger.read_text()
    ledger.write_text(original.replace('"message":"first"', '"message":"FIRST"'))
    proc = project.dyno("verify", check=False)
    assert proc.returncode == 1 and "ledger/releases.jsonl:1" in proc.stderr
    ledger.write_text(original)

    entry = json.loads((project.root / "ledger/manifests/v1.jsonl").read_text().splitlines()[0])
    md5 = entry["shard_md5"]
    other = next(k for k in sorted(released_v3) if k != entry["shard"])
    for store in (project.root / ".dvc/cache/files/md5", tmp_path / "remote/files/md5"):
        obj = store / md5[:2] / md5[2:]
        obj.chmod(0o644)
        obj.write_bytes((project.root / "data/corpus" / other).read_bytes())
    proc = project.dyno("verify", check=False)
    assert proc.returncode == 1 and entry["task_id"] in proc.stderr


@pytest.mark.parametrize("step", ["push", "write", "commit", "tag"])
def test_a_crash_at_any_step_leaves_no_release_or_a_complete_one(project: Project, step: str, tmp_path: Path):
    project.add_source("alpha")
    project.repro()
    project.commit()
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from dynosaur.registry.releases import cut_release\n"
        f"def crash(s):\n    if s == {step!r}: os._exit(137)\n"
        "cut_release(Path('.').resolve(), 'm', on_step=crash)\n"
    )
    assert project.run("python", "-c", script, check=False).returncode == 137
    tags = project.git("tag").split()
    head = subprocess.run(
        ["git", "show", "HEAD:ledger/releases.jsonl"], cwd=project.root, capture_output=True, text=True
    ).stdout
    # Never a tag without its record; never a committed record without its data in the remote.
    assert ("v1" in tags) <= ('"tag":"v1"' in head)
    if '"tag":"v1"' in head:
        manifest = (project.root / "ledger/manifests/v1.jsonl").read_text().splitlines()
        for line in manifest:
            md5 = json.loads(line)["shard_md5"]
            assert (tmp_path / "remote/files/md5" / md5[:2] / md5[2:]).exists()

    out = json.loads(project.dyno("release", "--json").stdout)
    if step == "tag":  # committed but not tagged: finished, not repeated
        assert out["release"] is None and out["recovered"] == [
            "tagged v1, committed by an interrupted release"
        ]
    else:
        assert out["release"]["tag"] == "v1"
    assert project.git("tag").split() == ["v1"]
    assert project.dyno("verify").returncode == 0


def test_bad_input_gets_one_line_and_no_partial_record(project: Project, tmp_path: Path):
    project.add_source("alpha")
    project.repro()

    def fails(*args: str, message: str) -> None:
        proc = project.dyno(*args, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and lines and lines[-1].startswith("Error:") and message in lines[-1], (
            proc.stderr
        )

    fails("diff", "v1", "v2", message="unknown version 'v1'")
    fails("pull", "v9", "--out", str(tmp_path / "x"), message="unknown version")
    fails("retract", "--task", "nope", "--reason", "x", message="unknown task 'nope'")
    fails("retract", "--source", "nope", "--reason", "x", message="unknown source 'nope'")
    release(project)
    fails("diff", "v1", "v1", message="compared with itself")

    project.add_source("beta")
    project.repro()
    project.commit()
    (project.root / "README.md").write_text("local edit\n")
    project.git("add", "README.md")
    fails("release", message="uncommitted changes (README.md)")
    project.git("reset", "-q", "README.md")
    (project.root / "README.md").unlink()

    head = project.git("rev-parse", "HEAD").strip()
    project.git("checkout", "-q", "--detach", head)
    fails("release", message="HEAD is detached")
    project.git("checkout", "-q", "-")

    project.run("dvc", "remote", "default", "--unset")
    fails("release", message="no default DVC remote")
    assert project.git("tag").split() == ["v1"]
    assert not project.git("status", "--porcelain", "--", "ledger").strip()
