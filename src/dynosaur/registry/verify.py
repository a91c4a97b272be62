"""Verifying the registry: every record, the release chain, every manifest, every tag, every shard.

`verify` takes the registry lock (so it never judges a release half-way through being written) but
finishes nothing: the records an interrupted release left uncommitted, or its missing tag, are reported
with the command that finishes them (`dyno release`).

Checks run cheapest first and every problem is collected, in order, as one line naming the file and line,
the release, or the shard (task id and md5); the CLI prints the first and exits 1.

    records    each line of each ledger file parses, its `hash` recomputes and it names the previous line's
               hash (a bad line is reported and skipped, so one altered record does not hide the rest)
    audits     the same for each audit's answer files (audits/<audit_id>/…), and each answer names an item
               of its audit's recorded sample
    history    every committed version of each ledger file (at each tag vN, at each commit of HEAD's
               history) is a prefix of today's: no committed line deleted, reordered or rewritten, even
               with every hash recomputed (see `dynosaur.registry.ledger`)
    chain      releases run v1..vN in order
    manifests  each release's manifest matches its `manifest_digest`, and its totals
    tags       record → tag: each release's git tag `vN` exists; tag → record: each tag `vN` has a release
               record, and the tagged commit's releases.jsonl ends with that very record
    listings   each release's corpus directory object (`corpus_md5`, what `dvc get` at the tag reads first)
               lists exactly the manifest's shards, each as the manifest's object: what `dyno pull` accepts
    shards     each manifest entry's DVC object (`shard_md5`), from the local DVC cache or else the default
               remote, read through DVC's object database so any remote type works; its (instances, digest),
               recomputed from the rows, must equal the entry's

With `remote=True` (`dyno verify --remote`) listings and shards are read from the default remote alone, the
local cache ignored: what a fresh clone with an empty cache would get.

Shards dominate the cost, so each distinct object is read once, however many releases share it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from dynosaur.core.errors import LedgerError, LockHeld, first_line
from dynosaur.core.records import AuditAnswer, AuditSample, LedgerRecord, ManifestEntry, Release
from dynosaur.core.shards import shard_digest
from dynosaur.registry.ledger import FILES, Ledger, check_history, check_lines
from dynosaur.registry.lock import READ_WAIT_S, Lease, registry_lock
from dynosaur.registry.vcs import Git

R = TypeVar("R", bound=LedgerRecord)


class VerifyReport(BaseModel):
    releases: int = 0
    shards: int = 0
    ok: bool = True
    problems: list[str] = []


def verify(root: Path, *, remote: bool = False) -> VerifyReport:
    """Check the registry at `root`; if anything is wrong, `ok` is False and `problems` names each fault."""
    problems: list[str] = []
    if not Git(root).is_repo():
        manifests = _check_ledger(root, None, problems)
    else:
        try:
            # The lock is held while the ledger is read, not while shards are: those are immutable objects,
            # and a long verify must not keep a release waiting.
            with registry_lock(root, "verify", wait_s=READ_WAIT_S) as lease:
                manifests = _check_ledger(root, lease, problems)
        except LockHeld as exc:
            return VerifyReport(ok=False, problems=[str(exc)])
    shards = _ShardChecker(root, remote_only=remote)
    try:
        for release, entries in manifests:
            shards.check_listing(release, entries, problems)
            for entry in entries or []:
                shards.check(release, entry, problems)
    finally:
        shards.close()
    return VerifyReport(releases=len(manifests), shards=shards.checked, ok=not problems, problems=problems)


def _check_ledger(
    root: Path, lease: Lease | None, problems: list[str]
) -> list[tuple[Release, list[ManifestEntry] | None]]:
    """Records, history, chain, tags and manifests; returns each release with its manifest (if readable)."""
    ledger = Ledger(root)
    if lease is not None and lease.stale is not None:
        dirty = Git(root).dirty(ledger.dir.relative_to(root).as_posix(), untracked=True)
        if dirty:
            problems.append(
                f"{dirty[0]}: uncommitted records of an interrupted {lease.stale.describe()}:"
                " run `dyno release` to discard them"
            )
    for model in FILES:
        if model is not Release:
            _read(ledger.path(model), model, root, problems)
    releases = _read(ledger.path(Release), Release, root, problems)
    for model in FILES:
        if problem := check_history(ledger.path(model), root):
            problems.append(problem)
    _check_audits(root, ledger, problems)
    _check_chain(releases, problems)
    git = Git(root)
    _check_tags(git, ledger, releases, root, problems)
    last = releases[-1][1].tag if releases else None
    return [(release, _manifest(ledger, where, release, git, problems, last)) for where, release in releases]


def _manifest(
    ledger: Ledger, where: str, release: Release, git: Git, problems: list[str], last: str | None
) -> list[ManifestEntry] | None:
    """The release's manifest if it matches its digest; also checks the totals and the tag."""
    entries = None
    try:
        entries = ledger.read_manifest(release)
    except LedgerError as exc:  # missing, altered, or a line that is not an entry (named by its number)
        problems.append(str(exc))
    if entries is not None:
        tasks, instances = len(entries), sum(e.instances for e in entries)
        if (tasks, instances) != (release.totals.tasks, release.totals.instances):
            problems.append(
                f"{where}: {release.tag} totals ({release.totals.tasks} tasks,"
                f" {release.totals.instances} instances) disagree with {release.manifest}"
                f" ({tasks} tasks, {instances} instances)"
            )
    if not git.tag_exists(release.tag):
        hint = " (an interrupted release? `dyno release` tags it)" if release.tag == last else ""
        problems.append(f"{where}: git tag {release.tag} is missing{hint}")
    return entries


