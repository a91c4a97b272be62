"""collect at scale: pinned Hub revisions, bounded parallel reads, a per-source timeout, one line per failure."""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import pytest

from dynosaur.core.errors import StageFailed
from dynosaur.core.io import read_json
from dynosaur.core.params import parse_params
from dynosaur.core.records import SourceMeta
from dynosaur.core.segments import RecordFolder
from dynosaur.core.source_list import SourceEntry, SourcesFile, write_sources_file
from dynosaur.pipeline import collect
from dynosaur.pipeline.discover import refresh
from dynosaur.testing.hub_server import HubServer
from tests.pipeline.test_discover import classification, host


def test_bounded_runs_at_most_n_at_once_and_gives_up_on_a_slow_item():
    running, peak, lock = [0], [0], threading.Lock()

    def work(seconds: float) -> float:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(seconds)
        with lock:
            running[0] -= 1
        return seconds

    t0 = time.monotonic()
    results = dict(collect.bounded([0.05, 30.0, 0.05, 0.05, 0.05], work, concurrency=2, timeout_s=0.5))
    elapsed = time.monotonic() - t0
    assert results == {0: 0.05, 1: None, 2: 0.05, 3: 0.05, 4: 0.05}
    assert peak[0] == 2
    assert elapsed < 5  # the 30 s item was abandoned at its deadline


def test_bounded_raises_what_the_work_raised():
    def work(item: int) -> int:
        if item == 2:
            raise KeyError("boom")
        return item

    with pytest.raises(KeyError):
        list(collect.bounded([1, 2, 3], work, concurrency=3, timeout_s=5))


def run_collect(root: Path, params: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    (root / "params.yaml").write_text(json.dumps(params))
    monkeypatch.setenv("DYNO_PARAMS", str(root / "params.yaml"))
    monkeypatch.chdir(root)
    args = argparse.Namespace(
        sources=root / "sources.yaml",
        lock=root / "sources.lock",
        retractions=root / "ledger/retractions.jsonl",
        out=root / "data/collected",
        metrics=root / "metrics.json",
        stats=root / "stats.json",
        run_log=root / "run.json",
    )
    collect.main(args)
    # the totals, their breakdown and this run's counters (no key is in two of them)
    return {**read_json(args.metrics), **read_json(args.stats), **read_json(args.run_log)}


def record(root: Path, source_id: str) -> dict:
    record = RecordFolder(root / "data/collected", SourceMeta).raw(source_id)
    assert record is not None, f"no collect record for {source_id}"
    return record


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "ledger").mkdir(parents=True)
    return root


def test_collect_reads_the_pinned_commit_until_refresh(
    hub_server: HubServer, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    first = host(hub_server, "tester/reviews", **classification())
    entry = SourceEntry(id="reviews", hub="tester/reviews", revision="main", found_at="2026", query="all")
    write_sources_file(root / "sources.yaml", SourcesFile(sources=[entry]))

    # Not pinned yet: resolved now, with a line saying to pin it.
    metrics = run_collect(root, {}, monkeypatch)
    assert metrics["sources_unpinned"] == 1 and record(root, "reviews")["revision"] == first
    assert "not pinned in" in capsys.readouterr().err

    refresh(root, parse_params({}))
    moved = hub_server.commit("tester/reviews", {"data/more.jsonl": '{"text": "x", "label": 1}\n'})
    hub_server.reset_log()
    metrics = run_collect(root, {}, monkeypatch)
    assert record(root, "reviews")["revision"] == first  # the branch moved; the pin did not
    assert metrics["sources_reused"] == 1 and metrics["sources_read"] == 0
    assert hub_server.requests == []  # a pinned, unchanged source costs no Hub call at all

    refresh(root, parse_params({}))
    metrics = run_collect(root, {}, monkeypatch)
    assert record(root, "reviews")["revision"] == moved and metrics["sources_read"] == 1


def test_a_source_that_hangs_fails_as_timed_out_and_the_others_proceed(
    hub_server: HubServer, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    for name in ("fast-a", "slow", "fast-b"):
        host(hub_server, f"tester/{name}", **classification())
    sources = [SourceEntry(id=n, hub=f"tester/{n}") for n in ("fast-a", "slow", "fast-b")]
    write_sources_file(root / "sources.yaml", SourcesFile(sources=sources))
    refresh(root, parse_params({}))
    hub_server.delay_next("*", r"^/datasets/tester/slow/", seconds=8, times=20)

    params = {"collect": {"timeout_s": 1.5, "concurrency": 2}}
    t0 = time.monotonic()
    with pytest.raises(StageFailed) as err:
        run_collect(root, params, monkeypatch)
    assert time.monotonic() - t0 < 8
    assert record(root, "fast-a")["status"] == "ok" and record(root, "fast-b")["status"] == "ok"
    slow = record(root, "slow")
    assert slow["status"] == "failed" and slow["reason"].startswith(collect.TIMED_OUT)
    assert "\n" not in str(err.value) and str(err.value).startswith("1 source(s) failed")
    lines = [line for line in capsys.readouterr().err.splitlines() if ": failed: " in line]
    assert lines == [f"collect: slow: failed: {slow['reason']}"]  # one line per failed source

    # Next run, the Hub answering again: the failed source is read again; the others are kept.
    hub_server.clear_faults()
    metrics = run_collect(root, {"collect": {"timeout_s": 20}}, monkeypatch)
    assert metrics["sources_read"] == 1 and metrics["sources_reused"] == 2 and metrics["failed"] == 0
