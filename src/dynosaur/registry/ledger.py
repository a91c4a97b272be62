"""The ledger: append-only JSON Lines records committed to git (`ledger/`), so `git log -p` shows what each
release added.

    ledger/sources.jsonl       SourceVersion   one line per (source id, revision) ever released
    ledger/tasks.jsonl         TaskVersion     one line per task version ever released, with its verdict
    ledger/retractions.jsonl   Retraction      tombstones
    ledger/releases.jsonl      Release         one line per release
    ledger/audits.jsonl        AuditSample     one line per sample drawn for a quality audit (`dyno audit`)
    ledger/manifests/vN.jsonl  ManifestEntry   one line per task in release N (sorted by task id)

Three layers make the ledger grow only:

1. Each line carries `hash` = sha256 over the JSON object *as stored*, less its `hash` key, in canonical form
   (sorted keys, compact, UTF-8 kept as is). It is never a re-dump of the parsed model, so adding an optional
   field to a record type does not invalidate the lines already sealed; a format change goes through
   `dynosaur.registry.migrations`, applied after the hash check.
2. Each file is a hash chain: every line names the previous line's hash (`prev`; in releases.jsonl the
   release's `parent`, which is the same thing), None on the first line. Deleting, inserting or reordering a
   line breaks the link of the line after it. `prev` was added after the first ledgers were written: it is
   an optional field, not a migration, because a sealed line is never rewritten and a migration cannot
   add a link to a line whose hash already covers its stored form. So lines without the key read as
   written before the chain began; the chain starts at the first line that has it, and from there on every
   line must have it.
3. Hashes have no secret: whoever edits a line can recompute its hash and every later link (a "consistent
   forgery"). What pins history is git: every committed version of a file (at each release tag `vN`, and at
   each commit of HEAD's history) must be a byte prefix of today's file (`check_history`). That also covers
   the lines written before the chain began, and the deletion of a file's last lines, which no link shows.

Blank lines are no records: readers skip them. `ledger/retractions.jsonl` starts as one empty line, not an
empty file, because collect and filter depend on it in dvc.yaml and DVC warns about an empty dependency on
every run; the first retraction goes after that line.

`read_records` (what the pipeline uses for retractions) checks all three, so a stage refuses to run on a
ledger whose committed lines were deleted or rewritten. The API has no update or delete: `append` rewrites a
file as its exact old bytes plus new lines (atomically), linked to the last one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from dynosaur.core.errors import LedgerError, NotFound, SchemaError
from dynosaur.core.io import atomic_write, canonical_json
from dynosaur.core.records import (
    AuditSample,
    LedgerRecord,
    ManifestEntry,
    Release,
    Retraction,
    SourceVersion,
    TaskVersion,
    digest,
    resolve_prefix,
)
from dynosaur.registry.migrations import migrate
from dynosaur.registry.vcs import committed_versions, is_git_prefix

LEDGER_DIR = "ledger"
FILES: dict[type[LedgerRecord], str] = {
    SourceVersion: "sources.jsonl",
    TaskVersion: "tasks.jsonl",
    Retraction: "retractions.jsonl",
    Release: "releases.jsonl",
    AuditSample: "audits.jsonl",
}

R = TypeVar("R", bound=LedgerRecord)


def stored_hash(stored: dict) -> str:
    """The hash a stored line must carry: over the object as stored, less its `hash` key."""
    return digest({k: v for k, v in stored.items() if k != "hash"})


def _line(record: LedgerRecord | ManifestEntry) -> str:
    return canonical_json(record.model_dump(mode="json")) + "\n"


def _last_hash(path: Path, data: bytes) -> str | None:
    """The stored hash of a file's last line (None for an empty file): what the next line links to."""
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])["hash"]
    except (ValueError, KeyError, TypeError):
        raise LedgerError(f"{path}: the last line is not a sealed record; restore it from git") from None


