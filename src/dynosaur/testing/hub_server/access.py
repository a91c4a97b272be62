"""What every route of the test Hub shares: who is asking and may they write, which repo and revision a
URL names, and the 404 of anything the server does not implement."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from dynosaur.testing.hub_server.model import (
    HubError,
    Repo,
    Response,
    _not_found,
    _Request,
)

if TYPE_CHECKING:
    from dynosaur.testing.hub_server.server import HubServer


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
