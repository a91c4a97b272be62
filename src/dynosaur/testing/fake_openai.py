"""A scripted, OpenAI-compatible HTTP server for fast, deterministic tests.

Use it in-process::

    with FakeOpenAI(latency=0.2) as srv:
        srv.enqueue('{"tasks": []}', Fault.status(429), Reply('{"tas', finish_reason="length"))
        client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test")

A responder answers whatever the script doesn't; `by_dataset({"Alpha": hostile})` answers per dataset (the
`Dataset: <name>` line of the prompt), with a string, a `Reply`, a `Fault` or a function of the request.
`slots=n` makes it answer at most n requests at once and queue the rest, as llama.cpp's server does.

or as a separate process (for benchmarks and subprocess tests)::

    python -m dynosaur.testing.fake_openai --port 0 --latency 0.2 --port-file PATH

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

Responder = Callable[[dict[str, Any]], "str | Reply | Fault"]

_ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    503: ("server_error", "service_unavailable"),
}


@dataclass(frozen=True)
class Fault:
    """A scripted failure, consumed by one chat completion request (see `FakeOpenAI.enqueue`).

    kind: "status" (answer with `http_status` and an OpenAI-shaped error body),
    "timeout" (hang `seconds`, then drop the connection without answering),
    "malformed" (HTTP 200 whose body is not JSON), "body" (HTTP 200 with `body`, any JSON: a broken or
    hostile server's shape), or "stall" (a streamed answer that sends its first chunk, then nothing for
    `seconds`, then hangs up: a server that stopped making progress).
    """

    kind: str
    http_status: int = 200
    seconds: float = 0.0
    body: Any = None

    @classmethod
    def status(cls, code: int) -> Fault:
        return cls("status", http_status=code)

    @classmethod
    def timeout(cls, seconds: float) -> Fault:
        return cls("timeout", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def raw(cls, body: Any) -> Fault:
        return cls("body", body=body)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        return cls("stall", seconds=seconds)


@dataclass(frozen=True)
class Reply:
    """A scripted 200 answer with its `finish_reason` ("length": cut at max_tokens)."""

    content: str
    finish_reason: str = "stop"


Item = str | Reply | Fault


def dataset_name(request_json: dict[str, Any]) -> str | None:
    """The dataset a generate prompt is about: the `Dataset: <name>` line of its last user turn (earlier turns
    are demonstrations about other datasets)."""
    users = [m for m in request_json.get("messages") or [] if m.get("role") == "user"]
    for message in users[-1:]:
        for line in _content_text(message.get("content")).splitlines():
            if line.startswith("Dataset: "):
                return line.removeprefix("Dataset: ").strip()
    return None


def by_dataset(answers: dict[str, Item | Responder], default: Responder | None = None) -> Responder:
    """A responder answering per dataset name; other datasets get `default` (tasks from the schema)."""

    def respond(request_json: dict[str, Any]) -> str | Reply | Fault:
        answer = answers.get(dataset_name(request_json) or "")
        if answer is None:
            return (default or tasks_from_schema)(request_json)
        return answer(request_json) if callable(answer) else answer

    return respond


def _content_text(content: Any) -> str:
    """The text of a message's content: a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def default_responder(request_json: dict[str, Any]) -> str:
    """Answer every request with an empty task list."""
    return '{"tasks": []}'


# A fields-first prompt shows each mapping as a rendered task (prompts.rendered_task): "Task 2: the person
# receives the first sentence and the second sentence; the person must produce the label." (or "Task: ...").
TASK_LINE = re.compile(
    r"^Task(?: (\d+))?: the person receives (.+?); the person must produce the (.+?)\.$", re.MULTILINE
)


def rendered_mappings(content: str) -> dict[int, tuple[str, str]]:
    """{task number: (input names, output name)} read back from the last rendered tasks in `content`."""
    block = content[content.rfind("<dataset>") :]
    return {
        int(n or 1): (inputs.replace("the ", "").replace(" and ", ", "), output)
        for n, inputs, output in TASK_LINE.findall(block)
    }


