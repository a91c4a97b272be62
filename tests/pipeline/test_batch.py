"""`llm.mode: batch` (dynosaur.pipeline.batch) against the scripted Batch API server (dynosaur.testing.fake_batch).

Each test asserts what the provider saw (`srv.submitted`: how many created batches held each custom_id) and
what landed in the call cache, including after a client killed between submit and poll.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynosaur.core.errors import LLMError
from dynosaur.core.io import write_json
from dynosaur.core.params import LLMParams, Price
from dynosaur.core.records import GeneratedSource
from dynosaur.core.segments import RecordFolder, landing
from dynosaur.pipeline import generate
from dynosaur.pipeline.batch import WAITING, BatchRunner
from dynosaur.pipeline.batch_files import split_chunks
from dynosaur.pipeline.batch_tracker import Tracker, load_tracker
from dynosaur.pipeline.llm import LLM, ChatRequest
from dynosaur.testing.fake_batch import BatchOutcome, FakeBatchOpenAI
from dynosaur.testing.fake_openai import FakeOpenAI, Reply, tasks_from_schema
from tests.factories import make_meta

SRC = Path(__file__).resolve().parents[2] / "src"

# The same params and requests in this process and in the subprocess a test kills (DRIVER below).
DRIVER = """
import sys
from pathlib import Path
from dynosaur.core.params import LLMParams
from dynosaur.pipeline.batch import BatchRunner
from dynosaur.pipeline.llm import LLM

url, root, n, max_requests = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
params = LLMParams(
    provider="compatible", base_url=url, model="fake-model", mode="batch", max_retries=0,
    batch={"wait_s": 600, "poll_s": 0.05, "max_requests": max_requests},
)
with LLM(params, root / "cache") as llm:
    requests = [llm.request([("user", f"question {i}")], None, "v1") for i in range(n)]
    for _ in BatchRunner(llm, root / "batches.json").complete_many(requests):
        pass
"""


def batch_params(url: str, mode: str = "batch", **batch: Any) -> LLMParams:
    return LLMParams(
        provider="compatible",
        base_url=url,
        model="fake-model",
        mode=mode,  # type: ignore[arg-type]
        max_retries=0,
        batch={"wait_s": 10, "poll_s": 0.02, **batch},
    )


def make_requests(llm: LLM, n: int) -> list[ChatRequest]:
    return [llm.request([("user", f"question {i}")], None, "v1") for i in range(n)]


@pytest.fixture
def srv() -> Iterator[FakeBatchOpenAI]:
    with FakeBatchOpenAI(responder=tasks_from_schema) as server:
        yield server


def run_batch(srv: FakeBatchOpenAI, root: Path, n: int, **batch: Any) -> tuple[BatchRunner, dict[str, Any]]:
    """One run: every request's result, keyed by cache key."""
    with LLM(batch_params(srv.base_url, **batch), root / "cache") as llm:
        runner = BatchRunner(llm, root / "batches.json")
        results = {r.cache_key: res for r, res in runner.complete_many(make_requests(llm, n))}
    return runner, results


def cache_keys(root: Path, n: int) -> list[str]:
    with LLM(batch_params("http://127.0.0.1:9/v1"), root / "cache") as llm:
        return [r.cache_key for r in make_requests(llm, n)]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --- the happy path and the shared cache --------------------------------------------------------------


def test_custom_ids_are_cache_keys_and_answers_land_in_the_call_cache(srv: FakeBatchOpenAI, tmp_path: Path):
    runner, results = run_batch(srv, tmp_path, 5)
    keys = cache_keys(tmp_path, 5)
    assert sorted(srv.submitted) == sorted(keys)  # custom_id == the synchronous cache key
    assert all(srv.submitted[k] == 1 for k in keys)
    assert all(r.error is None and r.skipped is None and not r.cached for r in results.values())
    assert load_tracker(tmp_path / "batches.json") == Tracker()  # nothing left in flight
    # a synchronous run over the same cache makes no call at all
    with LLM(batch_params(srv.base_url, mode="sync"), tmp_path / "cache") as llm:
        again = list(llm.complete_many(make_requests(llm, 5)))
    assert [res.cached for _, res in again] == [True] * 5
    assert srv.calls == 0


