"""Measure a params profile end to end on the CPU: the train stage, then the evaluate stage, as dvc.yaml runs them.

The default profile is `params-qwen.yaml`: LoRA on the packaged Qwen2.5-Coder-0.5B-Instruct (`gguf:local`,
converted once into a cached transformers directory). The corpus is `bench/train.py`'s: the bundled demo
sources without an LLM, one task per source, `vader-movie-reviews` held out as the unseen task. Each stage runs
in its own child process (`DYNO_PARAMS` names the profile). Reported: the one-off GGUF conversion (when the
cache was empty), the training loop's seconds per step and tokens/s (from the train stage's metrics), the
evaluate stage's wall time, and the trained model's scores beside its base model's.

    .venv/bin/python bench/train_gguf.py [--params params-qwen.yaml] [--steps N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from _common import ROOT, Timer, report
from train import build_corpus

sys.path.insert(0, str(ROOT / "src"))  # this checkout's dynosaur, as the child stages get it


def stage(module: str, cwd: Path, env: dict[str, str], **paths: Path) -> float:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in paths.items()]
    with Timer() as t:
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{module} exited {proc.returncode}")
    return t.s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params-qwen.yaml")
    ap.add_argument("--steps", type=int, default=None, help="override train.max_steps")
    ap.add_argument("--name", default="train_gguf")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dyno-train-gguf-"))
    params = yaml.safe_load(args.params.read_text())
    if args.steps is not None:
        params["train"]["max_steps"] = args.steps
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    build_corpus(work / "data" / "corpus")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DYNO_PARAMS": str(work / "params.yaml")}

    from dynosaur.core.params import load_params
    from dynosaur.training.gguf_base import converted_dir, is_gguf

    base = load_params(work / "params.yaml").train.base_model
    conversion_s: float | None = None
    if is_gguf(base):  # converted ahead of the stage, so the stage's figures leave the one-off cost out
        with Timer() as t:
            converted = converted_dir(base)
        conversion_s = round(t.s, 1)
        print(f"base model: {converted} (ready in {t.s:.0f} s; about 1.5 min when it has to convert)")

    d = work / "data"
    train_s = stage(
        "dynosaur.training.train",
        work,
        env,
        corpus=d / "corpus",
        model=work / "models" / "model",
        evalset=d / "evalset.json",
        metrics=d / "metrics" / "train.json",
        run_log=d / "runs" / "train.json",
        losses=d / "stats" / "train_loss.csv",
        plot=d / "plots" / "train_loss.svg",
        checkpoints=work / "models" / "checkpoints",
    )
    eval_s = stage(
        "dynosaur.training.evaluate",
        work,
        env,
        model=work / "models" / "model",
        evalset=d / "evalset.json",
        metrics=d / "metrics" / "evaluate.json",
        report=d / "stats" / "evaluate.json",
    )
    tm = json.loads((d / "runs" / "train.json").read_text())  # what the run did: steps, speed, memory
    ev = json.loads((d / "stats" / "evaluate.json").read_text())  # every score, base and trained
    rows: list[tuple[str, object, str]] = [
        ("base_ready_s", conversion_s if conversion_s is not None else "-", "conversion: once"),
        ("train_stage_s", round(train_s, 1), ""),
        ("steps", tm["steps"], ""),
        ("s_per_step", round(tm["seconds"] / tm["steps"], 2), ""),
        ("tokens_per_s", tm["tokens_per_s"], ""),
        ("peak_rss_mb", tm["peak_rss_mb"], ""),
        ("loss_first10", tm["loss_first10"], ""),
        ("loss_last10", tm["loss_last10"], ""),
        ("evaluate_stage_s", round(eval_s, 1), ""),
    ]
    for key in ("heldout_rouge_l", "heldout_exact_match", "unseen_rouge_l", "unseen_exact_match"):
        rows.append((f"{key} base → trained", f"{ev['base'][key]} → {ev['trained'][key]}", ""))
    report(args.name, rows, {"params": params["train"], "evaluate": ev["counts"], "work": str(work)})
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
