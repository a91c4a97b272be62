"""Git and DVC, as the registry needs them: a clean tree, commits and tags; pipeline status, push, objects.

Git runs as the `git` command (its porcelain is the stable interface); DVC through its Python API.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from dynosaur.core.errors import DynoError, LedgerError
from dynosaur.core.records import DVC_OID


class Git:
    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise DynoError(f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        return proc.stdout

    def require_branch(self) -> str:
        if subprocess.run(["git", "rev-parse", "--git-dir"], cwd=self.root, capture_output=True).returncode:
            raise DynoError(f"{self.root} is not a git repository")
        branch = self("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        if not branch:
            raise DynoError("HEAD is detached: check out a branch before releasing")
        return branch

    def dirty(self, pathspec: str = ".", *, untracked: bool = False) -> list[str]:
        """Files under `pathspec` with uncommitted changes (and untracked ones if asked; ignored ones never)."""
        out = self(
            "status", "--porcelain", f"--untracked-files={'all' if untracked else 'no'}", "--", pathspec
        )
        return [line[3:] for line in out.splitlines() if line]

    def tag_exists(self, tag: str) -> bool:
        return bool(self("rev-parse", "-q", "--verify", f"refs/tags/{tag}", check=False).strip())

    def show(self, rev: str, path: str) -> str | None:
        proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=self.root, capture_output=True, text=True)
        return proc.stdout if proc.returncode == 0 else None


def default_remote(root: Path) -> str:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        name = repo.config["core"].get("remote")
        if not name or name not in repo.config["remote"]:
            raise DynoError(
                "no default DVC remote: add one with `dvc remote add -d NAME URL` (a local folder works)"
            )
        return name


def stale_stages(root: Path, target: str = "organize") -> list[str]:
    """Stages up to `target` (the corpus) whose outputs do not match their inputs (collect's `always changed`
    aside). Stages after it, such as training, have no say in whether the corpus can be released."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status(targets=[target], with_deps=True)
    return sorted(name.split(":")[-1] for name, changes in status.items() if changes != ["always changed"])


def push(root: Path, target: str = "organize") -> int:
    """Push the outputs of the stages up to `target`: the corpus, and the call cache a clone reuses."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.push(targets=[target], with_deps=True)


def locked_out_md5(root: Path, path: str) -> str:
    """The md5 that dvc.lock records for an output directory (its `.dir` object)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise DynoError(f"dvc.lock has no output {path}: run `dvc repro` first")


class ObjectStore:
    """DVC's local object cache, wherever `cache.dir` puts it: the one way to find a shard by its object id.

    Paths come from DVC itself (`repo.cache.local.oid_to_path`), never built by hand, and an object id must
    look like one (32 hex digits, `.dir` for a directory listing), so a forged manifest cannot name a path
    outside the cache.
    """

    def __init__(self, root: Path):
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            self._odb = repo.cache.local

    def path(self, md5: str) -> Path:
        if not DVC_OID.fullmatch(md5 or ""):
            raise LedgerError(f"{md5!r} is not a DVC object id (32 hex digits, optionally .dir)")
        return Path(self._odb.oid_to_path(md5))


def dir_listing(root: Path, dir_md5: str) -> dict[str, str]:
    """relpath → md5 of the files in a DVC directory object (from the local cache)."""
    path = ObjectStore(root).path(dir_md5 if dir_md5.endswith(".dir") else f"{dir_md5}.dir")
    try:
        return {e["relpath"]: e["md5"] for e in json.loads(path.read_text())}
    except FileNotFoundError:
        raise DynoError(
            f"DVC cache lacks the corpus directory object {dir_md5}: run `dvc repro` or `dvc pull`"
        ) from None
