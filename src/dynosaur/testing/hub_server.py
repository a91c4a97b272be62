"""A Hugging Face Hub-compatible HTTP server for tests, backed by real git repositories.

The real `huggingface_hub` client (HfApi, hf_hub_download, snapshot_download, HfFileSystem) and the real
`datasets.load_dataset` (streaming or not) work against it. Each repo is a bare git repository on disk, so
commit shas are real 40-hex git commit ids, tags are git tags and history is git history. Large or binary
files go through the legacy LFS protocol (batch + PUT) like on the real Hub and are stored as LFS pointer
files in git, unless `lfs_mode="never"`.

Use it in-process (see `tests/hub_fixtures.py` for the pytest fixture that also points the clients at it)::

    with HubServer(tmp_path / "hub") as hub:
        sha = hub.host_folder("tester/corpus", folder)
        hub.fail_next("POST", r"/commit/", status=500)

or as a separate process (for benchmarks and subprocess tests)::

    python -m dynosaur.testing.hub_server --root DIR --port 0 --port-file PATH

Bookkeeping for assertions: `requests` [(method, path)], `log` [RecordedRequest], `unhandled` [(method, path)]
for anything the server does not implement, `errors` [traceback text] for server-side bugs.

Only the standard library, PyYAML (for README front matter) and the `git` command are used.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import traceback
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs, quote, unquote

# Plural URL segment -> repo type, and the prefix of a repo's web/resolve URL per type.
REPO_TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}
URL_PREFIX = {"dataset": "datasets/", "model": "", "space": "spaces/"}

LFS_THRESHOLD = 10 * 1024 * 1024  # files this large always go through LFS in lfs_mode="auto" (as on the Hub)
_POINTER_RE = re.compile(
    rb"version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n"
)
_SHA1_RE = re.compile(r"[0-9a-f]{40}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REV_RE = re.compile(r"[A-Za-z0-9._/-]+")
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
DROP = object()  # in `HubServer.answer_fields`: leave the field out of the answer

# The .gitattributes the Hub puts in the initial commit of every new repo (abridged).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z",
        "*.arrow",
        "*.bin",
        "*.bz2",
        "*.ckpt",
        "*.ftz",
        "*.gz",
        "*.h5",
        "*.joblib",
        "*.lz4",
        "*.mds",
        "*.mlmodel",
        "*.model",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.onnx",
        "*.ot",
        "*.parquet",
        "*.pb",
        "*.pickle",
        "*.pkl",
        "*.pt",
        "*.pth",
        "*.rar",
        "*.safetensors",
        "saved_model/**/*",
        "*.tar.*",
        "*.tar",
        "*.tflite",
        "*.tgz",
        "*.wasm",
        "*.xz",
        "*.zip",
        "*.zst",
        "*tfevents*",
        "*.mp3",
        "*.wav",
        "*.jpg",
        "*.jpeg",
        "*.png",
        "*.webp",
        "*.mp4",
    )
)


class HubError(Exception):
    """An HTTP error answered the way the Hub does: JSON {"error": message}, X-Error-Code, X-Error-Message."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, dict(headers or {})
        self.extra = dict(extra or {})  # more fields of the JSON body


def _not_found(code: str, message: str, **headers: str) -> HubError:
    return HubError(404, message, code, headers)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None  # Content-Length to announce when it differs from len(body) (HEAD)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(data).encode(), hdrs)


class RecordedRequest(NamedTuple):
    method: str
    path: str  # as sent, without the query string
    query: str
    status: int


@dataclass
class FaultRule:
    """Matching requests are answered with `status` (the body is read first). With after=True the request is
    processed normally first (a commit lands) and the answer is then replaced: a lost response. With `body`
    set, the answer is `status` with that raw JSON body: a malformed answer."""

    method: str
    path_regex: str
    status: int = 500
    times: int = 1
    message: str = "Injected failure (fake hub)"
    error_code: str | None = None
    after: bool = False
    hits: int = 0
    body: bytes | None = None
    content_type: str = "application/json; charset=utf-8"
    hang_up: bool = False  # close the connection with no answer at all (what a client that timed out sees)
    headers: dict[str, str] | None = None  # extra answer headers, e.g. {"Retry-After": "1"} with a 429

    def response(self) -> Response:
        if self.body is not None:
            return Response(
                self.status, self.body, {"Content-Type": self.content_type, **(self.headers or {})}
            )
        return _error_response(HubError(self.status, self.message, self.error_code, headers=self.headers))

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0 and self.method in ("*", method) and re.search(self.path_regex, path) is not None
        )


@dataclass
class DelayRule:
    """Matching requests wait `seconds` before they are answered: a Hub that stalls."""

    method: str
    path_regex: str
    seconds: float
    times: int = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0 and self.method in ("*", method) and re.search(self.path_regex, path) is not None
        )


@dataclass(frozen=True)
class Entry:
    path: str
    type: str  # "file" | "directory"
    oid: str  # git blob or tree sha
    size: int  # real size (the LFS object's size for LFS files)
    mode: str = "100644"
    lfs_oid: str | None = None  # sha256 of the content for LFS files
    pointer_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "oid": self.oid, "size": self.size, "path": self.path}
        if self.lfs_oid is not None:
            out["lfs"] = {"oid": self.lfs_oid, "size": self.size, "pointerSize": self.pointer_size}
        return out


