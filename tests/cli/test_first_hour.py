"""What a new user runs into first (issue 22): `dyno` from any subfolder of the project, one line outside of
one, id prefixes for every command that takes a task id, `dyno show` of a task only a release has, and which
errors carry the `DYNO_DEBUG=1` hint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dynosaur.cli.main import main
from dynosaur.core.errors import DEBUG_HINT
from dynosaur.core.records import TaskVersion
from dynosaur.registry.ledger import Ledger
from tests.cli.test_cli import as_json, assert_one_line_error, invoke, run_main, write_source
from tests.factories import git_project, make_generated, make_meta, make_task

# --- the project root --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["data", "data/tasks", "ledger"])
def test_dyno_finds_the_project_root_from_a_subfolder(ws, monkeypatch, sub):
    from_root = as_json(invoke("tasks", "--json"))
    (ws.root / sub).mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(ws.root / sub)
    assert as_json(invoke("tasks", "--json")) == from_root
    assert as_json(invoke("show", ws.valid.task_id[:8], "--json"))["task"]["task_id"] == ws.valid.task_id


@pytest.mark.parametrize("args", [["releases"], ["status"], ["tasks", "--json"], ["verify"]])
def test_outside_any_project_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, *args)
    assert (code, out) == (2, "")
    assert_one_line_error(err, "not inside a Dynosaur project")
    assert DEBUG_HINT not in err


def test_help_works_outside_a_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("show", "--help").exit_code == 0


# --- ids -----------------------------------------------------------------------------------------------


def git_repo(root: Path) -> None:
    git_project(root)
    run = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True)  # noqa: E731
    run("add", "-A")
    run("commit", "-qm", "init")


def test_retract_accepts_a_unique_prefix_of_a_task_id(ws):
    git_repo(ws.root)
    record = as_json(invoke("retract", "--task", ws.valid.task_id[:6], "--reason", "bad labels", "--json"))
    assert record["target"] == ws.valid.task_id


def test_retract_of_an_ambiguous_prefix_lists_candidates_and_exits_2(ws, capsys):
    twins = [make_task(task_id=f"abcd{c * 12}", source_id="zz") for c in "12"]
    write_source(ws.root, make_meta(source_id="zz"), make_generated(source_id="zz"), twins)
    git_repo(ws.root)
    code, out, err = run_main(capsys, "retract", "--task", "abcd", "--reason", "x")
    assert (code, out) == (2, "")
    assert_one_line_error(err, "matches 2 tasks: abcd111111111111, abcd222222222222")


def released_only_task(root: Path) -> TaskVersion:
    """A task that only the ledger has (its source is gone from the workspace)."""
    task = make_task(task_id="feedbeef" + "0" * 8, source_id="gone", instruction="Summarise the review.")
    version = TaskVersion(
        task_id=task.task_id,
        source_id="gone",
        source_revision=task.source_revision,
        instruction=task.instruction,
        input_fields=task.input_fields,
        output_field=task.output_field,
        prompt_version=task.prompt_version,
        model=task.model,
        verdict="valid",
    )
    (root / "ledger").mkdir(exist_ok=True)
    Ledger(root).append(TaskVersion, [version])
    return version


def test_show_reads_a_task_from_the_ledger_when_the_workspace_lacks_it(ws, capsys):
    version = released_only_task(ws.root)
    shown = as_json(invoke("show", "feedbeef", "--json"))
    assert shown["task"]["task_id"] == version.task_id
    assert shown["task"]["instruction"] == "Summarise the review."
    assert shown["instances"] == []
    result = invoke("show", "feedbeef")
    assert result.exit_code == 0 and "Summarise the review." in result.stdout


# --- the debug hint ------------------------------------------------------------------------------------


def test_usage_and_lookup_errors_carry_no_debug_hint(ws, capsys):
    _, _, err = run_main(capsys, "show", "zzzz")
    assert "unknown task" in err and DEBUG_HINT not in err
    _, _, err = run_main(capsys, "tasks", "--bogus")
    assert DEBUG_HINT not in err


def test_an_unexpected_error_keeps_the_debug_hint(ws, capsys):
    (ws.root / "data/tasks/reviews.json").write_text("{not json")
    code, _, err = run_main(capsys, "tasks")
    assert code == 1 and DEBUG_HINT in err, err


# --- Ctrl-C --------------------------------------------------------------------------------------------

INTERRUPTED = "Interrupted: finished work is kept; run again to resume."


def test_a_dyno_command_interrupted_exits_130_with_one_line(ws, monkeypatch, capsys):
    def pressed(*_args, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr("dynosaur.registry.status.status", pressed)
    with pytest.raises(SystemExit) as exc:
        main(["status"])
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [INTERRUPTED], err


# --- generate --dry-run is an option -------------------------------------------------------------------


def test_generate_without_dry_run_runs_the_stage_through_dyno_repro(ws, monkeypatch):
    ran: list[list[str]] = []
    monkeypatch.setattr("dynosaur.registry.vcs.repro", lambda root, args: (ran.append(args), (0, False))[1])
    result = invoke("generate")
    assert result.exit_code == 0, result.output
    assert ran == [["generate"]]
    assert invoke("generate", "--json").exit_code == 2  # --json describes the preview only


# --- release ids ---------------------------------------------------------------------------------------


def test_release_ids_take_a_prefix_and_an_ambiguous_one_lists_the_releases(tmp_path, monkeypatch, capsys):
    from tests.cli.demo_project import build

    build(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "diff", "v", "v2", "--json")
    assert (code, out) == (2, "")
    assert_one_line_error(err, "release id prefix 'v' matches 2 releases: v1, v2")
    assert as_json(invoke("diff", "V1", "2", "--json"))["b"] == "v2"
