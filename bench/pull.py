"""Benchmark `dyno pull` of a 1,000,000-instance release from a fresh clone, against `cp -r` of the same bytes
and against its real peer, `dvc get <project> data/corpus --rev v1` (issue 25).

The released project is the synthetic one of bench/release.py (`_release_project.SynthProject`: 1,000 tasks ×
1,000 instances, one parquet shard per task, pushed to a local directory remote by `dyno release`). Each run
makes a fresh `git clone` of it (so there is no local DVC cache: every shard comes from the remote), then
times, side by side and alternating: `cp -r data/corpus` of the released project (the same bytes as the
release's objects on the remote) and `dyno pull v1 --out DIR` in the clone, as child processes under GNU time
(wall, peak RSS). Both read from a warm page cache (the files were just written). A third child times the
phases of `dynosaur.registry.pull` in one process (imports, DVC fetch, check = recompute every shard's digest), to say
where the time goes.

`dvc get` runs alternating with the other two: DVC clones the project itself and fetches the same objects
from the same local remote, with no digest check of the shards against the release's manifest.

Target: pull ≤ 2 × cp. Run: `.venv/bin/python bench/pull.py [--sources 50] [--tasks 20] [--instances 1000]
[--name pull]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report
from _release_project import DVC, DYNO, SynthProject, env, measured, tree_bytes


def fresh_clone(proj: SynthProject, dest: Path) -> Path:
    subprocess.run(
        ["git", "clone", "-q", str(proj.root), str(dest)], check=True, capture_output=True, env=env()
    )
    assert not (dest / ".dvc" / "cache").exists(), "a fresh clone has no DVC cache"
    return dest


def child_phases(clone: Path, out: Path) -> dict:
    """In this process: pull_release's steps, timed one by one (private helpers: diagnosis only)."""
    t0 = time.perf_counter()
    import dvc.repo  # noqa: F401

    from dynosaur.registry import pull
    from dynosaur.registry.ledger import Ledger

    t_import = time.perf_counter() - t0
    ledger = Ledger(clone)
    release = ledger.release("v1")
    entries = ledger.read_manifest(release)
    staging = out.parent / f".{out.name}.phases"
    t1 = time.perf_counter()
    pull._fetch(clone, "data/corpus", release, staging)
    t_fetch = time.perf_counter() - t1
    t2 = time.perf_counter()
    instances, size = pull._check(staging, release, entries)
    t_check = time.perf_counter() - t2
    shutil.rmtree(staging, ignore_errors=True)
    return {
        "import_seconds": t_import,
        "fetch_seconds": t_fetch,
        "check_seconds": t_check,
        "instances": instances,
        "bytes": size,
    }


