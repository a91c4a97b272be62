"""Regenerate the continual-learning table in docs/training.md from the demo sources.

In a throwaway clone of this repository it cuts three releases, one source at a time
(v1: vader-tweets + vader-movie-reviews, v2: + chatterbot-conversations, v3: + vader-amazon-reviews),
then trains stage by stage over v1 → v2 → v3 once per replay strategy (`dynosaur.training.continual.compare_strategies`)
with vader-movie-reviews held out as the unseen task, and prints a markdown table. Paste it over the table under
"Continual learning over releases" in docs/training.md (TARGET).

    python scripts/continual_table.py [--steps 300] [--strategies none,random,instr_diverse,instr_similar]

LLM answers come from `data/llm_cache` when this checkout has it (`dvc pull`), else from the local model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "training.md"  # where the printed table goes
STAGES = (["vader-tweets", "vader-movie-reviews"], ["chatterbot-conversations"], ["vader-amazon-reviews"])


def sh(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps per stage")
    ap.add_argument("--strategies", default="none,random,instr_diverse,instr_similar")
    ap.add_argument("--replay-tasks", type=int, default=1)
    ap.add_argument(
        "--llm-cache",
        type=Path,
        default=ROOT / "data" / "llm_cache",
        help="a call cache to reuse (from `dvc pull` or an earlier `dvc repro`)",
    )
    args = ap.parse_args()
    bin_dir = Path(sys.executable).parent
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    work = Path(tempfile.mkdtemp(prefix="dyno-continual-table-"))
    repo = work / "repo"
    sh("git", "clone", "-q", str(ROOT), str(repo), cwd=work)
    sh("git", "config", "user.email", "table@dynosaur.local", cwd=repo)
    sh("git", "config", "user.name", "continual table", cwd=repo)
    sh("dvc", "remote", "add", "-f", "-d", "--local", "local", str(work / "remote"), cwd=repo)
    if args.llm_cache.is_dir():
        shutil.copytree(args.llm_cache, repo / "data" / "llm_cache")
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    everything = params["sources"]
    chosen: list[str] = []
    for number, added in enumerate(STAGES, 1):
        chosen += added
        params["sources"] = [s for s in everything if s["id"] in chosen]
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        sh("dvc", "repro", "organize", cwd=repo)
        sh("git", "add", "-A", cwd=repo)
        sh("git", "commit", "-qm", f"sources for v{number}", cwd=repo)
        sh("dyno", "release", "-m", f"+ {', '.join(added)}", cwd=repo)

    sys.path.insert(0, str(repo))
    os.chdir(repo)
    from dynosaur.core.params import load_params
    from dynosaur.training.continual import compare_strategies

    loaded = load_params()
    train = loaded.train.model_copy(
        update={
            "max_steps": args.steps,
            "continual": {
                "releases": ["v1", "v2", "v3"],
                "replay": {"strategy": "none", "tasks": args.replay_tasks, "instances_per_task": 200},
            },
        }
    )
    loaded = loaded.model_copy(update={"train": type(loaded.train).model_validate(train.model_dump())})
    result = compare_strategies(repo, loaded, work / "models", strategies=args.strategies.split(","))

    print(
        "| strategy | unseen (ROUGE-L) | v3 holdout | v1 holdout after v3 | v2 holdout after v3 |"
        " mean forgetting |\n|---|---|---|---|---|---|"
    )
    for strategy, report in result.reports.items():
        last = report.stages[-1]
        prev = last.previous_holdout_rouge_l
        fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
        print(
            f"| {strategy} | {fmt(last.unseen_rouge_l)} | {fmt(last.current_holdout_rouge_l)} | "
            f"{fmt(prev.get('v1'))} | {fmt(prev.get('v2'))} | {fmt(report.mean_forgetting)} |"
        )
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nPaste the table above over the one in {TARGET.relative_to(ROOT)}.", file=sys.stderr)


if __name__ == "__main__":
    main()