def test_synchronous_answers_are_not_submitted(srv: FakeBatchOpenAI, tmp_path: Path):
    with LLM(batch_params(srv.base_url, mode="sync"), tmp_path / "cache") as llm:
        list(llm.complete_many(make_requests(llm, 2)))
    assert srv.calls == 2
    _, results = run_batch(srv, tmp_path, 4)
    assert sum(r.cached for r in results.values()) == 2
    assert sorted(srv.submitted) == sorted(cache_keys(tmp_path, 4)[2:])


def test_input_file_is_openai_batch_jsonl(srv: FakeBatchOpenAI, tmp_path: Path):
    run_batch(srv, tmp_path, 2)
    (batch,) = srv.batches.values()
    assert batch["endpoint"] == "/v1/chat/completions" and batch["completion_window"] == "24h"
    lines = [json.loads(x) for x in srv.file_bytes[batch["input_file_id"]].decode().splitlines()]
    assert [set(x) for x in lines] == [{"custom_id", "method", "url", "body"}] * 2
    assert {x["method"] for x in lines} == {"POST"} and {x["url"] for x in lines} == {"/v1/chat/completions"}
    assert lines[0]["body"]["model"] == "fake-model" and lines[0]["body"]["max_tokens"] == 512


def test_chunks_respect_request_and_byte_limits():
    lines = [(str(i), b"x" * 10) for i in range(7)]
    assert [len(c) for c in split_chunks(lines, 3, 1000)] == [3, 3, 1]
    assert [len(c) for c in split_chunks(lines, 100, 25)] == [2, 2, 2, 1]
    assert [len(c) for c in split_chunks([("a", b"x" * 50)], 10, 25)] == [1]  # too big alone: still sent


def test_several_batches_when_over_max_requests(srv: FakeBatchOpenAI, tmp_path: Path):
    runner, results = run_batch(srv, tmp_path, 7, max_requests=3)
    assert srv.batches_created == 3 and runner.counts["batches_submitted"] == 3
    assert srv.duplicates() == 0 and all(r.error is None for r in results.values())


# --- waiting, resuming, killing -------------------------------------------------------------------


def test_a_waiting_run_reports_and_the_next_one_polls_instead_of_submitting(
    srv: FakeBatchOpenAI, tmp_path: Path
):
    srv.hold = True
    runner, results = run_batch(srv, tmp_path, 4, wait_s=0)
    assert {r.skipped for r in results.values()} == {WAITING}
    assert runner.waiting is not None and (runner.waiting.batches, runner.waiting.requests) == (1, 4)
    line = runner.waiting.line(2, tmp_path / "batches.json")
    assert "\n" not in line and "dvc repro -f -s generate && dvc repro" in line
    (tracked,) = load_tracker(tmp_path / "batches.json").batches
    assert tracked.batch_id in srv.batches and tracked.state == "in_progress"

    runner, results = run_batch(srv, tmp_path, 4, wait_s=0)  # still held: polls, submits nothing
    assert srv.batches_created == 1 and runner.counts["resumed"] == 4
    assert {r.skipped for r in results.values()} == {WAITING}

    srv.hold = False
    runner, results = run_batch(srv, tmp_path, 4)
    assert runner.waiting is None and all(r.error is None and r.skipped is None for r in results.values())
    assert srv.batches_created == 1 and srv.duplicates() == 0
    assert load_tracker(tmp_path / "batches.json").batches == []


