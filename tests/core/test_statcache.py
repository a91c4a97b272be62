"""StatCache: a derived value is reused only while the very files it came from are on disk unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dynosaur.core.statcache import StatCache


def old_file(path: Path, text: str) -> Path:
    """A file last modified a minute ago (a file written just now is too fresh to vouch for)."""
    path.write_text(text)
    past = time.time_ns() - 60_000_000_000
    os.utime(path, ns=(past, past))
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "data" / "corpus"


def test_a_value_holds_while_its_files_are_unchanged(tmp_path: Path, out: Path):
    a, b = old_file(tmp_path / "a", "one"), old_file(tmp_path / "b", "two")
    cache = StatCache("stage", "salt-1", beside=out)
    cache.put("key", [a, b], {"rows": 3})
    assert cache.get("key", [a, b]) == {"rows": 3}
    cache.save()
    assert (tmp_path / "data" / ".dyno-cache" / ".gitignore").read_text().endswith("*\n")

    again = StatCache("stage", "salt-1", beside=out)
    assert again.get("key", [a, b]) == {"rows": 3} and again.peek("key") == {"rows": 3}
    assert again.get("key", [a]) is None  # other files: not what it was derived from
    old_file(b, "TWO")  # same size, other mtime
    assert again.get("key", [a, b]) is None
    assert StatCache("stage", "salt-2", beside=out).get("key", [a, b]) is None  # params changed


def test_missing_replaced_rewritten_and_future_files_are_never_vouched_for(tmp_path: Path, out: Path):
    a = old_file(tmp_path / "a", "one")
    cache = StatCache("stage", "s", beside=out)
    cache.put("key", [a], 1)
    stat = a.stat()
    replacement = tmp_path / "a.new"
    replacement.write_text("two")
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replacement.replace(a)  # same size and mtime, another inode
    assert cache.get("key", [a]) is None
    a.unlink()
    assert cache.get("key", [a]) is None
    # Files written just now: another write in the same mtime tick could go unseen, so `save` waits the tick
    # out and stamps them again. Unchanged: vouched for. Written again after `put`: not. Dated in the future
    # (still too fresh after the wait): not.
    fresh, rewritten, future = tmp_path / "fresh", tmp_path / "rewritten", tmp_path / "future"
    for path in (fresh, rewritten, future):
        path.write_text("now")
    ahead = time.time_ns() + 3_600_000_000_000
    os.utime(future, ns=(ahead, ahead))
    cache.put("fresh", [fresh], 2)
    cache.put("rewritten", [rewritten], 3)
    cache.put("future", [future], 4)
    rewritten.write_text("now, and more")
    t0 = time.monotonic()
    cache.save()
    assert time.monotonic() - t0 < 1  # the wait is one tick (RACY_NS), never the future file's hour
    reloaded = StatCache("stage", "s", beside=out)
    assert reloaded.get("fresh", [fresh]) == 2
    assert reloaded.peek("rewritten") is None and reloaded.peek("future") is None


def test_keep_only_forgets_what_is_gone(tmp_path: Path, out: Path):
    a = old_file(tmp_path / "a", "one")
    cache = StatCache("stage", "s", beside=out)
    cache.put("x", [a], 1)
    cache.put("y", [a], 2)
    cache.keep_only({"y"})
    cache.save()
    reloaded = StatCache("stage", "s", beside=out)
    assert reloaded.peek("x") is None and reloaded.peek("y") == 2


def test_a_damaged_cache_is_an_empty_one(tmp_path: Path, out: Path):
    (tmp_path / "data" / ".dyno-cache").mkdir(parents=True)
    (tmp_path / "data" / ".dyno-cache" / "stage.json").write_text("{not json")
    assert StatCache("stage", "s", beside=out).entries == {}
