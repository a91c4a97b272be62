"""Benchmark `llm.mode: batch` at its edges, side by side with sync mode on the same scripted server (issue 20).

2,000 generate-shaped requests. On the provider's side, 10% of each first-round batch expires before its rows
run (OpenAI's 24-hour window), and 5% of the answers come back cut (`finish_reason: length`) the first time
they are asked. The same responder answers sync mode, through `FakeOpenAI`'s chat endpoint, at concurrency 16.

Reported, batch beside sync:
- the corpus: every request's cached answer (content and finish reason) identical in both modes; the corpus
  is a pure function of the cached answers, so the same answers make the same corpus;
- the cost: batch ≤ 0.5 × sync plus the rows asked again (cut answers are billed twice in both modes;
  expired rows are not billed);
- duplicate batches: chunks created more than once at the provider (target 0);
- the runs a user needs: with `llm.batch.wait_s: 0` (submit, come back later: one run per round of the
  provider's work) and with a wait long enough for the provider (one run).
Run: `.venv/bin/python bench/batch_edges.py [--requests 2000] [--max-requests 500]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import ROOT, Timer, report

sys.path.insert(0, str(ROOT / "src"))

from dynosaur.core.params import LLMParams  # noqa: E402
from dynosaur.pipeline.batch import METADATA_KEY, WAITING, BatchRunner  # noqa: E402
from dynosaur.pipeline.llm import LLM, ChatRequest  # noqa: E402
from dynosaur.pipeline.prompts import SYSTEM  # noqa: E402
from dynosaur.testing.fake_batch import BatchOutcome, FakeBatchOpenAI  # noqa: E402
from dynosaur.testing.fake_openai import FakeOpenAI, Reply, tasks_from_schema  # noqa: E402

PRICES = {"fake-model": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}}  # gpt-4o-mini's
EXPIRED, CUT = 0.10, 0.05
CARD = "A reading-comprehension dataset: each row has a question, a context paragraph and an answer. " * 4


class CutOnce:
    """Answers like `tasks_from_schema`, but 5% of requests (by a hash of the prompt) come back cut the first
    time they are asked. One instance per server, so each mode sees the same cuts."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request_json: dict[str, Any]) -> str | Reply:
        prompt = json.dumps(request_json.get("messages"), sort_keys=True)  # batch lines sort their keys
        key = hashlib.sha256(prompt.encode()).hexdigest()
        with self.lock:
            self.asked[key] += 1
            first = self.asked[key] == 1
        answer = tasks_from_schema(request_json)
        if first and int(key[:8], 16) % round(1 / CUT) == 0:
            return Reply(answer[: len(answer) // 2], finish_reason="length")
        return answer


def requests_for(llm: LLM, n: int) -> list[ChatRequest]:
    enum = {"type": "string", "enum": ["answer", "context", "question"]}
    item = {
        "type": "object",
        "properties": {
            "instruction": {"type": "string"},
            "input_fields": {"type": "array", "items": enum},
            "output_field": enum,
        },
    }
    schema = {"type": "object", "properties": {"tasks": {"type": "array", "maxItems": 3, "items": item}}}
    user = "Dataset: source-{i}\n" + CARD + "\nPropose tasks."
    return [llm.request([("system", SYSTEM), ("user", user.format(i=i))], schema, "v1") for i in range(n)]


def params(url: str, mode: str, **batch: Any) -> LLMParams:
    return LLMParams.model_validate(
        {
            "provider": "compatible",
            "base_url": url,
            "model": "fake-model",
            "mode": mode,
            "concurrency": 16,
            "max_retries": 2,
            "prices": PRICES,
            "batch": {"poll_s": 0.05, **batch},
        }
    )


def answers(root: Path, n: int) -> dict[str, tuple[str | None, str | None]]:
    with LLM(params("http://127.0.0.1:9/v1", "sync"), root) as llm:
        cached = {r.cache_key: llm.cache.get(r.cache_key) for r in requests_for(llm, n)}
    return {k: (v.content, v.finish_reason) if v else (None, None) for k, v in cached.items()}


def sync_mode(n: int, root: Path) -> dict[str, Any]:
    with FakeOpenAI(responder=CutOnce()) as srv, Timer() as t:
        with LLM(params(srv.base_url, "sync"), root) as llm:
            results = [res for _, res in llm.complete_many(requests_for(llm, n))]
            spent = llm.budget.spent_usd
        calls = srv.calls
    failed = sum(r.error is not None for r in results)
    return {"seconds": t.s, "cost_usd": spent, "calls": calls, "failed": failed}


def batch_mode(n: int, root: Path, max_requests: int, wait_s: float) -> dict[str, Any]:
    first_round = -(-n // max_requests)
    runs, spent, counts = 0, 0.0, Counter[str]()
    with FakeBatchOpenAI(responder=CutOnce(), delay_s=0.3) as srv, Timer() as t:
        srv.script(*[BatchOutcome.expire(done=1 - EXPIRED)] * first_round)
        while True:  # what a user does: run generate until nothing is waiting
            runs += 1
            batch = {"wait_s": wait_s, "max_requests": max_requests}
            with LLM(params(srv.base_url, "batch", **batch), root) as llm:
                runner = BatchRunner(llm, root / "batches.json")
                results = [res for _, res in runner.complete_many(requests_for(llm, n))]
                spent += llm.budget.spent_usd
            counts.update(runner.counts)
            if not any(r.skipped == WAITING for r in results):
                break
            if wait_s == 0:
                time.sleep(0.4)  # the user comes back after the provider's work
        chunks = Counter(b["metadata"][METADATA_KEY] for b in srv.batches.values())
        outputs = [
            srv.file_bytes[b["output_file_id"]] for b in srv.batches.values() if b.get("output_file_id")
        ]
        billed = sum(len(data.splitlines()) for data in outputs)
        created = len(srv.batches)
    return {
        "seconds": t.s,
        "runs": runs,
        "cost_usd": spent,
        "batches_created": created,
        "duplicate_batches": sum(c - 1 for c in chunks.values()),
        "resubmitted": counts["resubmitted"],
        "billed_answers": billed,
        "incomplete_answers": counts["incomplete_answers"],
        "failed": sum(r.error is not None for r in results),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--max-requests", type=int, default=500, help="requests per batch")
    args = ap.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sync = sync_mode(n, root / "sync")
        waited = batch_mode(n, root / "batch", args.max_requests, wait_s=600)
        later = batch_mode(n, root / "batch_later", args.max_requests, wait_s=0)
        want = answers(root / "sync", n)
        same = sum(answers(root / d, n) == want for d in ("batch", "batch_later"))
        whole = sum(a[0] is not None and a[1] == "stop" for a in want.values())
    # The bound: half of sync's bill, plus the resubmitted rows at batch price (sync's mean call).
    bound = 0.5 * sync["cost_usd"] * (1 + waited["resubmitted"] / sync["calls"])
    ok = lambda good: " ✓" if good else " ✗ MISSED"  # noqa: E731
    ratio = waited["cost_usd"] / sync["cost_usd"]
    rows: list[tuple[str, object, str]] = [
        ("requests", n, f"{EXPIRED:.0%} of first-round rows expire, {CUT:.0%} answers cut once"),
        ("sync.cost_usd", sync["cost_usd"], f"{sync['calls']} calls"),
        (
            "batch.cost_usd",
            waited["cost_usd"],
            f"≤ {bound:.6f} (0.5 × sync + resubmitted rows)" + ok(waited["cost_usd"] <= bound + 1e-9),
        ),
        ("batch_over_sync_cost", ratio, "≈ 0.5: the same answers billed at half price"),
        (
            "answers_billed",
            f"{waited['billed_answers']} batch / {sync['calls']} sync",
            "expired rows are not billed",
        ),
        (
            "answers_identical_to_sync",
            f"{same}/2 runs",
            f"all {n}, {whole} whole" + ok(same == 2 and whole == n),
        ),
        (
            "duplicate_batches",
            waited["duplicate_batches"] + later["duplicate_batches"],
            "= 0" + ok(waited["duplicate_batches"] + later["duplicate_batches"] == 0),
        ),
        ("batch.batches_created", waited["batches_created"], f"first round {-(-n // args.max_requests)}"),
        (
            "batch.resubmitted_rows",
            waited["resubmitted"],
            f"expired + cut ≈ {round(n * (EXPIRED + CUT * (1 - EXPIRED)))}",
        ),
        ("runs.waiting_for_provider", waited["runs"], "= 1" + ok(waited["runs"] == 1)),
        ("runs.submit_and_come_back", later["runs"], "one per round of resubmission"),
        ("sync.seconds", sync["seconds"], "in-process, concurrency 16"),
        ("batch.seconds", waited["seconds"], "in-process, the provider's delay 0.3 s a batch"),
        (
            "failed",
            sync["failed"] + waited["failed"] + later["failed"],
            "= 0" + ok(sync["failed"] + waited["failed"] + later["failed"] == 0),
        ),
    ]
    report("batch_edges", rows, {"sync": sync, "batch": waited, "batch_submit_and_come_back": later})


if __name__ == "__main__":
    main()
