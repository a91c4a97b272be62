"""Releases that hold under crashes and races, in a real git + DVC project (integration).

One project is built per module (one source, `dvc repro`) and copied for each test, its remote with it: the
remote's URL is relative, and each copy gets its own DVC site cache (`core.site_cache_dir` in
`.dvc/config.local`), where DVC keeps the indexes a killed push can leave half-written.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
from tests.project import Project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    base = tmp_path_factory.mktemp("reliability")
    with FakeOpenAI(responder=tasks_from_schema) as server:
        project = Project(base / "repo", server.base_url)
        project.run("dvc", "remote", "add", "-d", "store", "../remote")  # relative: each copy has its own
        project.add_source("alpha")
        project.repro()
    project.commit("corpus")
    return project


@pytest.fixture
def project(built: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("DYNO_LOCK_WAIT_S", "1")
    return built.copy(tmp_path / "w")


def paused_release(project: Project, step: str, signal: Path) -> subprocess.Popen:
    """`cut_release` in another process, stopped at `step` until `signal` exists (it writes `signal`.at)."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from dynosaur.registry.releases import cut_release\n"
        f"signal = Path({str(signal)!r})\n"
        "def pause(s):\n"
        f"    if s == {step!r}:\n"
        "        signal.with_suffix('.at').write_text(s)\n"
        "        while not signal.exists(): time.sleep(0.05)\n"
        "print(cut_release(Path('.').resolve(), 'paused', on_step=pause).model_dump_json())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=project.root, env=project.env(), stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not signal.with_suffix(".at").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the paused release never got there"
        time.sleep(0.05)
    return proc


def crash_release(project: Project, step: str) -> None:
    script = (
        "import os\n"
        "from pathlib import Path\n"
        "from dynosaur.registry.releases import cut_release\n"
        f"def crash(s):\n    if s == {step!r}: os._exit(137)\n"
        "cut_release(Path('.').resolve(), 'm', on_step=crash)\n"
    )
    assert project.run("python", "-c", script, check=False).returncode == 137


def release_lines(project: Project) -> list[dict]:
    path = project.root / "ledger/releases.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


# --- races ---------------------------------------------------------------------------------------------


def test_a_second_release_during_a_release_says_who_holds_the_lock(project: Project, tmp_path: Path):
    """Release A stopped after writing its records; B, `releases`, `verify` and `pull` run meanwhile."""
    signal = tmp_path / "go"
    first = paused_release(project, "commit", signal)
    try:
        second = project.dyno("release", "--json", check=False)
        assert f"(pid {first.pid} on " in error_line(second) and "holds the registry lock" in second.stderr
        listed = project.dyno("releases", "--json")
        assert json.loads(listed.stdout) == []  # A's v1 is not finished: not listed
        assert "holds the registry lock" in listed.stderr
        assert "holds the registry lock" in error_line(project.dyno("verify", check=False))
        assert [r["tag"] for r in release_lines(project)] == ["v1"]  # A's records: untouched by the readers
    finally:
        signal.touch()
        out, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and json.loads(out)["release"]["tag"] == "v1"
    assert [r["tag"] for r in release_lines(project)] == ["v1"]
    assert project.git("tag").split() == ["v1"]
    assert [r["tag"] for r in json.loads(project.dyno("releases", "--json").stdout)] == ["v1"]
    assert project.dyno("verify").returncode == 0


