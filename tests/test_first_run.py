"""The README's first hour, as a new user runs it (issue 22): a fresh clone, the exact commands of the README's
"The first hour" block, Ctrl-C in the middle of the first `dyno repro`, a commit, a release, `dvc status`.

Only `params.yaml` changes, as a user would edit it: the scripted LLM (`FakeOpenAI` on 127.0.0.1) instead of
the local model, and a tiny training run. No surprise allowed: Ctrl-C exits 130 with the one "Interrupted"
line last, git stages nothing under a DVC output, the rerun resumes without paying twice, the release is
cut, and `dvc status` and `git status` are clean after it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dynosaur.core.errors import INTERRUPTED
from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
from tests.project import press_ctrl_c_when
from tests.test_dvc_journeys import TINY_EVAL, TINY_TRAIN
from tests.test_gitignore import staged_outputs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
HEADING = "## The first hour"


def readme_commands() -> list[str]:
    """The lines of the first bash block under the README's "The first hour" heading, as written."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(HEADING) :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the first-hour section has no bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


class Clone:
    def __init__(self, root: Path, home: Path):
        self.root = root
        self.env = dict(os.environ)
        self.env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}",
            PYTHONPATH=str(root / "src"),  # the clone's own code runs
            HOME=str(home),  # the DVC remote of .dvc/config is under ~/.cache
            GIT_AUTHOR_NAME="new user",
            GIT_AUTHOR_EMAIL="new@example.com",
            GIT_COMMITTER_NAME="new user",
            GIT_COMMITTER_EMAIL="new@example.com",
            DVC_NO_ANALYTICS="1",
            HF_HUB_OFFLINE="1",
        )
        self.env.pop("PYTHONHOME", None)

    def bash(self, line: str, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", line],
            cwd=cwd or self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            **kw,
        )

    def interrupted(self, line: str, ready) -> subprocess.CompletedProcess:
        """`line` with Ctrl-C pressed once `ready()`: SIGINT to its whole process group, as a terminal does."""
        return press_ctrl_c_when(["bash", "-c", f"exec {line}"], self.root, self.env, ready, timeout=300)


def test_the_readme_first_hour_from_a_fresh_clone(tmp_path: Path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    commands = readme_commands()
    assert commands[0].startswith("dyno repro") and any(c.startswith("dvc status") for c in commands)

    subprocess.run(["git", "clone", "-q", str(REPO), str(tmp_path / "clone")], check=True)
    clone = Clone(tmp_path / "clone", tmp_path / "home")
    with FakeOpenAI(responder=tasks_from_schema, latency=0.3) as server:
        # What a user edits in params.yaml: the scripted LLM, answering whole tasks, and a tiny training run.
        params = yaml.safe_load((clone.root / "params.yaml").read_text())
        params["generate"]["mode"] = "propose"
        params["llm"].update(
            provider="compatible", base_url=server.base_url, model="fake-model", concurrency=1, timeout_s=5
        )
        params["train"].update(TINY_TRAIN)
        params["evaluate"].update(TINY_EVAL)
        (clone.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

        for line in commands:
            if line.startswith("dyno repro"):
                stopped = clone.interrupted(line, lambda: server.answered >= 2)
                assert stopped.returncode == 130, stopped.stdout + stopped.stderr
                assert stopped.stderr.strip().splitlines()[-1] == INTERRUPTED
                assert "Traceback" not in stopped.stderr
                assert staged_outputs(clone.root) == []  # a user commits here: git takes no output
                paid = server.answered
                time.sleep(0.5)  # the call in flight at Ctrl-C, if any, is answered
            done = clone.bash(line)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            if line.startswith("dyno repro"):
                # 4 demo sources × 2 prompt variants, each paid once (one in flight at Ctrl-C may be twice).
                assert server.answered <= 8 + 1 and server.answered > paid
            if line.startswith("dvc status"):
                assert "Data and pipelines are up to date." in done.stdout, done.stdout

    assert clone.bash("git status --porcelain").stdout == ""
    assert "v1" in clone.bash("git tag").stdout.split()
    # From a subfolder, as from the root.
    listed = clone.bash("dyno releases --json", cwd=clone.root / "data")
    assert listed.returncode == 0 and '"tag": "v1"' in listed.stdout, listed.stderr