@dataclass
class Repo:
    type: str
    namespace: str
    name: str
    path: Path
    private: bool = False
    created_at: str = ""

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _front_matter(text: str) -> dict | None:
    """The YAML front matter of a README, parsed; None when absent; raises ValueError when invalid."""
    import yaml

    m = re.match(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", text, re.DOTALL)
    if m is None:
        return None
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError as exc:
        raise ValueError(f"Invalid YAML in README front matter: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("README front matter must be a YAML mapping")  # noqa: TRY004
    return data


def _valid_path(path: Any) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or "\x00" in path or "\\" in path:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..", ".git") for p in parts):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _truthy(value: Any) -> bool:
    if isinstance(value, list):
        value = value[-1] if value else None
    return str(value).lower() in ("1", "true", "yes", "on")


class HubServer:
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

    # ---------------------------------------------------------------- git storage

    def _git(
        self,
        repo: Repo | Path,
        *args: str,
        input: bytes | None = None,
        env: dict | None = None,
        check: bool = True,
    ) -> bytes:
        git_dir = repo.path if isinstance(repo, Repo) else repo
        proc = subprocess.run(
            ["git", f"--git-dir={git_dir}", *args],
            input=input,
            capture_output=True,
            env={**self._env, **(env or {})},
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
            )
        return proc.stdout

    @staticmethod
    def _split_id(repo_id: str) -> tuple[str, str]:
        parts = repo_id.split("/")
        if len(parts) != 2:
            raise ValueError(f"repo id must be namespace/name, got {repo_id!r}")
        return parts[0], parts[1]

    def _repo_dir(self, repo_type: str, ns: str, name: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / ns / f"{name}.git"

    def _get_repo(self, repo_type: str, ns: str, name: str) -> Repo | None:
        if not (_NAME_RE.fullmatch(ns) and _NAME_RE.fullmatch(name)) or repo_type not in URL_PREFIX:
            return None
        path = self._repo_dir(repo_type, ns, name)
        meta_file = path / "hub-meta.json"
        if not meta_file.is_file():
            return None
        meta = json.loads(meta_file.read_text())
        return Repo(repo_type, ns, name, path, bool(meta.get("private")), meta.get("createdAt", ""))

    def _init_repo(self, repo_type: str, ns: str, name: str, private: bool) -> Repo:
        if not (_NAME_RE.fullmatch(ns) and _NAME_RE.fullmatch(name)) or name.endswith(".git") or "--" in name:
            raise HubError(400, f"Invalid repo name: {ns}/{name}")
        path = self._repo_dir(repo_type, ns, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "-q", "--bare", str(path)], env=self._env, check=True, capture_output=True
        )
        self._git(path, "symbolic-ref", "HEAD", "refs/heads/main")
        repo = Repo(repo_type, ns, name, path, private, _iso(datetime.now(UTC).timestamp()))
        self._commit(
            repo,
            "main",
            [("file", ".gitattributes", DEFAULT_GITATTRIBUTES.encode())],
            "initial commit",
            "",
            None,
            create_branch=True,
        )
        (path / "hub-meta.json").write_text(json.dumps({"private": private, "createdAt": repo.created_at}))
        return repo

    def _write_blob(self, repo: Repo, data: bytes) -> str:
        """Write a loose blob object directly (the format is git's, stable)."""
        header = f"blob {len(data)}\x00".encode()
        sha = hashlib.sha1(header + data).hexdigest()
        target = repo.path / "objects" / sha[:2] / sha[2:]
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="tmp_obj_")
            with os.fdopen(fd, "wb") as fh:
                fh.write(zlib.compress(header + data, 1))
            os.replace(tmp, target)
        return sha

    def _lfs_path(self, oid: str) -> Path:
        return self.root / "lfs" / oid[:2] / oid[2:4] / oid

    def _store_lfs(self, data: bytes) -> str:
        oid = hashlib.sha256(data).hexdigest()
        target = self._lfs_path(oid)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        return oid

    def _refs(self, repo: Repo) -> dict[str, str]:
        """refname -> commit sha (tags peeled)."""
        out = self._git(repo, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)")
        refs = {}
        for line in out.decode().splitlines():
            name, obj, peeled = line.split("\x00")
            refs[name] = peeled or obj
        return refs

    def _resolve(self, repo: Repo, rev: str) -> str | None:
        if not rev or not _REV_RE.fullmatch(rev) or ".." in rev or rev.endswith("/"):
            return None
        if _SHA1_RE.fullmatch(rev):
            if (repo.path, rev) in self._known:
                return rev
            kind = self._git(repo, "cat-file", "-t", rev, check=False).strip()
            if kind != b"commit":
                return None
            self._known.add((repo.path, rev))
            return rev
        if not rev.startswith(("refs/", "tags/")):
            # A branch: its loose ref file (git writes refs by rename; this server never packs them), which
            # spares a `git for-each-ref` per request: 2,000 refreshes in seconds, not minutes.
            loose = repo.path / "refs" / "heads" / rev
            try:
                sha = loose.read_text().strip() if loose.is_file() else ""
            except OSError:
                sha = ""
            if _SHA1_RE.fullmatch(sha):
                return sha
        refs = self._refs(repo)
        candidates = [rev] if rev.startswith("refs/") else [f"refs/heads/{rev}", f"refs/tags/{rev}"]
        for ref in candidates:
            if ref in refs:
                return refs[ref]
        return None

    def _branch_head(self, repo: Repo, branch: str) -> str | None:
        branch = branch.removeprefix("refs/heads/")
        return self._refs(repo).get(f"refs/heads/{branch}")

    def _commit_ts(self, repo: Repo, sha: str) -> float:
        ts = self._commit_time.get(sha)
        if ts is None:
            ts = float(self._git(repo, "show", "-s", "--format=%ct", sha).strip())
            self._commit_time[sha] = ts
        return ts

    def _entries(self, repo: Repo, sha: str) -> dict[str, Entry]:
        """Every file and directory of a commit, by path (cached: commits are immutable)."""
        key = f"{repo.path}@{sha}"
        with self._cache_lock:
            cached = self._tree_cache.get(key)
            if cached is not None:
                self._tree_cache.move_to_end(key)
                return cached
        out = self._git(repo, "ls-tree", "-r", "-t", "-l", "-z", sha)
        raw: list[tuple[str, str, str, str, str]] = []
        for item in out.decode("utf-8", "surrogateescape").split("\x00"):
            if not item:
                continue
            meta, path = item.split("\t", 1)
            mode, kind, oid, size = meta.split()
            raw.append((path, mode, kind, oid, size))
        unknown = [
            oid
            for _, _, kind, oid, size in raw
            if kind == "blob" and 100 <= int(size) <= 300 and oid not in self._pointers
        ]
        if unknown:
            self._scan_pointers(repo, unknown)
        entries: dict[str, Entry] = {}
        for path, mode, kind, oid, size in raw:
            if kind == "tree":
                entries[path] = Entry(path, "directory", oid, 0, mode)
            elif kind == "blob":
                ptr = self._pointers.get(oid)
                if ptr is not None:
                    entries[path] = Entry(path, "file", oid, ptr[1], mode, ptr[0], int(size))
                else:
                    entries[path] = Entry(path, "file", oid, int(size), mode)
        with self._cache_lock:
            self._tree_cache[key] = entries
            while len(self._tree_cache) > 512:
                self._tree_cache.popitem(last=False)
        return entries

    def _scan_pointers(self, repo: Repo, oids: list[str]) -> None:
        out = self._git(repo, "cat-file", "--batch", input="".join(o + "\n" for o in oids).encode())
        pos = 0
        for oid in oids:
            nl = out.index(b"\n", pos)
            _, _, size = out[pos:nl].split()
            body = out[nl + 1 : nl + 1 + int(size)]
            pos = nl + 1 + int(size) + 1
            m = _POINTER_RE.fullmatch(body)
            self._pointers[oid] = (m.group(1).decode(), int(m.group(2))) if m else None

    def _content(self, repo: Repo, entry: Entry) -> bytes:
        if entry.lfs_oid is not None:
            return self._lfs_path(entry.lfs_oid).read_bytes()
        return self._git(repo, "cat-file", "blob", entry.oid)

    def _lfs_patterns(self, repo: Repo, sha: str | None) -> list[str]:
        """The patterns that .gitattributes at commit `sha` sends to LFS."""
        entry = self._entries(repo, sha).get(".gitattributes") if sha else None
        if entry is None or entry.type != "file":
            return []
        cached = self._attributes.get(entry.oid)
        if cached is None:
            cached = []
            for line in self._content(repo, entry).decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2 and "filter=lfs" in parts[1:]:
                    cached.append(parts[0])
            self._attributes[entry.oid] = cached
        return cached

    def _wants_lfs(self, patterns: list[str], path: str, sample: bytes, size: int) -> bool:
        """The Hub's choice between a regular (inline) and an LFS upload, per lfs_mode."""
        if self.lfs_mode == "never" or size == 0:
            return False
        if self.lfs_mode == "always" or size >= LFS_THRESHOLD or b"\x00" in sample:
            return True
        name = path.rsplit("/", 1)[-1]
        for pattern in patterns:
            if "/" in pattern.rstrip("/"):
                if fnmatch.fnmatchcase(path, pattern.lstrip("/")) or fnmatch.fnmatchcase(
                    path, pattern.replace("**/", "")
                ):
                    return True
            elif fnmatch.fnmatchcase(name, pattern):
                return True
        return False

    def _commit(
        self,
        repo: Repo,
        branch: str,
        ops: list[tuple[str, str, Any]],
        summary: str,
        description: str,
        parent_commit: str | None,
        create_branch: bool = False,
        author: str | None = None,
    ) -> str:
        """ops: ("file", path, bytes) | ("lfs", path, (oid, size)) | ("delete", path, is_folder)."""
        branch = branch.removeprefix("refs/heads/")
        with self._write_lock:
            head = self._branch_head(repo, branch)
            if head is None and not create_branch:
                raise _not_found("RevisionNotFound", f"Invalid rev id: {branch}")
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = {p: e for p, e in (self._entries(repo, head) if head else {}).items() if e.type == "file"}
            for kind, path, arg in ops:
                if kind == "delete":
                    if arg:  # folder
                        doomed = [p for p in files if p.startswith(path + "/")]
                        if not doomed:
                            raise _not_found(
                                "EntryNotFound", f"A folder with this name doesn't exist: {path}"
                            )
                        for p in doomed:
                            del files[p]
                    else:
                        if path not in files:
                            raise _not_found("EntryNotFound", f"A file with this name doesn't exist: {path}")
                        del files[path]
                    continue
                if kind == "file":
                    oid = self._write_blob(repo, arg)
                    self._pointers.setdefault(oid, None)
                else:
                    lfs_oid, size = arg
                    pointer = _pointer(lfs_oid, size)
                    oid = self._write_blob(repo, pointer)
                    self._pointers[oid] = (lfs_oid, size)
                for other in list(files):  # a file replaces a folder of the same name and vice versa
                    if other.startswith(path + "/") or path.startswith(other + "/"):
                        del files[other]
                files[path] = Entry(path, "file", oid, 0)
            fd, index = tempfile.mkstemp(prefix="tmp-index-", dir=repo.path)
            os.close(fd)
            os.unlink(index)  # git wants to create the index file itself
            try:
                env = {"GIT_INDEX_FILE": index}
                info = "".join(f"{e.mode} {e.oid}\t{p}\n" for p, e in sorted(files.items()))
                if info:
                    self._git(repo, "update-index", "--index-info", input=info.encode(), env=env)
                tree = self._git(repo, "write-tree", env=env).decode().strip() if info else _EMPTY_TREE
            finally:
                if os.path.exists(index):
                    os.unlink(index)
            if not info:
                self._git(repo, "hash-object", "-t", "tree", "-w", "--stdin", input=b"")
            message = summary + (f"\n\n{description}" if description else "")
            now = datetime.now(UTC).timestamp()
            ident = {
                "GIT_AUTHOR_NAME": author or self.user,
                "GIT_AUTHOR_EMAIL": f"{author or self.user}@users.noreply.huggingface.co",
                "GIT_COMMITTER_NAME": "system",
                "GIT_COMMITTER_EMAIL": "system@hf.co",
                "GIT_AUTHOR_DATE": f"@{int(now)} +0000",
                "GIT_COMMITTER_DATE": f"@{int(now)} +0000",
            }
            args = ["commit-tree", "--no-gpg-sign", tree, "-m", message]
            if head is not None:
                args[3:3] = ["-p", head]
            sha = self._git(repo, *args, env=ident).decode().strip()
            # compare-and-swap on the branch: "" as old value = must not exist yet
            self._git(repo, "update-ref", f"refs/heads/{branch}", sha, head or "")
            self._commit_time[sha] = float(int(now))
            self._known.add((repo.path, sha))
            return sha

    def _create_tag(self, repo: Repo, tag: str, sha: str, message: str | None) -> None:
        if (
            not tag
            or not _REV_RE.fullmatch(tag)
            or ".." in tag
            or tag.startswith("refs/")
            or _SHA1_RE.fullmatch(tag)
        ):
            raise HubError(400, f"Invalid tag name: {tag!r}")
        with self._write_lock:
            if f"refs/tags/{tag}" in self._refs(repo):
                raise HubError(409, f"Tag {tag} already exists")
            if message:
                env = {
                    "GIT_COMMITTER_NAME": self.user,
                    "GIT_COMMITTER_EMAIL": f"{self.user}@users.noreply.huggingface.co",
                }
                self._git(repo, "tag", "--no-sign", "-a", "-m", message, tag, sha, env=env)
            else:
                self._git(repo, "update-ref", f"refs/tags/{tag}", sha, "")

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


class _Request:
    def __init__(self, method: str, raw_path: str, query: str, headers: Any, body: bytes, user: str | None):
        self.method, self.raw_path, self.query, self.headers, self.body, self.user = (
            method,
            raw_path,
            query,
            headers,
            body,
            user,
        )
        self.params = parse_qs(query, keep_blank_values=True)

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, "Invalid JSON body") from None

    def form(self) -> dict[str, list[str]]:
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "json" in ctype:
            data = self.json()
            return {k: (v if isinstance(v, list) else [v]) for k, v in data.items()}
        return parse_qs(self.body.decode(), keep_blank_values=True)


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


