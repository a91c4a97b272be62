"""Benchmark the train stage's loop: tokens/s of the scratch default on the CPU, this checkout against another.

The corpus is built from the bundled demo sources without an LLM: one task per source (the three VADER
sentiment sets as classification, the ChatterBot questions as free-form answers), shards laid out as
`organize` writes them, and `vader-movie-reviews` held out as the train stage holds it out. Each side runs
`dynosaur.training.sft.train_model` with the default `train` params (but `--steps` and `--threads`) in its
own child process, `PYTHONPATH` pointing at its `src/`; the sides alternate `--repeat` times, so a load spike
on the shared machine hits both. A side reports the loop's own tokens/s (`TrainResult.tokens_per_s`: non-padding
tokens through the forward pass over the loop's wall time) and the child's wall time.

    .venv/bin/python bench/train.py [--steps 300] [--repeat 2] [--threads 2] [--baseline-src DIR] [--name train]

`--baseline-src` is another checkout's `src/` (e.g. `git archive <rev> src | tar -x -C /tmp/base`): the
hand-written loop before TRL. Target: this checkout's tokens/s ≥ 0.9 × the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from _common import ROOT, Timer, report

TASKS = {  # source → (instruction, input field, output field, label names or None)
    "vader-tweets": (
        "Classify the sentiment of the tweet.",
        "text",
        "sentiment",
        ["negative", "neutral", "positive"],
    ),
    "vader-movie-reviews": ("Is this movie review negative, neutral or positive?", "text", "sentiment", None),
    "vader-amazon-reviews": ("Rate the sentiment of the product review.", "text", "sentiment", None),
    "chatterbot-conversations": ("Answer the user's question.", "question", "answer", None),
}
SENTIMENT = ["negative", "neutral", "positive"]

CHILD = r"""
import json, sys, time
from pathlib import Path
from dynosaur.core.params import load_params
from dynosaur.training import sft
from dynosaur.training.examples import load_examples, split_holdout
corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
p = load_params(sys.argv[3]).train
sft.quiet_transformers()
examples = load_examples(corpus, exclude_sources={"vader-movie-reviews"}, max_per_task=p.max_per_task, seed=p.seed)
train, _ = split_holdout(examples, p.holdout_fraction, p.seed)
start = time.perf_counter()
result = sft.train_model(train, p, out)
print(json.dumps({"tokens_per_s": result.tokens_per_s, "seconds": result.seconds, "tokens": result.tokens_seen,
                  "steps": result.steps, "call_s": time.perf_counter() - start}))
"""


def build_corpus(out: Path) -> int:
    """One shard per demo source, as `organize` lays them out; returns the instance count."""
    total = 0
    for source, (instruction, field, target, _) in TASKS.items():
        rows = []
        for path in sorted((ROOT / "data" / "sources" / source / "data").glob("*.jsonl")):
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        outputs = [SENTIMENT[r[target]] if target == "sentiment" else r[target] for r in rows]
        n = len(rows)
        table = pa.table(
            {
                "instance_id": [f"{source}-{i}" for i in range(n)],
                "instruction": [instruction] * n,
                "input": [str(r[field]) for r in rows],
                "output": outputs,
                "source_id": [source] * n,
                "task_id": [f"{source}-task"] * n,
            }
        )
        (out / source).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out / source / f"{source}-task.parquet")
        total += n
    return total


def run_side(src: Path, corpus: Path, work: Path, params: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}
    with Timer() as t:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(corpus), str(work / "model"), str(params)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"{src}: exited {proc.returncode}\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": round(t.s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--threads", type=int, default=None, help="train.threads for both sides (default: params)"
    )
    ap.add_argument("--name", default="train", help="the results file: bench/results/<name>.json")
    ap.add_argument("--baseline-src", type=Path, default=None, help="another checkout's src/ to compare with")
    args = ap.parse_args()
    sides = {"this": ROOT / "src"}
    if args.baseline_src is not None:
        sides["baseline"] = args.baseline_src.resolve()
    with tempfile.TemporaryDirectory(prefix="dyno-bench-train-") as tmp:
        work = Path(tmp)
        instances = build_corpus(work / "corpus")
        # The default train params but for these (a file both sides read: keys only one side knows stay out)
        train = {"max_steps": args.steps, "threads": args.threads}
        (work / "params.yaml").write_text(json.dumps({"train": train}))
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for i in range(args.repeat):
            for name, src in sides.items() if i % 2 == 0 else reversed(sides.items()):
                r = run_side(src, work / "corpus", work / name, work / "params.yaml")
                runs[name].append(r)
                print(f"run {i + 1} {name}: {r}", flush=True)
    med = {name: statistics.median(r["tokens_per_s"] for r in rs) for name, rs in runs.items()}
    rows: list[tuple[str, object, str]] = [("this_tokens_per_s", round(med["this"], 1), "")]
    if "baseline" in med:
        rows += [
            ("baseline_tokens_per_s", round(med["baseline"], 1), ""),
            ("ratio", round(med["this"] / med["baseline"], 3), ">= 0.9"),
        ]
    report(args.name, rows, {"steps": args.steps, "instances": instances, "runs": runs})


if __name__ == "__main__":
    main()
