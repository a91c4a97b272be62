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


def test_odd_hub_answers_get_one_line_each_never_a_traceback(project: Path, hub_server: HubServer, capsys):
    """RFC 1123 times are read, a malformed dataset is one line and skipped; a missing sha in refresh is
    that source's line (issue 21 F3)."""
    from dynosaur.testing.hub_server import DROP

    host(hub_server, "tester/odd", **classification())
    hub_server.answer_fields["tester/reviews"] = {"lastModified": "Sun, 30 Nov 2025 10:00:00 GMT"}
    hub_server.answer_fields["tester/odd"] = {"downloads": "many"}
    result = invoke("discover", "--task-category", "text-classification")
    err = result.stderr
    assert result.exit_code == 0 and "Traceback" not in err, result.output
    assert "tester/odd: the Hub's answer has a bad downloads" in err and "malformed 1" in err
    assert [e.id for e in read_sources_file(project / "sources.yaml").sources] == [
        "tester__reviews__books",
        "tester__reviews__films",
    ]
    hub_server.answer_fields["tester/reviews"] = {"sha": DROP}
    code, out, err = run_main(capsys, "refresh")
    assert code == 1 and "Traceback" not in err
    assert "tester/reviews@main: the Hub's answer has a bad sha (missing)" in err
    assert not (project / "sources.lock").exists()


# --- the token goes only over https or to loopback (issue 21 F5) -----------------------------------------


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every connection attempted (none succeeds): a refusal must come before the first."""
    import socket

    attempts: list = []

    def connect(self, address):
        attempts.append(address)
        raise ConnectionRefusedError(111, "refused by the test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


CLEAR_HUB = "http://192.0.2.10:8080"  # TEST-NET-1: not loopback


@pytest.mark.parametrize("command", [["discover", "--search", "reviews"], ["refresh"]])
def test_the_token_is_never_sent_in_clear_to_a_host_that_is_not_loopback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys, connections: list, command: list[str]
):
    from tests.hub_fixtures import point_clients_at

    (project / "params.yaml").write_text(yaml.safe_dump({"sources": [{"id": "r", "hub": "tester/reviews"}]}))
    point_clients_at(monkeypatch, CLEAR_HUB)
    code, _, err = run_main(capsys, *command)
    assert code == 2, err
    assert_one_line_error(err, f"HF_ENDPOINT {CLEAR_HUB}: the Hugging Face token would go in clear")
    assert "hub.allow_insecure_http: true" in err and "hf_test_dummy_token" not in err
    assert connections == []
    # the explicit opt-in lets it try (and fail: nothing listens there)
    (project / "params.yaml").write_text(
        yaml.safe_dump(
            {"sources": [{"id": "r", "hub": "tester/reviews"}], "hub": {"allow_insecure_http": True}}
        )
    )
    code, _, err = run_main(capsys, *command)
    assert code == 1 and connections, err
    # without a token nothing secret travels: no refusal either
    (project / "params.yaml").write_text(yaml.safe_dump({"sources": [{"id": "r", "hub": "tester/reviews"}]}))
    monkeypatch.delenv("HF_TOKEN")
    connections.clear()
    code, _, err = run_main(capsys, *command)
    assert code == 1 and connections and "in clear" not in err, err
