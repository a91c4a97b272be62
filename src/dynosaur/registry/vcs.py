"""Git and DVC, as the registry needs them: a clean tree, commits and tags; pipeline status, push, objects.

Git runs as the `git` command (its porcelain is the stable interface); DVC through its Python API.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dynosaur.core.errors import DvcBusy, GitError, LedgerError, first_line
from dynosaur.core.records import DVC_OID


class Git:
    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> str:
        proc = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, input=input)
        if check and proc.returncode != 0:
            raise GitError(f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        return proc.stdout

    def is_repo(self) -> bool:
        return not subprocess.run(
            ["git", "rev-parse", "--git-dir"], cwd=self.root, capture_output=True
        ).returncode

    def require_branch(self) -> str:
        if subprocess.run(["git", "rev-parse", "--git-dir"], cwd=self.root, capture_output=True).returncode:
            raise GitError(f"{self.root} is not a git repository")
        branch = self("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        if not branch:
            raise GitError("HEAD is detached: check out a branch before releasing")
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

    def blob(self, oid: str) -> bytes:
        proc = subprocess.run(["git", "cat-file", "blob", oid], cwd=self.root, capture_output=True)
        if proc.returncode:
            raise GitError(f"git cat-file: cannot read object {oid}")
        return proc.stdout

    def release_tags(self) -> dict[str, str]:
        """Release tags (`vN`) → the commit each names, less tags ahead of HEAD (when HEAD is checked out at
        an older state, later releases are not part of what it can be checked against)."""
        out = self(
            "for-each-ref", "--format=%(refname:short) %(objectname) %(*objectname)", "refs/tags", check=False
        )
        tags = {}
        for line in out.splitlines():
            name, obj, *peeled = line.split()
            if VERSION_TAG.fullmatch(name):
                tags[name] = peeled[0] if peeled else obj
        head = self("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip()
        if tags and head:
            ahead = set(
                self("for-each-ref", "--contains", "HEAD", "--format=%(refname:short)", "refs/tags").split()
            )
            tags = {t: c for t, c in tags.items() if t not in ahead or c == head}
        return dict(sorted(tags.items(), key=lambda tc: int(tc[0][1:])))


VERSION_TAG = re.compile(r"v[1-9][0-9]*")


@dataclass(frozen=True)
class CommittedVersion:
    """One committed version of a file: where it was committed (`tag v2`, `commit 1a2b3c4d5e6f`), its git blob."""

    label: str
    oid: str
    size: int


def committed_versions(path: Path) -> tuple[Git | None, list[CommittedVersion]]:
    """Every committed version of `path`: at each release tag, and at each commit of HEAD's history that
    changed it. Tags ahead of HEAD (HEAD checked out at an older state) are left out. (None, []) outside a
    git work tree.

    A handful of git calls whatever the history's length; no file content is read (see `is_git_prefix`).
    """
    cwd = path.absolute().parent
    while not cwd.is_dir():
        cwd = cwd.parent
    git = Git(cwd)
    top = git("rev-parse", "--show-toplevel", check=False).strip()
    if not top:
        return None, []
    git = Git(Path(top))
    try:
        rel = path.absolute().resolve().relative_to(Path(top).resolve()).as_posix()
    except ValueError:  # a path outside its work tree (through a symlink): git has no history of it
        return None, []
    specs = [(f"tag {t}", f"{c}:{rel}") for t, c in git.release_tags().items()]
    if git("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip():
        specs += [(f"commit {c[:12]}", f"{c}:{rel}") for c in git("rev-list", "HEAD", "--", rel).split()]
    if not specs:
        return git, []
    out = git(
        "cat-file",
        "--batch-check=%(objectname) %(objecttype) %(objectsize)",
        input="".join(spec + "\n" for _, spec in specs),
    )
    versions = []
    for (label, _), line in zip(specs, out.splitlines(), strict=False):
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob":  # else: "<spec> missing", the file did not exist there
            versions.append(CommittedVersion(label, parts[0], int(parts[2])))
    return git, versions


def is_git_prefix(data: bytes, version: CommittedVersion) -> bool:
    """Whether `version`'s blob is exactly the first bytes of `data`: git's own object id of that prefix
    (sha1 or sha256, as the repository uses), so the committed content need not be read."""
    if version.size > len(data):
        return False
    algo = hashlib.sha1 if len(version.oid) == 40 else hashlib.sha256
    h = algo(b"blob %d\0" % version.size)
    h.update(memoryview(data)[: version.size])
    return h.hexdigest() == version.oid


def default_remote(root: Path) -> str:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        name = repo.config["core"].get("remote")
        if not name or name not in repo.config["remote"]:
            raise GitError(
                "no default DVC remote: add one with `dvc remote add -d NAME URL` (a local folder works)"
            )
        return name


def repro(root: Path, args: list[str]) -> tuple[int, bool]:
    """`dvc repro ARGS` in `root`, its output straight to the terminal: (its exit code, whether Ctrl-C came).

    A terminal's Ctrl-C goes to every process of the foreground group: the running stage exits 130 with its
    one line, and DVC reports that as `failed to reproduce` and exit 255 (252 between stages). Here the
    SIGINT is only noted, DVC is waited for, and the caller says "interrupted" with exit 130 instead.
    """
    import signal
    import sys

    interrupted = False

    def note(_sig: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, note)
    try:
        code = subprocess.Popen([sys.executable, "-m", "dvc", "repro", *args], cwd=root).wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return code, interrupted


DVC_RUNNING = (
    "a DVC command (such as `dvc repro`) is running in this repository (it holds DVC's lock):"
    " wait for it to finish, then run `dyno {command}` again"
)


def require_dvc_idle(root: Path, command: str = "release") -> None:
    """Refuse while another DVC command holds the repository's lock: a running `dvc repro` is writing the
    outputs and dvc.lock that a release reads."""
    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo

    try:
        with Repo(str(root)) as repo, lock_repo(repo):
            pass
    except LockError:
        raise DvcBusy(DVC_RUNNING.format(command=command)) from None


def stale_stages(root: Path, target: str = "organize") -> list[str]:
    """Stages up to `target` (the corpus) whose outputs do not match their inputs (collect's `always changed`
    aside). Stages after it, such as training, have no say in whether the corpus can be released."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status(targets=[target], with_deps=True)
    return sorted(name.split(":")[-1] for name, changes in status.items() if changes != ["always changed"])


