"""File I/O at the edges: atomic writes and JSON / JSON Lines helpers.

Every output, record and cache entry goes through `atomic_write`: write a process-unique temporary file in
the target's directory, fsync it, then `os.replace` it onto the target. A crash leaves the old file or the
new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from dynosaur.core.errors import RecordError

M = TypeVar("M", bound=BaseModel)

CACHE_DIR = ".dyno-cache"  # beside a stage's output: what only saves work (stat caches, indexes), git-ignored
# A file modified less than this ago may change again within the same mtime tick (git's "racy clean"): a cache
# keyed on (size, mtime, inode) does not vouch for it yet. Well past the kernel's granularity (a jiffy, ≤ 10 ms).
RACY_NS = 100_000_000


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, streamed in 8 MiB reads."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    """The canonical form that every hash in Dynosaur covers: sorted keys, compact separators, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success fsync and rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)


def write_json(path: str | Path, obj: Any) -> None:
    """Deterministic, human-diffable JSON (sorted keys, indented), written atomically."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    atomic_write(path, json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_model(path: str | Path, model: type[M]) -> M:
    """A record file as its model; a damaged or hand-edited one is one `RecordError` line, not a traceback."""
    try:
        return model.model_validate_json(Path(path).read_bytes())
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "top level"
        raise RecordError(
            f"{path}: not a valid {model.__name__} record ({where}: {err['msg']}); rerun the stage that writes it"
        ) from None


def replace_dir(tmp_dir: Path, target: Path) -> None:
    """Swap a fully written temporary directory into place (the old one is removed only after)."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp_dir, target)
    shutil.rmtree(old, ignore_errors=True)


def file_stamp(path: str | Path) -> list[int]:
    """(size, mtime_ns, inode) of a file: what a cache keyed on files compares (OSError when it is missing)."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def cache_folder(folder: Path) -> Path:
    """`folder` (a `CACHE_DIR`), created with the `.gitignore` that keeps it out of git."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        atomic_write(ignore, "# Created by dynosaur: caches that only save work; safe to delete.\n*\n")
    return folder