def _error_response(err: HubError) -> Response:
    headers = {"X-Error-Message": err.message.replace("\n", " ")[:500], **err.headers}
    if err.code:
        headers["X-Error-Code"] = err.code
    if err.status == 416:
        return Response(err.status, b"", headers)
    return Response.json({"error": err.message, **err.extra}, err.status, headers)


# -------------------------------------------------------------------- routing


def _route(hub: HubServer, req: _Request) -> Response:
    parts = req.raw_path.split("/")[1:]
    m = req.method
    if parts[:1] == ["api"]:
        if parts == ["api", "whoami-v2"] and m == "GET":
            return _whoami(hub, req)
        if parts == ["api", "repos", "create"] and m == "POST":
            return _create_repo(hub, req)
        if parts == ["api", "repos", "delete"] and m == "DELETE":
            return _delete_repo(hub, req)
        if parts == ["api", "validate-yaml"] and m == "POST":
            return _validate_yaml(req)
        if parts == ["api", "datasets"] and m == "GET":
            return _list_datasets(hub, req)
        if len(parts) >= 4 and parts[1] in REPO_TYPES:
            return _repo_api(hub, req, REPO_TYPES[parts[1]], unquote(parts[2]), unquote(parts[3]), parts[4:])
    if parts[:1] == ["_lfs"] and len(parts) >= 5 and parts[1] in REPO_TYPES:
        return _lfs_object(hub, req, REPO_TYPES[parts[1]], parts[2], parts[3], parts[4:])
    # web/resolve/git URLs: {datasets/|spaces/|}{ns}/{name}[.git]/...
    repo_type, rest = "model", parts
    if parts and parts[0] in ("datasets", "spaces"):
        repo_type, rest = REPO_TYPES[parts[0]], parts[1:]
    if len(rest) >= 5 and rest[2] == "resolve" and m in ("GET", "HEAD"):
        return _resolve_file(hub, req, repo_type, unquote(rest[0]), unquote(rest[1]), rest[3:])
    if (
        len(rest) == 6
        and rest[1].endswith(".git")
        and rest[2:] == ["info", "lfs", "objects", "batch"]
        and m == "POST"
    ):
        return _lfs_batch(hub, req, repo_type, unquote(rest[0]), unquote(rest[1][:-4]))
    return _unhandled(hub, req)