def push(root: Path, oids: list[str]) -> list[str]:
    """Push every output dvc.lock records (the corpus, the call cache a clone reuses, and a trained model
    when there is one, so a fresh clone's bare `dvc pull` finds them all), then make sure the objects `oids`
    are on the remote (`ensure_on_remote`); returns what that had to do."""
    from dvc.exceptions import DvcException
    from dvc.lock import LockError
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        try:
            repo.push()
        except LockError:
            raise DvcBusy(DVC_RUNNING.format(command="release") + "; nothing was recorded") from None
        except DvcException as exc:
            raise GitError(
                f"dvc push failed ({first_line(exc)}); nothing was recorded: check the DVC remote, then"
                " release again"
            ) from exc
        return ensure_on_remote(root, oids, repo=repo)


def ensure_on_remote(root: Path, oids: list[str], *, repo: Any = None) -> list[str]:
    """Make sure every object in `oids` is on the default DVC remote, checked on the remote itself.

    DVC's push decides what to send from indexes it keeps under its site cache; a push killed half way can
    leave them saying that objects are on the remote that are not, and the next push then sends only part.
    So the remote is listed directly (`oids_exist`, any remote type); what is missing is copied from the
    local cache, directory listings after the files they name, DVC's index is dropped, and the remote is
    listed again. Returns what had to be done; raises if anything is still missing (nothing is recorded).
    """
    from dvc.repo import Repo

    for oid in oids:
        if not DVC_OID.fullmatch(oid):
            raise LedgerError(f"{oid!r} is not a DVC object id (32 hex digits, optionally .dir)")
    with contextlib.nullcontext(repo) if repo is not None else Repo(str(root)) as repo:
        remote = repo.cloud.get_remote()
        odb = repo.cloud.get_remote_odb(remote.name)
        missing = _missing(odb, oids)
        if not missing:
            return []
        local = repo.cache.local
        absent = [oid for oid in missing if not local.exists(oid)]
        if absent:
            raise GitError(
                f"{len(absent)} objects of the release are on neither the DVC remote {remote.name!r} nor in"
                f" the local cache (first: {absent[0]}): run `dvc repro` (or `dvc pull`), then release again"
            )
        failed: list[str] = []
        ordered = sorted(missing, key=lambda oid: oid.endswith(".dir"))  # files before the listings
        for batch in (
            [o for o in ordered if not o.endswith(".dir")],
            [o for o in ordered if o.endswith(".dir")],
        ):
            if batch:
                odb.add(
                    [local.oid_to_path(o) for o in batch],
                    local.fs,
                    batch,
                    check_exists=False,
                    on_error=lambda oid, exc: failed.append(oid),
                )
        repo.drop_data_index()
        still = _missing(odb, oids)
        if still:
            raise GitError(
                f"{len(still)} objects of the release are still not on the DVC remote {remote.name!r} after"
                f" pushing them again (first: {still[0]}); nothing was recorded: check the remote, then"
                " release again"
            )
        return [f"pushed {len(missing)} objects that DVC's push had left off the remote {remote.name!r}"]


def _missing(odb, oids: list[str]) -> list[str]:
    present = set(odb.oids_exist(sorted(set(oids))))
    return [oid for oid in dict.fromkeys(oids) if oid not in present]


def locked_out_md5(root: Path, path: str) -> str:
    """The md5 that dvc.lock records for an output directory (its `.dir` object)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise GitError(f"dvc.lock has no output {path}: run `dvc repro` first")


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
        raise GitError(
            f"DVC cache lacks the corpus directory object {dir_md5}: run `dvc repro` or `dvc pull`"
        ) from None
