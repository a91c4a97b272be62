"""A stage's memory of what it derived from files, trusted while those files are unchanged on disk.

With thousands of sources, a stage that re-reads every per-source file to rediscover what it already knows
(a shard's fingerprint and counts, a folder's content hash, a source's filter verdicts) pays for every source
on every run: one more source cost seconds per thousand. Like git's index and DVC's state database, a
`StatCache` keys each derived value on the (size, mtime_ns, inode) of the files it came from, and a `salt`
(the stage's output params and code version): while both match, the value is reused without opening a file.
A record in a segment (`dynosaur.core.segments.RecordRef`) is stamped by its segment, and its digest is kept:
when a neighbour's write changed the segment, the record's line is hashed and the value still holds if the
record is the same.

The cache only ever saves work. It lives beside the stage's output, outside it and outside git
(`data/.dyno-cache/<stage>.json` for `data/corpus`, in a folder that git-ignores itself), holds no input of
its own, and anything it lacks is computed from the files: deleting it is always safe. An entry whose files
were modified less than `RACY_NS` before the cache is saved could hide a second write within the same mtime
tick (git's "racy clean"): `save` waits until that tick is over (at most `RACY_NS`) and stamps those files
again, keeping the entry only if they are still the files it was derived from (else it is dropped, and the
next run derives it again).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dynosaur.core.io import CACHE_DIR, RACY_NS, atomic_write, cache_folder, file_stamp
from dynosaur.core.segments import RecordRef

FORMAT = 2  # 2: entries keep their records' digests

Stamped = Path | RecordRef  # a file, or a record in a segment


def stamp(paths: Sequence[Stamped]) -> list[int] | None:
    """(size, mtime_ns, inode) of each file (a record's: its segment's), flattened; None when one is missing."""
    out: list[int] = []
    for path in paths:
        try:
            out += file_stamp(path.path if isinstance(path, RecordRef) else path)
        except OSError:
            return None
    return out


def _racy(entry: list[Any], horizon: int) -> bool:
    return any(mtime > horizon for mtime in entry[0][1::3])


def scratch_dir(beside: Path, name: str) -> Path:
    """A stage's folder for files it writes before renaming them into `beside` (its output folder): in
    `CACHE_DIR` next to it, so on its file system and outside git. What a killed run left there is removed;
    the folder itself is made when the stage first writes (`make_scratch`), so a stage that refuses to run
    leaves nothing."""
    folder = beside.parent / CACHE_DIR / f"{name}.tmp"
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def make_scratch(folder: Path) -> Path:
    """Create a `scratch_dir` (and its `CACHE_DIR`, git-ignored)."""
    cache_folder(folder.parent)
    folder.mkdir(exist_ok=True)
    return folder


class StatCache:
    def __init__(self, name: str, salt: str, beside: Path):
        """The cache `name` of the stage whose output is `beside` (a folder), keyed on `salt`."""
        self.path = beside.parent / CACHE_DIR / f"{name}.json"
        self.salt = salt
        self.entries: dict[str, list[Any]] = {}
        # the files of each entry `put` this run, stamped again by `save`
        self.paths: dict[str, list[Stamped]] = {}
        self.dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("format") == FORMAT and data.get("salt") == salt:
            entries = data.get("entries")
            self.entries = entries if isinstance(entries, dict) else {}

    def peek(self, key: str) -> Any | None:
        """The value stored for `key`, unchecked: what tells the caller which files to `get` it against."""
        entry = self.entries.get(key)
        return None if entry is None else entry[1]

    def get(self, key: str, paths: Sequence[Stamped]) -> Any | None:
        """The value stored for `key` if `paths` are the very files it was derived from (a record: the same
        segment, or the same record in a changed one), else None."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        current = stamp(paths)
        if current is None:
            return None
        if current == entry[0]:
            return entry[1]
        digests = entry[2] if len(entry) > 2 else None
        if digests is None or len(digests) != len(paths) or len(current) != len(entry[0]):
            return None
        for i, path in enumerate(paths):
            if current[3 * i : 3 * i + 3] == entry[0][3 * i : 3 * i + 3]:
                continue
            if not isinstance(path, RecordRef) or digests[i] is None or path.digest() != digests[i]:
                return None
        self.entries[key] = [current, entry[1], digests]  # the same records: stamped anew
        self.paths[key] = list(paths)
        self.dirty = True
        return entry[1]

    def put(self, key: str, paths: Sequence[Stamped], value: Any) -> None:
        """Remember `value` for `key` as derived from `paths` (forget `key` when one is missing)."""
        current = stamp(paths)
        if current is None:
            if self.entries.pop(key, None) is not None:
                self.dirty = True
            return
        self.paths[key] = list(paths)
        entry = self.entries.get(key)
        if entry is not None and entry[:2] == [current, value]:
            return
        digests = [p.digest() if isinstance(p, RecordRef) else None for p in paths]
        self.entries[key] = (
            [current, value, digests] if any(d is not None for d in digests) else [current, value]
        )
        self.dirty = True

    def keep_only(self, keys: set[str]) -> None:
        """Forget the keys not in `keys` (sources that are gone)."""
        for key in [k for k in self.entries if k not in keys]:
            del self.entries[key]
            self.dirty = True

    def save(self) -> None:
        horizon = time.time_ns() - RACY_NS
        racy = [k for k, entry in self.entries.items() if _racy(entry, horizon)]
        if racy:  # wait out the tick of the newest write, then vouch only for files still as stamped
            newest = max(mtime for k in racy for mtime in self.entries[k][0][1::3])
            time.sleep(min(RACY_NS, max(0, newest + RACY_NS - time.time_ns())) / 1e9)
        horizon = time.time_ns() - RACY_NS
        for key in racy:
            entry = self.entries[key]
            if key not in self.paths or stamp(self.paths[key]) != entry[0] or _racy(entry, horizon):
                del self.entries[key]  # can't vouch for it: checked from the files next time
                self.dirty = True
        if not self.dirty:
            return
        cache_folder(self.path.parent)
        data = {"format": FORMAT, "salt": self.salt, "entries": self.entries}
        atomic_write(self.path, json.dumps(data, separators=(",", ":"), sort_keys=True))
        self.dirty = False
