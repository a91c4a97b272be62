"""Per-source records in hash-bucketed segments: the format of `data/collected`, `data/generated`, `data/tasks`.

A stage's per-source records (one `SourceMeta`, `GeneratedSource` or `FilteredSource` per source) live in at
most `SEGMENTS` (256) JSON Lines files per folder, `<folder>/<xx>.jsonl`, where `xx` is the first two hex
digits of sha256(source id). Each line is one record in canonical JSON (`dynosaur.core.io.canonical_json`),
lines sorted by source id, so a segment's bytes depend only on the records in it.

Why: DVC hashes every file of a tracked folder several times per stage run (its status, its run-cache
lookup, saving the dependencies, saving the outputs). With a file per source, that cost grew with the number
of sources: at 20,000 sources one more source cost DVC 7.5 s per folder, against 1.5 s for 256 segments
(`bench/dvc_layout.py`, docs/scaling.md). One more source rewrites one segment per folder.

A record is located by its source id alone; a stage's memory (`dynosaur.core.statcache`) stamps the
segment a record lives in and keeps the record's own digest (`RecordFolder.digest`), so a segment rewritten
for a neighbour costs that neighbour a hash of its line, not a parse of its record.

Writes are buffered and land by `flush`: each touched segment is rewritten whole (a temporary file, fsynced,
renamed), so a killed run leaves every segment either as it was or as it was flushed. Stages flush at most
every `FLUSH_S` seconds while they run and always at the end; a record lost to a kill is redone by the next
run from the stage's caches (generate's answers are in the call cache: nothing is paid twice).

Folders written before segments (`<folder>/<source id>.json`, one file per record) are still read; the
stage that owns a folder folds them into segments when it opens it (`RecordFolder.migrate`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from dynosaur.core.errors import RecordError
from dynosaur.core.io import CACHE_DIR, RACY_NS, atomic_write, cache_folder, canonical_json, file_stamp

M = TypeVar("M", bound=BaseModel)

SEGMENTS = 256
SUFFIX = ".jsonl"
LEGACY_SUFFIX = ".json"  # one file per record, before segments
FLUSH_S = 1.0  # a running stage lands its buffered records at least this often


def segment_name(source_id: str) -> str:
    """The segment file holding `source_id`'s record: `<xx>.jsonl`, xx the first byte of sha256(id) in hex."""
    return hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:2] + SUFFIX


def line_digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