def test_an_unknown_batch_status_means_wait_and_never_breaks_the_tracker(
    srv: FakeBatchOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """Issue 20, case 4: providers add statuses ("paused_for_review"); one this code does not know is waited
    on with a warning naming it, and the tracker stays readable for the next run."""
    srv.unknown_status = "paused_for_review"
    runner, results = run_batch(srv, tmp_path, 3, wait_s=0)
    assert {r.skipped for r in results.values()} == {WAITING}
    (tracked,) = load_tracker(tmp_path / "batches.json").batches  # readable: no exit 255 next time
    assert "status 'paused_for_review', unknown here: waiting on it" in capsys.readouterr().err
    srv.unknown_status = None
    runner, results = run_batch(srv, tmp_path, 3)
    assert all(r.error is None and r.skipped is None for r in results.values())
    assert srv.batches_created == 1


def test_a_batch_no_longer_asked_for_does_not_hold_a_run_up(srv: FakeBatchOpenAI, tmp_path: Path):
    srv.hold = True
    run_batch(srv, tmp_path, 4, wait_s=0)  # its requests are then dropped from the plan
    with LLM(batch_params(srv.base_url, wait_s=0), tmp_path / "cache") as llm:
        runner = BatchRunner(llm, tmp_path / "batches.json")
        other = [llm.request([("user", f"another question {i}")], None, "v1") for i in range(2)]
        results = [res for _, res in runner.complete_many(other)]
    assert [r.skipped for r in results] == [WAITING, WAITING]
    assert runner.waiting is not None and (runner.waiting.batches, runner.waiting.requests) == (1, 2)
    assert len(load_tracker(tmp_path / "batches.json").batches) == 2  # the first one is kept

    srv.hold = False
    runner, results = run_batch(srv, tmp_path, 4)  # asked again: the first batch's answers are used
    assert all(r.error is None and r.skipped is None for r in results.values())
    assert runner.counts["answered"] == 4 and runner.counts["orphaned_rows"] == 2
    assert srv.batches_created == 2 and srv.duplicates() == 0
    assert load_tracker(tmp_path / "batches.json").batches == []


def start_driver(srv: FakeBatchOpenAI, root: Path, n: int, max_requests: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    argv = [sys.executable, "-c", DRIVER, srv.base_url, str(root), str(n), str(max_requests)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def test_kill_between_submit_and_poll_resumes_polling(srv: FakeBatchOpenAI, tmp_path: Path):
    srv.hold = True
    proc = start_driver(srv, tmp_path, 6, max_requests=2)
    try:
        wait_for(lambda: srv.batches_created == 3 and srv.polls >= 3)
        tracker = tmp_path / "batches.json"
        wait_for(lambda: all(b.batch_id for b in load_tracker(tracker).batches))
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGKILL

    srv.hold = False
    runner, results = run_batch(srv, tmp_path, 6, max_requests=2)
    assert srv.batches_created == 3 and srv.duplicates() == 0  # nothing submitted again
    assert runner.counts["resumed"] == 6 and runner.counts["submitted"] == 0
    assert all(r.error is None and r.skipped is None for r in results.values())
    assert load_tracker(tmp_path / "batches.json").batches == []


def test_kill_inside_batch_create_adopts_the_providers_batch(srv: FakeBatchOpenAI, tmp_path: Path):
    """The provider created the batch, the client died before recording its id: found by its chunk digest."""
    srv.stall_create_s = 60
    proc = start_driver(srv, tmp_path, 4, max_requests=2)
    try:
        wait_for(lambda: srv.batches_created == 1)
    finally:
        kill(proc)
    intents = load_tracker(tmp_path / "batches.json").batches
    assert len(intents) == 2 and [b.batch_id for b in intents] == [None, None]

    srv.stall_create_s = 0
    runner, results = run_batch(srv, tmp_path, 4, max_requests=2)
    assert runner.counts["batches_adopted"] == 1 and runner.counts["intents_dropped"] == 1
    assert srv.batches_created == 2 and srv.duplicates() == 0
    assert sorted(srv.submitted) == sorted(cache_keys(tmp_path, 4))
    assert all(r.error is None and r.skipped is None for r in results.values())


# --- expired, failed, partial ------------------------------------------------------------------------


def test_expired_batch_keeps_its_answers_and_resubmits_the_rest(srv: FakeBatchOpenAI, tmp_path: Path):
    srv.script(BatchOutcome.expire(done=0.5))
    runner, results = run_batch(srv, tmp_path, 6)
    assert srv.batches_created == 2
    assert sorted(srv.submitted.values()) == [1, 1, 1, 2, 2, 2]  # only the expired rows went twice
    assert runner.counts["resubmitted"] == 3 and runner.counts["answered"] == 6
    assert all(r.error is None and r.skipped is None for r in results.values())


def test_partial_results_resubmit_failed_and_missing_rows(srv: FakeBatchOpenAI, tmp_path: Path):
    srv.script(BatchOutcome.partial(errors=2, missing=1))
    runner, results = run_batch(srv, tmp_path, 5)
    assert runner.counts["resubmitted"] == 3 and srv.batches_created == 2
    assert sorted(srv.submitted.values()) == [1, 1, 2, 2, 2]
    assert all(r.error is None for r in results.values())


def test_a_batch_that_keeps_failing_gives_up_after_max_attempts(srv: FakeBatchOpenAI, tmp_path: Path):
    srv.script(*[BatchOutcome.fail("invalid_request")] * 3)
    runner, results = run_batch(srv, tmp_path, 2, max_attempts=3)
    assert srv.batches_created == 3 and runner.counts["failed"] == 2
    assert {r.error for r in results.values()} == {
        "batch failed: invalid_request: no result for this request"
    }
    with LLM(batch_params(srv.base_url), tmp_path / "cache") as llm:
        for key in cache_keys(tmp_path, 2):
            assert llm.cache.get(key) is None and llm.cache.failure_path(key).exists()
    assert load_tracker(tmp_path / "batches.json").batches == []


# --- prices and caps -----------------------------------------------------------------------------------


def test_batch_price_is_half_unless_given():
    prices = {"m": Price(input_per_mtok=2.0, output_per_mtok=8.0)}
    sync = LLMParams(provider="openai", model="m", prices=prices)
    batch = sync.model_copy(update={"mode": "batch"})
    assert batch.price() == Price(input_per_mtok=1.0, output_per_mtok=4.0)
    own = LLMParams(
        provider="openai", model="m", prices=prices, mode="batch", batch={"prices": {"m": prices["m"]}}
    )
    assert own.price() == prices["m"]


def test_dry_run_costs_half_in_batch_mode(tmp_path: Path):
    prices = {"fake-model": Price(input_per_mtok=2.0, output_per_mtok=8.0)}
    costs = {}
    for mode in ("sync", "batch"):
        params = batch_params("http://127.0.0.1:9/v1", mode=mode).model_copy(update={"prices": prices})
        with LLM(params, tmp_path / "cache") as llm:
            costs[mode] = llm.dry_run(make_requests(llm, 4)).max_cost_usd
    assert costs["sync"] > 0 and costs["batch"] == pytest.approx(costs["sync"] / 2)


def test_budget_cap_counts_batch_prices(srv: FakeBatchOpenAI, tmp_path: Path):
    prices = {"fake-model": Price(input_per_mtok=2.0, output_per_mtok=8.0)}
    params = batch_params(srv.base_url).model_copy(update={"prices": prices})
    with LLM(params.model_copy(update={"mode": "sync"}), tmp_path / "cache") as llm:
        sync_worst = llm.dry_run(make_requests(llm, 1)).max_cost_usd  # one call's worst case
    # room for 2 synchronous calls, so for 4 at half price (not 5)
    capped = params.model_copy(update={"budget_usd": 2.2 * sync_worst})
    with LLM(capped, tmp_path / "cache") as llm:
        runner = BatchRunner(llm, tmp_path / "batches.json")
        results = [res for _, res in runner.complete_many(make_requests(llm, 5))]
    assert sum(r.skipped is not None for r in results) == 1 and sum(srv.submitted.values()) == 4
    assert llm.budget.refused == 1


# --- bad input -----------------------------------------------------------------------------------------


def test_a_server_without_the_batch_api_fails_in_one_line(tmp_path: Path):
    with FakeOpenAI() as plain, LLM(batch_params(plain.base_url), tmp_path / "cache") as llm:
        runner = BatchRunner(llm, tmp_path / "batches.json")
        with pytest.raises(LLMError, match="no Batch API") as info:
            list(runner.complete_many(make_requests(llm, 1)))
    assert "\n" not in str(info.value)
    # the intent was recorded before the upload failed: the next run looks for it, then drops it
    assert len(load_tracker(tmp_path / "batches.json").batches) == 1


def test_a_damaged_tracker_is_a_one_line_error(tmp_path: Path):
    path = tmp_path / "batches.json"
    path.write_text('{"batches": [{"chunk": 1}]}')
    with pytest.raises(LLMError, match="batch tracker is unreadable"):
        load_tracker(path)


def test_batch_mode_needs_a_server_with_the_batch_api():
    with pytest.raises(ValueError, match="mode: batch"):
        LLMParams(provider="local", mode="batch")


# --- the generate stage in batch mode --------------------------------------------------------------------


@pytest.fixture
def stage(tmp_path: Path, srv: FakeBatchOpenAI, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Namespace]:
    """generate's paths under tmp_path; call it with llm params to (re)write params.yaml."""

    def configure(**llm: Any) -> Namespace:
        params = {
            "generate": {"mode": "propose"},  # the scripted answers are whole tasks
            "llm": {
                "provider": "compatible",
                "base_url": srv.base_url,
                "model": "fake-model",
                "max_retries": 0,
                **llm,
            },
        }
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        monkeypatch.setenv("DYNO_PARAMS", str(tmp_path / "params.yaml"))
        return Namespace(
            collected=tmp_path / "collected",
            cache=tmp_path / "cache",
            batches=tmp_path / "batches.json",
            out=tmp_path / "generated",
            metrics=tmp_path / "metrics.json",
            stats=tmp_path / "stats.json",
            run_log=tmp_path / "run.json",
            dry_run=False,
        )

    return configure


def collect(args: Namespace, *source_ids: str) -> None:
    for sid in source_ids:
        write_json(args.collected / f"{sid}.json", make_meta(source_id=sid, pretty_name=sid, description=sid))


def test_generate_writes_what_it_has_and_says_when_to_come_back(
    stage: Callable[..., Namespace], srv: FakeBatchOpenAI, capsys: pytest.CaptureFixture[str]
):
    batch = {"mode": "batch", "batch": {"wait_s": 0, "poll_s": 0.02}}
    args = stage(mode="sync")
    collect(args, "alpha")
    generate.main(args)  # alpha's answers into the call cache, synchronously
    assert srv.calls == 2 and load_tracker(args.batches) == Tracker()  # the tracker exists in sync mode too
    with landing(RecordFolder(args.out, GeneratedSource)) as generated:
        generated.remove(["alpha"])

    args = stage(**batch)
    collect(args, "beta")
    srv.hold = True
    capsys.readouterr()
    generate.main(args)  # no exception: exit 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("generate: waiting for 1 batch(es) at the provider (2 requests, 1 source(s)")
    generated = RecordFolder(args.out, GeneratedSource)
    assert "alpha" in generated and "beta" not in generated
    counters = json.loads(args.run_log.read_text())
    assert (counters["cache_hits"], counters["calls_waiting"], counters["calls_made"]) == (2, 2, 0)

    report = generate.dry_run(args.collected, args.cache, args.out, args.batches)
    assert (report.mode, report.requests, report.in_flight, report.calls) == ("batch", 2, 2, 0)

    generate.main(args)  # still held: polls the same batch
    assert srv.batches_created == 1

    srv.hold = False
    args = stage(mode="batch", batch={"wait_s": 10, "poll_s": 0.02})
    generate.main(args)
    counters = json.loads(args.run_log.read_text())
    assert (counters["calls_made"], counters["calls_waiting"]) == (2, 0)
    assert json.loads(args.metrics.read_text()) == {
        "sources": 2,
        "tasks": 8,
        "failed": 0,
    }  # 2 × 2 variants × 2
    assert RecordFolder(args.out, GeneratedSource)["beta"].status == "ok"
    assert srv.batches_created == 1 and srv.duplicates() == 0
    assert load_tracker(args.batches) == Tracker()


def test_a_fresh_project_waiting_on_its_first_batch_has_every_output(
    stage: Callable[..., Namespace], srv: FakeBatchOpenAI, capsys: pytest.CaptureFixture[str]
):
    """Issue 20, case 1: the very first run, its batch still running at wait_s, exits 0 with every output
    DVC expects (the call cache was never created, so `dvc repro` failed with exit 255 on a missing output)."""
    args = stage(mode="batch", batch={"wait_s": 0, "poll_s": 0.02})
    collect(args, "alpha")
    srv.hold = True
    generate.main(args)
    assert args.cache.is_dir() and args.out.is_dir() and args.batches.exists()
    assert args.metrics.exists() and args.stats.exists() and args.run_log.exists()
    assert "waiting for 1 batch(es)" in capsys.readouterr().err


def _cut_first(times: int) -> Callable[[dict[str, Any]], Any]:
    """A responder whose answer to each prompt is cut at max_tokens its first `times` times."""
    seen: Counter[str] = Counter()

    def respond(body: dict[str, Any]) -> Any:
        prompt = json.dumps(body.get("messages"))
        seen[prompt] += 1
        return Reply('{"tasks": [', finish_reason="length") if seen[prompt] <= times else '{"tasks": []}'

    return respond


def test_a_cut_batch_answer_is_asked_again_like_in_sync_mode(tmp_path: Path):
    """Issue 20, case 2: a cut (finish_reason length) or empty row is not an answer: a follow-up batch asks
    it again, and the whole answer that comes back is the one cached."""
    with FakeBatchOpenAI(responder=_cut_first(1)) as srv:
        runner, results = run_batch(srv, tmp_path, 2)
    assert all(r.error is None and r.content == '{"tasks": []}' for r in results.values())
    assert srv.batches_created == 2 and runner.counts["incomplete_answers"] == 2


def test_a_batch_answer_cut_every_time_fails_loudly_after_retry_incomplete(tmp_path: Path):
    with FakeBatchOpenAI(responder=_cut_first(99)) as srv:
        with LLM(
            batch_params(srv.base_url).model_copy(update={"retry_incomplete": 1}), tmp_path / "c"
        ) as llm:
            runner = BatchRunner(llm, tmp_path / "batches.json")
            results = [res for _, res in runner.complete_many(make_requests(llm, 2))]
            assert all(llm.cache.get(r.cache_key) is None for r in make_requests(llm, 2))
    assert srv.batches_created == 2  # the first try and retry_incomplete = 1 more
    assert all(
        r.incomplete and r.error and r.error.startswith("answer cut at llm.max_tokens") for r in results
    )
    assert all(r.error.endswith("(2 tries)") for r in results if r.error)


def test_a_lost_create_response_never_bills_a_second_batch(tmp_path: Path):
    """Issue 20, case 3: `POST /v1/batches` went through but its answer was lost; the SDK's own retry made
    a second batch with the same metadata. Now a create is tried once, and on any doubt the provider's
    batches are searched by metadata before another is made."""
    with FakeBatchOpenAI(responder=tasks_from_schema) as srv:
        srv.lose_create_responses = 1
        params = batch_params(srv.base_url).model_copy(update={"max_retries": 2, "timeout_s": 5})
        with LLM(params, tmp_path / "cache") as llm:
            runner = BatchRunner(llm, tmp_path / "batches.json")
            results = [res for _, res in runner.complete_many(make_requests(llm, 3))]
        assert srv.batches_created == 1 and srv.duplicates() == 0
        assert all(r.error is None for r in results) and runner.counts["batches_adopted"] == 1


def test_a_result_file_gone_past_retention_resubmits_exactly_the_rows_without_answers(tmp_path: Path):
    """Issue 20, case 5: a completed batch whose output file answers 404 blocked every later run; its rows
    are now asked again in a new batch."""
    with FakeBatchOpenAI(responder=tasks_from_schema) as srv:
        srv.hold = True
        run_batch(srv, tmp_path, 3, wait_s=0)  # submitted, still running
        srv.hold, srv.files_gone = False, True
        with LLM(batch_params(srv.base_url, wait_s=0), tmp_path / "cache") as llm:
            runner = BatchRunner(llm, tmp_path / "batches.json")
            list(runner.complete_many(make_requests(llm, 3)))  # completed, but its results are gone
        assert runner.counts["resubmitted"] == 3
        srv.files_gone = False
        runner, results = run_batch(srv, tmp_path, 3)
        assert all(r.error is None and r.skipped is None for r in results.values())
        assert srv.batches_created == 2


def test_a_queue_limit_failure_backs_off_and_does_not_use_up_attempts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """Issue 20, case 6: a batch failed with `token_limit_exceeded` (the provider's queue is full) was
    resubmitted at once, in a loop, and counted against max_attempts. Now it waits, longer each time, says
    which limit, and the rows are not the ones to blame."""
    with FakeBatchOpenAI(responder=tasks_from_schema) as srv:
        srv.script(*[BatchOutcome.fail("token_limit_exceeded")] * 3)  # then complete
        started = time.monotonic()
        runner, results = run_batch(srv, tmp_path, 2, max_attempts=2, poll_s=0.05)
        elapsed = time.monotonic() - started
    assert all(r.error is None and r.skipped is None for r in results.values())
    assert srv.batches_created == 4 and elapsed >= 0.05 + 0.1 + 0.2  # backed off 0.05, 0.1, 0.2 s
    err = capsys.readouterr().err
    assert err.count("queue limit (token_limit_exceeded)") == 3


def test_two_processes_never_share_one_tracker(srv: FakeBatchOpenAI, tmp_path: Path):
    """Issue 20, case 8: an orphaned generate (its dvc killed) and the rerun polled the same batch and both
    reported its cost. A second runner on the same tracker now refuses in one line while the first holds it."""
    srv.hold = True
    with LLM(batch_params(srv.base_url, wait_s=0), tmp_path / "cache") as llm:
        first = BatchRunner(llm, tmp_path / "batches.json").complete_many(make_requests(llm, 2))
        next(first)  # the first run is under way
        code = (
            "import sys; from pathlib import Path; from dynosaur.core.params import LLMParams;"
            "from dynosaur.pipeline.batch import BatchRunner; from dynosaur.pipeline.llm import LLM;"
            f"p = LLMParams(provider='compatible', base_url='{srv.base_url}', model='m', mode='batch');"
            f"llm = LLM(p, Path(r'{tmp_path / 'cache2'}'));"
            f"list(BatchRunner(llm, Path(r'{tmp_path / 'batches.json'}')).complete_many([]))"
        )
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert other.returncode != 0 and "is in use by another generate" in other.stderr
        list(first)  # the first finishes; the lock goes with it
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr


def test_adoption_makes_no_assumption_about_the_two_clocks(srv: FakeBatchOpenAI, tmp_path: Path):
    """Issue 20, case 7: the search for a killed run's batch stopped at batches older than our clock minus
    600 s, so a local clock two hours fast dropped the intent and submitted again. Now the provider's newest
    batches are searched by their metadata alone."""
    srv.stall_create_s = 60
    proc = start_driver(srv, tmp_path, 2, max_requests=2)
    try:
        wait_for(lambda: srv.batches_created == 1)
    finally:
        kill(proc)
    srv.stall_create_s = 0
    with LLM(batch_params(srv.base_url), tmp_path / "cache") as llm:
        runner = BatchRunner(llm, tmp_path / "batches.json", clock=lambda: time.time() + 7200)
        tracker = load_tracker(tmp_path / "batches.json")
        for intent in tracker.batches:  # as if recorded by a machine whose clock runs two hours fast
            intent.recorded_at += 7200
        runner.tracker = tracker
        results = [res for _, res in runner.complete_many(make_requests(llm, 2))]
    assert runner.counts["batches_adopted"] == 1 and srv.batches_created == 1 and srv.duplicates() == 0
    assert all(r.error is None and r.skipped is None for r in results)


def test_a_cut_answer_the_provider_billed_is_counted_in_the_run_cost(tmp_path: Path):
    """Every answer the provider sends is billed, a cut one too: the run's cost counts the cut answers that
    were asked again and the ones that failed for good, as sync mode does (found by bench/batch_edges.py)."""
    price = {"fake-model": Price(input_per_mtok=1.0, output_per_mtok=2.0)}
    for times, retry_incomplete in ((1, 2), (99, 1)):
        with FakeBatchOpenAI(responder=_cut_first(times)) as srv:
            p = batch_params(srv.base_url).model_copy(
                update={"prices": price, "retry_incomplete": retry_incomplete}
            )
            with LLM(p, tmp_path / f"c{times}") as llm:
                runner = BatchRunner(llm, tmp_path / f"batches{times}.json")
                list(runner.complete_many(make_requests(llm, 2)))
                spent = llm.budget.spent_usd
            billed = 0.0
            for file_id, meta in srv.files.items():
                if meta["filename"] != "batch_output.jsonl":
                    continue
                for line in srv.file_bytes[file_id].decode().splitlines():
                    usage = json.loads(line)["response"]["body"]["usage"]
                    billed += (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) * 0.5 / 1e6
        assert billed > 0 and spent == pytest.approx(billed)
