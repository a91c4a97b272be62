"""`dyno` (dynosaur.cli.main) against a small pipeline workspace in tmp_path, built without dvc.

The workspace holds five sources: `reviews` (ok: one valid and one rejected task, a 5-row shard, plus a stale
shard of a task that is no longer valid), `news` (ok: one valid task, a 3-row shard), `gated` (skipped by
collect), `flaky` (generate failed) and `fresh` (collected, nothing after that yet).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dynosaur.cli.main import cli, main
from dynosaur.core.io import write_json
from dynosaur.core.params import OrganizeParams
from dynosaur.core.records import INSTANCE_COLUMNS, FilteredSource, instance_id, task_id
from dynosaur.pipeline.organize_instances import build_instances
from tests.factories import make_generated, make_meta, make_task

ROOT = Path(__file__).resolve().parents[2]
REV = "sha256:" + "0" * 64
NEWS_REV = "sha256:" + "2" * 64
GATED = "gated dataset: accept its terms on the Hub"
FAILED = "LLM error: HTTP 500 after 3 retries"

REVIEWS = {
    "text": ["Great value.", "Broke after two days.", "Fine for the price.", "Would buy again.", "Meh."],
    "title": ["Value", "Broke", "Fine", "Again", "Meh"],
    "label": [1, 0, 1, 1, 0],
}


def write_shard(path: Path, rows: dict, task, meta) -> pa.Table:
    instances, _ = build_instances(pa.table(rows), task, meta, "train", 0, OrganizeParams())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(instances, path)
    return instances


def write_source(root: Path, meta, generated=None, tasks=None) -> None:
    write_json(root / "data/collected" / f"{meta.source_id}.json", meta)
    if generated is not None:
        write_json(root / "data/generated" / f"{meta.source_id}.json", generated)
    if tasks is not None:
        filtered = FilteredSource(source_id=meta.source_id, fingerprint="sha256:" + "3" * 64, tasks=tasks)
        write_json(root / "data/tasks" / f"{meta.source_id}.json", filtered)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")

    reviews = make_meta()
    valid = make_task(
        task_id=task_id("reviews", REV, "Classify the sentiment of the given review.", ["text"], "label"),
        label_options=["negative", "positive"],
    )
    rejected = make_task(
        task_id=task_id("reviews", REV, "Copy the label.", ["label"], "label"),
        instruction="Copy the label.",
        input_fields=["label"],
        verdict="rejected",
        reason="io_overlap",
    )
    write_source(tmp_path, reviews, make_generated(), [valid, rejected])
    write_shard(tmp_path / "data/corpus/reviews" / f"{valid.task_id}.parquet", REVIEWS, valid, reviews)
    # A shard left from a task the filter no longer keeps: not counted.
    stale = make_task(task_id="f" * 16)
    write_shard(tmp_path / "data/corpus/reviews" / f"{stale.task_id}.parquet", REVIEWS, stale, reviews)

    news = make_meta(
        source_id="news",
        origin="local:data/sources/news",
        location="data/sources/news",
        revision=NEWS_REV,
        license="cc-by-4.0",
    )
    headline = make_task(
        task_id=task_id("news", NEWS_REV, "Write a title for the given review.", ["text"], "title"),
        source_id="news",
        source_revision=NEWS_REV,
        instruction="Write a title for the given review.",
        output_field="title",
    )
    write_source(tmp_path, news, make_generated(source_id="news"), [headline])
    rows = {k: v[:3] for k, v in REVIEWS.items()}
    write_shard(tmp_path / "data/corpus/news" / f"{headline.task_id}.parquet", rows, headline, news)

    gated = make_meta(
        source_id="gated",
        kind="hub",
        origin="hub:acme/gated",
        location="acme/gated",
        status="skipped",
        reason=GATED,
    )
    write_source(tmp_path, gated)
    write_source(
        tmp_path,
        make_meta(source_id="flaky"),
        make_generated(source_id="flaky", status="failed", reason=FAILED),
    )
    write_source(tmp_path, make_meta(source_id="fresh"))

    monkeypatch.chdir(tmp_path)
    return SimpleNamespace(root=tmp_path, valid=valid, rejected=rejected, headline=headline, reviews=reviews)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="dyno")


def run_main(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """`dyno ARGS` through the real entry point: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def assert_one_line_error(err: str, expected: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("Error: ")
    assert expected in err


def as_json(result) -> object:
    """The command succeeded, printed JSON and nothing else to stdout, and nothing to stderr."""
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)


