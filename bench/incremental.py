"""Benchmark incremental `dvc repro`: 50 small sources, then one more.

Target: after a full run over 50 sources, adding a 51st makes `dvc repro` take ≤ 0.1 × the full run, and the
LLM calls are exactly the new source's (2: it has a description, so both prompt variants). A no-op repro (nothing
changed) is timed too: it is the fixed cost every incremental run pays. The pipeline runs in a temporary git +
DVC repo (copies of dvc.yaml, stages/, registry/, pyproject.toml) against the in-process fake OpenAI server;
per-stage times come from timestamping dvc's output lines; afterwards each stage command is timed alone on the
up-to-date repo (its fixed cost: interpreter, imports, a no-op scan), with `dvc status`.
Run: `.venv/bin/python bench/incremental.py [--sources 50] [--rows 200] [--keep]`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml
from _common import OFFLINE_ENV, ROOT, report, text_column, write_hf_source

DVC = str(ROOT / ".venv" / "bin" / "dvc")
STAGE = re.compile(r"Running stage '(\w+)'")


def make_source(repo: Path, i: int, rows: int) -> str:
    sid = f"src-{i:03d}"
    rng = np.random.default_rng(i)
    table = pa.table(
        {
            "title": text_column(rng, rows, 40, f"{sid} "),
            "body": text_column(rng, rows, 160, f"{sid} "),
            "summary": text_column(rng, rows, 30, f"{sid} "),
            "label": pa.array(rng.integers(0, 3, rows), pa.int64()),
        }
    )
    features = {"title": "string", "body": "string", "summary": "string", "label": ["bad", "ok", "good"]}
    write_hf_source(
        repo / "data" / "sources" / sid,
        table,
        features,
        name=f"Synthetic reviews #{i}",
        description=f"Reviews collection number {i}: a title, a body, a summary and a rating.",
    )
    return sid


def write_params(repo: Path, ids: list[str], base_url: str) -> None:
    """The project's params.yaml (dvc.yaml reads every section), with these sources and the fake server."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sources"] = [{"id": s, "path": f"data/sources/{s}"} for s in ids]
    params["llm"].update(provider="compatible", base_url=base_url, concurrency=16)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def repro(repo: Path, env: dict, log: Path) -> tuple[float, dict[str, float]]:
    """`dvc repro`: total seconds, and per stage that ran the seconds from "Running stage" to "Updating lock
    file" (the stage's process plus dvc hashing its outputs); `dvc_other` is the rest (startup, checks)."""
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        proc = subprocess.Popen(
            [DVC, "repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in proc.stdout:
            fh.write(f"{time.perf_counter() - t0:8.2f} {line}")
            if m := STAGE.search(line):
                marks.append((m.group(1), time.perf_counter() - t0))
            elif line.startswith("Updating lock file") and marks:
                marks.append(("", time.perf_counter() - t0))
    total = time.perf_counter() - t0
    if proc.wait():
        raise SystemExit(f"dvc repro failed; see {log}")
    stages = {
        name: end - start
        for (name, start), (nxt, end) in zip(marks, marks[1:], strict=False)
        if name and not nxt
    }
    stages["dvc_other"] = total - sum(stages.values())
    return total, stages


def stage_floor(repo: Path, env: dict) -> dict[str, float]:
    """On the up-to-date repo: each stage's command run alone (interpreter, imports, no-op scan), `dvc status`."""
    cmds = {
        name: stage["cmd"]
        for name, stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].items()
    }
    cmds["dvc status"] = f"{DVC} status"
    out = {}
    for name, cmd in cmds.items():
        t0 = time.perf_counter()
        subprocess.run(cmd, shell=True, cwd=repo, env=env, check=True, capture_output=True)
        out[name] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=50)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary repo (its path is printed)")
    ap.add_argument("--no-floor", action="store_true", help="skip timing each stage alone afterwards")
    args = ap.parse_args()
    from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema

    repo = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    log = repo.parent / f"{repo.name}.log"
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "PYTHONPATH": str(repo),
        "HF_HOME": str(repo.parent / f"{repo.name}-hf"),
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("CI", None)

    def git(*a):
        return subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=b@x", *a],
            cwd=repo,
            env=env,
            check=True,
            capture_output=True,
        )

    try:
        with FakeOpenAI(responder=tasks_from_schema, latency=args.latency) as srv:
            shutil.copy(ROOT / "dvc.yaml", repo)
            shutil.copy(ROOT / "pyproject.toml", repo)
            for pkg in ("stages", "registry"):
                shutil.copytree(ROOT / pkg, repo / pkg, ignore=shutil.ignore_patterns("__pycache__"))
            (repo / "ledger").mkdir()
            (repo / "ledger" / "retractions.jsonl").touch()  # collect and filter read the tombstones
            ids = [make_source(repo, i, args.rows) for i in range(args.sources)]
            write_params(repo, ids, srv.base_url)
            git("init", "-q")
            subprocess.run([DVC, "init", "-q"], cwd=repo, env=env, check=True)
            git("add", "-A")
            git("commit", "-qm", f"bench: {args.sources} sources")

            runs = {}
            for name in ("full", "noop", "incremental"):
                if name == "incremental":
                    ids.append(make_source(repo, args.sources, args.rows))
                    write_params(repo, ids, srv.base_url)
                srv.reset()
                total, stages = repro(repo, env, log)
                asked = [
                    m["content"] for h in srv.history for m in h.get("messages", []) if m["role"] == "user"
                ]
                new_only = all(f"Dataset: Synthetic reviews #{args.sources}\n" in a for a in asked)
                runs[name] = {
                    "seconds": total,
                    "calls": srv.calls,
                    "stages": stages,
                    "only_new_source": new_only,
                }
                shown = ", ".join(f"{k} {v:.1f}s" for k, v in stages.items())
                print(f"  {name}: {total:.1f}s, {srv.calls} calls ({shown})", flush=True)
            floor = {} if args.no_floor else stage_floor(repo, env)
            if floor:
                print(
                    "  each stage alone, nothing to do: "
                    + ", ".join(f"{k} {v:.2f}s" for k, v in floor.items())
                )
    finally:
        if not args.keep:
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(repo.parent / f"{repo.name}-hf", ignore_errors=True)
    full, noop, inc = runs["full"], runs["noop"], runs["incremental"]
    ratio = inc["seconds"] / full["seconds"]
    ok = lambda good: " ✓" if good else " ✗ MISSED"  # noqa: E731
    report(
        "incremental",
        [
            ("sources", args.sources, f"+1, {args.rows} rows each"),
            ("full_seconds", full["seconds"], ""),
            ("full_calls", full["calls"], f"= {2 * args.sources}"),
            ("noop_seconds", noop["seconds"], "nothing changed (collect always runs)"),
            ("noop_calls", noop["calls"], "= 0" + ok(noop["calls"] == 0)),
            ("incremental_seconds", inc["seconds"], ""),
            ("incremental_calls", inc["calls"], "= 2" + ok(inc["calls"] == 2)),
            ("incremental_calls_all_new_source", inc["only_new_source"], "True" + ok(inc["only_new_source"])),
            ("incremental_over_full", ratio, "≤ 0.1" + ok(ratio <= 0.1)),
            ("noop_over_full", noop["seconds"] / full["seconds"], ""),
        ],
        {
            "runs": runs,
            "stage_alone_noop_seconds": floor,
            "log": str(log),
            "repo": str(repo) if args.keep else None,
        },
    )


if __name__ == "__main__":
    main()
