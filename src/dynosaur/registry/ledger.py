"""The ledger: append-only JSON Lines records committed to git (`ledger/`), so `git log -p` shows what each
release added.

    ledger/sources.jsonl       SourceVersion   one line per (source id, revision) ever released
    ledger/tasks.jsonl         TaskVersion     one line per task version ever released, with its verdict
    ledger/retractions.jsonl   Retraction      tombstones
    ledger/releases.jsonl      Release         the hash chain
    ledger/manifests/vN.jsonl  ManifestEntry   one line per task in release N (sorted by task id)

Every line carries `hash` = sha256 over the JSON object *as stored*, less its `hash` key, in canonical form
(sorted keys, compact, UTF-8 kept as is). It is never a re-dump of the parsed model, so adding an optional
field to a record type does not invalidate the lines already sealed; a format change goes through
`dynosaur.registry.migrations`, applied after the hash check. Each Release names its parent's hash, so
rewriting history anywhere breaks a hash. The API has no update
or delete: `append` rewrites a file as its exact old bytes plus new lines (atomically), and reading a line
whose hash does not match is an error, never silently accepted.
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
    LedgerRecord,
    ManifestEntry,
    Release,
    Retraction,
    SourceVersion,
    TaskVersion,
    digest,
)
from dynosaur.registry.migrations import migrate

LEDGER_DIR = "ledger"
FILES: dict[type[LedgerRecord], str] = {
    SourceVersion: "sources.jsonl",
    TaskVersion: "tasks.jsonl",
    Retraction: "retractions.jsonl",
    Release: "releases.jsonl",
}

R = TypeVar("R", bound=LedgerRecord)


def stored_hash(stored: dict) -> str:
    """The hash a stored line must carry: over the object as stored, less its `hash` key."""
    return digest({k: v for k, v in stored.items() if k != "hash"})


def _line(record: LedgerRecord | ManifestEntry) -> str:
    return canonical_json(record.model_dump(mode="json")) + "\n"


class Ledger:
    def __init__(self, root: Path):
        self.dir = root / LEDGER_DIR

    def path(self, model: type[LedgerRecord]) -> Path:
        return self.dir / FILES[model]

    def read(self, model: type[R]) -> list[R]:
        return read_records(self.path(model), model, self.dir.parent)

    def append(self, model: type[R], records: list[R]) -> None:
        """Add records at the end. Old bytes are kept exactly; new records are sealed (hashed) here."""
        if not records:
            return
        path = self.path(model)
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            raise LedgerError(f"{path}: last line is incomplete; restore it from git")
        for r in records:
            if r.hash and r.hash != r.content_hash():
                # Written as is, it would make every later read of the file fail.
                raise LedgerError(
                    f"{path}: a new {model.__name__} record does not match its hash; seal it again"
                )
        new = "".join(_line(r if r.hash else r.sealed()) for r in records)
        atomic_write(path, old + new.encode("utf-8"))

    # --- releases and manifests ------------------------------------------------------------------------

    def releases(self) -> list[Release]:
        return self.read(Release)

    def release(self, version: str | int) -> Release:
        number = parse_version(version)
        for release in self.releases():
            if release.version == number:
                return release
        known = ", ".join(r.tag for r in self.releases()) or "none yet"
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
        return [ManifestEntry.model_validate_json(line) for line in data.decode("utf-8").split("\n") if line]


def check_lines(
    path: Path, model: type[R], root: Path = Path(".")
) -> Iterator[tuple[str, R | None, str | None]]:
    """(file:line, record or None, problem or None) for each record line; `verify` reports every problem."""
    if not path.exists():
        return
    name = path.relative_to(root) if path.is_relative_to(root) else path
    # Split on "\n" only: str.splitlines also breaks on U+2028, U+0085, ..., which JSON leaves unescaped.
    for lineno, line in enumerate(path.read_bytes().decode("utf-8").split("\n"), 1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            stored = json.loads(line)
            if not isinstance(stored, dict):
                raise ValueError("not an object")
            actual = stored_hash(stored)
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
        yield where, record, problem


def read_records(path: Path, model: type[R], root: Path = Path(".")) -> list[R]:
    """Every record in a ledger file, each checked against its hash (the first bad line is an error)."""
    records = []
    for _, record, problem in check_lines(path, model, root):
        if problem:
            raise LedgerError(problem)
        assert record is not None  # check_lines gives a record whenever it finds no problem
        records.append(record)
    return records


def parse_version(version: str | int) -> int:
    text = str(version).strip()
    number = text[1:] if text[:1] in ("v", "V") else text
    if not (number.isascii() and number.isdigit()) or int(number) < 1:
        raise NotFound(f"{version!r} is not a version (use v1, v2, …)")
    return int(number)