def _read(path: Path, model: type[R], root: Path, problems: list[str]) -> list[tuple[str, R]]:
    """(file:line, record) for each line that parses (a problem for each that does not, or has a bad hash)."""
    out = []
    for where, record, problem in check_lines(path, model, root):
        if problem:
            problems.append(problem)
        if record is not None:
            out.append((where, record))
    return out


def _check_audits(root: Path, ledger: Ledger, problems: list[str]) -> None:
    """Each answer file: hashes, chain and git history; each answer about an item of its own audit."""
    from dynosaur.registry.audit import answer_files

    items = {
        s.audit_id: {i.instance_id for i in s.items}
        for _, s in _read(ledger.path(AuditSample), AuditSample, root, [])
    }
    for path in answer_files(root):
        for where, answer in _read(path, AuditAnswer, root, problems):
            if answer.audit_id != path.relative_to(root).parts[1]:
                problems.append(f"{where}: an answer for audit {answer.audit_id} in another audit's folder")
            elif answer.instance_id not in items.get(answer.audit_id, set()):
                problems.append(
                    f"{where}: instance {answer.instance_id} is not in audit {answer.audit_id}'s recorded sample"
                )
        if problem := check_history(path, root):
            problems.append(problem)


def _check_chain(releases: list[tuple[str, Release]], problems: list[str]) -> None:
    """Versions run 1..N (each release's `parent` link is checked with the other lines, in check_lines)."""
    for number, (where, release) in enumerate(releases, 1):
        if release.version != number or release.tag != f"v{number}":
            problems.append(
                f"{where}: release {release.tag} (version {release.version}) is out of order:"
                f" expected v{number}"
            )


def _check_tags(
    git: Git, ledger: Ledger, releases: list[tuple[str, Release]], root: Path, problems: list[str]
) -> None:
    """tag → record: each release tag names a commit whose releases.jsonl ends with that release's record."""
    if not git.is_repo():
        return
    by_tag = {release.tag: release for _, release in releases}
    path = ledger.path(Release)
    name = path.relative_to(root).as_posix()
    for tag, commit in git.release_tags().items():
        release = by_tag.get(tag)
        if release is None:
            problems.append(f"{name}: git tag {tag} has no release record (was it deleted?)")
            continue
        last = _last_hash(git, commit, name)
        if last != release.hash:
            problems.append(_moved_tag(git, name, tag, commit, release.hash, last))


def _compare_listing(
    what: str, listing: dict[str, str], entries: list[ManifestEntry], problems: list[str]
) -> None:
    """The files `dvc get` fetches for a release are exactly its manifest's shards (`dyno pull`'s check)."""
    shards = {e.shard: e for e in entries}
    if extra := sorted(listing.keys() - shards.keys()):
        shown = ", ".join(extra[:5]) + (f", … ({len(extra) - 5} more)" if len(extra) > 5 else "")
        problems.append(
            f"{what} holds {len(extra)} file(s) that are not shards of the manifest ({shown}):"
            " `dyno pull` refuses this release"
        )
    for shard in sorted(shards.keys() - listing.keys()):
        problems.append(f"{what} lacks shard {shard} (task {shards[shard].task_id}): `dyno pull` refuses it")
    for shard, entry in sorted(shards.items()):
        md5 = listing.get(shard)
        if md5 is not None and entry.shard_md5 and md5 != entry.shard_md5:
            problems.append(
                f"{what} lists shard {shard} (task {entry.task_id}) as object {md5}, not the manifest's"
                f" {entry.shard_md5}: `dyno pull` would fetch another file"
            )


def _moved_tag(git: Git, name: str, tag: str, commit: str, wanted: str, last: str | None) -> str:
    """A tag that is not on the commit that recorded its release: both commits, and how to move it back."""
    added = git("log", "--reverse", "--format=%H", f"-S{wanted}", "--", f"./{name}", check=False).split()
    recorded = next((c for c in added if _last_hash(git, c, name) == wanted), None)
    if recorded is None:  # the record's line was never committed as the last one (a rewritten history)
        return (
            f"{name}: git tag {tag} is not on the commit that recorded {tag}"
            f" (its {name} ends with {last or 'nothing'}, not {wanted})"
        )
    return (
        f"{name}: git tag {tag} names commit {commit[:12]}, but {tag} was recorded by commit {recorded[:12]}:"
        f" move it back with `git tag -f -a {tag} -m {tag} {recorded}` (and `git push -f origin {tag}` where it"
        " was pushed)"
    )


