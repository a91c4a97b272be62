"""The test Hub's storage: each repo a bare git repository under `root`, LFS objects beside them, and the
caches that make reading a tree cheap."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
import tempfile
import threading
import zlib
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dynosaur.testing.hub_server.model import (
    _EMPTY_TREE,
    _NAME_RE,
    _POINTER_RE,
    _REV_RE,
    _SHA1_RE,
    DEFAULT_GITATTRIBUTES,
    LFS_THRESHOLD,
    URL_PREFIX,
    Entry,
    HubError,
    Repo,
    _iso,
    _not_found,
    _pointer,
)


class GitStorage:
    """Git repositories and LFS objects on disk; HubServer is one (its `__init__` sets these attributes)."""

    root: Path
    user: str
    lfs_mode: str
    _env: dict[str, str]
    _write_lock: threading.RLock
    _cache_lock: threading.Lock
    _tree_cache: OrderedDict[str, dict[str, Entry]]
    _commit_time: dict[str, float]
    _known: set[tuple[Path, str]]
    _pointers: dict[str, tuple[str, int] | None]
    _attributes: dict[str, list[str]]

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