class Ledger:
    def __init__(self, root: Path):
        self.dir = root / LEDGER_DIR
        self._history_checked: dict[Path, tuple[int, int]] = {}  # path → (size, mtime) when checked

    def path(self, model: type[LedgerRecord]) -> Path:
        return self.dir / FILES[model]

    def read(self, model: type[R]) -> list[R]:
        """Every record of a file, checked (hashes, chain, and its git history once per Ledger object)."""
        path = self.path(model)
        stamp = (path.stat().st_size, path.stat().st_mtime_ns) if path.exists() else (-1, 0)
        history = self._history_checked.get(path) != stamp
        records = read_records(path, model, self.dir.parent, history=history)
        self._history_checked[path] = stamp
        return records

    def append(self, model: type[R], records: list[R]) -> None:
        """Add records at the end, each linked to the line before. Old bytes are kept exactly.

        An unsealed record is linked and sealed here; a sealed one must already name the last line (a
        release names its parent: if another release was written meanwhile, this one is refused).
        """
        append_records(self.path(model), model, records)

    # --- releases and manifests ------------------------------------------------------------------------

    def releases(self) -> list[Release]:
        return self.read(Release)

    def release(self, version: str | int) -> Release:
        """A release by its tag (`v3`, `V3` or `3`), or by a unique prefix of the tags (`v` when there is one
        release); an ambiguous prefix names the candidates (`Ambiguous`, exit 2), as task ids do."""
        releases = self.releases()
        try:
            number = parse_version(version)
        except NotFound:
            text = str(version).strip().lower()
            matches = {r.tag: r for r in releases if text and r.tag.lower().startswith(text)}
            if not matches:
                raise
            return resolve_prefix(text, matches, "release")
        for release in releases:
            if release.version == number:
                return release
        known = ", ".join(r.tag for r in releases) or "none yet"
        raise NotFound(f"unknown version {version!r} (releases: {known})")

    def manifest_path(self, version: int) -> Path:
        return self.dir / "manifests" / f"v{version}.jsonl"

    def write_manifest(self, version: int, entries: list[ManifestEntry]) -> str:
        """Write release N's manifest and return its digest (recover() has removed any interrupted leftover)."""
        path = self.manifest_path(version)
        data = "".join(_line(e) for e in sorted(entries, key=lambda e: e.task_id)).encode("utf-8")
        atomic_write(path, data)
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def read_manifest(self, release: Release) -> list[ManifestEntry]:
        path = self.dir.parent / release.manifest
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LedgerError(f"{release.manifest}: manifest of {release.tag} is missing") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != release.manifest_digest:
            raise LedgerError(f"{release.manifest}: manifest of {release.tag} does not match its digest")
        # Split on "\n" only: str.splitlines also breaks on U+2028, U+0085, ..., which JSON leaves unescaped.
        entries = []
        for lineno, line in enumerate(data.decode("utf-8").split("\n"), 1):
            if not line:
                continue
            try:
                entries.append(ManifestEntry.model_validate_json(line))
            except ValidationError as exc:  # a newer schema, another tool's line: named, never a traceback
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "the line"
                msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                raise LedgerError(
                    f"{release.manifest}:{lineno}: not a valid manifest entry of {release.tag} ({field}: {msg})"
                ) from None
        return entries


def append_records(path: Path, model: type[R], records: list[R]) -> None:
    """`Ledger.append` for any chained file (the audits' answer files too): old bytes kept exactly, each new
    record linked to the line before and sealed (see `Ledger.append`)."""
    if not records:
        return
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        raise LedgerError(f"{path}: last line is incomplete; restore it from git")
    last = _last_hash(path, old)
    lines = []
    for r in records:
        if r.hash and r.hash != r.content_hash():
            # Written as is, it would make every later read of the file fail.
            raise LedgerError(f"{path}: a new {model.__name__} record does not match its hash; seal it again")
        if not r.hash:
            r = r.model_copy(update={model.LINK: last}).sealed()
        elif r.link != last:
            raise LedgerError(
                f"{path}: a new {model.__name__} record names {model.LINK} {r.link}, but the last line"
                f" is {last}: the ledger changed since the record was made; run again"
            )
        lines.append(_line(r))
        last = r.hash
    atomic_write(path, old + "".join(lines).encode("utf-8"))


