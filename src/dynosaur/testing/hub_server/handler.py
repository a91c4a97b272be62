"""The HTTP side of the test Hub: reads each request, applies injected delays and faults, routes it, records
it and sends the answer."""

from __future__ import annotations

import time
import traceback
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from dynosaur.testing.hub_server.model import (
    HubError,
    RecordedRequest,
    Response,
    _error_response,
    _Request,
)
from dynosaur.testing.hub_server.routing import _route

if TYPE_CHECKING:
    from dynosaur.testing.hub_server.server import HubServer


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    disable_nagle_algorithm = True
    timeout = 120

    def setup(self) -> None:
        super().setup()
        with self.hub._lock:
            self.hub._conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.hub._lock:
                self.hub._conns.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        self._recorded = False
        try:
            self._answer()
        finally:
            if self._recorded:
                self.hub._answered()

    def _answer(self) -> None:
        hub = self.hub
        method = self.command
        raw_path, _, query = self.path.partition("?")
        body = self._read_body()  # always, even when failing: keeps the keep-alive connection in sync
        hub._record(method, raw_path)
        self._recorded = True
        pause = hub.latency + hub._delay_for(method, raw_path)
        if pause > 0:
            time.sleep(pause)
        rule = hub._fault_for(method, raw_path)
        if rule is not None and not rule.after:
            resp = rule.response()
        else:
            try:
                req = _Request(method, raw_path, query, self.headers, body, hub._identify(self.headers))
                resp = _route(hub, req)
            except HubError as err:
                resp = _error_response(err)
            except Exception:  # noqa: BLE001  (a bug in the fake: make it visible)
                tb = traceback.format_exc()
                with hub._lock:
                    hub.errors.append(tb)
                resp = _error_response(HubError(500, "Internal error in the fake hub"))
            if rule is not None:
                resp = rule.response()
        with hub._lock:
            hub.log.append(
                RecordedRequest(method, raw_path, query, 0 if rule and rule.hang_up else resp.status)
            )
        if rule is not None and rule.hang_up:
            self.close_connection = True  # no status line, no body: the client's read fails
            return
        self._send(resp, head_only=method == "HEAD")

    def _send(self, resp: Response, head_only: bool) -> None:
        try:
            self.send_response(resp.status)
            for key, value in resp.headers.items():
                self.send_header(key, value)
            self.send_header(
                "Content-Length", str(resp.length if resp.length is not None else len(resp.body))
            )
            self.end_headers()
            if not head_only and resp.body:
                self.wfile.write(resp.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