def _last_hash(git: Git, commit: str, name: str) -> str | None:
    """The stored hash of the last line of `name` at `commit`."""
    lines = [line for line in (git.show(commit, f"./{name}") or "").split("\n") if line.strip()]
    return _stored_hash_of(lines[-1]) if lines else None


def _stored_hash_of(line: str) -> str | None:
    try:
        value = json.loads(line).get("hash")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


class _ShardChecker:
    """Reads each distinct DVC object once: the local cache first, then the default remote (opened lazily)."""

    def __init__(self, root: Path, *, remote_only: bool = False):
        self.root = root
        self.remote_only = remote_only
        self.results: dict[str, tuple[int, str] | str] = {}  # md5 → (instances, digest) or why it failed
        self._repo: Any = None
        self._dbs: list[tuple[str, Any]] = []  # (where, DVC object database)
        self._unusable = ""  # why a store cannot be read, said when an object is not found elsewhere

    @property
    def checked(self) -> int:
        return len(self.results)

    def check(self, release: Release, entry: ManifestEntry, problems: list[str]) -> None:
        md5 = entry.shard_md5
        what = f"{release.manifest}: shard {entry.shard} (task {entry.task_id}, md5 {md5})"
        if not md5:
            problems.append(f"{what} has no DVC object id to check")
            return
        if md5 not in self.results:
            self.results[md5] = self._digest(md5)
            if isinstance(self.results[md5], str):
                problems.append(f"{what} {self.results[md5]}")
        result = self.results[md5]
        if isinstance(result, tuple) and result != (entry.instances, entry.digest):
            problems.append(
                f"{what} holds {result[0]} instances ({result[1]}) but the manifest records"
                f" {entry.instances} ({entry.digest})"
            )

    def check_listing(
        self, release: Release, entries: list[ManifestEntry] | None, problems: list[str]
    ) -> None:
        """The release's corpus directory object is where a pull looks for it, and lists exactly the
        manifest's shards, each as the object the manifest names: what `dyno pull` accepts."""
        self._open()
        oid = release.corpus_md5 if release.corpus_md5.endswith(".dir") else f"{release.corpus_md5}.dir"
        what = f"{release.manifest}: the corpus listing {oid} of {release.tag}"
        for _, odb in self._dbs:
            path = odb.oid_to_path(oid)
            try:
                if not odb.fs.exists(path):
                    continue
                with odb.fs.open(path, "rb") as fh:
                    listing = {e["relpath"]: e["md5"] for e in json.load(fh)}
            except OSError as exc:
                problems.append(f"{what} cannot be read: {exc}")
                return
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"{what} is damaged (not a DVC directory listing: {first_line(exc)})")
                return
            if entries is not None:
                _compare_listing(what, listing, entries, problems)
            return
        problems.append(f"{what} {self._absent()}")

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()

    def _digest(self, md5: str) -> tuple[int, str] | str:
        self._open()
        for where, odb in self._dbs:
            path = odb.oid_to_path(md5)
            try:
                if not odb.fs.exists(path):
                    continue
                with odb.fs.open(path, "rb") as fh:
                    return shard_digest(fh)
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                return f"is damaged in {where} (not a readable parquet file: {first_line(exc)})"
        return self._absent()

    def _absent(self) -> str:
        """Where an object was looked for in vain."""
        if len(self._dbs) > 1:
            return f"is in neither {self._dbs[0][0]} nor {self._dbs[1][0]}"
        if not self._dbs:
            return self._unusable
        return f"is not in {self._dbs[0][0]}" + (f", and {self._unusable}" if self._unusable else "")

    def _open(self) -> None:
        if self._repo is not None or self._unusable:
            return
        from dvc.config import NoRemoteError
        from dvc.exceptions import DvcException
        from dvc.repo import Repo

        try:
            self._repo = Repo(str(self.root))
        except DvcException as exc:
            self._unusable = f"cannot be checked: DVC cannot open {self.root} ({first_line(exc)})"
            return
        if not self.remote_only:
            self._dbs.append(("the local DVC cache", self._repo.cache.local))
        try:
            remote = self._repo.cloud.get_remote()
            odb = self._repo.cloud.get_remote_odb(remote.name)  # any remote type: an fsspec-backed object db
            self._dbs.append((f"the DVC remote {remote.name!r}", odb))
        except NoRemoteError:
            self._unusable = "no default DVC remote is configured (`dvc remote add -d NAME URL`)"
        except DvcException as exc:
            self._unusable = f"the DVC remote cannot be opened: {first_line(exc)}"
