"""Benchmark `llm.mode: batch`: 10,000 requests through the scripted Batch API, submit → kill → resume.

The scripted server (`dynosaur.testing.fake_batch`) runs in this process; the client is
`dynosaur.pipeline.batch.BatchRunner` (what generate runs in batch mode) in a child process, which is killed
with SIGKILL and started again, as a user's Ctrl-C or a lost machine would. Two kills:

- `poll`: once every batch is created and recorded, while the client polls (the batches are held);
- `create`: inside `POST /v1/batches` (the server has created the batch and stalls its answer), so the
  tracker has only the intent and the resumed run must find the batch by its chunk digest.

Reported: the time to submit, the time of the resumed run (process start, polling, downloading and caching
every answer), and the requests the provider received twice (target 0). Prompts are generate's real system
prompt plus ~1 KB of dataset card each.
Run: `.venv/bin/python bench/batch.py [--requests 10000] [--max-requests 2000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, Timer, report

DRIVER = r"""
import json, sys, time
from pathlib import Path
from dynosaur.core.params import LLMParams
from dynosaur.pipeline.batch import BatchRunner
from dynosaur.pipeline.llm import LLM
from dynosaur.pipeline.prompts import SYSTEM

url, root, n, max_requests = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
params = LLMParams(
    provider="compatible", base_url=url, model="fake-model", mode="batch", max_retries=2,
    batch={"wait_s": 3600, "poll_s": 0.2, "max_requests": max_requests},
)
enum = {"type": "string", "enum": ["answer", "context", "question"]}
item = {"type": "object", "properties": {"instruction": {"type": "string"},
        "input_fields": {"type": "array", "items": enum}, "output_field": enum}}
schema = {"type": "object", "properties": {"tasks": {"type": "array", "maxItems": 3, "items": item}}}
card = "A reading-comprehension dataset: each row has a question, a context paragraph and an answer. " * 10
start = time.perf_counter()
with LLM(params, root / "cache") as llm:
    requests = [
        llm.request([("system", SYSTEM), ("user", f"Dataset: source-{i}\n{card}\nPropose tasks.")], schema, "v1")
        for i in range(n)
    ]
    runner = BatchRunner(llm, root / "batches.json")
    results = [res for _, res in runner.complete_many(requests)]
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "answered": sum(r.error is None and r.skipped is None for r in results),
    "errors": sum(r.error is not None for r in results),
    "counts": dict(runner.counts),
}))
"""


def child(url: str, root: Path, n: int, max_requests: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-c", DRIVER, url, str(root), str(n), str(max_requests)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tracked(root: Path) -> list[dict]:
    try:
        return json.loads((root / "batches.json").read_text())["batches"]
    except (FileNotFoundError, ValueError):
        return []


def wait_until(condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the client never got there")
        time.sleep(0.05)


def scenario(kill_at: str, n: int, max_requests: int) -> dict:
    from dynosaur.testing.fake_batch import FakeBatchOpenAI
    from dynosaur.testing.fake_openai import tasks_from_schema

    batches = -(-n // max_requests)
    with FakeBatchOpenAI(responder=tasks_from_schema) as srv, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        srv.hold = kill_at == "poll"
        srv.stall_create_s = 3600 if kill_at == "create" else 0
        with Timer() as submit:
            proc = child(srv.base_url, root, n, max_requests)
            if kill_at == "poll":
                wait_until(lambda: len(b := tracked(root)) == batches and all(x["batch_id"] for x in b))
            else:
                wait_until(lambda: srv.batches_created == 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        intents = tracked(root)
        srv.hold, srv.stall_create_s = False, 0
        with Timer() as resume:
            proc = child(srv.base_url, root, n, max_requests)
            out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"resumed run failed: {err.strip().splitlines()[-1:]}")
        result = json.loads(out.strip().splitlines()[-1])
        cached = sum(1 for _ in (root / "cache").glob("*/*.json"))
        return {
            "submit_seconds": submit.s,
            "resume_seconds": resume.s,
            "resume_in_process_seconds": result["seconds"],
            "batches_created": srv.batches_created,
            "tracked_at_kill": len(intents),
            "recorded_ids_at_kill": sum(1 for b in intents if b["batch_id"]),
            "submitted_twice": srv.duplicates(),
            "answered": result["answered"],
            "cached": cached,
            "adopted": result["counts"].get("batches_adopted", 0),
            "dropped": result["counts"].get("intents_dropped", 0),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--max-requests", type=int, default=2_000, help="requests per batch")
    args = ap.parse_args()
    n = args.requests
    poll = scenario("poll", n, args.max_requests)
    create = scenario("create", n, args.max_requests)
    ok = lambda good: " ✓" if good else " ✗ MISSED"  # noqa: E731
    rows: list[tuple[str, object, str]] = [("requests", n, ""), ("requests_per_batch", args.max_requests, "")]
    for name, r in (("kill_while_polling", poll), ("kill_inside_create", create)):
        rows += [
            (f"{name}.submit_seconds", r["submit_seconds"], "start → killed"),
            (f"{name}.resume_seconds", r["resume_seconds"], "resumed run, process start to exit"),
            (f"{name}.batches_created", r["batches_created"], f"= {-(-n // args.max_requests)}"),
            (f"{name}.adopted_dropped", f"{r['adopted']}/{r['dropped']}", "intents found / dropped"),
            (f"{name}.submitted_twice", r["submitted_twice"], "= 0" + ok(r["submitted_twice"] == 0)),
            (f"{name}.answered", r["answered"], f"= {n}" + ok(r["answered"] == n == r["cached"])),
        ]
    report("batch", rows, {"poll": poll, "create": create})


if __name__ == "__main__":
    main()
