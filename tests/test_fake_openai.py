"""The fake OpenAI server, exercised through the real `openai` client."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from dynosaur.testing.fake_openai import FakeOpenAI, Fault, tasks_from_schema

MESSAGES = [{"role": "user", "content": "Propose tasks for this dataset."}]  # 31 chars -> 8 tokens


@pytest.fixture
def srv() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def client(srv: FakeOpenAI, max_retries: int = 2, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=max_retries, timeout=timeout)


def ask(c: openai.OpenAI) -> openai.types.chat.ChatCompletion:
    return c.chat.completions.create(model="qwen-test", messages=MESSAGES)


def test_normal_call_returns_enqueued_content_and_usage(srv: FakeOpenAI) -> None:
    srv.enqueue('{"tasks": [1]}')
    r = ask(client(srv))
    assert r.choices[0].message.content == '{"tasks": [1]}'
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "qwen-test"
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (8, 4, 12)
    assert (srv.calls, srv.answered) == (1, 1)
    assert srv.history[0]["messages"] == MESSAGES
    assert srv.auth_headers == ["Bearer sk-test"]
    # Script exhausted: the default responder answers.
    assert ask(client(srv)).choices[0].message.content == '{"tasks": []}'


def test_responder_hook_sees_request() -> None:
    with FakeOpenAI(responder=lambda req: req["model"].upper()) as srv:
        assert ask(client(srv)).choices[0].message.content == "QWEN-TEST"


def test_429_is_retried(srv: FakeOpenAI) -> None:
    srv.enqueue(Fault.status(429), "after-429")
    assert ask(client(srv, max_retries=2)).choices[0].message.content == "after-429"
    assert (srv.calls, srv.answered) == (2, 1)


def test_500_twice_then_success(srv: FakeOpenAI) -> None:
    srv.enqueue(Fault.status(500), Fault.status(500), "after-500s")
    assert ask(client(srv, max_retries=2)).choices[0].message.content == "after-500s"
    assert (srv.calls, srv.answered) == (3, 1)


def test_500_without_retries_raises(srv: FakeOpenAI) -> None:
    srv.enqueue(Fault.status(500))
    with pytest.raises(openai.InternalServerError) as exc:
        ask(client(srv, max_retries=0))
    assert exc.value.status_code == 500
    assert (srv.calls, srv.answered) == (1, 0)


def test_503_error_body_has_openai_shape(srv: FakeOpenAI) -> None:
    srv.enqueue(Fault.status(503))
    with pytest.raises(openai.APIStatusError) as exc:
        ask(client(srv, max_retries=0))
    assert exc.value.status_code == 503
    assert exc.value.body["code"] == "service_unavailable"  # type: ignore[index]
    assert set(exc.value.body) >= {"message", "type", "code"}  # type: ignore[arg-type]


@pytest.mark.alone  # a wall-clock assertion or a CPU hog: nothing alongside (tests/workers.py)
def test_timeout_then_retry_succeeds(srv: FakeOpenAI) -> None:
    srv.enqueue(Fault.timeout(3.0), "after-timeout")
    start = time.monotonic()
    assert ask(client(srv, max_retries=1, timeout=0.5)).choices[0].message.content == "after-timeout"
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 2.5
    assert (srv.calls, srv.answered) == (2, 1)


def test_timeout_without_retries_raises(srv: FakeOpenAI) -> None:
    srv.enqueue(Fault.timeout(3.0))
    with pytest.raises(openai.APITimeoutError):
        ask(client(srv, max_retries=0, timeout=0.3))


def test_malformed_body_raises_json_error(srv: FakeOpenAI) -> None:
    # openai 3.x parses a 200 `application/json` body eagerly and lets the decode error through.
    srv.enqueue(Fault.malformed())
    with pytest.raises(json.JSONDecodeError):
        ask(client(srv, max_retries=0))
    assert srv.calls == 1


def test_garbage_content_is_just_a_string(srv: FakeOpenAI) -> None:
    srv.enqueue("not json at all {")
    assert ask(client(srv)).choices[0].message.content == "not json at all {"


@pytest.mark.alone  # a wall-clock assertion or a CPU hog: nothing alongside (tests/workers.py)
def test_concurrent_requests_overlap() -> None:
    with FakeOpenAI(latency=0.2) as srv:
        c = client(srv, max_retries=0, timeout=3.0)
        answers: list[str | None] = []
        threads = [
            threading.Thread(target=lambda: answers.append(ask(c).choices[0].message.content))
            for _ in range(16)
        ]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    assert answers == ['{"tasks": []}'] * 16
    assert srv.calls == srv.answered == 16
    assert 0.2 <= elapsed < 1.0


def test_models_and_unknown_path(srv: FakeOpenAI) -> None:
    assert [m.id for m in client(srv).models.list()] == ["fake-model"]
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(srv.base_url + "/nope", timeout=2)
    assert exc.value.code == 404
    assert json.loads(exc.value.read())["error"]["code"] == "not_found"


def test_reset_clears_bookkeeping(srv: FakeOpenAI) -> None:
    srv.enqueue("a", "b")
    ask(client(srv))
    srv.reset()
    assert (srv.calls, srv.answered, srv.history, srv.auth_headers) == (0, 0, [], [])
    assert ask(client(srv)).choices[0].message.content == '{"tasks": []}'  # "b" was dropped


def schema_request(fields: list[str]) -> dict:
    item = {"properties": {"input_fields": {"type": "array", "items": {"enum": fields}}}}
    schema = {"properties": {"tasks": {"type": "array", "items": item}}}
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}}


def test_tasks_from_schema_with_enum() -> None:
    answer = json.loads(tasks_from_schema(schema_request(["text", "label", "author"])))
    assert answer == {
        "tasks": [
            {
                "instruction": "Given the author, text, predict the label of the example.",
                "input_fields": ["author", "text"],
                "output_field": "label",
            },
            {
                "instruction": "Given the author, label, predict the text of the example.",
                "input_fields": ["author", "label"],
                "output_field": "text",
            },
        ]
    }
    many = json.loads(tasks_from_schema(schema_request(list("abcdef"))))
    assert [t["output_field"] for t in many["tasks"]] == ["b", "c", "d"]
    assert tasks_from_schema({"messages": []}) == '{"tasks": []}'


def test_runs_as_a_separate_process(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dynosaur.testing.fake_openai",
            "--latency",
            "0.05",
            "--port-file",
            str(port_file),
        ],
        cwd=root,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        base_url = f"http://127.0.0.1:{int(port_file.read_text())}/v1"
        c = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=5)
        r = c.chat.completions.create(model="m", messages=MESSAGES, **schema_request(["x", "y"]))
        assert json.loads(r.choices[0].message.content or "")["tasks"][0]["output_field"] == "y"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


def test_tasks_from_schema_answers_a_fields_first_schema() -> None:
    from dynosaur.pipeline.prompts import fields_first_schema

    request = {"response_format": {"type": "json_schema", "json_schema": {"schema": fields_first_schema(3)}}}
    answer = json.loads(tasks_from_schema(request))
    assert len(answer["instructions"]) == len(set(answer["instructions"])) == 3


def test_the_fakes_fields_first_answers_pass_the_filter() -> None:
    """The benchmarks run the default mode against this fake: its instructions must be tasks the filter keeps
    (distinct, no talk of the dataset), one per mapping the prompt lists."""
    from dynosaur.core.params import FilterParams
    from dynosaur.pipeline.answers import parse_instructions
    from dynosaur.pipeline.fields import enumerate_mappings
    from dynosaur.pipeline.filter import judge
    from dynosaur.pipeline.prompts import build_fields_first_messages, fields_first_schema
    from tests.factories import make_generated, make_meta, make_proposal

    meta = make_meta()
    mappings = enumerate_mappings(meta)
    assert len(mappings) >= 2
    messages = build_fields_first_messages(meta, "with_description", mappings, 2)
    request = {
        "messages": [{"role": role, "content": text} for role, text in messages],
        "response_format": {"json_schema": {"schema": fields_first_schema(len(mappings))}},
    }
    specs, error = parse_instructions(tasks_from_schema(request), mappings)
    assert error is None and len(specs) == len(mappings)
    tasks = judge(meta, make_generated(make_proposal(*specs)), FilterParams())
    assert [(t.verdict, t.reason) for t in tasks] == [("valid", None)] * len(mappings)