def phases(clone: Path, out: Path) -> dict | None:
    proc = subprocess.run(
        [sys.executable, __file__, "--child-phases", str(clone), "--child-out", str(out)],
        cwd=clone,
        env=env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        print(f"  (phase breakdown unavailable: {proc.stderr.strip().splitlines()[-1:]})", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=50)
    ap.add_argument("--tasks", type=int, default=20, help="tasks per source")
    ap.add_argument("--instances", type=int, default=1000, help="instances per task")
    ap.add_argument("--repeat", type=int, default=2, help="alternate runs of each side; best time, worst RSS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary project (the path is printed)")
    ap.add_argument("--name", default="pull", help="result name: bench/results/<name>.json")
    ap.add_argument("--child-phases", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_phases:
        print(json.dumps(child_phases(args.child_phases, args.child_out)))
        return

    parent = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    print(f"project in {parent}", flush=True)
    try:
        proj = SynthProject(
            parent, "proj", sources=args.sources, tasks=args.tasks, instances=args.instances, seed=args.seed
        )
        repro_s = proj.repro("data for v1")
        rel = proj.release("v1")
        shards, size = tree_bytes(proj.root / "data" / "corpus")
        print(
            f"  released v1: {proj.total_instances:,} instances, {shards} shards, {size / 1e6:.0f} MB "
            f"(repro {repro_s:.1f}s, release {rel['seconds']:.1f}s)",
            flush=True,
        )
        runs: dict[str, list[dict]] = {"cp": [], "pull": [], "dvc_get": []}
        for i in range(args.repeat):
            copy_dest = parent / f"cp-{i}"
            cp = measured(["cp", "-r", str(proj.root / "data" / "corpus"), str(copy_dest)], parent)
            runs["cp"].append({"seconds": cp["seconds"], "peak_rss_mb": cp["peak_rss_mb"]})
            assert tree_bytes(copy_dest) == (shards, size)
            shutil.rmtree(copy_dest)

            clone = fresh_clone(proj, parent / f"clone-{i}")
            pulled = parent / f"pulled-{i}"
            pl = measured([DYNO, "pull", "v1", "--out", str(pulled), "--json"], clone)
            got = json.loads(pl["stdout"])
            assert tree_bytes(pulled) == (shards, size) and got["instances"] == proj.total_instances, got
            runs["pull"].append(
                {
                    "seconds": pl["seconds"],
                    "peak_rss_mb": pl["peak_rss_mb"],
                    "clone_dvc_cache_after": (clone / ".dvc" / "cache").exists(),
                }
            )
            shutil.rmtree(pulled)
            shutil.rmtree(clone)

            got_dir = parent / f"dvc-get-{i}"
            get_cmd = [DVC, "get", str(proj.root), "data/corpus", "--rev", "v1", "-o", str(got_dir)]
            dg = measured(get_cmd, parent)
            assert tree_bytes(got_dir) == (shards, size), tree_bytes(got_dir)
            runs["dvc_get"].append({"seconds": dg["seconds"], "peak_rss_mb": dg["peak_rss_mb"]})
            shutil.rmtree(got_dir)
            print(
                f"  run {i + 1}: cp {cp['seconds']:.2f}s, pull {pl['seconds']:.2f}s "
                f"({pl['peak_rss_mb']:.0f} MB), dvc get {dg['seconds']:.2f}s ({dg['peak_rss_mb']:.0f} MB)",
                flush=True,
            )
        breakdown = phases(fresh_clone(proj, parent / "clone-phases"), parent / "pulled-phases")
        if breakdown:
            print(
                "  pull phases (one process): "
                + ", ".join(
                    f"{k.removesuffix('_seconds')} {v:.2f}s"
                    for k, v in breakdown.items()
                    if k.endswith("_seconds")
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)

    best = {k: min(r["seconds"] for r in v) for k, v in runs.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in runs.items()}
    ratio = best["pull"] / best["cp"]
    rows = [
        ("instances", proj.total_instances, f"{args.sources * args.tasks} tasks × {args.instances:,}"),
        ("shards", shards, ""),
        ("megabytes", size / 1e6, "10^6 bytes"),
        ("cp_seconds", best["cp"], "cp -r data/corpus (same bytes)"),
        ("pull_seconds", best["pull"], "dyno pull v1 --out DIR, fresh clone"),
        ("cp_mb_per_s", size / 1e6 / best["cp"], ""),
        ("pull_mb_per_s", size / 1e6 / best["pull"], ""),
        ("pull_over_cp", ratio, "≤ 2.0" + (" ✓" if ratio <= 2 else " ✗ MISSED")),
        ("dvc_get_seconds", best["dvc_get"], "dvc get <project> data/corpus --rev v1, same remote"),
        ("pull_over_dvc_get", best["pull"] / best["dvc_get"], "dyno pull also checks every shard's digest"),
        ("pull_peak_rss_mb", rss["pull"], ""),
        ("dvc_get_peak_rss_mb", rss["dvc_get"], ""),
    ]
    if breakdown:
        rows += [(f"phase_{k}", v, "") for k, v in breakdown.items() if k.endswith("_seconds")]
    report(
        args.name,
        rows,
        {
            "runs": runs,
            "phases": breakdown,
            "repro_seconds": repro_s,
            "release_seconds": rel["seconds"],
            "args": vars(args),
            "cpus": os.cpu_count(),
            "project": str(parent) if args.keep else None,
        },
    )


if __name__ == "__main__":
    main()