def test_two_releases_at_once_make_one_v1(project: Project):
    env = project.env() | {"DYNO_LOCK_WAIT_S": "300"}
    procs = [
        subprocess.Popen(
            ["dyno", "release", "--json"],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(str(o["release"] and o["release"]["tag"]) for o in outs) == ["None", "v1"]
    assert [r["tag"] for r in release_lines(project)] == ["v1"]
    assert project.git("tag").split() == ["v1"]
    assert project.dyno("verify").returncode == 0


# --- readers after a crash -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["commit", "tag"])
def test_readers_see_no_crash_debris(project: Project, step: str, tmp_path: Path):
    """Killed after writing the records (`commit`) or after committing them (`tag`)."""
    crash_release(project, step)
    verify = error_line(project.dyno("verify", check=False))
    assert "`dyno release`" in verify  # the half-finished state, and how to finish it
    listed = project.dyno("releases", "--json")
    if step == "commit":  # unfinished records: discarded, as `dyno release` would
        assert (
            json.loads(listed.stdout) == []
            and "recovered: discarded the uncommitted records" in listed.stderr
        )
        assert "unknown version 'v1'" in error_line(
            project.dyno("pull", "v1", "--out", str(tmp_path / "v1"), check=False)
        )
    else:  # committed, not tagged: tagged, as `dyno release` would
        assert [r["tag"] for r in json.loads(listed.stdout)] == ["v1"]
        assert "recovered: tagged v1" in listed.stderr
        project.dyno("pull", "v1", "--out", str(tmp_path / "v1"))
        assert sorted(p.name for p in (tmp_path / "v1/alpha").iterdir())
    assert project.dyno("verify").returncode == 0
    out = json.loads(project.dyno("release", "--json").stdout)
    assert (out["release"] is None) == (step == "tag")
    assert project.git("tag").split() == ["v1"] and project.dyno("verify").returncode == 0


def test_uncommitted_ledger_edits_no_crash_left_are_never_discarded(project: Project):
    json.loads(project.dyno("release", "--json").stdout)
    path = project.root / "ledger/retractions.jsonl"
    edited = path.read_text() + "my notes\n"
    path.write_text(edited)
    assert "no interrupted dyno command left" in error_line(
        project.dyno("retract", "--source", "alpha", "--reason", "x", check=False)
    )
    assert path.read_text() == edited
    # line 2: the file starts as one empty line (ledger/retractions.jsonl, as the repository ships it)
    assert "ledger/retractions.jsonl:2: not a valid Retraction" in error_line(
        project.dyno("verify", check=False)
    )
    project.dyno("releases")
    assert path.read_text() == edited


# --- kills inside DVC's push -----------------------------------------------------------------------------

# (module, attribute, call number, before or after that call): a point inside `dvc push` to die at.
KILLS = {
    "collecting-1": ("dvc_data.index.collect", "_collect_from_index", 2, "before"),
    "collecting-2": ("dvc_data.index.collect", "_collect_from_index", 3, "before"),
    "collected": ("dvc_data.index.collect", "_collect_from_index", 1, "after"),
    "transfer": ("dvc_data.hashfile.transfer", "_do_transfer", 1, "before"),
    "files-sent": ("dvc_data.hashfile.transfer", "_add", 1, "after"),
    "remote-index": ("dvc_data.hashfile.db.index", "ObjectDBIndex.update", 1, "before"),
}


def killed_in_push(project: Project, point: str) -> None:
    module, attr, number, when = KILLS[point]
    owner, _, name = attr.rpartition(".")
    script = f"""
import importlib, os
from pathlib import Path
from dynosaur.registry.releases import cut_release
target = importlib.import_module({module!r})
if {owner!r}:
    target = getattr(target, {owner!r})
original, calls = getattr(target, {name!r}), [0]
def killer(*args, **kwargs):
    calls[0] += 1
    if calls[0] == {number} and {when!r} == "before":
        os._exit(137)
    result = original(*args, **kwargs)
    if calls[0] == {number}:
        os._exit(137)
    return result
setattr(target, {name!r}, killer)
cut_release(Path(".").resolve(), "killed")
"""
    proc = project.run("python", "-c", script, check=False)
    assert proc.returncode == 137, f"the push never reached {point}: {proc.stderr}"


def fresh_clone(project: Project, name: str) -> Project:
    """A clone beside the original (so the relative remote resolves), with an empty cache of its own."""
    clone = project.clone(project.root.parent / name)
    clone.run("dvc", "config", "--local", "core.site_cache_dir", str(project.root.parent / f"{name}-site"))
    return clone


@pytest.mark.parametrize("point", list(KILLS))
def test_a_release_killed_inside_dvc_push_is_complete_on_the_remote_after_the_next(
    project: Project, point: str, tmp_path: Path
):
    killed_in_push(project, point)
    assert project.git("tag").split() == [] and release_lines(project) == []  # no record before the data
    out = json.loads(project.dyno("release", "--json").stdout)
    assert out["release"]["tag"] == "v1"
    assert project.dyno("verify", "--remote").returncode == 0

    clone = fresh_clone(project, "clone")
    clone.dyno("pull", "v1", "--out", str(tmp_path / "v1"))
    pulled = sorted(p.relative_to(tmp_path / "v1").as_posix() for p in (tmp_path / "v1").rglob("*.parquet"))
    manifest = (project.root / "ledger/manifests/v1.jsonl").read_text().splitlines()
    assert pulled == sorted(json.loads(line)["shard"] for line in manifest)
    assert clone.dyno("verify", "--remote").returncode == 0
    assert not (clone.root / ".dvc/cache").exists()  # everything came from the remote


# --- tampering -----------------------------------------------------------------------------------------


def test_a_deleted_retraction_stops_the_pipeline_and_the_release(project: Project):
    """Issue 10: a committed tombstone deleted (deletion committed), then `dvc repro` + `dyno release`
    brought the retracted source back. Now the pipeline refuses, naming the file and line."""
    project.dyno("release")
    project.dyno("retract", "--source", "alpha", "--reason", "licence withdrawn")
    (project.root / "ledger/retractions.jsonl").write_text("\n")  # as it was before the retraction
    project.git("commit", "-qam", "forget the retraction")
    # The file is back to the bytes dvc.lock recorded (no repro ran in between), so DVC alone would skip
    # collect; forced, collect reads the ledger and refuses. The release below refuses either way.
    proc = project.run("dvc", "repro", "-f", "-s", "collect", check=False)
    assert proc.returncode != 0
    assert "Error: ledger/retractions.jsonl:2: the line committed at commit " in proc.stderr
    assert error_line(project.dyno("release", check=False))
    assert "retractions.jsonl:2: the line committed at" in error_line(project.dyno("verify", check=False))
    assert project.git("tag").split() == ["v1"]


# --- files the ledger does not know (issue 21 F1) ----------------------------------------------------------


def test_release_refuses_a_corpus_holding_files_that_are_not_shards(project: Project):
    """A `.DS_Store` recorded in the corpus (here by `dvc commit`) would make a release `dyno pull` refuses
    for ever: the release refuses it first, naming it."""
    (project.root / "data/corpus/alpha/.DS_Store").write_bytes(b"\0\0\0\1Bud1")
    project.run("dvc", "commit", "-f", "-q", "organize")
    project.commit("a stray file")
    line = error_line(project.dyno("release", check=False))
    assert "alpha/.DS_Store" in line and "not shards" in line, line
    assert release_lines(project) == [] and project.git("tag").split() == []
    # organize removes it, and the release goes through
    project.run("dvc", "repro", "-f", "-s", "organize")
    assert not (project.root / "data/corpus/alpha/.DS_Store").exists()
    project.commit("without it")
    assert json.loads(project.dyno("release", "--json").stdout)["release"]["tag"] == "v1"


def test_pull_never_creates_a_tag(project: Project, tmp_path: Path):
    """A tag the user deleted stays deleted: pull says what is wrong and which command tags it (issue 21)."""
    project.dyno("release")
    project.git("tag", "-d", "v1")
    line = error_line(project.dyno("pull", "v1", "--out", str(tmp_path / "v1"), check=False))
    assert "v1 is recorded but not tagged" in line and "`dyno release`" in line, line
    assert project.git("tag").split() == [] and not (tmp_path / "v1").exists()
    project.dyno("release")  # the writer tags it
    assert project.git("tag").split() == ["v1"]
    project.dyno("pull", "v1", "--out", str(tmp_path / "v1"))


def test_release_during_a_running_dvc_command_says_so(project: Project):
    """`dvc repro` holds DVC's repository lock while it runs: release says a DVC command is running, not
    "nothing changed" or "not up to date" (issue 21)."""
    from dvc.repo import Repo, lock_repo

    with Repo(str(project.root)) as repo, lock_repo(repo):
        line = error_line(project.dyno("release", check=False))
    assert "a DVC command (such as `dvc repro`) is running" in line, line
    assert release_lines(project) == []
    assert json.loads(project.dyno("release", "--json").stdout)["release"]["tag"] == "v1"
