"""HubServer: the test Hub's lifecycle (start, stop, URL), its test controls (faults, delays, grants, the
request log) and the helpers tests use to host, commit and read repos directly."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from dynosaur.testing.hub_server.handler import _Handler
from dynosaur.testing.hub_server.model import (
    DelayRule,
    Entry,
    FaultRule,
    HubError,
    RecordedRequest,
    Repo,
    _valid_path,
)
from dynosaur.testing.hub_server.storage import GitStorage


class HubServer(GitStorage):
    """A Hub-compatible server on 127.0.0.1, repos stored as bare git repositories under `root`.

    user/orgs: the identity of every bearer token (unless `tokens` maps tokens to users); the user may
    write to its own namespace and its orgs' (`grant` adds more); other namespaces answer 403 to writes.
    lfs_mode: "auto" (as the Hub: binary, large or .gitattributes-tracked files go through LFS),
    "always" or "never" (everything inline in the commit call).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        user: str = "tester",
        orgs: Iterable[str] = ("tester-org",),
        tokens: dict[str, str] | None = None,
        lfs_mode: str = "auto",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        if lfs_mode not in ("auto", "always", "never"):
            raise ValueError(f"lfs_mode must be auto, always or never, not {lfs_mode!r}")
        self._tmp = None
        if root is None:
            self._tmp = tempfile.mkdtemp(prefix="fake-hub-")
            root = self._tmp
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "home").mkdir(exist_ok=True)
        self.user = user
        self.orgs = list(orgs)
        self.tokens = dict(tokens) if tokens is not None else None  # None: any token is `user`
        self._writable: dict[str, set[str]] = {}
        self.lfs_mode = lfs_mode
        self.host, self._port = host, port
        self.requests: list[tuple[str, str]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request in `requests`, as it arrived
        self.in_flight = self.peak_in_flight = 0  # requests being answered now; the most at once
        self.log: list[RecordedRequest] = []
        self.unhandled: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._rules: list[FaultRule] = []
        self._delays: list[DelayRule] = []
        self.latency = latency  # seconds added to every answer (a remote Hub's round trip)
        self.downloads: dict[str, int] = {}  # repo id → the `downloads` that listings and infos report
        # repo id → fields its listing and info answers carry instead of the real ones (`DROP`: left out):
        # what mirrors send, e.g. {"lastModified": "Sun, 30 Nov 2025 10:00:00 GMT"} or {"sha": DROP}
        self.answer_fields: dict[str, dict[str, Any]] = {}
        self.page_size = 1000  # datasets per page of a listing (`Link: <...>; rel="next"` to the next one)
        self._lock = threading.Lock()  # bookkeeping
        self._write_lock = threading.RLock()  # every change to repos
        self._cache_lock = threading.Lock()
        self._tree_cache: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self._commit_time: dict[str, float] = {}  # commit sha -> commit time (intrinsic to the sha)
        self._known: set[tuple[Path, str]] = set()  # (repo path, commit sha) known to exist
        self._pointers: dict[str, tuple[str, int] | None] = {}  # blob sha -> (lfs oid, size) or None
        self._attributes: dict[str, list[str]] = {}  # .gitattributes blob sha -> its LFS patterns
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self._env.update(
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            HOME=str(self.root / "home"),
            LC_ALL="C",
            GIT_TERMINAL_PROMPT="0",
        )

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        owner: HubServer = self

        class _Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64
            allow_reuse_address = True

        class _BoundHandler(_Handler):
            hub = owner

        self._httpd = _Server((self.host, self._port), _BoundHandler)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive connections: let their threads end
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    base_url = url

    # ---------------------------------------------------------------- test controls

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 500,
        times: int = 1,
        *,
        message: str = "Injected failure (fake hub)",
        error_code: str | None = None,
        after: bool = False,
        body: bytes | None = None,
        content_type: str = "application/json; charset=utf-8",
        hang_up: bool = False,
        headers: dict[str, str] | None = None,
    ) -> FaultRule:
        """The next `times` requests whose method is `method` ("*" for any) and whose path (as sent, no query)
        matches `path_regex` (re.search) are answered `status`. Note: the client retries 429/5xx with backoff
        on some calls (preupload, LFS, downloads) but not on `create_commit`'s commit call. `body` (with
        e.g. status=200) answers with that raw body instead: a malformed answer (`content_type` "text/html":
        a proxy's or a captive portal's page). `hang_up` closes the connection without any answer: with
        `after`, a commit that lands while the client times out."""
        rule = FaultRule(
            method.upper() if method != "*" else "*",
            path_regex,
            status,
            times,
            message,
            error_code,
            after,
            body=body,
            content_type=content_type,
            hang_up=hang_up,
            headers=headers,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def delay_next(self, method: str, path_regex: str, seconds: float, times: int = 1) -> DelayRule:
        """The next `times` requests whose method is `method` ("*" for any) and whose path matches
        `path_regex` wait `seconds` before being answered (on top of `latency`)."""
        rule = DelayRule(method.upper() if method != "*" else "*", path_regex, seconds, times)
        with self._lock:
            self._delays.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()
            self._delays.clear()

    def grant(self, namespace: str, user: str | None = None) -> None:
        """Let `user` (default: the server's user) write to `namespace`."""
        with self._lock:
            self._writable.setdefault(user or self.user, set()).add(namespace)

    def can_write(self, user: str, namespace: str) -> bool:
        with self._lock:
            extra = self._writable.get(user, set())
            orgs = self.orgs if user == self.user else []
        return namespace == user or namespace in orgs or namespace in extra

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.arrivals.clear()
            self.peak_in_flight = self.in_flight
            self.log.clear()
            self.unhandled.clear()
            self.errors.clear()

    def calls(self, method: str | None = None, path_regex: str | None = None) -> list[tuple[str, str]]:
        with self._lock:
            reqs = list(self.requests)
        return [
            (m, p)
            for m, p in reqs
            if (method is None or m == method) and (path_regex is None or re.search(path_regex, p))
        ]

    # ---------------------------------------------------------------- direct (client-free) helpers

    def create_repo(
        self, repo_id: str, repo_type: str = "dataset", private: bool = False, exist_ok: bool = False
    ) -> Repo:
        ns, name = self._split_id(repo_id)
        with self._write_lock:
            existing = self._get_repo(repo_type, ns, name)
            if existing is not None:
                if exist_ok:
                    return existing
                raise FileExistsError(f"{repo_type} repo {repo_id} already exists")
            return self._init_repo(repo_type, ns, name, private)

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        ns, name = self._split_id(repo_id)
        repo = self._get_repo(repo_type, ns, name)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id}")
        return repo

    def commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str] | None = None,
        *,
        delete: Iterable[str] = (),
        message: str = "Commit from the test",
        repo_type: str = "dataset",
        branch: str = "main",
        parent_commit: str | None = None,
        lfs: bool | None = None,
    ) -> str:
        """Commit files directly (no HTTP); lfs=None follows lfs_mode. Returns the new commit sha."""
        repo = self.repo(repo_id, repo_type)
        ops: list[tuple[str, str, Any]] = []
        patterns = self._lfs_patterns(repo, self._resolve(repo, branch))
        for path, data in (files or {}).items():
            data = data.encode() if isinstance(data, str) else bytes(data)
            use_lfs = self._wants_lfs(patterns, path, data[:512], len(data)) if lfs is None else lfs
            if use_lfs and data:
                oid = self._store_lfs(data)
                ops.append(("lfs", _valid_path(path), (oid, len(data))))
            else:
                ops.append(("file", _valid_path(path), data))
        for path in delete:
            ops.append(("delete", path.rstrip("/"), path.endswith("/")))
        return self._commit(repo, branch, ops, message, "", parent_commit)

    def host_folder(
        self,
        repo_id: str,
        folder: str | os.PathLike,
        *,
        repo_type: str = "dataset",
        message: str = "Upload folder",
        private: bool = False,
        tag: str | None = None,
    ) -> str:
        """Host a local folder as a repo: creates the repo if needed and commits every file under `folder` to
        main (binary/large files as LFS per lfs_mode). Returns the commit sha; `tag` also tags it."""
        folder = Path(folder)
        self.create_repo(repo_id, repo_type, private=private, exist_ok=True)
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(folder).parts
        }
        sha = self.commit(repo_id, files, message=message, repo_type=repo_type)
        if tag is not None:
            self.create_tag(repo_id, tag, sha, repo_type=repo_type)
        return sha

    def create_tag(
        self,
        repo_id: str,
        tag: str,
        revision: str = "main",
        *,
        repo_type: str = "dataset",
        message: str | None = None,
    ) -> str:
        repo = self.repo(repo_id, repo_type)
        sha = self._resolve(repo, revision)
        if sha is None:
            raise KeyError(f"unknown revision {revision}")
        self._create_tag(repo, tag, sha, message)
        return sha

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> str | None:
        """The commit sha that `revision` (branch, tag or sha) resolves to, None if it does not exist."""
        return self._resolve(self.repo(repo_id, repo_type), revision)

    def list_files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> list[str]:
        repo = self.repo(repo_id, repo_type)
        sha = self._resolve(repo, revision)
        if sha is None:
            raise KeyError(f"unknown revision {revision}")
        return sorted(e.path for e in self._entries(repo, sha).values() if e.type == "file")

    def read_file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "dataset") -> bytes:
        repo = self.repo(repo_id, repo_type)
        sha = self._resolve(repo, revision)
        entry = self._entries(repo, sha).get(path) if sha else None
        if entry is None or entry.type != "file":
            raise KeyError(f"{path} not found at {revision}")
        return self._content(repo, entry)

    # ---------------------------------------------------------------- HTTP plumbing

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _answered(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _fault_for(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    rule.hits += 1
                    return rule
        return None

    def _delay_for(self, method: str, path: str) -> float:
        with self._lock:
            for rule in self._delays:
                if rule.matches(method, path):
                    rule.times -= 1
                    rule.hits += 1
                    return rule.seconds
        return 0.0

    def _identify(self, headers: Any) -> str | None:
        auth = headers.get("Authorization") or ""
        if not auth.lower().startswith("bearer "):
            return None
        token = auth[7:].strip()
        if not token:
            return None
        if self.tokens is None:
            return self.user
        user = self.tokens.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user
