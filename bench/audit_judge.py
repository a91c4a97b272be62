"""A smoke check of `dyno audit judge`'s prompt on a real model: 12 hand-made instances, 6 plainly right and
6 plainly wrong (wrong label, wrong answer, empty or meaningless input, nonsense instruction). It is not the
audit of a corpus: that needs people's labels (`dyno audit review`); this only says whether the judge can tell
an obvious error at all.

Reports how many right instances the judge calls fully valid and how many wrong ones it does not, and the
agreement on the verdict (share of the 12 where its fully-valid verdict is the known one).
Run: `.venv/bin/python bench/audit_judge.py [--model qwen2.5-coder-0.5b-instruct-q4_k_m] [--llm-cache DIR]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import report

SENTIMENT = "Classify the sentiment of the given text as either positive, neutral, or negative."
RIGHT = [
    (SENTIMENT, "I loved this phone, the battery lasts for days.", "positive"),
    (SENTIMENT, "Broke after two days. Waste of money.", "negative"),
    ("Translate the sentence into French.", "Good morning.", "Bonjour."),
    ("What is the capital of the given country?", "Japan", "Tokyo"),
    ("Add the two numbers.", "12 and 30", "42"),
    ("Identify the part of speech of the word 'run' in the sentence.", "I run every morning.", "verb"),
]
WRONG = [
    (SENTIMENT, "I loved this phone, the battery lasts for days.", "negative"),
    ("What is the capital of the given country?", "Japan", "Paris"),
    ("Add the two numbers.", "12 and 30", "17"),
    ("Translate the sentence into French.", "", "Bonjour."),
    ("Summarise the article.", "id_4471", "The article is about economics."),
    ("asdf qwer zxcv", "hello", "world"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="llm.model (default: params.yaml's)")
    ap.add_argument("--llm-cache", type=Path, help="keep answers between runs (default: a temporary folder)")
    args = ap.parse_args()

    from dynosaur.core.params import load_params
    from dynosaur.pipeline.audit_judge import PROMPT_VERSION, judge_messages, parse_judgement, schema
    from dynosaur.pipeline.llm import LLM

    params = load_params().llm
    if args.model:
        params = params.model_copy(update={"model": args.model})
    cache = args.llm_cache or Path(tempfile.mkdtemp(prefix="bench-audit-judge-"))
    rows = [{"instruction": i, "input": x, "output": o} for i, x, o in RIGHT + WRONG]
    with LLM(params, cache) as llm:
        requests = [llm.request(judge_messages(r), schema(), PROMPT_VERSION) for r in rows]
        answers = {r.cache_key: res for r, res in llm.complete_many(requests)}
        model = llm.model_identity
    verdicts = []
    for row, request in zip(rows, requests, strict=True):
        labels = parse_judgement(answers[request.cache_key].content)
        verdicts.append(None if labels is None else all(v == "yes" for v in labels.values()))
        print(f"  {'right' if len(verdicts) <= len(RIGHT) else 'wrong'}: {labels}  ← {row['output']!r}")
    right, wrong = verdicts[: len(RIGHT)], verdicts[len(RIGHT) :]
    agree = sum(v is True for v in right) + sum(v is False for v in wrong)
    report(
        "audit_judge",
        [
            ("right items called fully valid", sum(v is True for v in right), f"{len(RIGHT)}"),
            ("wrong items called not fully valid", sum(v is False for v in wrong), f"{len(WRONG)}"),
            ("unparseable answers", sum(v is None for v in verdicts), "0"),
            ("verdict agreement", round(agree / len(rows), 3), "≥ 0.8"),
        ],
        {"model": model, "prompt_version": PROMPT_VERSION, "items": len(rows)},
    )


if __name__ == "__main__":
    main()
