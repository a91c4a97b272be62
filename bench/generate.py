"""Benchmark `dynosaur.pipeline.llm.LLM.complete_many`: 200 distinct prompts, 200 ms server latency, concurrency 16.

Target: wall time ≤ 1.3 × the ideal 200/16 × 0.2 s = 2.5 s, and a second run on the warm call cache makes
0 calls. The fake OpenAI-compatible server (`dynosaur.testing.fake_openai`) runs in-process, with TCP_NODELAY as real
servers (vLLM/uvicorn) set it.
Run: `.venv/bin/python bench/generate.py [--prompts 200] [--latency 0.2] [--concurrency 16]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import Timer, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    import openai  # noqa: F401  (one-time import, outside the timings)

    from dynosaur.core.params import LLMParams
    from dynosaur.pipeline.llm import LLM
    from dynosaur.pipeline.prompts import SYSTEM
    from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema

    enum = {"type": "string", "enum": ["answer", "context", "question"]}
    schema = {  # the shape dynosaur.pipeline.prompts.response_schema produces, so tasks_from_schema answers
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "properties": {
                        "instruction": {"type": "string"},
                        "input_fields": {"type": "array", "items": enum},
                        "output_field": enum,
                    },
                },
            }
        },
    }
    tmp = tempfile.TemporaryDirectory(prefix="bench-generate-")
    with FakeOpenAI(responder=tasks_from_schema, latency=args.latency) as srv, tmp:
        params = LLMParams(
            provider="compatible",
            base_url=srv.base_url,
            model="fake-model",
            concurrency=args.concurrency,
            max_retries=0,
            timeout_s=30,
        )

        def run(cache: str, prompts: int, tag: str) -> tuple[float, int, list]:
            srv.reset()
            with LLM(params, Path(tmp.name) / cache) as llm:  # a fresh client: new connections
                requests = [
                    llm.request(
                        [("system", SYSTEM), ("user", f"Dataset: {tag}-{i}\nPropose tasks.")], schema, "bench"
                    )
                    for i in range(prompts)
                ]
                assert len({r.cache_key for r in requests}) == prompts
                with Timer() as t:
                    results = [res for _, res in llm.complete_many(requests)]
            assert not [r.error for r in results if r.error], results
            return t.s, srv.calls, results

        first_call_s, _, _ = run("warmup", 1, "warmup")  # lazy openai resources, pydantic validators
        cold_s, cold_calls, _ = run("bench", args.prompts, "bench")
        warm_s, warm_calls, warm = run("bench", args.prompts, "bench")  # same cache again

    ideal = args.prompts / args.concurrency * args.latency
    ok = lambda good: " ✓" if good else " ✗ MISSED"  # noqa: E731
    report(
        "generate",
        [
            ("prompts", args.prompts, ""),
            ("ideal_seconds", ideal, f"{args.prompts}/{args.concurrency} × {args.latency}s"),
            ("process_first_call_seconds", first_call_s, "one call, once per process (untimed below)"),
            ("cold_seconds", cold_s, ""),
            ("cold_over_ideal", cold_s / ideal, "≤ 1.3" + ok(cold_s / ideal <= 1.3)),
            ("cold_calls", cold_calls, f"= {args.prompts}"),
            ("warm_seconds", warm_s, ""),
            ("warm_calls", warm_calls, "= 0" + ok(warm_calls == 0)),
            ("warm_cached_results", sum(r.cached for r in warm), f"= {args.prompts}"),
        ],
        {"latency": args.latency, "concurrency": args.concurrency},
    )


if __name__ == "__main__":
    main()
