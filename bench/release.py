"""Benchmark `dyno release` and `dyno diff` on a synthetic 1,000-task × 1,000-instance corpus, and diff at 10×.

No LLM pipeline runs: a temporary git + DVC project (local directory remote as default) has four stages
named like the real ones whose command is `bench/_synth_stage.py`, so `dvc repro` writes collected records,
tasks and 1,000 parquet shards (dynosaur.pipeline.organize.SCHEMA, footer digests) and `dyno` sees an up-to-date
pipeline. Then: `dyno release -m v1` (pushes every shard), rewrite 10 shards (the other 990 stay
byte-identical), `dvc repro`, commit, `dyno release -m v2`, and `dyno diff v1 v2 --json`, whose totals must
say 10 tasks changed. A second project with 10× the instances per task (same tasks) gets the same two
releases; its diff is timed alternately with the first one's, so the ratio is measured side by side.
Every `dyno` runs as a child process (`.venv/bin/dyno`, cwd = the project) under GNU time: wall time and
peak RSS (see `_release_project.measured`).

Also `dyno verify --remote` on the 1× project's two releases (every listing and shard read back from the
remote). With `--baseline-src DIR` (another checkout's `src/`, e.g. `git archive <rev> src | tar -x -C /tmp/b`)
a third project, identical to the 1× one, is released with that code right after it, so release times
before and after a change are measured in one run. `--scale 1` skips the 10× project.

Targets: diff < 1 s and < 200 MB; diff at 10× instances ≈ 1× the time at 1× (it reads manifests, not shards);
release v1 within 10% of the baseline's.
Run: `.venv/bin/python bench/release.py [--sources 50] [--tasks 20] [--instances 1000] [--scale 10]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from _common import ROOT, report
from _release_project import DYNO, SynthProject, measured


def released_pair(
    parent: Path, name: str, args: argparse.Namespace, instances: int, pythonpath: str | None = None
) -> tuple[SynthProject, dict]:
    """A project with v1 (everything) and v2 (`--changed` tasks rewritten): the times of each step."""
    proj = SynthProject(
        parent,
        name,
        sources=args.sources,
        tasks=args.tasks,
        instances=instances,
        seed=args.seed,
        pythonpath=pythonpath,
    )
    out: dict = {"instances_per_task": instances, "total_instances": proj.total_instances}
    out["repro_full_seconds"] = proj.repro("data for v1")
    before = proj.shard_hashes()
    v1 = proj.release("v1")
    out["release_v1"] = {k: v1[k] for k in ("seconds", "peak_rss_mb")}
    proj.change(args.changed)
    out["repro_change_seconds"] = proj.repro(f"data for v2: {args.changed} tasks rewritten")
    after = proj.shard_hashes()
    out["shards"] = len(after)
    out["shards_rewritten"] = sum(before[k] != after.get(k) for k in before)
    v2 = proj.release("v2")
    out["release_v2"] = {k: v2[k] for k in ("seconds", "peak_rss_mb")}
    print(
        f"  {name}: {proj.total_instances:,} instances, repro {out['repro_full_seconds']:.1f}s, "
        f"release v1 {v1['seconds']:.2f}s / {v1['peak_rss_mb']:.0f} MB; {out['shards_rewritten']} shards "
        f"rewritten, repro {out['repro_change_seconds']:.1f}s, release v2 {v2['seconds']:.2f}s / "
        f"{v2['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    return proj, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=50)
    ap.add_argument("--tasks", type=int, default=20, help="tasks per source")
    ap.add_argument("--instances", type=int, default=1000, help="instances per task")
    ap.add_argument("--scale", type=int, default=10, help="instances multiplier of the second project")
    ap.add_argument("--changed", type=int, default=10, help="tasks rewritten between v1 and v2")
    ap.add_argument(
        "--repeat", type=int, default=5, help="diff runs per project, alternating; best and median"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--baseline-src", type=Path, help="another checkout's src/: release an identical 1× project with it"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary projects (the path is printed)")
    args = ap.parse_args()

    parent = Path(tempfile.mkdtemp(prefix="bench-release-"))
    print(f"projects in {parent}", flush=True)
    try:
        startup = [measured([DYNO, "--version"], ROOT) for _ in range(3)]
        small, small_steps = released_pair(parent, "x1", args, args.instances)
        baseline_steps = None
        if args.baseline_src:
            _, baseline_steps = released_pair(
                parent, "baseline", args, args.instances, str(args.baseline_src.resolve())
            )
        verify_run, verify_report = small.verify_remote()
        print(
            f"  verify --remote: {verify_report['releases']} releases, {verify_report['shards']} shards,"
            f" ok={verify_report['ok']}, {verify_run['seconds']:.2f}s / {verify_run['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        projects = {"x1": small}
        big_steps: dict = {}
        if args.scale > 1:
            big, big_steps = released_pair(parent, f"x{args.scale}", args, args.instances * args.scale)
            projects["big"] = big
        diffs: dict[str, list[dict]] = {key: [] for key in projects}
        totals = {}
        for _ in range(args.repeat):
            for key, proj in projects.items():  # side by side, alternating
                run, data = proj.diff("v1", "v2")
                diffs[key].append({"seconds": run["seconds"], "peak_rss_mb": run["peak_rss_mb"]})
                totals[key] = data["totals"]
        print("  diff: " + ", ".join(f"{k} {min(r['seconds'] for r in v):.3f}s" for k, v in diffs.items()))
    finally:
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)

    ok = lambda good: " ✓" if good else " ✗ MISSED"  # noqa: E731
    best = {k: min(r["seconds"] for r in v) for k, v in diffs.items()}
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in diffs.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in diffs.items()}
    n_tasks = args.sources * args.tasks
    changed_ok = {
        k: t["tasks_changed"] == args.changed and not (t["tasks_added"] or t["tasks_removed"])
        for k, t in totals.items()
    }
    s, b = small_steps, big_steps
    rows = [
        ("tasks", n_tasks, f"{args.sources} sources × {args.tasks}"),
        ("instances_x1", s["total_instances"], f"{args.instances:,} per task"),
        ("dyno_startup_seconds", min(r["seconds"] for r in startup), "`dyno --version`: the fixed cost"),
        ("repro_full_seconds", s["repro_full_seconds"], "synthetic stages + dvc hashing (not dyno)"),
        ("release_v1_seconds", s["release_v1"]["seconds"], "push all shards"),
        ("release_v1_peak_rss_mb", s["release_v1"]["peak_rss_mb"], ""),
        (
            "shards_rewritten",
            s["shards_rewritten"],
            f"= {args.changed}" + ok(s["shards_rewritten"] == args.changed),
        ),
        ("release_v2_seconds", s["release_v2"]["seconds"], f"{args.changed} shards to push"),
        ("release_v2_peak_rss_mb", s["release_v2"]["peak_rss_mb"], ""),
        ("release_v2_over_v1", s["release_v2"]["seconds"] / s["release_v1"]["seconds"], ""),
        ("diff_seconds", best["x1"], "< 1.0" + ok(best["x1"] < 1)),
        ("diff_seconds_median", median["x1"], ""),
        ("diff_peak_rss_mb", rss["x1"], "< 200" + ok(rss["x1"] < 200)),
        ("diff_tasks_changed", totals["x1"]["tasks_changed"], f"= {args.changed}" + ok(changed_ok["x1"])),
        (
            "verify_remote_seconds",
            verify_run["seconds"],
            f"{verify_report['shards']} shards of {verify_report['releases']} releases read from the remote"
            + ok(verify_report["ok"]),
        ),
        ("verify_remote_peak_rss_mb", verify_run["peak_rss_mb"], ""),
    ]
    if baseline_steps:
        before = baseline_steps["release_v1"]["seconds"]
        growth = s["release_v1"]["seconds"] / before
        rows += [
            ("baseline_release_v1_seconds", before, f"the same project released with {args.baseline_src}"),
            ("baseline_release_v2_seconds", baseline_steps["release_v2"]["seconds"], ""),
            ("release_v1_over_baseline", growth, "≤ 1.10" + ok(growth <= 1.10)),
        ]
    if b:
        ratio = best["big"] / best["x1"]
        rows += [
            (f"instances_x{args.scale}", b["total_instances"], f"{args.instances * args.scale:,} per task"),
            (f"release_v1_seconds_x{args.scale}", b["release_v1"]["seconds"], ""),
            (f"release_v1_peak_rss_mb_x{args.scale}", b["release_v1"]["peak_rss_mb"], ""),
            (f"release_v2_seconds_x{args.scale}", b["release_v2"]["seconds"], ""),
            (f"diff_seconds_x{args.scale}", best["big"], "< 1.0" + ok(best["big"] < 1)),
            (f"diff_peak_rss_mb_x{args.scale}", rss["big"], "< 200" + ok(rss["big"] < 200)),
            (
                f"diff_tasks_changed_x{args.scale}",
                totals["big"]["tasks_changed"],
                f"= {args.changed}" + ok(changed_ok["big"]),
            ),
            (f"diff_x{args.scale}_over_x1", ratio, "≈ 1 (≤ 1.25)" + ok(ratio <= 1.25)),
        ]
    report(
        "release",
        rows,
        {
            "steps": {"x1": small_steps, f"x{args.scale}": big_steps, "baseline": baseline_steps},
            "diff_runs": diffs,
            "diff_totals": totals,
            "dyno_startup_runs": [r["seconds"] for r in startup],
            "args": vars(args),
            "cpus": os.cpu_count(),
            "projects": str(parent) if args.keep else None,
        },
    )


if __name__ == "__main__":
    main()
