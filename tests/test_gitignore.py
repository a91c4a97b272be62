"""Git never swallows a DVC output, from a fresh clone on (issue 22).

DVC writes an output's `.gitignore` entry only when it first saves the output: a run killed inside a stage
(or a stage skipped on the rerun) would leave its files for `git add -A` to stage. The entries are
committed instead; these tests check every cached output of `dvc.yaml` against them, and run the real
`dvc repro` with each corpus stage's outputs written but never saved by DVC, as a kill inside it leaves them.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from dynosaur.testing.fake_openai import FakeOpenAI
from tests.project import Project

REPO = Path(__file__).resolve().parents[1]
CORPUS_STAGES = ("collect", "generate", "filter", "organize")


def cached_outputs(dvc_yaml: Path) -> list[str]:
    """Every output DVC caches (and so keeps out of git); `cache: false` ones are committed to git."""
    outs: list[str] = []
    for stage in yaml.safe_load(dvc_yaml.read_text())["stages"].values():
        for out in stage.get("outs", []):
            path, opts = (out, {}) if isinstance(out, str) else next(iter(out.items()))
            if opts.get("cache", True):
                outs.append(path)
    return outs


def staged_outputs(root: Path) -> list[str]:
    """What `git add -A` stages under a DVC output."""
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.split()
    outs = cached_outputs(root / "dvc.yaml")
    return [p for p in staged if any(p == o or p.startswith(f"{o}/") for o in outs)]


def test_every_cached_output_is_ignored_by_committed_gitignore_files(tmp_path: Path):
    # A fresh clone of what is committed: git's own view, no file on this disk taken into account.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True, text=True)
    subprocess.run(["git", "checkout", "-q", head.stdout.strip()], cwd=clone, check=True)
    outs = cached_outputs(clone / "dvc.yaml")
    assert "data/collected" in outs and "models/model" in outs
    # A file inside each output (and the output itself, for file outputs) must be ignored.
    paths = [f"{o}/x" for o in outs] + outs
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=clone,
        input="\n".join(paths),
        capture_output=True,
        text=True,
    )
    ignored = set(proc.stdout.split())
    assert not [p for p in paths if p not in ignored], proc.stdout


@pytest.mark.integration
def test_a_stage_killed_before_dvc_saved_its_outputs_leaves_nothing_for_git(
    tmp_path: Path, server: FakeOpenAI
):
    project = Project(tmp_path / "repo", server.base_url)
    project.add_source("alpha")
    project.commit("a source")
    stages = project.pipeline()["stages"]
    for n, stage in enumerate(CORPUS_STAGES):
        # The stage's outputs on disk as a kill inside it leaves them (DVC saved none of them), after a first
        # repro that finished the stages before it.
        if n:
            project.repro(CORPUS_STAGES[n - 1])
        project.run(*shlex.split(stages[stage]["cmd"]))
        assert (project.root / next(iter(stages[stage]["outs"][0]))).exists()
        assert staged_outputs(project.root) == [], stage
        project.git("commit", "-qm", f"after {stage}", "--allow-empty")
    # The rerun completes, skipping what is done: still nothing under an output for git.
    project.repro()
    assert staged_outputs(project.root) == []
    # DVC found every entry there already: the committed files are left as they are.
    for name in ("data/.gitignore", "models/.gitignore"):
        assert (project.root / name).read_text() == (REPO / name).read_text()
