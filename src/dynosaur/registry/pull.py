"""Pulling a release: materialise version N's corpus from the DVC remote, checked shard by shard.

    read     the release record and its manifest from the ledger (both checked against their hashes)
    fetch    `dvc get`'s API at the release's git tag: only that revision's corpus directory, from the local
             DVC cache where it has the objects, else from the default remote, into a staging directory
             next to `out` (so the final rename stays on one file system)
    check    the staged files are exactly the manifest's shards, each byte-identical to the released file
             (its sha256 in the manifest), or, for manifests without file hashes, with the (instances,
             digest) recomputed from its rows; `dyno verify` always recomputes from the rows
    publish  rename the staging directory onto `out` in one step

DVC trusts its remote: a damaged or replaced object downloads without complaint (no hash check on
download), and a missing one fails half way through a directory. Hence staging, the check against the
manifest, and the `finally` that removes the staging directory: `out` is the whole, checked release or absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from dynosaur.core.errors import DamagedCopy, PullError, first_line
from dynosaur.core.records import ManifestEntry, Release
from dynosaur.core.shards import shard_digest
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.manifest import file_sha256
from dynosaur.registry.vcs import Git, ObjectStore
from dynosaur.registry.workspace import Workspace


class PullReport(BaseModel):
    version: int
    tag: str
    shards: int
    instances: int
    bytes: int
    out: Path


def pull_release(root: Path, version: str, out: Path, corpus_path: str | None = None) -> PullReport:
    """Write release `version`'s corpus to `out` (absent or empty), fetched from DVC and checked.

    Args:
        corpus_path: the corpus directory inside the repository; by default `organize`'s output in dvc.yaml.
    """
    ledger = Ledger(root)
    release = ledger.release(version)
    git = Git(root)
    if git.is_repo() and not git.tag_exists(release.tag):
        raise PullError(
            f"pull {release.tag}: {release.tag} is recorded but not tagged (an interrupted release, or a"
            " deleted tag): run `dyno release` to tag it"
        )
    entries = ledger.read_manifest(release)
    out = out.absolute()
    if corpus_path is None:
        ws = Workspace.load(root)
        corpus_path = ws.corpus.relative_to(ws.root).as_posix()
    staging = staging_dir(out, release.tag)
    try:
        data = staging / "corpus"
        _fetch(root, corpus_path, release, data)
        data.mkdir(exist_ok=True)  # a release without shards downloads nothing
        instances, size = _check(data, release, entries)
        _check_target(out, release)
        try:
            os.replace(data, out)  # onto an empty directory too (POSIX rename)
        except OSError as exc:
            raise PullError(
                f"pull {release.tag}: cannot move the checked corpus to {out}: {exc.strerror}"
            ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PullReport(
        version=release.version,
        tag=release.tag,
        shards=len(entries),
        instances=instances,
        bytes=size,
        out=out,
    )


def staging_dir(out: Path, tag: str) -> Path:
    """A new empty directory beside `out` (absent or an empty directory) to fetch into, so the final rename
    stays on one file system; a path that cannot be created is one line, not a traceback. Its name holds
    this process's id: the staging directories of pulls that were killed (their process is gone) are
    removed first."""
    _check_target(out, tag)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(out)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.pull-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise PullError(f"pull {tag}: cannot create {out}: {exc.strerror or exc}{where}") from None


def _remove_dead_staging(out: Path) -> None:
    """Remove `.<out>.pull-<pid>-*` beside `out` when process <pid> no longer runs (a killed pull's)."""
    prefix = f".{out.name}.pull-"
    for path in out.parent.glob(f"{glob.escape(prefix)}*"):
        pid = path.name[len(prefix) :].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _check_target(out: Path, release: Release | str) -> None:
    tag = release if isinstance(release, str) else release.tag
    try:
        if out.is_dir() and not any(out.iterdir()):
            return
        exists = out.exists() or out.is_symlink()
    except OSError as exc:
        raise PullError(f"pull {tag}: cannot use {out}: {exc.strerror or exc}") from None
    if exists:
        raise PullError(
            f"pull {tag}: {out} already exists and is not an empty directory; choose a new path or empty it"
        )


def _fetch(root: Path, corpus_path: str, release: Release, dest: Path) -> None:
    """Download the corpus directory as committed at the release's tag (`dvc get` from the repository)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc_data.index.index import DataIndexDirError, DataIndexError

    try:
        # Copies, whatever cache.type the project sets: a hardlinked or symlinked shard in `out` would let an
        # edit there corrupt the DVC cache.
        Repo.get(
            url=str(root.absolute()),
            path=corpus_path,
            out=str(dest),
            rev=release.tag,
            config={"cache": {"type": "reflink,copy"}},
        )
    except FileNotFoundError as exc:
        missing = str(exc.filename or corpus_path)
        if missing.rstrip("/") == corpus_path.rstrip("/"):
            raise PullError(
                f"pull {release.tag}: {corpus_path} is not tracked by DVC at tag {release.tag}:"
                " is that the corpus path?"
            ) from exc
        raise PullError(
            f"pull {release.tag}: {missing} is in neither the local DVC cache nor the DVC remote;"
            " run `dvc push` where it was released"
        ) from exc
    except DataIndexDirError as exc:
        raise PullError(
            f"pull {release.tag}: the listing of {corpus_path} ({release.corpus_md5}) is in"
            " neither the local DVC cache nor the DVC remote;"
            " run `dvc push` where it was released"
        ) from exc
    except (DvcException, DataIndexError, OSError) as exc:
        raise PullError(
            f"pull {release.tag}: cannot fetch {corpus_path} at tag {release.tag} with DVC: {first_line(exc)}"
        ) from exc


def _check(data: Path, release: Release, entries: list[ManifestEntry]) -> tuple[int, int]:
    """(instances, bytes) of the staged corpus, once it matches the manifest: same files, same digests."""
    expected = {e.shard: e for e in entries}
    found = {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    if extra := sorted(found - expected.keys()):
        raise PullError(
            f"pull {release.tag}: {extra[0]} was fetched but is not a shard of {release.manifest}"
        )
    if missing := sorted(expected.keys() - found):
        e = expected[missing[0]]
        raise PullError(
            f"pull {release.tag}: shard {e.shard} (task {e.task_id}) of {release.manifest}"
            " is missing from the fetched corpus"
        )
    # hashlib releases the GIL on large reads: hash the files on every core, compare in manifest order.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        hashes = dict(
            zip(
                sorted(expected),
                pool.map(
                    lambda s: file_sha256(data / s) if expected[s].shard_sha256 else None, sorted(expected)
                ),
                strict=False,
            )
        )
    instances = size = 0
    for shard, e in sorted(expected.items()):
        path = data / shard
        where = f"pull {release.tag}: shard {shard} (task {e.task_id}, md5 {e.shard_md5})"
        size += path.stat().st_size
        if e.shard_sha256:
            if hashes[shard] != e.shard_sha256:
                raise DamagedCopy(
                    f"{where} differs from the released file ({release.manifest} records sha256"
                    f" {e.shard_sha256}): the copy DVC served (local cache or remote) is damaged"
                )
            instances += e.instances
            continue
        try:
            count, digest = shard_digest(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DamagedCopy(
                f"{where} is not a readable parquet file ({first_line(exc)}):"
                f" the copy DVC served (local cache or remote) is damaged"
            ) from exc
        if (count, digest) != (e.instances, e.digest):
            raise DamagedCopy(
                f"{where} holds {count} instances ({digest}) but {release.manifest} records"
                f" {e.instances} ({e.digest}): the copy DVC served (local cache or remote)"
                " is damaged"
            )
        instances += count
    return instances, size


def local_shards(
    root: Path, release: Release, entries: list[ManifestEntry], staging: Path
) -> dict[str, Path]:
    """shard → a local file with the released bytes, named by its shard path (what the upload progress bars
    show): links into the DVC cache, else the release pulled from the remote."""
    store = ObjectStore(root)
    found = {e.shard: store.path(e.shard_md5) for e in entries if e.shard_md5}
    if all(p.exists() for p in found.values()) and len(found) == len(entries):
        named = {}
        for shard, cached in found.items():
            link = staging / "data" / shard
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                link.symlink_to(cached)
            except OSError:  # no symlinks here: a copy
                shutil.copyfile(cached, link)
            named[shard] = link
        return named
    out = staging / "pulled"
    pull_release(root, release.tag, out)
    return {e.shard: out / e.shard for e in entries}
