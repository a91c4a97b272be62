"""Ctrl-C (issue 22): a stage and every `dyno` command exit 130 with one line, and so does `dyno repro`, where
`dvc repro` itself turns the stage's 130 into 255 and `ERROR: failed to reproduce`.

The integration test presses Ctrl-C as a terminal does (SIGINT to the whole foreground process group) during
the first `dyno repro`, in generate, against the scripted LLM; the next run resumes without paying twice,
and git still stages nothing under a DVC output.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
from tests.project import Project, press_ctrl_c_when
from tests.test_gitignore import staged_outputs

INTERRUPTED = "Interrupted: finished work is kept; run again to resume."
ROOT = Path(__file__).resolve().parents[1]


def test_a_stage_interrupted_exits_130_with_one_line(monkeypatch, capsys):
    from dynosaur.core import runner

    def pressed(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr("sys.argv", ["stage", "--out", "x"])
    with pytest.raises(SystemExit) as exc:
        runner.run(pressed, "out")
    assert exc.value.code == 130
    assert capsys.readouterr().err.splitlines() == [INTERRUPTED]


def test_every_stage_runs_through_the_runner():
    """Each stage's entry point is `runner.run`, so Ctrl-C is handled the same way everywhere."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        module = stage["cmd"].split()[2]
        source = (ROOT / "src" / Path(*module.split("."))).with_suffix(".py").read_text()
        main_block = source[source.index('if __name__ == "__main__":') :]
        assert "run(main" in main_block, name


def ctrl_c(project: Project, cmd: list[str], ready) -> subprocess.CompletedProcess:
    """`cmd` (from the project's virtualenv) with Ctrl-C pressed once `ready()`."""
    exe = Path(project.env()["PATH"].split(os.pathsep)[0])
    return press_ctrl_c_when([str(exe / cmd[0]), *cmd[1:]], project.root, project.env(), ready)


@pytest.mark.integration
def test_ctrl_c_in_the_first_dyno_repro_exits_130_and_the_next_run_resumes(tmp_path: Path):
    with FakeOpenAI(responder=tasks_from_schema, latency=0.4) as server:
        project = Project(tmp_path / "repo", server.base_url)
        for name in ("s1", "s2", "s3"):
            project.add_source(name)
        project.set("llm", concurrency=1)
        project.commit("sources")

        done = ctrl_c(project, ["dyno", "repro", "organize"], lambda: server.answered >= 2)
        assert done.returncode == 130, done.stderr
        assert done.stderr.strip().splitlines()[-1] == INTERRUPTED
        assert "Traceback" not in done.stderr
        paid = server.answered
        assert 2 <= paid < 6

        assert staged_outputs(project.root) == []
        project.git("commit", "-qm", "after the interrupt", "--allow-empty")
        time.sleep(0.5)  # the request in flight at the interrupt, if any, is answered
        project.dyno("repro", "organize")
        assert server.answered - paid <= 6 - paid + 1  # the killed run's answers were kept
        assert project.status()["tasks_valid"] == 6
        assert staged_outputs(project.root) == []
