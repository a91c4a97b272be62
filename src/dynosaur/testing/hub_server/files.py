"""Downloading from the test Hub: resolve URLs (ranges, redirects, LFS content) and the LFS batch and object
endpoints uploads go through."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from dynosaur.testing.hub_server.access import (
    _need_write,
    _rev_commit,
    _split_rev,
    _unhandled,
    _visible_repo,
)
from dynosaur.testing.hub_server.model import (
    _SHA256_RE,
    HubError,
    Response,
    _not_found,
    _Request,
)

if TYPE_CHECKING:
    from dynosaur.testing.hub_server.server import HubServer


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
