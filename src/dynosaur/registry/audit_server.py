"""`dyno audit review`: the review page, served on loopback by the standard library's http.server.

One port on 127.0.0.1; the page (`audit_page.html`, `audit_page.js`, package resources, no build step) asks
for the sample and the reviewer's answers as JSON and shows every piece of corpus text with `textContent`,
never as HTML, so a row holding `<script>` shows as text. The Content-Security-Policy allows only the page's
own script, and requests must name this server as their Host (a page elsewhere cannot rebind a name to
127.0.0.1 and read the corpus) and post JSON (which a form on another site cannot send without asking).

    GET  /                        the page
    GET  /page.js                 its script
    GET  /api/sample              the audit's items: instruction, input, output, source, task
    GET  /api/answers?reviewer=R  R's answers as they stand, and R's progress
    POST /api/answer              {reviewer, instance_id, the three answers, note}: written before the reply

Each answer is on disk (`dynosaur.registry.audit.write_answers`) before the page hears "saved", so closing
the tab or killing the server loses nothing the page showed as saved.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from dynosaur.core.errors import DynoError
from dynosaur.core.records import AUDIT_QUESTIONS, AuditAnswer, AuditSample
from dynosaur.registry.audit import ROW_FIELDS, check_reviewer, latest, now, read_answers, write_answers
from dynosaur.registry.audit_report import figures

QUESTIONS = {
    "valid_instruction": "Is the instruction a valid task?",
    "input_suffices": "Does the input suffice to do it?",
    "output_correct": "Is the output correct?",
}
CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'"
MAX_BODY = 64 * 1024


def _resource(name: str) -> bytes:
    return files("dynosaur.registry").joinpath(name).read_bytes()


class ReviewState:
    """The sample, its rows, and the answers as written: what the handler serves (one lock for writes)."""

    def __init__(self, root: Path, sample: AuditSample, rows: dict[str, dict], default_reviewer: str | None):
        self.root = root
        self.sample = sample
        self.items = [
            {"instance_id": i.instance_id, **{k: rows[i.instance_id].get(k) for k in ROW_FIELDS}}
            for i in sample.items
        ]
        self.ids = {i.instance_id for i in sample.items}
        self.default_reviewer = default_reviewer
        self.lock = threading.Lock()

    def answers(self, reviewer: str) -> dict[str, Any]:
        reviewer = check_reviewer(reviewer)
        mine = [a for a in read_answers(self.root, self.sample.audit_id, "human") if a.reviewer == reviewer]
        current = {iid: a for (_, iid), a in latest(mine).items() if iid in self.ids}
        return {
            "reviewer": reviewer,
            "answers": {
                iid: {**{q: getattr(a, q) for q in AUDIT_QUESTIONS}, "note": a.note}
                for iid, a in current.items()
            },
            "progress": self.progress(list(current.values())),
        }

    def progress(self, answers: list[AuditAnswer]) -> dict[str, Any]:
        f = figures(answers)
        return {"done": f.n, "total": len(self.items), "fully_valid": f.fully_valid.model_dump()}

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValueError("the body is not a JSON object")
        iid = body.get("instance_id")
        if iid not in self.ids:
            raise ValueError(f"instance {iid!r} is not in audit {self.sample.audit_id}")
        reviewer = check_reviewer(str(body.get("reviewer", "")))
        answer = AuditAnswer.model_validate(
            {
                "audit_id": self.sample.audit_id,
                "instance_id": iid,
                "reviewer": reviewer,
                "kind": "human",
                "note": str(body.get("note") or "")[:2000],
                "created_at": now(),
                **{q: body.get(q) or None for q in AUDIT_QUESTIONS},
            }
        )
        with self.lock:
            write_answers(self.root, [answer])
        return self.answers(reviewer)


def make_handler(state: ReviewState, port: Callable[[], int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dyno-audit"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", CSP)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json")

        def _host_ok(self) -> bool:
            host = self.headers.get("Host", "")
            if host in (f"127.0.0.1:{port()}", f"localhost:{port()}"):
                return True
            self._json(403, {"error": "wrong Host: open the URL dyno audit review printed"})
            return False

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if not self._host_ok():
                return
            url = urlsplit(self.path)
            try:
                if url.path in ("/", "/index.html"):
                    self._send(200, _resource("audit_page.html"), "text/html; charset=utf-8")
                elif url.path == "/page.js":
                    self._send(200, _resource("audit_page.js"), "text/javascript; charset=utf-8")
                elif url.path == "/api/sample":
                    s = state.sample
                    self._json(
                        200,
                        {
                            "audit_id": s.audit_id,
                            "release": s.release,
                            "reviewer": state.default_reviewer,
                            "questions": QUESTIONS,
                            "items": state.items,
                        },
                    )
                elif url.path == "/api/answers":
                    reviewer = parse_qs(url.query).get("reviewer", [""])[0]
                    self._json(200, state.answers(reviewer))
                else:
                    self._json(404, {"error": "not found"})
            except DynoError as exc:
                self._json(400, {"error": str(exc)})

        def do_POST(self) -> None:  # noqa: N802
            if not self._host_ok():
                return
            if urlsplit(self.path).path != "/api/answer":
                return self._json(404, {"error": "not found"})
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                return self._json(415, {"error": "send application/json"})
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                return self._json(413, {"error": "body too large or empty"})
            try:
                body = json.loads(self.rfile.read(length))
                self._json(200, state.answer(body))
            except ValidationError as exc:  # before ValueError, its base: name the field
                err = exc.errors()[0]
                self._json(400, {"error": f"{'.'.join(map(str, err['loc']))}: {err['msg']}"})
            except (ValueError, DynoError) as exc:
                self._json(400, {"error": str(exc).splitlines()[0]})

    return Handler


class ReviewServer:
    """The page's server on 127.0.0.1 (port 0: a free one). `serve_forever` until Ctrl-C, or use as a
    context manager in a thread (tests)."""

    def __init__(self, state: ReviewState, port: int = 0):
        self.state = state
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state, lambda: self.port))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def __enter__(self) -> ReviewServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
