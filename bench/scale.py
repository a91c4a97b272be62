"""Benchmark the pipeline at the paper's scale: 2,000 local sources, and 2,000 Hub sources.

Local (issue 12's targets, with a scripted LLM answering in 200 ms): a full `dvc repro` of the corpus stages,
a no-op run (≤ 3 s), and a run after adding one more source (≤ 2 s beyond the no-op plus its own calls;
T_inc ÷ T_full ≤ 0.05). It is `bench/incremental.py` at 2,000 sources; see there for how runs are timed.

Hub: 2,000 dataset repos on the test Hub server (dynosaur.testing.hub_server) answering every request 100 ms
late, as sources in sources.yaml. Timed: `dyno refresh` pinning all of them (≤ 30 s), a second refresh where
nothing moved, then (unless --no-hub-repro) a full `dvc repro` of the corpus stages reading them at their pinned
commits and a no-op repro (≤ 5 s). The repos are copies of one hosted repo (one git history), so hosting 2,000
takes seconds.

Run: `python bench/scale.py [--local-sources 2000] [--rows 200] [--hub-sources 2000] [--hub-repro-sources 2000]
[--no-hub-serial] [--skip-local] [--skip-hub] [--keep] [--code OLD_CHECKOUT] [--name NAME]`; `--code` runs the
local part with an older checkout first, in the same run, and prints this code's ratios to it. Results:
bench/results/scale_local.json (or <name>.json) and scale_hub.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from _common import ROOT, report
from incremental import (
    BIN,
    DVC,
    BenchProject,
    cpu_seconds,
    growth_rows,
    make_source,
    measure_growth,
    repro,
    stage_floor,
    write_params,
)


def local_growth(args: argparse.Namespace, srv, code: Path) -> tuple[dict, dict]:
    """Full, no-op and one-more-source runs of `code` (a checkout's src/, dvc.yaml and params.yaml) over
    `--local-sources` synthetic sources, and each stage's fixed cost alone."""
    project = BenchProject("bench-scale-local-", srv.base_url, code=code)
    try:
        t0 = time.perf_counter()
        ids = [make_source(project.repo, i, args.rows) for i in range(args.local_sources)]
        write_params(project.repo, ids, srv.base_url, args.concurrency, code)
        project.init(f"bench: {args.local_sources} sources")
        print(
            f"  {args.local_sources} local sources made in {time.perf_counter() - t0:.0f}s ({code})",
            flush=True,
        )
        growth = argparse.Namespace(sources=args.local_sources, rows=args.rows, concurrency=args.concurrency)
        runs = measure_growth(project, srv, ids, growth)
        floor = stage_floor(project.repo, project.env)
        print("  each stage alone, nothing to do: " + ", ".join(f"{k} {v:.2f}s" for k, v in floor.items()))
    finally:
        if not args.keep:
            project.remove()
    return runs, floor


def local_part(args: argparse.Namespace) -> None:
    from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema

    with FakeOpenAI(responder=tasks_from_schema, latency=args.latency) as srv:
        before = local_growth(args, srv, args.code) if args.code else None
        runs, floor = local_growth(args, srv, ROOT)
    rows = growth_rows(runs, args.local_sources, args.rows, args.latency, args.concurrency)
    extra: dict = {"runs": runs, "stage_alone_noop_seconds": floor}
    if before is not None:  # the older code, measured in this same run: its figures and this code's ratio
        old = dict(
            (r[0], r[1])
            for r in growth_rows(before[0], args.local_sources, args.rows, args.latency, args.concurrency)
        )
        new = dict((r[0], r[1]) for r in rows)
        for key in (
            "full_seconds",
            "noop_seconds",
            "incremental_extra_seconds",
            "incremental_over_full",
            "incremental_extra_cpu_seconds",
        ):
            rows.append((f"before_{key}", old[key], f"{args.code}, same run"))
            rows.append(
                (f"{key}_ratio", new[key] / old[key] if old[key] else float("nan"), "this code ÷ before")
            )
        extra |= {
            "before_runs": before[0],
            "before_stage_alone_noop_seconds": before[1],
            "before_code": str(args.code),
        }
    report(args.name or "scale_local", rows, extra)


def host_many(hub, n: int, template: Path) -> list[str]:
    """n dataset repos `bench/ds-NNNN`, each a copy of one hosted repo (the same commits)."""
    hub.host_folder("bench/template", template)
    source = hub.repo("bench/template").path
    names = [f"bench/ds-{i:04d}" for i in range(n)]
    for name in names:
        shutil.copytree(source, source.with_name(f"{name.split('/')[1]}.git"))
    return names


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stderr) of one command."""
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, cpu, proc.stderr


def organize_alone(project: BenchProject, hub, read_concurrency: int) -> tuple[float, int, int]:
    """organize's command alone over every Hub source, from an empty corpus, no stat cache and an empty
    Hugging Face cache, with `hub.read_concurrency` set: (seconds, requests the Hub saw, most in flight)."""
    params_path = project.repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params.setdefault("hub", {})["read_concurrency"] = read_concurrency
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(project.repo / "data" / "corpus", ignore_errors=True)
    (project.repo / "data" / ".dyno-cache" / "organize.json").unlink(missing_ok=True)
    shutil.rmtree(
        Path(project.env["HF_HOME"]) / "hub", ignore_errors=True
    )  # the files the last run downloaded
    cmd = yaml.safe_load((project.repo / "dvc.yaml").read_text())["stages"]["organize"]["cmd"]
    hub.reset_log()
    wall, _, _ = timed(["bash", "-c", cmd], project.repo, project.env)
    return wall, len(hub.requests), hub.peak_in_flight


def hub_part(args: argparse.Namespace) -> None:
    from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
    from dynosaur.testing.hub_server import HubServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-hub-"))
    rows: list[tuple[str, object, str]] = [
        ("hub_sources", args.hub_sources, f"{args.hub_latency} s per request")
    ]
    extra: dict = {}
    ok = lambda good: " ✓" if good else " ✗ MISSED"  # noqa: E731
    try:
        with (
            HubServer(tmp / "hub", latency=args.hub_latency) as hub,
            FakeOpenAI(responder=tasks_from_schema, latency=args.latency) as srv,
        ):
            template = tmp / "template"
            make_source(template.parent, 0, args.rows)  # data/sources/src-000 under tmp
            shutil.move(tmp / "data" / "sources" / "src-000", template)
            t0 = time.perf_counter()
            repos = host_many(hub, args.hub_sources, template)
            print(f"  {len(repos)} Hub repos hosted in {time.perf_counter() - t0:.0f}s", flush=True)

            project = BenchProject("bench-scale-hub-", srv.base_url)
            project.env.update(
                HF_ENDPOINT=hub.url,
                HF_TOKEN="hf_bench",
                HF_HUB_OFFLINE="0",
                HF_DATASETS_OFFLINE="0",
                HF_HUB_DISABLE_XET="1",
                HF_HUB_DISABLE_PROGRESS_BARS="1",
                HF_UPDATE_DOWNLOAD_COUNTS="0",
            )
            write_params(project.repo, [], srv.base_url, args.concurrency)
            sources = [{"id": r.replace("/", "__"), "hub": r, "revision": "main"} for r in repos]
            (project.repo / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
            project.init(f"bench: {len(repos)} Hub sources")
            dyno = [str(BIN / "dyno"), "refresh", "--concurrency", str(args.refresh_concurrency)]

            hub.reset_log()
            wall, cpu, _ = timed(dyno, project.repo, project.env)
            requests = len(hub.requests)
            rows += [
                ("refresh_seconds", wall, "≤ 30" + ok(wall <= 30)),
                ("refresh_cpu_seconds", cpu, "user + sys of dyno"),
                ("refresh_requests", requests, f"= {len(repos)}: one per (repo, revision)"),
            ]
            wall, cpu, _ = timed(dyno, project.repo, project.env)
            rows += [("refresh_again_seconds", wall, "nothing moved")]
            project.commit("pinned")

            if args.hub_repro_sources:
                keep = sources[: args.hub_repro_sources]
                (project.repo / "sources.yaml").write_text(yaml.safe_dump({"sources": keep}, sort_keys=False))
                timed(dyno, project.repo, project.env)  # drops the pins of the sources left out
                project.commit(f"{len(keep)} Hub sources")
                total, stages = repro(project.repo, project.env, project.log)
                print(f"  hub full: {total:.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in stages.items())})")
                hub.reset_log()
                noop, noop_stages = repro(project.repo, project.env, project.log)
                wall, _, _ = timed([DVC, "status", "organize", "--with-deps"], project.repo, project.env)
                noop_requests = len(hub.requests)  # the no-op's and dvc status's, before organize runs alone
                # organize alone over the same sources, the Hub's files read one at a time, then
                # hub.read_concurrency (16) at a time: side by side in this run
                if not args.no_hub_serial:
                    serial, serial_requests, _ = organize_alone(project, hub, 1)
                    rows += [
                        (
                            "organize_serial_seconds",
                            serial,
                            f"hub.read_concurrency 1, {serial_requests} requests",
                        )
                    ]
                parallel, parallel_requests, peak = organize_alone(project, hub, 16)
                rows += [
                    (
                        "organize_parallel_seconds",
                        parallel,
                        f"16 at once, {parallel_requests} requests, {peak} in flight",
                    )
                ]
                if not args.no_hub_serial:
                    rows += [("organize_parallel_over_serial", parallel / serial, "same run")]
                per_2000 = parallel / len(keep) * 2000
                how = "measured" if len(keep) == 2000 else f"computed from {len(keep)} sources"
                rows += [
                    ("organize_2000_hub_sources_seconds", per_2000, f"{how}; ≤ 180" + ok(per_2000 <= 180))
                ]
                rows += [
                    ("repro_sources", len(keep), ""),
                    ("full_seconds", total, ""),
                    ("noop_seconds", noop, "≤ 5" + ok(noop <= 5)),
                    ("noop_cpu_seconds", noop_stages["cpu"], ""),
                    ("noop_hub_requests", noop_requests, "= 0" + ok(not noop_requests)),
                    ("dvc_status_seconds", wall, ""),
                ]
                extra["runs"] = {"full": stages, "noop": noop_stages}
            extra["log"] = str(project.log)
            if not args.keep:
                project.remove()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report("scale_hub", rows, extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local-sources", type=int, default=2000)
    ap.add_argument("--hub-sources", type=int, default=2000)
    ap.add_argument("--hub-repro-sources", type=int, default=2000, help="of the Hub sources, how many repro")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.2, help="the scripted LLM's seconds per call")
    ap.add_argument("--hub-latency", type=float, default=0.1, help="the test Hub's seconds per request")
    ap.add_argument("--concurrency", type=int, default=16, help="llm.concurrency")
    ap.add_argument("--refresh-concurrency", type=int, default=32)
    ap.add_argument(
        "--no-hub-serial",
        action="store_true",
        help="time organize's Hub reads at hub.read_concurrency 16 only, not also one at a time",
    )
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--skip-hub", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary projects")
    ap.add_argument(
        "--code",
        type=Path,
        help="also run the local part with an older checkout's src/, dvc.yaml and params.yaml first, side by"
        " side (`git archive COMMIT src dvc.yaml params.yaml sources.yaml sources.lock | tar -x -C DIR`)",
    )
    ap.add_argument("--name", help="results file of the local part: bench/results/<name>.json (scale_local)")
    args = ap.parse_args()
    os.chdir(ROOT)
    if not args.skip_hub:
        hub_part(args)
    if not args.skip_local:
        local_part(args)


if __name__ == "__main__":
    main()
