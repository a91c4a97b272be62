"""The test Hub's URL map: which handler answers each method and path, and the account and repo-level API
(whoami, create, delete, validate-yaml)."""

from __future__ import annotations

import hashlib
import shutil
from typing import TYPE_CHECKING
from urllib.parse import unquote

from dynosaur.testing.hub_server.access import (
    _need_user,
    _need_write,
    _split_rev,
    _unhandled,
    _visible_repo,
)
from dynosaur.testing.hub_server.commits import (
    _branch,
    _commit_api,
    _delete_ref,
    _list_commits,
    _preupload,
    _tag,
)
from dynosaur.testing.hub_server.files import _lfs_batch, _lfs_object, _resolve_file
from dynosaur.testing.hub_server.model import (
    REPO_TYPES,
    URL_PREFIX,
    HubError,
    Response,
    _front_matter,
    _Request,
)
from dynosaur.testing.hub_server.repo_info import _list_datasets, _list_refs, _paths_info, _repo_info, _tree

if TYPE_CHECKING:
    from dynosaur.testing.hub_server.server import HubServer


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
