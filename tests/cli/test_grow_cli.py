"""`dyno discover` and `dyno refresh`: thin commands, JSON on stdout, one-line errors with their exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dynosaur.core.source_list import read_lock, read_sources_file
from dynosaur.testing.hub_server import HubServer
from tests.cli.test_cli import as_json, assert_one_line_error, invoke, run_main
from tests.pipeline.test_discover import classification, host


@pytest.fixture
def project(tmp_path: Path, hub_server: HubServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    host(hub_server, "tester/reviews", configs=("books", "films"), **classification())
    host(hub_server, "tester/gpl", **classification(license="gpl-3.0"))
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"licenses": {"deny": ["gpl-3.0"]}, "discover": {"languages": ["en"]}})
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_discover_dry_run_json_then_for_real(project: Path):
    report = as_json(invoke("discover", "--task-category", "text-classification", "--dry-run", "--json"))
    assert [e["id"] for e in report["added"]] == ["tester__reviews__books", "tester__reviews__films"]
    assert report["skipped"] == {"license_denied": 1} and report["dry_run"] is True
    assert report["query"] == "task_categories=text-classification languages=en"  # params' languages
    assert not (project / "sources.yaml").exists()

    result = invoke("discover", "--task-category", "text-classification", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert "tester__reviews__books" in result.stdout and "dyno refresh" in result.stderr
    assert [e.id for e in read_sources_file(project / "sources.yaml").sources] == ["tester__reviews__books"]


def test_refresh_json_pins_and_says_what_moved(project: Path, hub_server: HubServer):
    invoke("discover", "--search", "reviews")
    first = as_json(invoke("refresh", "--json"))
    assert {m["source_id"] for m in first["added"]} == {"tester__reviews__books", "tester__reviews__films"}
    new = host(hub_server, "tester/reviews", configs=("books", "films"), **classification(pretty_name="v2"))
    result = invoke("refresh")
    assert result.exit_code == 0, result.output
    assert "2 moved" in result.stdout and new[:12] in result.stdout
    assert read_lock(project / "sources.lock").sources["tester__reviews__films"].sha == new


def test_refresh_failure_is_one_line_exit_1(project: Path, hub_server: HubServer, capsys):
    (project / "params.yaml").write_text(
        yaml.safe_dump({"sources": [{"id": f"gone-{i}", "hub": f"tester/gone-{i}"} for i in range(5)]})
    )
    code, out, err = run_main(capsys, "refresh", "--json")
    assert code == 1 and json.loads(out)["failed"]["gone-0"].endswith(
        "dataset not found on the Hub (or no access)"
    )
    assert_one_line_error(err, "5 Hub source(s) could not be resolved (gone-0, gone-1, gone-2 and 2 more)")


def test_bad_sources_file_and_since_are_usage_errors(project: Path, capsys):
    (project / "sources.yaml").write_text("sources:\n  - id: Not Valid\n    hub: a/b\n")
    code, _, err = run_main(capsys, "refresh")
    assert code == 2
    assert_one_line_error(err, "sources.yaml: sources['Not Valid'].id: 'Not Valid' is not a safe source id")
    (project / "sources.yaml").unlink()
    code, _, err = run_main(capsys, "discover", "--since", "yesterday")
    assert code == 2
    assert_one_line_error(err, "--since: 'yesterday' is not an ISO 8601 time")