def _unhandled(hub: HubServer, req: _Request, why: str = "Not Found") -> Response:
    with hub._lock:
        hub.unhandled.append((req.method, req.raw_path))
    return Response.json({"error": f"{why} (fake hub): {req.method} {req.raw_path}"}, 404)


def _split_rev(segments: list[str]) -> tuple[str, list[str]]:
    """The revision (first segment, url-decoded) and the rest; an unencoded refs/x/y revision is rejoined."""
    if not segments:
        return "main", []
    if segments[0] == "refs" and len(segments) >= 3:
        return "/".join(unquote(s) for s in segments[:3]), segments[3:]
    return unquote(segments[0]), segments[1:]


def _need_user(req: _Request) -> str:
    if req.user is None:
        raise HubError(401, "You must be authenticated to do this (fake hub): pass a token")
    return req.user


def _need_write(hub: HubServer, req: _Request, namespace: str, what: str) -> str:
    user = _need_user(req)
    if not hub.can_write(user, namespace):
        raise HubError(403, f'You don\'t have the rights to {what} under the namespace "{namespace}"')
    return user


def _visible_repo(hub: HubServer, req: _Request, repo_type: str, ns: str, name: str) -> Repo:
    repo = hub._get_repo(repo_type, ns, name)
    if repo is None or (repo.private and not (req.user and hub.can_write(req.user, ns))):
        raise _not_found("RepoNotFound", f"Repository not found: {repo_type}s/{ns}/{name}")
    return repo