class RecordFolder(Generic[M]):
    """One record per source, of one model, in a folder of segments (thread-safe)."""

    def __init__(self, folder: Path, model: type[M]):
        self.folder = folder
        self.model = model
        self._segments: dict[str, dict[str, str]] = {}  # segment name → {source id: line}, as loaded
        self._dirty: set[str] = set()
        self._legacy: dict[str, Path] | None = None
        self._listed: list[str] | None = None
        self._lock = threading.RLock()
        self._flushed = time.monotonic()

    # reading

    def segment(self, source_id: str) -> Path:
        """The file a stage's memory stamps for `source_id`'s record (a legacy file while one holds it)."""
        legacy = self._legacy_files().get(source_id)
        return legacy if legacy is not None else self.folder / segment_name(source_id)

    def _legacy_files(self) -> dict[str, Path]:
        if self._legacy is None:
            try:
                names = os.listdir(self.folder)
            except FileNotFoundError:
                names = []
            self._legacy = {
                n[: -len(LEGACY_SUFFIX)]: self.folder / n
                for n in sorted(names)
                if n.endswith(LEGACY_SUFFIX) and not n.startswith(".")
            }
            self._listed = sorted(n for n in names if n.endswith(SUFFIX) and not n.startswith("."))
        return self._legacy

    def _load(self, name: str) -> dict[str, str]:
        with self._lock:
            if name not in self._segments:
                path = self.folder / name
                lines: dict[str, str] = {}
                try:
                    text = path.read_text(encoding="utf-8")
                except FileNotFoundError:
                    text = ""
                for number, line in enumerate(text.splitlines(), start=1):
                    try:
                        source_id = json.loads(line)["source_id"]
                    except (ValueError, KeyError, TypeError):
                        raise RecordError(
                            f"{path}:{number}: not a {self.model.__name__} record line; rerun the stage that"
                            " writes it"
                        ) from None
                    lines[source_id] = line
                self._segments[name] = lines
            return self._segments[name]

    def _line(self, source_id: str) -> str | None:
        line = self._load(segment_name(source_id)).get(source_id)
        if line is None and (legacy := self._legacy_files().get(source_id)) is not None:
            try:
                return canonical_json(json.loads(legacy.read_text(encoding="utf-8")))
            except FileNotFoundError:
                return None
            except ValueError:
                raise RecordError(f"{legacy}: not valid JSON; rerun the stage that writes it") from None
        return line

    def get(self, source_id: str) -> M | None:
        """`source_id`'s record, None when it has none; a damaged one is one `RecordError` line."""
        line = self._line(source_id)
        return None if line is None else self._parse(source_id, line)

    def raw(self, source_id: str) -> dict | None:
        """`source_id`'s record as plain JSON (not validated), None when it has none."""
        line = self._line(source_id)
        return None if line is None else json.loads(line)

    def __getitem__(self, source_id: str) -> M:
        record = self.get(source_id)
        if record is None:
            raise RecordError(
                f"{self.folder}: no record for source {source_id!r}; rerun the stage that writes it"
            )
        return record

    def __contains__(self, source_id: object) -> bool:
        return isinstance(source_id, str) and self._line(source_id) is not None

    def digest(self, source_id: str) -> str | None:
        """sha256 of `source_id`'s record line: what a stage's memory compares when the segment changed."""
        line = self._line(source_id)
        return None if line is None else line_digest(line)

    def _parse(self, source_id: str, line: str) -> M:
        try:
            return self.model.model_validate_json(line)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(part) for part in err["loc"]) or "top level"
            raise RecordError(
                f"{self.folder / segment_name(source_id)}: {source_id}: not a valid {self.model.__name__} record"
                f" ({where}: {err['msg']}); rerun the stage that writes it"
            ) from None

    def ids(self) -> list[str]:
        """Every source with a record, sorted. A segment unchanged since it was last listed is not opened:
        its ids come from the folder's id index (`<CACHE_DIR>/segments/<folder>.json` beside it, stamped
        like a stat cache; safe to delete)."""
        self._legacy_files()
        assert self._listed is not None
        index_path = self.folder.parent / CACHE_DIR / "segments" / f"{self.folder.name}.json"
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            index = index if isinstance(index, dict) else {}
        except (OSError, ValueError):
            index = {}
        fresh: dict[str, list] = {}
        ids: set[str] = set()
        horizon = time.time_ns() - RACY_NS
        with self._lock:
            for name in sorted(set(self._listed) | set(self._segments)):
                if name in self._segments or name in self._dirty:
                    ids.update(self._load(name))
                    continue
                try:
                    stamp = file_stamp(self.folder / name)
                except FileNotFoundError:
                    continue
                known = index.get(name)
                if isinstance(known, list) and len(known) == 2 and known[0] == stamp:
                    names = known[1]
                else:
                    names = sorted(self._load(name))
                if stamp[1] < horizon:  # written just now: may change again within its mtime tick
                    fresh[name] = [stamp, names]
                ids.update(names)
        if fresh != index:
            with contextlib.suppress(OSError):  # a read-only checkout: listed again next time
                cache_folder(index_path.parent.parent)
                index_path.parent.mkdir(exist_ok=True)
                atomic_write(index_path, json.dumps(fresh, separators=(",", ":"), sort_keys=True))
        return sorted(ids | set(self._legacy_files()))

    def items(self) -> Iterator[tuple[str, M]]:
        """(source id, record) for every record, by source id."""
        for source_id in self.ids():
            record = self.get(source_id)
            if record is not None:
                yield source_id, record

    # writing

    def put(self, record: M) -> None:
        """Store `record` under its `source_id` (landing on disk by the next `flush`)."""
        source_id = record.source_id  # type: ignore[attr-defined]
        line = canonical_json(record.model_dump(mode="json"))
        with self._lock:
            name = segment_name(source_id)
            lines = self._load(name)
            if lines.get(source_id) != line:
                lines[source_id] = line
                self._dirty.add(name)
            self._maybe_flush()

    def remove(self, source_ids: Iterable[str]) -> None:
        with self._lock:
            for source_id in source_ids:
                name = segment_name(source_id)
                if self._load(name).pop(source_id, None) is not None:
                    self._dirty.add(name)

    def _maybe_flush(self) -> None:
        if self._dirty and time.monotonic() - self._flushed >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Rewrite every segment changed since the last flush (an empty one is deleted)."""
        with self._lock:
            for name in sorted(self._dirty):
                lines = self._segments[name]
                path = self.folder / name
                if lines:
                    atomic_write(path, "".join(lines[sid] + "\n" for sid in sorted(lines)))
                else:
                    path.unlink(missing_ok=True)
            self._dirty.clear()
            self._flushed = time.monotonic()

    def migrate(self) -> int:
        """Fold the folder's legacy per-record files into segments; return how many. Each segment is written
        before any legacy file is removed, so a killed migration is finished by the next one."""
        legacy = self._legacy_files()
        if not legacy:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for source_id in legacy:
                line = self._line(source_id)
                segment = self._load(segment_name(source_id))
                if source_id not in segment and line is not None:
                    segment[source_id] = line
                    self._dirty.add(segment_name(source_id))
            self.flush()
            for path in legacy.values():
                path.unlink(missing_ok=True)
            self._legacy = {}
        return len(legacy)


@contextlib.contextmanager
def landing(records: RecordFolder[Any]) -> Iterator[RecordFolder[Any]]:
    """`records`, flushed when the block ends, by an error too (what was finished lands)."""
    try:
        yield records
    finally:
        records.flush()


class RecordRef:
    """A source's record in a `RecordFolder`, as a stage's memory stamps it (`dynosaur.core.statcache`): by
    its segment's (size, mtime, inode), and, when a neighbour's write changed the segment, by its digest."""

    __slots__ = ("records", "source_id")

    def __init__(self, records: RecordFolder, source_id: str):
        self.records = records
        self.source_id = source_id

    @property
    def path(self) -> Path:
        return self.records.segment(self.source_id)

    def digest(self) -> str | None:
        return self.records.digest(self.source_id)

    def __repr__(self) -> str:
        return f"RecordRef({self.records.folder}, {self.source_id!r})"