# --- status ----------------------------------------------------------------------------------------------


def test_status_json_totals_and_per_source_fields(ws):
    report = as_json(invoke("status", "--json"))
    assert (report["tasks_valid"], report["tasks_rejected"], report["instances"]) == (2, 1, 8)
    by_id = {s["source_id"]: s for s in report["sources"]}
    assert list(by_id) == ["flaky", "fresh", "gated", "news", "reviews"]  # sorted by file name
    assert by_id["reviews"] == {
        "source_id": "reviews",
        "origin": "local:data/sources/reviews",
        "revision": REV,
        "license": None,
        "status": "ok",
        "reason": None,
        "tasks_valid": 1,
        "tasks_rejected": 1,
        "instances": 5,
    }
    assert by_id["news"] == {
        "source_id": "news",
        "origin": "local:data/sources/news",
        "revision": NEWS_REV,
        "license": "cc-by-4.0",
        "status": "ok",
        "reason": None,
        "tasks_valid": 1,
        "tasks_rejected": 0,
        "instances": 3,
    }
    assert (by_id["gated"]["status"], by_id["gated"]["reason"]) == ("skipped", GATED)
    assert by_id["gated"]["origin"] == "hub:acme/gated"
    # A failed generate wins over "pending", though flaky has no tasks file either.
    assert (by_id["flaky"]["status"], by_id["flaky"]["reason"]) == ("failed", FAILED)
    assert (by_id["fresh"]["status"], by_id["fresh"]["reason"]) == ("pending", None)
    for sid in ("gated", "flaky", "fresh"):
        assert (by_id[sid]["tasks_valid"], by_id[sid]["tasks_rejected"], by_id[sid]["instances"]) == (0, 0, 0)