def _rev_commit(hub: HubServer, repo: Repo, rev: str) -> str:
    sha = hub._resolve(repo, rev)
    if sha is None:
        raise _not_found("RevisionNotFound", f"Invalid rev id: {rev}")
    return sha


def _whoami(hub: HubServer, req: _Request) -> Response:
    user = _need_user(req)
    orgs = hub.orgs if user == hub.user else []
    return Response.json(
        {
            "type": "user",
            "id": hashlib.sha1(user.encode()).hexdigest()[:24],
            "name": user,
            "fullname": user.title(),
            "email": f"{user}@example.com",
            "emailVerified": True,
            "isPro": False,
            "canPay": False,
            "orgs": [{"type": "org", "name": o, "fullname": o, "roleInOrg": "write"} for o in orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": "fake-hub", "role": "write"}},
        }
    )


def _create_repo(hub: HubServer, req: _Request) -> Response:
    user = _need_user(req)
    data = req.json()
    name, org = data.get("name"), data.get("organization")
    repo_type = data.get("type") or "model"
    if repo_type not in URL_PREFIX or not isinstance(name, str):
        raise HubError(400, "Invalid repo type or name")
    ns = org or user
    _need_write(hub, req, ns, "create a repo")
    private = bool(data.get("private")) or data.get("visibility") in ("private", "protected")
    url = f"{hub.url}/{URL_PREFIX[repo_type]}{ns}/{name}"
    with hub._write_lock:
        if hub._get_repo(repo_type, ns, name) is not None:
            # the body carries the url: create_repo(exist_ok=True) reads it from the 409 answer
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
        hub._init_repo(repo_type, ns, name, private)
    return Response.json({"url": url, "name": f"{ns}/{name}", "id": f"{ns}/{name}"})


def _delete_repo(hub: HubServer, req: _Request) -> Response:
    user = _need_user(req)
    data = req.json()
    ns = data.get("organization") or user
    repo_type = data.get("type") or "model"
    repo = _visible_repo(hub, req, repo_type, ns, str(data.get("name")))
    _need_write(hub, req, ns, "delete a repo")
    with hub._write_lock:
        shutil.rmtree(repo.path)
    return Response.json({})


def _validate_yaml(req: _Request) -> Response:
    content = req.json().get("content") or ""
    try:
        _front_matter(content)
    except ValueError as exc:
        return Response.json({"error": str(exc), "errors": [{"message": str(exc)}]}, 400)
    return Response.json({})


_REPO_ACTIONS = {
    ("GET", "refs"),
    ("GET", "tree"),
    ("POST", "paths-info"),
    ("POST", "preupload"),
    ("POST", "commit"),
    ("GET", "commits"),
    ("POST", "tag"),
    ("DELETE", "tag"),
    ("POST", "branch"),
    ("DELETE", "branch"),
}


def _repo_api(hub: HubServer, req: _Request, repo_type: str, ns: str, name: str, rest: list[str]) -> Response:
    m = req.method
    action = rest[0] if rest else ""
    if m == "GET" and action in ("", "revision"):
        rev, extra = _split_rev(rest[1:]) if action else ("main", [])
        if extra and extra != [""]:
            return _unhandled(hub, req)
        return _repo_info(hub, req, repo_type, ns, name, rev)
    if (
        (m, action) not in _REPO_ACTIONS
        or (action != "refs" and len(rest) < 2)
        or (action == "refs" and rest != ["refs"])
    ):
        return _unhandled(hub, req)
    repo = _visible_repo(hub, req, repo_type, ns, name)
    rev, tail = _split_rev(rest[1:])
    if action == "refs":
        return _list_refs(hub, req, repo)
    if action == "tree":
        return _tree(hub, req, repo, rev, unquote("/".join(tail)).strip("/"))
    if action == "paths-info":
        return _paths_info(hub, req, repo, rev)
    if action == "preupload":
        return _preupload(hub, req, repo, rev)
    if action == "commit":
        return _commit_api(hub, req, repo, rev)
    if action == "commits":
        return _list_commits(hub, repo, rev)
    name_arg = unquote("/".join(rest[1:]))
    if action == "tag":
        return _tag(hub, req, repo, rev) if m == "POST" else _delete_ref(hub, req, repo, "tags", name_arg)
    return (
        _branch(hub, req, repo, name_arg) if m == "POST" else _delete_ref(hub, req, repo, "heads", name_arg)
    )


# Card fields the Hub turns into `key:value` tags of a listing (plus the card's free `tags`).
_TAG_FIELDS = ("license", "task_categories", "task_ids", "language", "size_categories", "multilinguality")
# What an info or listing has without `expand` (with it: `id` and the fields asked for).
_BASE_FIELDS = (
    "author",
    "sha",
    "createdAt",
    "lastModified",
    "private",
    "gated",
    "disabled",
    "downloads",
    "likes",
    "tags",
)


def _card_tags(card: dict | None) -> list[str]:
    tags: list[str] = []
    for key in _TAG_FIELDS:
        values = (card or {}).get(key)
        for value in values if isinstance(values, list) else [values] if values else []:
            tags.append(f"{key}:{value}")
    free = (card or {}).get("tags")
    tags.extend(str(t) for t in (free if isinstance(free, list) else []))
    return tags


def _repo_fields(
    hub: HubServer, repo: Repo, sha: str, fields: Iterable[str], blobs: bool = False
) -> dict[str, Any]:
    """`id` and the asked-for fields of a repo at a commit; the tree and card are read only when needed."""
    fields = set(fields)
    info: dict[str, Any] = {"_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id}
    needs_tree = bool(fields & {"siblings", "usedStorage", "cardData", "tags"})
    entries = hub._entries(repo, sha) if needs_tree else {}
    card = None
    readme = entries.get("README.md")
    if readme is not None and readme.type == "file":
        try:
            card = _front_matter(hub._content(repo, readme).decode("utf-8", "replace"))
        except ValueError:
            card = None
    simple = {
        "author": lambda: repo.namespace,
        "sha": lambda: sha,
        "createdAt": lambda: repo.created_at,
        "lastModified": lambda: _iso(hub._commit_ts(repo, sha)),
        "private": lambda: repo.private,
        "gated": lambda: False,
        "disabled": lambda: False,
        "downloads": lambda: hub.downloads.get(repo.id, 0),
        "likes": lambda: 0,
        "tags": lambda: _card_tags(card),
        "usedStorage": lambda: sum(e.size for e in entries.values() if e.type == "file"),
    }
    for name in sorted(fields):
        if name in simple:
            info[name] = simple[name]()
    if "siblings" in fields:
        siblings = []
        for path, e in sorted(entries.items()):
            if e.type != "file":
                continue
            sib: dict[str, Any] = {"rfilename": path}
            if blobs:
                sib.update(size=e.size, blobId=e.oid)
                if e.lfs_oid:
                    sib["lfs"] = {"size": e.size, "sha256": e.lfs_oid, "pointerSize": e.pointer_size}
            siblings.append(sib)
        info["siblings"] = siblings
    if "cardData" in fields and card is not None:
        info["cardData"] = card
    for name, value in hub.answer_fields.get(repo.id, {}).items():
        if value is DROP:
            info.pop(name, None)
        elif name in info or name in fields:
            info[name] = value
    return info


def _repo_info(hub: HubServer, req: _Request, repo_type: str, ns: str, name: str, rev: str) -> Response:
    repo = _visible_repo(hub, req, repo_type, ns, name)
    sha = _rev_commit(hub, repo, rev)
    expand = req.params.get("expand")
    fields = expand if expand else [*_BASE_FIELDS, "siblings", "usedStorage", "cardData"]
    info = _repo_fields(hub, repo, sha, fields, blobs=_truthy(req.params.get("blobs", ["0"])))
    if repo_type == "model" and not expand:
        info["modelId"] = repo.id
    return Response.json(info)


_SORT_KEYS = {"lastModified", "downloads", "createdAt", "likes", "trendingScore"}


def _list_datasets(hub: HubServer, req: _Request) -> Response:
    """GET /api/datasets: `search` (substring of the id), `author`, `filter` (tags, all required), `sort`
    (descending), `expand` / `full`, `limit` (page size); pages follow `Link: <...>; rel="next"`."""
    q = req.params
    search = [s.lower() for s in q.get("search", []) if s]
    wanted_tags = set(q.get("filter", []))
    author = q["author"][-1] if q.get("author") else None
    expand = q.get("expand")
    full = _truthy(q.get("full", ["0"]))
    fields = expand if expand else [*_BASE_FIELDS, *(["cardData", "siblings"] if full else [])]
    sort = q["sort"][-1] if q.get("sort") else None
    if sort is not None and sort not in _SORT_KEYS:
        raise HubError(400, f"Invalid sort: {sort}")
    root = hub.root / "repos" / "datasets"
    rows: list[dict[str, Any]] = []
    for ns_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for repo_dir in sorted(ns_dir.glob("*.git")):
            repo = hub._get_repo("dataset", ns_dir.name, repo_dir.name[: -len(".git")])
            if repo is None or (author and repo.namespace != author):
                continue
            if repo.private and not (req.user and hub.can_write(req.user, repo.namespace)):
                continue
            if search and not all(term in repo.id.lower() for term in search):
                continue
            sha = hub._branch_head(repo, "main")
            if sha is None:
                continue
            info = _repo_fields(hub, repo, sha, {*fields, "tags", "lastModified", "downloads", "createdAt"})
            if not wanted_tags <= set(info["tags"]):
                continue
            rows.append(info)
    if sort in ("lastModified", "downloads", "createdAt"):
        # (`answer_fields` may leave a field out or put another form in: those sort as text)
        rows.sort(key=lambda r: v if isinstance(v := r.get(sort), int) else str(v or ""), reverse=True)
    keep = {"_id", "id", *fields}
    rows = [{k: v for k, v in r.items() if k in keep} for r in rows]
    try:
        start = int((q.get("cursor") or ["0"])[-1])
        size = min(int((q.get("limit") or [str(hub.page_size)])[-1]), hub.page_size)
    except ValueError:
        raise HubError(400, "Invalid cursor or limit") from None
    page = rows[start : start + size]
    headers = {}
    if start + size < len(rows):
        pairs = [(k, v) for k, vs in q.items() if k != "cursor" for v in vs] + [("cursor", str(start + size))]
        query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs)
        headers["Link"] = f'<{hub.url}/api/datasets?{query}>; rel="next"'
    return Response.json(page, headers=headers)


def _list_refs(hub: HubServer, req: _Request, repo: Repo) -> Response:
    out: dict[str, list] = {"branches": [], "tags": [], "converts": [], "pullRequests": []}
    kinds = {"heads": "branches", "tags": "tags", "convert": "converts", "pr": "pullRequests"}
    for ref, sha in sorted(hub._refs(repo).items()):
        parts = ref.split("/", 2)
        if len(parts) == 3 and parts[1] in kinds:
            out[kinds[parts[1]]].append({"name": parts[2], "ref": ref, "targetCommit": sha})
    return Response.json(out)


def _last_commit(hub: HubServer, repo: Repo, sha: str, path: str) -> dict[str, Any]:
    line = hub._git(repo, "log", "-1", "--format=%H%x00%ct%x00%s", sha, "--", path).decode().strip()
    if not line:
        return {"id": sha, "title": "", "date": _iso(hub._commit_ts(repo, sha))}
    cid, ts, title = line.split("\x00", 2)
    return {"id": cid, "title": title, "date": _iso(float(ts))}


def _entry_json(hub: HubServer, repo: Repo, sha: str, e: Entry, expand: bool) -> dict[str, Any]:
    out = e.to_json()
    if expand:
        out["lastCommit"] = _last_commit(hub, repo, sha, e.path)
        if e.type == "file":
            out["securityFileStatus"] = {"status": "safe"}
    return out


def _tree(hub: HubServer, req: _Request, repo: Repo, rev: str, path: str) -> Response:
    sha = _rev_commit(hub, repo, rev)
    entries = hub._entries(repo, sha)
    if path and (path not in entries or entries[path].type != "directory"):
        raise _not_found("EntryNotFound", f'{path} does not exist on "{rev}"', **{"X-Repo-Commit": sha})
    recursive = _truthy(req.params.get("recursive", ["0"]))
    expand = _truthy(req.params.get("expand", ["0"]))
    prefix = f"{path}/" if path else ""
    listing = []
    for p, e in sorted(entries.items()):
        if not p.startswith(prefix):
            continue
        if not recursive and "/" in p[len(prefix) :]:
            continue
        listing.append(_entry_json(hub, repo, sha, e, expand))
    return Response.json(listing)


def _paths_info(hub: HubServer, req: _Request, repo: Repo, rev: str) -> Response:
    sha = _rev_commit(hub, repo, rev)
    form = req.form()
    paths = form.get("paths", []) or form.get("paths[]", [])
    expand = _truthy(form.get("expand", ["0"]))
    entries = hub._entries(repo, sha)
    out = []
    for p in paths:
        e = entries.get(str(p).strip("/"))
        if e is not None:
            out.append(_entry_json(hub, repo, sha, e, expand))
    return Response.json(out)


def _preupload(hub: HubServer, req: _Request, repo: Repo, rev: str) -> Response:
    _need_write(hub, req, repo.namespace, "upload files")
    if _truthy(req.params.get("create_pr", ["0"])):
        return _unhandled(hub, req, "create_pr is not supported")
    head = hub._resolve(repo, rev)
    if head is None:
        raise _not_found("RevisionNotFound", f"Invalid rev id: {rev}")
    entries = hub._entries(repo, head)
    patterns = hub._lfs_patterns(repo, head)
    files = []
    for f in req.json().get("files", []):
        path = f.get("path")
        sample = base64.b64decode(f.get("sample") or "")
        lfs = hub._wants_lfs(patterns, path, sample, int(f.get("size") or 0))
        item: dict[str, Any] = {
            "path": path,
            "uploadMode": "lfs" if lfs else "regular",
            "shouldIgnore": False,
        }
        e = entries.get(path)
        if e is not None and e.type == "file":
            item["oid"] = e.lfs_oid if e.lfs_oid else e.oid
        files.append(item)
    return Response.json({"files": files, "commitOid": head})


def _commit_api(hub: HubServer, req: _Request, repo: Repo, rev: str) -> Response:
    _need_write(hub, req, repo.namespace, "create a commit")
    if _truthy(req.params.get("create_pr", ["0"])):
        return _unhandled(hub, req, "create_pr is not supported")
    try:
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    except ValueError:
        raise HubError(400, "Invalid NDJSON commit payload") from None
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "The first line of the commit payload must be the header")
    header = lines[0].get("value") or {}
    summary = header.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise HubError(400, "A commit summary is required")
    ops: list[tuple[str, str, Any]] = []
    for line in lines[1:]:
        key, value = line.get("key"), line.get("value") or {}
        if key == "file":
            path = _valid_path(value.get("path"))
            content = value.get("content", "")
            data = (
                base64.b64decode(content) if value.get("encoding", "base64") == "base64" else content.encode()
            )
            ops.append(("file", path, data))
        elif key == "lfsFile":
            path, oid = _valid_path(value.get("path")), value.get("oid")
            if (
                value.get("algo", "sha256") != "sha256"
                or not isinstance(oid, str)
                or not _SHA256_RE.fullmatch(oid)
            ):
                raise HubError(400, f"Invalid LFS oid for {path}")
            lfs_file = hub._lfs_path(oid)
            if not lfs_file.is_file():
                raise HubError(400, f"LFS object {oid} for {path} was not uploaded")
            ops.append(("lfs", path, (oid, lfs_file.stat().st_size)))
        elif key in ("deletedFile", "deletedFolder"):
            ops.append(
                ("delete", _valid_path(str(value.get("path", "")).rstrip("/")), key == "deletedFolder")
            )
        else:
            raise HubError(400, f"Unknown commit operation: {key!r}")
    branch = rev.removeprefix("refs/heads/")
    if _SHA1_RE.fullmatch(branch) or (
        f"refs/tags/{branch}" in hub._refs(repo) and hub._branch_head(repo, branch) is None
    ):
        raise HubError(400, f"Commits can only be made on a branch, not on {rev}")
    sha = hub._commit(
        repo,
        branch,
        ops,
        summary,
        header.get("description") or "",
        header.get("parentCommit"),
        author=req.user,
    )
    return Response.json(
        {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{hub.url}/{URL_PREFIX[repo.type]}{repo.id}/commit/{sha}",
            "hookOutput": "",
        }
    )


