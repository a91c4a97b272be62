"""The review page's server at the HTTP level: answers on disk before the reply, bad input refused with a
reason, requests from another Host or without JSON refused, the page's own headers (CSP, no-store)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynosaur.core.records import AuditSample
from dynosaur.registry.audit import latest, read_answers
from dynosaur.registry.audit_server import ReviewServer, ReviewState
from dynosaur.registry.ledger import Ledger
from tests.factories import make_audit_sample


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReviewServer]:
    sample = make_audit_sample(3)
    items = sample.items
    Ledger(tmp_path).append(AuditSample, [sample])
    rows = {
        i.instance_id: {"instruction": "Do it.", "input": "x", "output": "y", "split": "train", "row": 0}
        for i in items
    }
    with ReviewServer(ReviewState(tmp_path, sample, rows, None)) as srv:
        yield srv


def request(
    srv: ReviewServer, method: str, path: str, body: object = None, headers: dict | None = None
) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    is_json = response.getheader("Content-Type", "").startswith("application/json")
    return response.status, dict(response.getheaders()), json.loads(raw) if is_json else {}


def test_an_answer_is_on_disk_before_the_reply(server: ReviewServer):
    iid = f"{0:016x}"
    status, _, reply = request(
        server, "POST", "/api/answer", {"reviewer": "ann", "instance_id": iid, "valid_instruction": "yes"}
    )
    assert status == 200 and reply["progress"] == {
        "done": 0,
        "total": 3,
        "fully_valid": {"yes": 0, "n": 0, "share": None, "low": None, "high": None},
    }
    (answer,) = latest(read_answers(server.state.root, "v1-seed0-n3", "human")).values()
    assert (answer.reviewer, answer.instance_id, answer.valid_instruction, answer.output_correct) == (
        "ann",
        iid,
        "yes",
        None,
    )
    full = {"valid_instruction": "yes", "input_suffices": "yes", "output_correct": "no", "note": "off by one"}
    status, _, reply = request(server, "POST", "/api/answer", {"reviewer": "ann", "instance_id": iid, **full})
    assert reply["progress"]["done"] == 1 and reply["progress"]["fully_valid"]["yes"] == 0
    status, _, mine = request(server, "GET", "/api/answers?reviewer=ann")
    assert mine["answers"][iid] == full
    assert request(server, "GET", "/api/answers?reviewer=bob")[2]["answers"] == {}


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"reviewer": "ann", "instance_id": "f" * 16, "valid_instruction": "yes"}, "is not in audit"),
        ({"reviewer": "ann", "instance_id": f"{1:016x}", "valid_instruction": "maybe"}, "valid_instruction"),
        ({"reviewer": "../x", "instance_id": f"{1:016x}"}, "reviewer"),
        ({"reviewer": "judge", "instance_id": f"{1:016x}"}, "reviewer"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
def test_bad_answers_are_refused_with_a_reason(server: ReviewServer, body: object, reason: str):
    status, _, reply = request(server, "POST", "/api/answer", body)
    assert status == 400 and reason in reply["error"]
    assert read_answers(server.state.root, "v1-seed0-n3") == []


def test_another_host_or_a_form_post_is_refused(server: ReviewServer):
    status, _, reply = request(server, "GET", "/api/sample", headers={"Host": "evil.example:80"})
    assert status == 403 and "Host" in reply["error"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(
        "POST",
        "/api/answer",
        body=b"reviewer=ann",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert conn.getresponse().status == 415
    conn.close()
    assert read_answers(server.state.root, "v1-seed0-n3") == []


def test_the_page_and_its_headers(server: ReviewServer):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/")
    response = conn.getresponse()
    page = response.read().decode()
    assert response.status == 200 and '<script src="page.js"></script>' in page
    assert "script-src 'self'" in (response.getheader("Content-Security-Policy") or "")
    assert response.getheader("Cache-Control") == "no-store"
    conn.close()
    status, _, sample = request(server, "GET", "/api/sample")
    assert status == 200 and len(sample["items"]) == 3 and sample["items"][0]["instruction"] == "Do it."
    assert list(sample["questions"]) == ["valid_instruction", "input_suffices", "output_correct"]
    assert request(server, "GET", "/nothing")[0] == 404