def _name(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path


_UNKNOWN = object()  # the previous line could not be read: its successor's link is not judged


def check_lines(
    path: Path, model: type[R], root: Path = Path(".")
) -> Iterator[tuple[str, R | None, str | None]]:
    """(file:line, record or None, problem or None) for each record line: its hash, then its link to the
    line before (see the module docstring); `verify` reports every problem, `read_records` the first."""
    if not path.exists():
        return
    name = _name(path, root)
    link = model.LINK
    previous: object = None  # the stored hash of the line before (None before the first line)
    previous_line = 0
    chained = False
    # Split on "\n" only: str.splitlines also breaks on U+2028, U+0085, ..., which JSON leaves unescaped.
    for lineno, line in enumerate(path.read_bytes().decode("utf-8").split("\n"), 1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        before, before_line = previous, previous_line
        previous, previous_line = _UNKNOWN, lineno
        try:
            stored = json.loads(line)
            if not isinstance(stored, dict):
                raise ValueError("not an object")
            actual = stored_hash(stored)
            previous = stored.get("hash")
            record = model.model_validate(migrate(model.__name__, stored))
        except SchemaError as exc:
            yield where, None, f"{where}: {exc}"
            continue
        except (ValueError, ValidationError):
            yield where, None, f"{where}: not a valid {model.__name__} record"
            continue
        problem = None
        if stored.get("hash") != actual:
            problem = f"{where}: {model.__name__} hash mismatch (the record was altered)"
        elif link in stored:
            chained = True
            if before is not _UNKNOWN and stored[link] != before:
                problem = (
                    f"{where}: {link} {stored[link]} is not the hash of line {before_line} ({before}):"
                    " a line before it was deleted, inserted or reordered"
                    if before is not None
                    else f"{where}: the first line names {link} {stored[link]}: the lines before it were deleted"
                )
        elif chained:
            problem = f"{where}: {model.__name__} has no {link} after the chain began (a line was forged)"
        yield where, record, problem


def check_history(path: Path, root: Path = Path(".")) -> str | None:
    """The first committed line of `path` that today's file no longer has as committed, as one problem
    naming file, line and where it was committed; None when every committed version is a prefix of today's
    (or there is no git repository). Cheap: committed contents are read only when one differs."""
    git, versions = committed_versions(path)
    if not versions:
        return None
    current = path.read_bytes() if path.exists() else b""
    worst: tuple[int, str, bool] | None = None  # (line, where committed, gone rather than changed)
    for version in {v.oid: v for v in reversed(versions)}.values():  # each blob once, earliest label
        if is_git_prefix(current, version):
            continue
        assert git is not None
        committed = git.blob(version.oid).split(b"\n")
        now = current.split(b"\n")
        index = next((i for i, line in enumerate(committed) if i >= len(now) or now[i] != line), None)
        if index is None:
            continue
        gone = index >= len(now) or (index == len(now) - 1 and not now[index])
        if worst is None or index + 1 < worst[0]:
            worst = (index + 1, version.label, gone)
    if worst is None:
        return None
    lineno, label, gone = worst
    what = "is gone" if gone else "was rewritten or moved"
    return (
        f"{_name(path, root)}:{lineno}: the line committed at {label} {what}; committed ledger lines are never"
        " changed or deleted (restore the file from git)"
    )


def read_records(path: Path, model: type[R], root: Path = Path("."), *, history: bool = True) -> list[R]:
    """Every record in a ledger file, checked: each line's hash and link, and (unless `history` is False)
    that every committed version of the file is a prefix of it. The first problem is a LedgerError."""
    records = []
    for _, record, problem in check_lines(path, model, root):
        if problem:
            raise LedgerError(problem)
        assert record is not None  # check_lines gives a record whenever it finds no problem
        records.append(record)
    if history and (problem := check_history(path, root)):
        raise LedgerError(problem)
    return records


def parse_version(version: str | int) -> int:
    text = str(version).strip()
    number = text[1:] if text[:1] in ("v", "V") else text
    if not (number.isascii() and number.isdigit()) or int(number) < 1:
        raise NotFound(f"{version!r} is not a version (use v1, v2, …)")
    return int(number)