def _list_commits(hub: HubServer, repo: Repo, rev: str) -> Response:
    sha = _rev_commit(hub, repo, rev)
    out = hub._git(repo, "log", "--format=%H%x00%an%x00%ct%x00%s%x00%B%x1e", sha).decode()
    items = []
    for rec in out.split("\x1e"):
        rec = rec.strip("\n")
        if not rec:
            continue
        cid, author, ts, title, body = rec.split("\x00", 4)
        items.append(
            {
                "id": cid,
                "authors": [{"user": author}],
                "date": _iso(float(ts)),
                "title": title,
                "message": body.strip(),
            }
        )
    return Response.json(items)


def _tag(hub: HubServer, req: _Request, repo: Repo, rev: str) -> Response:
    _need_write(hub, req, repo.namespace, "create a tag")
    data = req.json()
    sha = _rev_commit(hub, repo, rev)
    hub._create_tag(repo, str(data.get("tag") or ""), sha, data.get("message"))
    return Response.json({})


def _branch(hub: HubServer, req: _Request, repo: Repo, branch: str) -> Response:
    _need_write(hub, req, repo.namespace, "create a branch")
    start = (req.json() or {}).get("startingPoint") or "main"
    sha = _rev_commit(hub, repo, start)
    if (
        not _REV_RE.fullmatch(branch)
        or ".." in branch
        or branch.startswith("refs/")
        or _SHA1_RE.fullmatch(branch)
    ):
        raise HubError(400, f"Invalid branch name: {branch!r}")
    with hub._write_lock:
        if f"refs/heads/{branch}" in hub._refs(repo):
            raise HubError(409, f"Branch {branch} already exists")
        hub._git(repo, "update-ref", f"refs/heads/{branch}", sha, "")
    return Response.json({})


