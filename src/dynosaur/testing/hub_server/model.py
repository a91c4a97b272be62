"""What the test Hub stores and answers: repos and tree entries, requests and responses, the Hub's JSON
errors, injected faults and delays, and the constants of its URLs and LFS rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs

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


def _error_response(err: HubError) -> Response:
    headers = {"X-Error-Message": err.message.replace("\n", " ")[:500], **err.headers}
    if err.code:
        headers["X-Error-Code"] = err.code
    if err.status == 416:
        return Response(err.status, b"", headers)
    return Response.json({"error": err.message, **err.extra}, err.status, headers)
