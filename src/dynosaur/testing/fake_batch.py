"""A scripted OpenAI Batch API (`/v1/files`, `/v1/batches`) on top of `FakeOpenAI`, for tests and benchmarks.

    with FakeBatchOpenAI(responder=tasks_from_schema) as srv:
        srv.hold = True                          # batches stay in progress until released
        srv.script(BatchOutcome.expire(done=0.5), BatchOutcome.partial(errors=2))
        ...
        srv.hold = False                         # the next poll of each batch finishes it

A batch moves validating → in_progress on its first poll and finishes on a later poll once it is not held
and `delay_s` has passed since it was created. It then answers each line of its input file with the
responder (as `/v1/chat/completions` would) unless its scripted outcome says otherwise:

- `complete()`: every row answered (the default);
- `expire(done)`: status `expired`; the first `done` share of rows answered, the rest in the error file with
  code `batch_expired` (OpenAI's behaviour at the end of the completion window);
- `fail(code)`: status `failed`, no output, `errors.data[0].code` = code (an input file OpenAI rejects);
- `partial(errors, missing)`: status `completed`, but `errors` rows answered with HTTP 500 (in the error file)
  and `missing` rows in neither file.

`submitted` counts, per custom_id, how many created batches held it: a request sent twice shows as 2.
`stall_create_s` makes `POST /v1/batches` create the batch and then wait before answering, so a test can kill
the client between the provider's commit and the client's record of it. Chat completions still work as in
`FakeOpenAI`. Only the standard library is used.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

from dynosaur.pipeline.batch_tracker import BatchState
from dynosaur.testing.fake_openai import FakeOpenAI, Reply

TERMINAL = {"completed", "expired", "failed", "cancelled"}
WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class BatchOutcome:
    """How a created batch ends (see the module docstring); consumed in creation order."""

    kind: str = "complete"
    done: float = 1.0
    errors: int = 0
    missing: int = 0
    code: str = "invalid_request"

    @classmethod
    def complete(cls) -> BatchOutcome:
        return cls()

    @classmethod
    def expire(cls, done: float = 0.5) -> BatchOutcome:
        return cls("expired", done=done)

    @classmethod
    def fail(cls, code: str = "invalid_request") -> BatchOutcome:
        return cls("failed", code=code)

    @classmethod
    def partial(cls, errors: int = 0, missing: int = 0) -> BatchOutcome:
        return cls("partial", errors=errors, missing=missing)


KNOWN = tuple(s for s in get_args(BatchState) if s != "submitting")  # the statuses a provider reports


class FakeBatchOpenAI(FakeOpenAI):
    """`FakeOpenAI` plus the Batch API. State and bookkeeping are guarded by the server's lock."""

    def __init__(self, *args: Any, delay_s: float = 0.0, stall_create_s: float = 0.0, **kwargs: Any):
        self.delay_s = delay_s
        self.stall_create_s = stall_create_s
        self.hold = False
        self.unknown_status: str | None = None  # set: polled batches report this status (one providers add)
        self.lose_create_responses = 0  # this many batch creations succeed but their answer never arrives
        self.files_gone = False  # result files answer 404 (past the provider's retention)
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.files: dict[str, dict[str, Any]] = {}
            self.file_bytes: dict[str, bytes] = {}
            self.batches: dict[str, dict[str, Any]] = {}  # in creation order
            self.outcomes: dict[str, BatchOutcome] = {}
            self._script: deque[BatchOutcome] = deque()
            self.submitted: Counter[str] = Counter()
            self.polls = 0
            self.lists = 0

    def script(self, *outcomes: BatchOutcome) -> None:
        """How the next created batches end, in order; unscripted batches complete."""
        with self._lock:
            self._script.extend(outcomes)

    @property
    def batches_created(self) -> int:
        with self._lock:
            return len(self.batches)

    def duplicates(self) -> int:
        """Requests that were in more than one created batch (counted once per extra submission)."""
        with self._lock:
            return sum(n - 1 for n in self.submitted.values() if n > 1)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _make_batch_handler(self, super()._handler_class())

    # -- the API, called by the handler with the lock not held ------------------------------------------
    def _upload(self, filename: str, purpose: str, data: bytes) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        file: dict[str, Any] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        with self._lock:
            self.files[file_id] = file
            self.file_bytes[file_id] = data
        return file

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            data = self.file_bytes.get(body.get("input_file_id", ""))
            if data is None:
                return 404, {"message": f"No such File object: {body.get('input_file_id')}"}
            now = int(time.time())
            lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
            batch = {
                "id": f"batch_{uuid.uuid4().hex[:24]}",
                "object": "batch",
                "endpoint": body.get("endpoint"),
                "errors": None,
                "input_file_id": body["input_file_id"],
                "completion_window": body.get("completion_window", "24h"),
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": now,
                "in_progress_at": None,
                "expires_at": now + WINDOW_S,
                "finalizing_at": None,
                "completed_at": None,
                "failed_at": None,
                "expired_at": None,
                "cancelling_at": None,
                "cancelled_at": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata") or None,
            }
            self.batches[batch["id"]] = batch
            self.outcomes[batch["id"]] = self._script.popleft() if self._script else BatchOutcome()
            self.submitted.update(str(line.get("custom_id")) for line in lines)
        if self.stall_create_s:
            self._stopping.wait(self.stall_create_s)
        return 200, dict(batch)

    def _retrieve(self, batch_id: str) -> dict[str, Any] | None:
        with self._lock:
            self.polls += 1
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            self._advance(batch)
            return dict(batch)

    def _list(self, after: str | None, limit: int) -> dict[str, Any]:
        with self._lock:
            self.lists += 1
            newest_first = list(reversed(self.batches.values()))
            ids = [b["id"] for b in newest_first]
            start = ids.index(after) + 1 if after in ids else 0
            page = [dict(b) for b in newest_first[start : start + limit]]
            return {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + limit < len(ids),
            }

    def _advance(self, batch: dict[str, Any]) -> None:
        """Move a batch along its lifecycle on a poll (lock held)."""
        now = int(time.time())
        if self.unknown_status is not None and batch["status"] not in ("completed", "expired", "failed"):
            batch["status"] = self.unknown_status
            return
        if batch["status"] == self.unknown_status or batch["status"] not in KNOWN:
            batch["status"] = "in_progress"
        if batch["status"] == "validating":
            batch["status"], batch["in_progress_at"] = "in_progress", now
            return
        if batch["status"] != "in_progress" or self.hold or time.time() < batch["created_at"] + self.delay_s:
            return
        self._finish(batch, self.outcomes[batch["id"]], now)

    def _finish(self, batch: dict[str, Any], outcome: BatchOutcome, now: int) -> None:
        lines = [json.loads(x) for x in self.file_bytes[batch["input_file_id"]].decode().splitlines() if x]
        if outcome.kind == "failed":
            batch.update(status="failed", failed_at=now)
            batch["errors"] = {
                "object": "list",
                "data": [{"code": outcome.code, "message": "Scripted failure", "param": None, "line": 1}],
            }
            return
        out, err = [], []
        answered = round(len(lines) * outcome.done) if outcome.kind == "expired" else len(lines)
        for i, line in enumerate(lines):
            row_id = f"batch_req_{uuid.uuid4().hex[:24]}"
            if i >= answered:
                error = {"code": "batch_expired", "message": "This request could not be executed in time."}
                err.append({"id": row_id, "custom_id": line["custom_id"], "response": None, "error": error})
            elif i < outcome.errors:
                body = {"error": {"message": "Scripted row fault", "type": "server_error", "code": None}}
                response = {"status_code": 500, "request_id": row_id, "body": body}
                err.append(
                    {"id": row_id, "custom_id": line["custom_id"], "response": response, "error": None}
                )
            elif i < outcome.errors + outcome.missing:
                continue
            else:
                item = self.responder(line["body"])
                if isinstance(item, Reply):
                    body = self._completion(line["body"], item.content, item.finish_reason)
                elif isinstance(item, str):
                    body = self._completion(line["body"], item)
                else:  # a transport fault has no place in a batch output file: the row errors
                    body = {"error": {"message": f"scripted fault {item!r}", "type": "server_error"}}
                response = {"status_code": 200, "request_id": row_id, "body": body}
                out.append(
                    {"id": row_id, "custom_id": line["custom_id"], "response": response, "error": None}
                )
        if out:
            batch["output_file_id"] = self._store("batch_output.jsonl", out)
        if err:
            batch["error_file_id"] = self._store("batch_error.jsonl", err)
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
        batch["finalizing_at"] = now
        if outcome.kind == "expired":
            batch.update(status="expired", expired_at=now)
        else:
            batch.update(status="completed", completed_at=now)

    def _store(self, filename: str, rows: list[dict[str, Any]]) -> str:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": "batch_output",
            "status": "processed",
        }
        self.file_bytes[file_id] = data
        return file_id


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name → (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


def _make_batch_handler(
    srv: FakeBatchOpenAI, base: type[BaseHTTPRequestHandler]
) -> type[BaseHTTPRequestHandler]:
    class Handler(base):  # type: ignore[valid-type, misc]
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts[:2] == ["v1", "batches"]:
                self._body()
                if len(parts) == 2:
                    query = parse_qs(url.query)
                    limit = int(query.get("limit", ["20"])[0])
                    return self._json(200, srv._list(query.get("after", [None])[0], limit))
                batch = srv._retrieve(parts[2])
                if batch is None:
                    return self._error(404, f"No batch with id '{parts[2]}'")
                return self._json(200, batch)
            if parts[:2] == ["v1", "files"] and len(parts) >= 3:
                self._body()
                with srv._lock:
                    file, data = srv.files.get(parts[2]), srv.file_bytes.get(parts[2])
                gone = srv.files_gone and file is not None and file.get("purpose") == "batch_output"
                if file is None or data is None or gone:
                    return self._error(404, f"No such File object: {parts[2]}")
                if parts[3:] == ["content"]:
                    return self._send(200, data, {"Content-Type": "application/jsonl"})
                return self._json(200, file)
            return super().do_GET()

        def do_POST(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            if path == "/v1/files":
                fields = _multipart(self.headers.get("Content-Type", ""), self._body())
                if "file" not in fields:
                    return self._error(400, "Missing file")
                filename, data = fields["file"]
                purpose = fields.get("purpose", (None, b""))[1].decode()
                return self._json(200, srv._upload(filename or "upload.jsonl", purpose, data))
            if path == "/v1/batches":
                try:
                    body = json.loads(self._body() or b"{}")
                except ValueError:
                    return self._error(400, "Request body is not JSON")
                status, answer = srv._create(body)
                if status != 200:
                    return self._error(status, answer["message"])
                with srv._lock:
                    lose = srv.lose_create_responses > 0
                    srv.lose_create_responses -= lose
                if srv._stopping.is_set() or lose:  # created, but the client never hears of it
                    self.close_connection = True
                    return None
                return self._json(200, answer)
            return super().do_POST()

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            # the base sends `Content-Type: application/json` first; a file's content type replaces it
            if headers and "Content-Type" in headers:
                self.send_response(status)
                self.send_header("Content-Type", headers["Content-Type"])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super()._send(status, body, headers)

    return Handler