def _delete_ref(hub: HubServer, req: _Request, repo: Repo, kind: str, name: str) -> Response:
    _need_write(hub, req, repo.namespace, f"delete a {kind[:-1] if kind == 'tags' else 'branch'}")
    if kind == "heads" and name == "main":
        raise HubError(403, "You cannot delete the main branch")
    with hub._write_lock:
        if f"refs/{kind}/{name}" not in hub._refs(repo):
            raise _not_found("RevisionNotFound", f"Invalid rev id: {name}")
        hub._git(repo, "update-ref", "-d", f"refs/{kind}/{name}")
    return Response.json({})


def _resolve_file(
    hub: HubServer, req: _Request, repo_type: str, ns: str, name: str, segments: list[str]
) -> Response:
    repo = _visible_repo(hub, req, repo_type, ns, name)
    rev, path_parts = _split_rev(segments)
    sha = _rev_commit(hub, repo, rev)
    path = unquote("/".join(path_parts))
    entry = hub._entries(repo, sha).get(path)
    if entry is None or entry.type != "file":
        raise _not_found("EntryNotFound", f"Entry not found: {path}", **{"X-Repo-Commit": sha})
    etag = f'"{entry.lfs_oid or entry.oid}"'
    headers = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "X-Repo-Commit": sha,
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
    }
    if entry.lfs_oid:
        headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(entry.size)})
    size = entry.size
    if req.method == "HEAD" and "Range" not in req.headers:
        return Response(200, b"", headers, length=size)
    data = hub._content(repo, entry)
    rng = req.headers.get("Range")
    if rng:
        span = _parse_range(rng, size)
        if span is None:
            raise HubError(416, "Requested range not satisfiable", None, {"Content-Range": f"bytes */{size}"})
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        body = data[start : end + 1]
        if req.method == "HEAD":
            return Response(206, b"", headers, length=len(body))
        return Response(206, body, headers)
    return Response(200, data, headers)


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: last N bytes
        n = int(m.group(2))
        if n == 0:
            return None
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def _lfs_batch(hub: HubServer, req: _Request, repo_type: str, ns: str, name: str) -> Response:
    repo = _visible_repo(hub, req, repo_type, ns, name)
    data = req.json()
    if data.get("operation") != "upload":
        return _unhandled(hub, req, "LFS download batches are not supported")
    _need_write(hub, req, repo.namespace, "upload LFS files")
    base = f"{hub.url}/_lfs/{repo_type}s/{quote(ns)}/{quote(name)}"
    objects = []
    for obj in data.get("objects", []):
        oid, size = obj.get("oid"), obj.get("size")
        if not _SHA256_RE.fullmatch(str(oid)) or not isinstance(size, int):
            objects.append(
                {"oid": str(oid), "size": int(size or 0), "error": {"code": 422, "message": "Invalid object"}}
            )
            continue
        item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if not hub._lfs_path(oid).is_file():
            item["actions"] = {
                "upload": {"href": f"{base}/{oid}", "expires_in": 3600},
                "verify": {"href": f"{base}/{oid}/verify", "expires_in": 3600},
            }
        objects.append(item)
    return Response.json(
        {"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"}
    )


