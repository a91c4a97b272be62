"""Writing to the test Hub: preupload, the commit call (inline and LFS files), the commit list, tags and
branches."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from dynosaur.testing.hub_server.access import (
    _need_write,
    _rev_commit,
    _unhandled,
)
from dynosaur.testing.hub_server.model import (
    _REV_RE,
    _SHA1_RE,
    _SHA256_RE,
    URL_PREFIX,
    HubError,
    Repo,
    Response,
    _iso,
    _not_found,
    _Request,
    _truthy,
    _valid_path,
)

if TYPE_CHECKING:
    from dynosaur.testing.hub_server.server import HubServer


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
