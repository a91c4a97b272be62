"""The `dyno` program (`console`): main's exit codes and every printed line survive leaving without teardown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dynosaur.cli.main import cli


def dyno(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    code = (
        f"import sys; sys.argv = ['dyno', *{list(args)!r}]; from dynosaur.cli.main import console; console()"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_help_piped_is_complete_and_exits_0(tmp_path: Path):
    done = dyno("--help", cwd=tmp_path)
    assert done.returncode == 0
    # every command is listed, the last one included: the buffered output was flushed before leaving
    assert all(name in done.stdout for name in cli.commands)
    assert done.stdout.endswith("\n")


def test_errors_keep_their_exit_codes_and_their_one_line(tmp_path: Path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a project whose pipeline lacks the corpus stages
    done = dyno("show", "nope", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["Error: dvc.yaml: stage or path 'collect' missing from the pipeline"]
    usage = dyno("no-such-command", cwd=tmp_path)
    assert usage.returncode == 2 and "No such command" in usage.stderr
