"""Scaling out through a serving cluster: `LLM.complete_many` (what generate calls) at `llm.concurrency: 64`
against the scripted OpenAI-compatible server, each answer taking `LATENCY` seconds as a loaded server would.

One request at a time would reach 1 / LATENCY answers a second; 64 in flight, 64 / LATENCY. The floor asserted
is a fraction of that, generous enough for a noisy shared 2-core machine, and the figure is printed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dynosaur.core.params import LLMParams
from dynosaur.pipeline.llm import LLM
from dynosaur.pipeline.prompts import SYSTEM
from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema

CONCURRENCY = 64
LATENCY = 0.25
REQUESTS = 640  # 10 rounds of 64


@pytest.mark.alone  # a wall-clock assertion or a CPU hog: nothing alongside (tests/workers.py)
def test_complete_many_at_concurrency_64_throughput(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with FakeOpenAI(responder=tasks_from_schema, latency=LATENCY) as srv:
        params = LLMParams(
            provider="compatible",
            base_url=srv.base_url,
            model="fake-model",
            concurrency=CONCURRENCY,
            max_retries=0,
            timeout_s=60,
        )
        with LLM(params, tmp_path / "cache") as llm:
            requests = [
                llm.request([("system", SYSTEM), ("user", f"Dataset: d{i}\nPropose tasks.")], None, "v1")
                for i in range(REQUESTS + 1)
            ]
            list(llm.complete_many(requests[:1]))  # imports, the client, the first connection: not timed
            start = time.perf_counter()
            results = [res for _, res in llm.complete_many(requests[1:])]
            elapsed = time.perf_counter() - start
    throughput = REQUESTS / elapsed
    serial, ideal = 1 / LATENCY, CONCURRENCY / LATENCY
    with capsys.disabled():
        print(
            f"\ncomplete_many: {REQUESTS} requests at concurrency {CONCURRENCY}, {LATENCY * 1000:.0f} ms each:"
            f" {elapsed:.2f} s, {throughput:.0f} requests/s (one at a time: {serial:.0f}/s; ideal: {ideal:.0f}/s)"
        )
    assert [r.error for r in results if r.error] == [] and len(results) == REQUESTS
    assert srv.answered == REQUESTS + 1
    assert throughput >= 16 * serial  # ≥ 16 requests in flight on average, of 64