def fields_first_instructions(request_json: dict[str, Any], wanted: int) -> list[str]:
    """One distinct instruction per mapping the last user turn shows, as a model that reads the rendered
    tasks would write; a numbered stand-in for any it can't read."""
    messages = request_json.get("messages") or [{}]
    content = str(messages[-1].get("content", ""))
    tasks = rendered_mappings(content)
    return [
        f"Read the {tasks[i][0]} and write the {tasks[i][1]} that goes with them."
        if i in tasks
        else f"Answer question number {i} about the example."
        for i in range(1, wanted + 1)
    ]


def tasks_from_schema(request_json: dict[str, Any]) -> str:
    """Deterministic answer to a `response_format` json_schema asking for `{"tasks": [...]}` (or, from
    `generate.mode: fields_first`, `{"instructions": [...]}`: as many distinct instructions as asked).

    Reads the allowed field names from the schema's `input_fields` enum and proposes, for each
    field but the (sorted) first, a task predicting it from the others; at most 3 tasks.
    """
    try:
        schema = request_json["response_format"]["json_schema"]["schema"]
        if "instructions" in schema["properties"]:  # generate.mode fields_first: one per listed mapping
            wanted = schema["properties"]["instructions"]["minItems"]
            return json.dumps({"instructions": fields_first_instructions(request_json, wanted)})
        item = schema["properties"]["tasks"]["items"]["properties"]
        allowed = sorted(set(item["input_fields"]["items"]["enum"]))
    except (KeyError, TypeError):
        return '{"tasks": []}'
    tasks = []
    for field in allowed[1:4]:
        inputs = [f for f in allowed if f != field]
        tasks.append(
            {
                "instruction": f"Given the {', '.join(inputs)}, predict the {field} of the example.",
                "input_fields": inputs,
                "output_field": field,
            }
        )
    return json.dumps({"tasks": tasks})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog (5) drops SYNs under a 16-way burst: 1 s retransmits


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 (free port) answering from a script, then a responder.

    Serves `POST /v1/chat/completions` and `GET /v1/models`, concurrently. A request with `stream: true`
    gets server-sent events shaped like llama.cpp's: a first chunk (with `prompt_progress` when the request
    asks for `return_progress`), the answer in pieces spread evenly over `latency`, a last chunk with the
    finish reason, a usage chunk and `[DONE]`; so a streamed answer shows progress all through its latency.
    Bookkeeping (`calls`, `history`, `answered`, `auth_headers`) is guarded by a lock.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        latency: float = 0.0,
        model: str = "fake-model",
        port: int = 0,
        retry_after_ms: int = 10,
        slots: int | None = None,
    ) -> None:
        self.responder: Responder = responder or default_responder
        self.latency = latency
        self._slots = threading.BoundedSemaphore(slots) if slots else None
        self.model = model
        self.retry_after_ms = retry_after_ms
        self._port = port
        self._lock = threading.Lock()
        self._queue: deque[Item] = deque()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler; subclasses that serve more endpoints extend it (see fake_batch)."""
        return _make_handler(self)

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency or a timeout fault
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- script and bookkeeping ----------------------------------------------------------------
    def enqueue(self, *items: Item) -> None:
        """Script the next chat completions: a string is the answer's content, a Fault a failure."""
        with self._lock:
            self._queue.extend(items)

    def reset(self) -> None:
        """Forget the script and all bookkeeping."""
        with self._lock:
            self._queue.clear()
            self.calls = 0
            self.answered = 0
            self.history: list[dict[str, Any]] = []
            self.auth_headers: list[str] = []

    def _record(self, request_json: dict[str, Any], auth: str | None) -> Item | None:
        with self._lock:
            self.calls += 1
            self.history.append(request_json)
            if auth is not None:
                self.auth_headers.append(auth)
            return self._queue.popleft() if self._queue else None

    def _completion(
        self, request_json: dict[str, Any], content: str, finish_reason: str = "stop"
    ) -> dict[str, Any]:
        prompt = "".join(_content_text(m.get("content")) for m in request_json.get("messages") or [])
        prompt_tokens, completion_tokens = _tokens(prompt), _tokens(content)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request_json.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _make_handler(srv: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go in two writes; don't let Nagle hold the body
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
            pass

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), headers)

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            type_, code = _ERROR_KINDS.get(status, ("server_error", f"http_{status}"))
            body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
            self._json(status, body, headers)

        def do_GET(self) -> None:
            self._body()
            if self.path.rstrip("/") == "/v1/models":
                model = {"id": srv.model, "object": "model", "created": 0, "owned_by": "fake-openai"}
                self._json(200, {"object": "list", "data": [model]})
            else:
                self._error(404, f"Unknown path: GET {self.path}")

        def do_POST(self) -> None:
            raw = self._body()
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._error(404, f"Unknown path: POST {self.path}")
            try:
                request_json = json.loads(raw or b"{}")
            except ValueError:
                request_json = None
            valid = isinstance(request_json, dict)
            if not valid:
                request_json = {"_invalid_json": raw.decode("utf-8", "replace")}
            item = srv._record(request_json, self.headers.get("Authorization"))
            if not valid:
                return self._error(400, "Request body is not a JSON object")
            if item is None:
                item = srv.responder(request_json)
            stall = isinstance(item, Fault) and item.kind == "stall"
            if stall or (request_json.get("stream") and not isinstance(item, Fault)):
                return self._stream(request_json, item)
            if isinstance(item, Fault):
                return self._fault(item)
            reply = item if isinstance(item, Reply) else Reply(item)
            with srv._slots or contextlib.nullcontext():  # queued here while every slot is busy
                if srv.latency > 0 and srv._stopping.wait(srv.latency):
                    self.close_connection = True
                    return
            body = srv._completion(request_json, reply.content, reply.finish_reason)
            with srv._lock:  # counted before the client can see the answer, so tests never race it
                srv.answered += 1
            self._json(200, body)

        def _event(self, obj: Any) -> None:
            data = f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _stream(self, request_json: dict[str, Any], item: Item) -> None:
            """Server-sent events, as llama.cpp streams them (see the class docstring)."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk: dict[str, Any] = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion.chunk",
            }
            chunk |= {"created": int(time.time()), "model": request_json.get("model", srv.model)}
            first: dict[str, Any] = {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
            if request_json.get("return_progress"):
                first["prompt_progress"] = {"total": 1, "cache": 0, "processed": 1, "time_ms": 0}
            with srv._slots or contextlib.nullcontext():
                self._event(first)
                if isinstance(item, Fault):  # a stall: no progress for `seconds`, then hang up
                    srv._stopping.wait(item.seconds)
                    self.close_connection = True
                    return
                reply = item if isinstance(item, Reply) else Reply(item)
                pieces = [reply.content[i : i + 8] for i in range(0, len(reply.content), 8)] or [""]
                for piece in pieces:
                    if srv.latency > 0 and srv._stopping.wait(srv.latency / len(pieces)):
                        self.close_connection = True
                        return
                    self._event({**chunk, "choices": [{"index": 0, "delta": {"content": piece}}]})
            last = {"index": 0, "delta": {}, "finish_reason": reply.finish_reason}
            self._event({**chunk, "choices": [last]})
            usage = srv._completion(request_json, reply.content)["usage"]
            with srv._lock:  # counted before the client can see the end, so tests never race it
                srv.answered += 1
            if (request_json.get("stream_options") or {}).get("include_usage"):
                self._event({**chunk, "choices": [], "usage": usage})
            self._event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

        def _fault(self, fault: Fault) -> None:
            if fault.kind == "timeout":
                srv._stopping.wait(fault.seconds)
                self.close_connection = True  # hang up without an answer
            elif fault.kind == "malformed":
                self._send(200, b"this is not JSON {")
            elif fault.kind == "body":
                self._json(200, fault.body)
            else:
                retry = {"retry-after": "0", "retry-after-ms": str(srv.retry_after_ms)}
                headers = retry if fault.http_status in (429, 500, 502, 503) else None
                self._error(fault.http_status, f"Scripted fault: HTTP {fault.http_status}", headers)

    return Handler


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server for tests.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat completion")
    parser.add_argument("--port-file", type=Path, help="write the bound port here (atomically)")
    args = parser.parse_args(argv)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with FakeOpenAI(responder=tasks_from_schema, latency=args.latency, port=args.port) as srv:
        if args.port_file:
            _write_atomic(args.port_file, f"{srv.port}\n")
        print(f"fake-openai serving on {srv.base_url}", flush=True)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