def _lfs_object(
    hub: HubServer, req: _Request, repo_type: str, ns: str, name: str, rest: list[str]
) -> Response:
    repo = _visible_repo(hub, req, repo_type, unquote(ns), unquote(name))
    oid = rest[0]
    if not _SHA256_RE.fullmatch(oid):
        raise HubError(400, "Invalid LFS oid")
    if req.method == "PUT" and len(rest) == 1:
        # The real upload URL is a pre-signed S3 URL: no Authorization header needed.
        if hashlib.sha256(req.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match the sha256 {oid}")
        hub._store_lfs(req.body)
        return Response(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})
    if req.method == "POST" and rest[1:] == ["verify"]:
        size = (req.json() or {}).get("size")
        path = hub._lfs_path(oid)
        if not path.is_file() or (size is not None and path.stat().st_size != size):
            raise _not_found("EntryNotFound", f"LFS object {oid} not found in {repo.id}")
        return Response.json({})
    return _unhandled(hub, req)


# -------------------------------------------------------------------- as a process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A Hugging Face Hub-compatible server for tests.")
    parser.add_argument("--root", default=None, help="where repos are stored (default: a temporary folder)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", default=None, help="write the bound port here once serving")
    parser.add_argument("--user", default="tester")
    parser.add_argument("--org", action="append", default=None, help="an org of the user (repeatable)")
    parser.add_argument("--lfs-mode", default="auto", choices=("auto", "always", "never"))
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args(argv)
    hub = HubServer(
        args.root,
        user=args.user,
        orgs=args.org if args.org is not None else ("tester-org",),
        lfs_mode=args.lfs_mode,
        host=args.host,
        port=args.port,
        latency=args.latency,
    ).start()
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        Path(tmp).write_text(str(hub.port))
        os.replace(tmp, args.port_file)
    print(f"fake hub serving on {hub.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