def table_rows(stdout: str) -> dict[str, list[str]]:
    """A table's lines as cells (split at runs of two or more spaces; empty cells vanish), by first cell."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines() if line.strip()]
    return {row[0]: row for row in rows}


def test_status_table_lists_sources_and_total(ws):
    result = CliRunner().invoke(cli, ["status"], prog_name="dyno", env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    cells = table_rows(result.stdout)
    local = "local:data/sources/"
    assert cells["source"] == [
        "source",
        "origin",
        "revision",
        "licence",
        "status",
        "valid",
        "rejected",
        "instances",
    ]
    assert cells["reviews"] == ["reviews", local + "reviews", "000000000000", "ok", "1", "1", "5"]
    assert cells["news"] == ["news", local + "news", "222222222222", "cc-by-4.0", "ok", "1", "0", "3"]
    assert cells["gated"][-4:] == ["skipped", "0", "0", "0"]
    assert cells["total"] == ["total", "2", "1", "8"]
    # The reasons follow the table, one line per source.
    assert f"gated: skipped: {GATED}" in result.stdout
    assert f"flaky: failed: {FAILED}" in result.stdout


def test_status_table_at_80_columns_puts_origin_under_the_id(ws):
    result = CliRunner().invoke(cli, ["status"], prog_name="dyno", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    cells = table_rows(result.stdout)
    assert cells["reviews"] == ["reviews", "ok", "1", "1", "5"]
    detail = lines[lines.index(next(line for line in lines if line.startswith("news "))) + 1]
    assert detail.startswith("  local:") and detail.rstrip().endswith("news@2222222 · cc-by-4.0"), detail


def test_status_of_an_empty_project(ws):
    shutil.rmtree(ws.root / "data")
    report = as_json(invoke("status", "--json"))
    assert report == {"sources": [], "tasks_valid": 0, "tasks_rejected": 0, "instances": 0, "quality": {}}


# --- tasks -----------------------------------------------------------------------------------------------


def test_tasks_json_lists_only_valid_tasks(ws):
    found = as_json(invoke("tasks", "--json"))
    assert [t["task_id"] for t in found] == [ws.headline.task_id, ws.valid.task_id]  # news, then reviews
    assert all(t["verdict"] == "valid" and t["reason"] is None for t in found)
    assert found[1] == ws.valid.model_dump(mode="json")


def test_tasks_rejected_lists_only_rejected_with_reasons(ws):
    found = as_json(invoke("tasks", "--rejected", "--json"))
    assert [(t["task_id"], t["verdict"], t["reason"]) for t in found] == [
        (ws.rejected.task_id, "rejected", "io_overlap"),
    ]


def test_tasks_source_filter(ws):
    found = as_json(invoke("tasks", "--source", "news", "--json"))
    assert [t["task_id"] for t in found] == [ws.headline.task_id]
    assert as_json(invoke("tasks", "-s", "news", "--rejected", "--json")) == []


def test_tasks_table(ws):
    result = invoke("tasks", "--rejected")
    assert result.exit_code == 0, result.output
    assert "1 rejected tasks" in result.stdout
    assert ws.rejected.task_id in result.stdout and "io_overlap" in result.stdout
    assert ws.valid.task_id not in result.stdout


def test_tasks_of_an_unknown_source_is_a_one_line_error(ws, capsys):
    code, out, err = run_main(capsys, "tasks", "--source", "nope", "--json")
    assert (code, out) == (1, "")
    assert_one_line_error(err, "Error: no tasks for source 'nope'")


# --- show ------------------------------------------------------------------------------------------------


def test_show_json_returns_the_task_and_n_instances_with_provenance(ws):
    shown = as_json(invoke("show", ws.valid.task_id, "-n", "2", "--json"))
    assert shown["task"] == ws.valid.model_dump(mode="json")
    instances = shown["instances"]
    assert len(instances) == 2
    assert [set(row) for row in instances] == [set(INSTANCE_COLUMNS)] * 2
    assert [(r["row"], r["input"], r["output"]) for r in instances] == [
        (0, "Great value.", "positive"),
        (1, "Broke after two days.", "negative"),
    ]
    for r in instances:
        assert r["instruction"] == ws.valid.final_instruction
        assert (r["source_id"], r["source_revision"], r["config"]) == ("reviews", REV, "default")
        assert r["split"] == "train"
        assert (r["task_id"], r["prompt_version"], r["model"]) == (ws.valid.task_id, "v1", "fake-model")
        assert r["instance_id"] == instance_id(ws.valid.task_id, "train", r["row"])


def test_show_n_larger_than_the_shard_returns_every_instance(ws):
    shown = as_json(invoke("show", ws.headline.task_id, "-n", "50", "--json"))
    assert [r["row"] for r in shown["instances"]] == [0, 1, 2]
    assert {r["output"] for r in shown["instances"]} == {"Value", "Broke", "Fine"}


def test_show_table(ws):
    result = invoke("show", ws.valid.task_id, "-n", "1")
    assert result.exit_code == 0, result.output
    assert f"task {ws.valid.task_id}" in result.stdout
    assert "Answer with one of: negative, positive." in result.stdout
    assert "Great value." in result.stdout and "train#0" in result.stdout
    assert "Broke after two days." not in result.stdout


BRACKETS = "Mark [b]bold[/b], [citation needed] and [/x] as they are."


def test_tables_print_brackets_in_data_verbatim_not_as_markup(ws):
    """LLM instructions and dataset text are data: `[/x]` must neither crash rich nor vanish."""
    task = make_task(task_id="a" * 16, source_id="zz", instruction=BRACKETS)
    write_source(ws.root, make_meta(source_id="zz"), make_generated(source_id="zz"), [task])
    write_shard(
        ws.root / "data/corpus/zz" / f"{task.task_id}.parquet",
        {"text": ["see [/y] and [i]this[/i]"], "title": ["t"], "label": [1]},
        task,
        ws.reviews,
    )
    listed = invoke("tasks", "--source", "zz")
    assert listed.exit_code == 0, listed.output
    assert BRACKETS in listed.stdout
    shown = invoke("show", task.task_id)
    assert shown.exit_code == 0, shown.output
    assert BRACKETS in shown.stdout and "see [/y] and [i]this[/i]" in shown.stdout


def test_show_of_a_rejected_task_names_the_reason(ws, capsys):
    code, out, err = run_main(capsys, "show", ws.rejected.task_id)
    assert (code, out) == (1, "")
    assert_one_line_error(err, f"task {ws.rejected.task_id} was rejected (io_overlap)")


def test_show_of_an_unknown_task_is_a_one_line_error(ws, capsys):
    code, out, err = run_main(capsys, "show", "0000000000000000", "--json")
    assert (code, out) == (1, "")
    assert_one_line_error(err, "Error: unknown task '0000000000000000'")


def test_show_of_a_valid_task_without_a_shard(ws, capsys):
    (ws.root / "data/corpus/news" / f"{ws.headline.task_id}.parquet").unlink()
    code, out, err = run_main(capsys, "show", ws.headline.task_id)
    assert (code, out) == (1, "")
    assert_one_line_error(err, "has no shard yet")


# --- errors, help, usage ---------------------------------------------------------------------------------


def test_outside_a_project_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "status", "--json")
    assert (code, out) == (2, "")
    assert_one_line_error(err, "not inside a Dynosaur project")


def test_dyno_debug_shows_the_traceback(ws, monkeypatch):
    from dynosaur.core.errors import NotFound

    monkeypatch.setenv("DYNO_DEBUG", "1")
    with pytest.raises(NotFound, match="unknown task"):
        main(["show", "nope"])


def test_main_succeeds_without_exiting(ws, capsys):
    main(["tasks", "--json"])  # no SystemExit on success
    found = json.loads(capsys.readouterr().out)
    assert [t["task_id"] for t in found] == [ws.headline.task_id, ws.valid.task_id]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    result = invoke(flag)
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: dyno [OPTIONS] COMMAND [ARGS]...")
    for command in ("status", "tasks", "show", "generate"):
        assert f"  {command} " in result.stdout
    assert invoke("show", flag).stdout.startswith("Usage: dyno show [OPTIONS] TASK_ID")


def test_help_through_main(capsys):
    main(["-h"])
    assert capsys.readouterr().out.startswith("Usage:")


@pytest.mark.parametrize(
    "args",
    [["status", "--bogus"], ["show", "abc", "-n", "0"], ["show"], ["nosuchcommand"]],
)
def test_usage_errors_exit_2(ws, capsys, args):
    assert invoke(*args).exit_code == 2
    code, out, err = run_main(capsys, *args)
    assert (code, out) == (2, "")
    assert "Error:" in err and "Traceback" not in err


# --- show by id prefix -------------------------------------------------------------------------------


def test_show_accepts_a_unique_prefix_of_the_task_id(ws):
    shown = as_json(invoke("show", ws.valid.task_id[:6], "-n", "1", "--json"))
    assert shown["task"]["task_id"] == ws.valid.task_id
    assert [r["task_id"] for r in shown["instances"]] == [ws.valid.task_id]


def test_show_of_an_ambiguous_prefix_lists_candidates_and_exits_2(ws, capsys):
    # Two tasks whose ids share their first four characters.
    twins = [make_task(task_id=f"abcd{c * 12}", source_id="zz") for c in "12"]
    write_source(ws.root, make_meta(source_id="zz"), make_generated(source_id="zz"), twins)
    code, out, err = run_main(capsys, "show", "abcd")
    assert (code, out) == (2, "")
    assert_one_line_error(err, "task id prefix 'abcd' matches 2 tasks: abcd111111111111, abcd222222222222")
    assert invoke("show", "abcd1", "--json").exit_code != 2  # one more character settles it


def test_show_of_an_unknown_prefix_is_not_found(ws, capsys):
    code, out, err = run_main(capsys, "show", "zzzz")
    assert (code, out) == (1, "")
    assert_one_line_error(err, "unknown task 'zzzz'")
