"""organize's Hub reads: the files collect recorded, downloaded in parallel and within a rate limit (issue 25)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dynosaur.core.io import write_json
from dynosaur.core.params import parse_params
from dynosaur.core.records import FilteredSource, SourceMeta, task_id
from dynosaur.core.segments import RecordFolder
from dynosaur.core.source_list import SourceEntry, SourcesFile, write_sources_file
from dynosaur.pipeline.discover import refresh
from dynosaur.pipeline.hub_files import RateLimiter, fetchable, prefetch
from dynosaur.pipeline.sources import iter_batches
from dynosaur.testing.hub_server import HubServer
from tests.factories import make_task
from tests.pipeline.test_collect_scale import record, run_collect
from tests.pipeline.test_discover import classification, host
from tests.pipeline.test_organize_stage import Project


def collect_hub(
    hub: HubServer, root: Path, names: list[str], monkeypatch: pytest.MonkeyPatch, **configs: str
) -> None:
    (root / "ledger").mkdir(parents=True, exist_ok=True)
    entries = [SourceEntry(id=n, hub=f"tester/{n}", config=configs.get(n)) for n in names]
    write_sources_file(root / "sources.yaml", SourcesFile(sources=entries))
    refresh(root, parse_params({}))
    run_collect(root, {"collect": {"concurrency": 8}}, monkeypatch)


def meta_of(root: Path, name: str) -> SourceMeta:
    return SourceMeta.model_validate(record(root, name))


def test_collect_records_a_hub_sources_files_at_its_pinned_commit(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    host(hub_server, "tester/reviews", configs=("books", "films"), **classification())
    host(hub_server, "tester/plain", **classification())
    root = tmp_path / "project"
    collect_hub(hub_server, root, ["reviews", "plain"], monkeypatch, reviews="films")
    assert [(s.name, s.files) for s in meta_of(root, "plain").splits] == [("train", ["data/train.jsonl"])]
    assert [(s.name, s.files) for s in meta_of(root, "reviews").splits] == [("train", ["films/train.jsonl"])]
    assert fetchable(meta_of(root, "plain"))


def test_hub_files_download_in_parallel_and_stay_under_the_rate(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    names = [f"ds-{i}" for i in range(12)]
    for name in names:
        host(hub_server, f"tester/{name}", **classification())
    root = tmp_path / "project"
    collect_hub(hub_server, root, names, monkeypatch)
    metas = [meta_of(root, n) for n in names]

    hub_server.latency = 0.25
    hub_server.reset_log()
    limiter = RateLimiter(calls=10, window_s=1.0)
    t0 = time.monotonic()
    got = list(prefetch(metas, concurrency=6, limiter=limiter))
    elapsed = time.monotonic() - t0

    assert [m.source_id for m, _ in got] == names  # in order
    for _, files in got:
        assert isinstance(files, dict) and [p.name for p in files["train"]] == ["train.jsonl"]
        assert files["train"][0].read_text().startswith('{"text": "row 0"')
    # parallel: one at a time, 12 downloads of at least 2 requests each would take ≥ 6 s
    assert hub_server.peak_in_flight >= 3
    # within the rate (10 per 1 s window): at the server, no 0.8 s holds more than 10 arrivals (0.2 s for the
    # time between the client's start and the server's arrival; without the limiter 18 arrive in 0.8 s)
    arrivals = sorted(hub_server.arrivals)
    assert len(arrivals) == 24  # a HEAD and a GET per file
    busiest = max(sum(1 for t in arrivals if a <= t < a + 0.8) for a in arrivals)
    assert busiest <= 10
    assert elapsed >= 1.0  # 24 starts at 10 per second cannot finish sooner
    assert not any("/api/" in path for _, path in hub_server.requests)  # resolves only, no API calls


def test_a_429_is_waited_out_and_retried(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    host(hub_server, "tester/busy", **classification())
    root = tmp_path / "project"
    collect_hub(hub_server, root, ["busy"], monkeypatch)
    hub_server.fail_next("GET", r"/resolve/", status=429, times=1, headers={"Retry-After": "1"})
    t0 = time.monotonic()
    [(_, files)] = list(prefetch([meta_of(root, "busy")], concurrency=2, limiter=RateLimiter(100, 1)))
    assert isinstance(files, dict) and files["train"][0].exists()
    assert time.monotonic() - t0 >= 1.0  # it waited as the Hub asked


def test_a_failed_download_is_handed_to_the_caller_and_the_others_arrive(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for name in ("a", "gone", "b"):
        host(hub_server, f"tester/{name}", **classification())
    root = tmp_path / "project"
    collect_hub(hub_server, root, ["a", "gone", "b"], monkeypatch)
    hub_server.fail_next("*", r"^/datasets/tester/gone/resolve/", status=404, times=50)
    got = dict(
        (m.source_id, f)
        for m, f in prefetch(
            [meta_of(root, n) for n in ("a", "gone", "b")],
            concurrency=3,
            limiter=RateLimiter(100, 1),
        )
    )
    assert isinstance(got["a"], dict) and isinstance(got["b"], dict)
    assert isinstance(got["gone"], Exception)


def test_rows_read_from_downloaded_files_are_the_rows_datasets_streams(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    host(hub_server, "tester/same", **classification())
    root = tmp_path / "project"
    collect_hub(hub_server, root, ["same"], monkeypatch)
    meta = meta_of(root, "same")
    [(_, files)] = list(prefetch([meta], concurrency=1, limiter=RateLimiter(100, 1)))
    assert isinstance(files, dict)
    downloaded = [t.to_pylist() for t in iter_batches(meta, "train", 1000, files=files["train"])]
    streamed = [t.to_pylist() for t in iter_batches(meta, "train", 1000)]
    assert downloaded == streamed and sum(map(len, downloaded)) == 4


def test_the_limiter_waits_for_the_window_to_slide():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(calls=3, window_s=10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire()
    assert slept == []
    now[0] = 4.0
    limiter.acquire()  # the oldest start (t=0) leaves the window at t=10
    assert now[0] == pytest.approx(10.0)
    limiter.acquire(2)  # two more: the next two oldest (t=0, t=0) have gone; (t=10) stays
    assert now[0] == pytest.approx(10.0)
    limiter.acquire()
    assert now[0] == pytest.approx(20.0)


def hub_project(hub: HubServer, tmp_path: Path, names: list[str], monkeypatch: pytest.MonkeyPatch) -> Project:
    """Hub sources collected for real, each with one (text → label) task, ready for organize."""
    root = tmp_path / "project"
    collect_hub(hub, root, names, monkeypatch)
    project = Project(root)
    project.args.collected = root / "data" / "collected"
    for name in names:
        meta = meta_of(root, name)
        instruction = "Classify the sentiment of the given review."
        task = make_task(
            task_id=task_id(name, meta.revision, instruction, ["text"], "label"),
            source_id=name,
            instruction=instruction,
            input_fields=["text"],
            output_field="label",
        )
        write_json(
            project.args.tasks / f"{name}.json", FilteredSource(source_id=name, fingerprint="f", tasks=[task])
        )
    return project


def instances(project: Project) -> dict[str, list[dict]]:
    return {p.parent.name: pq.read_table(p).to_pylist() for p in sorted(project.args.out.glob("*/*.parquet"))}


def test_organize_reads_hub_sources_in_parallel_and_writes_what_streaming_writes(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    names = [f"ds-{i}" for i in range(8)]
    for name in names:
        host(hub_server, f"tester/{name}", **classification())
    project = hub_project(hub_server, tmp_path / "parallel", names, monkeypatch)
    hub_server.latency = 0.2
    hub_server.reset_log()
    project.params["hub"] = {"read_concurrency": 8, "requests_per_window": 1000, "window_s": 60}
    out = project.run()
    assert out.run["tasks_organized"] == 8 and out.metrics["instances"] == 8 * 4  # 4 rows each
    assert hub_server.peak_in_flight >= 3  # downloads overlapped
    assert not any("/api/" in path for _, path in hub_server.requests)  # resolves only

    # The same sources read through `datasets` streaming (their files not recorded): the same instances.
    streamed = hub_project(hub_server, tmp_path / "streamed", names, monkeypatch)
    collected = RecordFolder(streamed.args.collected, SourceMeta)
    for name in names:
        meta = collected[name]
        splits = [s.model_copy(update={"files": []}) for s in meta.splits]
        collected.put(meta.model_copy(update={"splits": splits}))
    collected.flush()
    streamed.run()
    assert instances(streamed) == instances(project) and len(instances(project)) == 8
