"""Reading about repos on the test Hub: repo info, the dataset listing and its search, refs, trees and
paths-info."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dynosaur.testing.hub_server.access import (
    _rev_commit,
    _visible_repo,
)
from dynosaur.testing.hub_server.model import (
    DROP,
    Entry,
    HubError,
    Repo,
    Response,
    _front_matter,
    _iso,
    _not_found,
    _Request,
    _truthy,
)

if TYPE_CHECKING:
    from dynosaur.testing.hub_server.server import HubServer


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
